// A real `rsync --daemon` for tests: its own config (no chroot; uid/gid 0 only when root), on a
// free port of 127.0.0.1, in the foreground (--no-detach) so the test can stop it.
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { isRoot, rsyncPath, tmpDir } from "./env.js";

export interface DaemonModule {
  name: string;
  comment?: string;
  readOnly: boolean;
  /** "user:password" lines for `auth users` + `secrets file`. */
  secrets?: Record<string, string>;
}

export interface TestDaemon {
  port: number;
  /** The directory holding the config, the MOTD and the module directories (DIR/MODULE). */
  dir: string;
  config: string;
  /** Path of a module's directory. */
  path(module: string): string;
  stop(): Promise<void>;
}

export const MOTD = "Welcome to the krsync test daemon\nsecond MOTD line";

/** A port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

export async function startDaemon(modules: readonly DaemonModule[]): Promise<TestDaemon> {
  const dir = tmpDir("daemon-");
  const motd = join(dir, "motd");
  writeFileSync(motd, MOTD + "\n");
  const lines = ["use chroot = no", "munge symlinks = no", `motd file = ${motd}`, `log file = ${join(dir, "log")}`, `pid file = ${join(dir, "pid")}`];
  // Without root the daemon runs as this user; as root it would switch to nobody.
  if (isRoot()) lines.push("uid = 0", "gid = 0");
  for (const m of modules) {
    const path = join(dir, m.name);
    mkdirSync(path, { recursive: true });
    lines.push(`[${m.name}]`, `  path = ${path}`, `  read only = ${m.readOnly ? "yes" : "no"}`);
    if (m.comment !== undefined) lines.push(`  comment = ${m.comment}`);
    if (m.secrets) {
      const file = join(dir, `${m.name}.secrets`);
      writeFileSync(file, Object.entries(m.secrets).map(([u, p]) => `${u}:${p}\n`).join(""));
      chmodSync(file, 0o600);
      lines.push(`  auth users = ${Object.keys(m.secrets).join(" ")}`, `  secrets file = ${file}`);
    }
  }
  const config = join(dir, "rsyncd.conf");
  writeFileSync(config, lines.join("\n") + "\n");
  // A port can be taken between the probe and the bind: try a few.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const child: ChildProcess = spawn(rsyncPath, ["--daemon", "--no-detach", `--config=${config}`, `--port=${port}`, "--address=127.0.0.1"], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let exited = false;
    child.once("exit", () => (exited = true));
    for (let i = 0; i < 100 && !exited; i++) {
      if (await canConnect(port)) {
        return {
          port,
          dir,
          config,
          path: (m) => join(dir, m),
          stop: () =>
            new Promise<void>((resolve) => {
              if (exited) return resolve();
              child.once("exit", () => resolve());
              child.kill("SIGTERM");
            }),
        };
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!exited) child.kill("SIGKILL");
  }
  throw new Error("could not start rsync --daemon");
}
