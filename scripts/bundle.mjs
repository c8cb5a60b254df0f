// Part of `npm run build`, after tsc: two bundles of what dist/ holds, for start-up time.
//
// 1. dist/cli/krsync.js, the `krsync` executable: krsync's own modules of the command
//    (dist/cli/bin.js and everything it imports, the Kubernetes code as a chunk loaded on
//    demand) in one file. Node's ES module loader reads, resolves and links each of the ~60
//    modules on its own; one file starts the command in about half the time. The packages stay
//    outside (loaded from node_modules as they are), and so do the paths krsync finds at run
//    time relative to its own file (the native addon, agent/, vendor/, bench/): the bundle sits
//    in dist/cli/, where tsc's output of those modules is, so they resolve alike.
// 2. dist/kube/deps.bundle.js: the two libraries krsync's Kubernetes code runs on —
//    @kubernetes/client-node's KubeConfig (kubeconfig loading and its auth methods) and ws —
//    in one module, which src/kube/deps.ts loads. Importing the packages resolves and compiles
//    some 150 files; one bundled file loads in well under half the time. client-node's
//    config.js imports its generated API clients (./gen/index.js, thousands of lines) only for
//    KubeConfig.makeApiClient, which krsync never calls: the bundle gets a stand-in for that
//    module that throws if it is ever used.
//
// Without the bundler (an install without devDependencies) this says so and exits 0:
// dist/cli/krsync.js is then a two-line module that imports dist/cli/bin.js, and deps.ts
// imports the packages themselves.
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cliDir = join(root, "dist", "cli");
const cliOut = join(cliDir, "krsync.js");
const kubeOut = join(root, "dist", "kube", "deps.bundle.js");
/** The executable's first line (src/cli/bin.ts says why the small young generation). */
const SHEBANG = "#!/usr/bin/env -S node --max-semi-space-size=2";
/** The chunks of earlier builds (their names carry a content hash). */
const CHUNK = /^krsync-.*\.js$/;

let rolldown;
try {
  ({ rolldown } = await import("rolldown"));
} catch {
  rolldown = null;
}

for (const f of readdirSync(cliDir)) if (CHUNK.test(f)) rmSync(join(cliDir, f));
if (rolldown) {
  await bundleCli();
  await bundleKubeDeps();
} else {
  writeFileSync(cliOut, `${SHEBANG}\nimport "./bin.js";\n`);
  console.warn("krsync: rolldown is not installed; the command and its Kubernetes libraries are not bundled (slower to start)");
}
chmodSync(cliOut, 0o755);

async function bundleCli() {
  const bundle = await rolldown({
    input: join(cliDir, "bin.js"),
    platform: "node",
    cwd: root,
    logLevel: "warn",
    // Packages and node: modules load as they are; bench/ is the checkout's (krsync bench).
    external: (id) => id.startsWith("node:") || !(id.startsWith(".") || isAbsolute(id) || id.startsWith("\0")) || /[\\/]bench[\\/]run\.mjs$/.test(id),
  });
  await bundle.write({
    dir: cliDir,
    entryFileNames: "krsync.js",
    chunkFileNames: "krsync-[name]-[hash].js",
    format: "esm",
    sourcemap: false,
  });
  await bundle.close();
}

async function bundleKubeDeps() {
  const ENTRY = "\0krsync-kube-deps";
  const GEN = "\0krsync-client-node-gen";
  const ENTRY_SOURCE = `export { KubeConfig } from "@kubernetes/client-node/dist/config.js";
export { default as WebSocket } from "ws";
`;
  const GEN_SOURCE = `const no = () => { throw new Error("krsync does not load client-node's generated API clients"); };
export class ServerConfiguration { constructor() { no(); } }
export function createConfiguration() { no(); }
`;
  const bundle = await rolldown({
    input: ENTRY,
    platform: "node",
    cwd: root,
    logLevel: "warn",
    plugins: [
      {
        name: "krsync-kube-deps",
        resolveId(id, importer) {
          if (id === ENTRY) return ENTRY;
          if (id === "./gen/index.js" && importer?.endsWith(join("@kubernetes", "client-node", "dist", "config.js"))) return GEN;
          return null;
        },
        load(id) {
          if (id === ENTRY) return ENTRY_SOURCE;
          if (id === GEN) return GEN_SOURCE;
          return null;
        },
      },
    ],
  });
  if (!existsSync(dirname(kubeOut))) mkdirSync(dirname(kubeOut), { recursive: true });
  await bundle.write({ file: kubeOut, format: "esm", sourcemap: false });
  await bundle.close();
}
