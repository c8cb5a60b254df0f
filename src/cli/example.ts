// `krsync --example`: the main job on a built-in example. Builds a small tree, pulls it from a
// local "remote" (the system's rsync --server, reached through a remote-shell stand-in that
// runs the command here), changes it, and pulls again with --delete to show the delta.
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, chmodSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";

export async function runExample(extra: string[], main: (argv: string[]) => Promise<number>): Promise<number> {
  const work = mkdtempSync(path.join(tmpdir(), "krsync-example-"));
  try {
    const src = path.join(work, "remote", "app");
    mkdirSync(path.join(src, "out", "assets"), { recursive: true });
    writeFileSync(path.join(src, "out", "index.html"), "<h1>hello from the remote</h1>\n".repeat(200));
    writeFileSync(path.join(src, "out", "assets", "app.js"), Buffer.alloc(300_000, "console.log('krsync');\n"));
    writeFileSync(path.join(src, "out", "stale.txt"), "this file will be deleted on the remote\n");
    const rsh = path.join(work, "rsh.sh");
    // A remote shell that ignores the host and runs the remote command locally.
    writeFileSync(rsh, '#!/bin/sh\nwhile [ $# -gt 0 ]; do case "$1" in -l) shift 2;; -*) shift;; *) break;; esac; done\nshift\nexec sh -c "$*"\n');
    chmodSync(rsh, 0o755);
    if (!existsSync("/usr/bin/rsync") && !process.env["PATH"]?.split(path.delimiter).some((d) => existsSync(path.join(d, "rsync")))) {
      process.stderr.write("krsync --example needs an rsync on this machine to play the remote side.\n");
      return 1;
    }
    const dest = path.join(work, "local", "out");
    const argv = (more: string[]) => ["-av", "--delete", "-e", rsh, ...extra, ...more, `example-host:${src}/out/`, dest + "/"];
    process.stdout.write(`# first pull of example-host:${src}/out/ into ${dest}/\n`);
    let code = await main(argv([]));
    if (code !== 0) return code;
    writeFileSync(path.join(src, "out", "index.html"), "<h1>hello again</h1>\n" + "<h1>hello from the remote</h1>\n".repeat(200));
    rmSync(path.join(src, "out", "stale.txt"));
    process.stdout.write("\n# the remote changed: pull again (delta transfer, deletion)\n");
    code = await main(argv(["--stats"]));
    return code;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
