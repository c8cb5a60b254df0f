// npm's install step for krsync's optional native addon (native/times.c): builds it with
// node-gyp when a C toolchain is there, and never fails the install when it is not. Without
// the addon krsync sets file times through Node's fs, to the microsecond (src/engine/attrs.ts).
//
// KRSYNC_NO_NATIVE=1 skips the build.
import { spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const addon = join(here, "build", "Release", "krsync_times.node");
const say = (text) => process.stderr.write(`krsync: ${text}\n`);
const fallback = "file times will be set to the microsecond (Node's fs)";

function nodeGyp() {
  // npm names its bundled node-gyp to lifecycle scripts.
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return [process.execPath, fromNpm];
  const bundled = join(dirname(process.execPath), "..", "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js");
  if (existsSync(bundled)) return [process.execPath, bundled];
  return ["node-gyp"];
}

/** The line of node-gyp's output that names what failed. */
function cause(r) {
  if (r.error) return r.error.message;
  const out = `${r.stdout ?? ""}\n${r.stderr ?? ""}`;
  const line =
    /^\S+:\d+(?::\d+)?: (?:fatal )?error: .+$/m.exec(out)?.[0] ?? // the compiler's first error
    /^gyp ERR! stack Error: (.+)$/m.exec(out)?.[1] ??
    `exited with ${r.status ?? r.signal}`;
  return `node-gyp: ${line.trim()}`;
}

function main() {
  if (process.env.KRSYNC_NO_NATIVE) {
    say(`KRSYNC_NO_NATIVE is set: native time setter not built; ${fallback}`);
    return;
  }
  if (process.platform === "win32") {
    say(`no utimensat on Windows: native time setter not built; ${fallback}`);
    return;
  }
  const [cmd, ...pre] = nodeGyp();
  const args = [...pre, "rebuild", `--directory=${here}`];
  // The headers of the running Node when they are installed beside it, so nothing is downloaded.
  const prefix = dirname(dirname(process.execPath));
  if (!process.env.npm_config_nodedir && existsSync(join(prefix, "include", "node", "node_api.h"))) {
    args.push(`--nodedir=${prefix}`);
  }
  const r = spawnSync(cmd, args, { cwd: here, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 300_000 });
  if (r.status !== 0 || !existsSync(addon)) {
    say(`native time setter not built (${cause(r)}); ${fallback}`);
    rmSync(join(here, "build"), { recursive: true, force: true });
    return;
  }
  try {
    const t = createRequire(import.meta.url)(addon);
    if (typeof t.utimensat !== "function" || typeof t.futimens !== "function") throw new Error("exports missing");
  } catch (e) {
    say(`native time setter built but does not load (${e instanceof Error ? e.message : String(e)}); ${fallback}`);
    rmSync(join(here, "build"), { recursive: true, force: true });
    return;
  }
  say("native time setter built: file times are set to the nanosecond");
}

try {
  main();
} catch (e) {
  say(`native time setter not built (${e instanceof Error ? e.message : String(e)}); ${fallback}`);
}
