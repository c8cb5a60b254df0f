// npm install's step for the injected rsync: build the static binaries (build.sh) when they are
// missing and this machine can build them (root, Linux, apt-get); otherwise say how, and go on —
// krsync works without them except for pods that have no rsync of their own.
//   KRSYNC_SKIP_RSYNC_BUILD=1   never build here
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

const here = import.meta.dirname;
const out = join(here, "out");
const complete = ["rsync-amd64", "rsync-arm64", "SHA256SUMS", "VERSION"].every((f) => existsSync(join(out, f)));
const say = (text) => process.stderr.write(`krsync: ${text}\n`);
const howTo = "build them with `bash vendor/rsync/build.sh` as root on Debian";

if (complete) {
  // build.sh checks the hashes and returns at once when they match.
  if (spawnSync("bash", [join(here, "build.sh")], { stdio: "inherit" }).status !== 0) say(`the static rsync binaries in ${out} do not verify: ${howTo}`);
} else if (process.env.KRSYNC_SKIP_RSYNC_BUILD === "1") {
  say(`not building the static rsync for injection (KRSYNC_SKIP_RSYNC_BUILD=1); ${howTo}`);
} else if (process.platform !== "linux" || process.getuid?.() !== 0 || spawnSync("sh", ["-c", "command -v apt-get"]).status !== 0) {
  say(`the static rsync for injection into pods without rsync is not built (it needs root, Linux and apt-get): ${howTo}`);
} else {
  say("building the static rsync for injection (vendor/rsync/build.sh, a few minutes) ...");
  const r = spawnSync("bash", [join(here, "build.sh")], { stdio: "inherit" });
  if (r.status !== 0) say(`building the static rsync failed (see vendor/rsync/work/build.log); ${howTo}`);
}
