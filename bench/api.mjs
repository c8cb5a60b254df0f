// The API-transport scenario's set-up: the test suite's fake Kubernetes API server
// (test/kube/fakeapi.ts, HTTPS + the pods/exec WebSocket, each pod a chroot directory) started
// in this process, with one pod `web-0` whose root has busybox, the native rsync and the bench
// tree (hard-linked) at /data. The fake server is TypeScript; it is bundled once into the work
// directory with rolldown (a devDependency, also the build's bundler). Pod roots are chroot
// directories, so the scenario needs root.
//
// Both tools are krsync pulling the same tree from the same native rsync: over the API exec
// WebSocket (`pod/web-0:/data/`, KRSYNC_KUBE_TRANSPORT=api) and over a local pipe through
// fakersh.sh (`bench-host:POD/data/`). Their ratio is the cost of the API transport.

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Bundles test/kube's fake API server and pod-root builder into DIR; returns the module. */
async function loadFakeApi(dir) {
  const out = join(dir, "fakeapi.mjs");
  mkdirSync(dir, { recursive: true });
  const entry = join(dir, "entry.ts");
  writeFileSync(
    entry,
    `export { startFakeApi } from ${JSON.stringify(join(REPO, "test/kube/fakeapi.ts"))};\n` +
      `export { makePodRoot } from ${JSON.stringify(join(REPO, "test/kube/podroot.ts"))};\n`,
  );
  const { rolldown } = await import("rolldown");
  const bundle = await rolldown({ input: entry, platform: "node", cwd: REPO, logLevel: "silent" });
  await bundle.write({ file: out, format: "esm" });
  await bundle.close();
  return import(pathToFileURL(out).href);
}

/**
 * Starts the fake API server with a pod holding `tree` at /data.
 * @returns {Promise<{ skip: string } | { env: NodeJS.ProcessEnv, podData: string, close: () => Promise<void> }>}
 */
export async function startApiPod(ctx, tree) {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) {
    return { skip: "needs root: the fake API server's pods are chroot directories" };
  }
  let mod;
  try {
    mod = await loadFakeApi(join(ctx.scratch, "fakeapi"));
  } catch (e) {
    return { skip: `cannot build the fake API server (rolldown, test/kube): ${e.message.split("\n")[0]}` };
  }
  const podRoot = join(ctx.scratch, "api-pod");
  rmSync(podRoot, { recursive: true, force: true });
  const root = await mod.makePodRoot(podRoot, { withRsync: true, rsyncPath: ctx.rsync });
  const podData = join(podRoot, "data");
  // Hard links: the same inodes the pipe run reads, no copy of the tree.
  execFileSync("cp", ["-al", tree, podData]);
  const api = await mod.startFakeApi({ pods: [{ name: "web-0", containers: [{ name: "app", root: podRoot }] }] });
  if (!existsSync(api.kubeconfigPath)) return { skip: "the fake API server wrote no kubeconfig" };
  return {
    env: { KUBECONFIG: api.kubeconfigPath, KRSYNC_KUBE_TRANSPORT: "api" },
    podData,
    async close() {
      await api.close();
      await root.cleanup();
    },
  };
}
