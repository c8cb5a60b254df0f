// Part of `npm run build`: bundles the two libraries krsync's Kubernetes code runs on —
// @kubernetes/client-node's KubeConfig (kubeconfig loading and its auth methods) and ws — into
// one module, dist/kube/deps.bundle.js, which src/kube/deps.ts loads. Importing the packages
// resolves and compiles some 150 files; one bundled file loads in well under half the time.
// client-node's config.js imports its generated API clients (./gen/index.js, thousands of
// lines) only for KubeConfig.makeApiClient, which krsync never calls: the bundle gets a
// stand-in for that module that throws if it is ever used.
// Without the bundler (an install without devDependencies) this says so and exits 0: deps.ts
// then imports the packages themselves.
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "dist", "kube", "deps.bundle.js");

let rolldown;
try {
  ({ rolldown } = await import("rolldown"));
} catch {
  console.warn("krsync: rolldown is not installed; dist/kube/deps.bundle.js not built (Kubernetes targets load client-node whole, slower to start)");
  process.exit(0);
}

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
if (!existsSync(dirname(out))) mkdirSync(dirname(out), { recursive: true });
await bundle.write({ file: out, format: "esm", sourcemap: false });
await bundle.close();
