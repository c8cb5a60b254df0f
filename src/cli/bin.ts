#!/usr/bin/env -S node --max-semi-space-size=2
// The krsync executable (the package's bin, bundled by the build into dist/cli/krsync.js,
// scripts/bundle.mjs): runs the command on the process's arguments and exits with its status.
// The shebang asks for a small young generation: a transfer streams through short-lived
// buffers, and V8's default semi-spaces (16 MiB each) would hold tens of MiB of garbage.
import { main, safeText } from "./main.js";

main(process.argv.slice(2)).then(
  (code) => {
    // Exit once the output is written, even if something behind the remote shell lingers.
    process.exitCode = code;
    process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
  },
  (e: unknown) => {
    process.stderr.write(safeText(`krsync: ${(e as Error).stack ?? String(e)}`) + "\n");
    process.exitCode = 11;
  },
);
