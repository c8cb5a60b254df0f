// The libraries the Kubernetes code runs on: client-node's KubeConfig (kubeconfig loading and
// every auth method it implements) and ws (the exec WebSocket). `npm run build` bundles both
// into dist/kube/deps.bundle.js (scripts/bundle.mjs), one file that loads in well
// under half the time of the ~150 files the packages are, without client-node's generated API
// clients (config.js uses them only in makeApiClient, which krsync never calls). Where there is
// no bundle (running from src/, or built without the bundler), the packages are imported.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type * as ClientNodeConfig from "@kubernetes/client-node/dist/config.js";
import type WebSocketClass from "ws";

interface KubeDeps {
  KubeConfig: typeof ClientNodeConfig.KubeConfig;
  WebSocket: typeof WebSocketClass;
}

async function load(): Promise<KubeDeps & { source: "bundle" | "packages" }> {
  const bundle = new URL("../kube/deps.bundle.js", import.meta.url);
  if (bundle.protocol === "file:" && existsSync(fileURLToPath(bundle))) {
    const m = (await import(bundle.href)) as KubeDeps;
    return { KubeConfig: m.KubeConfig, WebSocket: m.WebSocket, source: "bundle" };
  }
  const [c, w] = await Promise.all([import("@kubernetes/client-node"), import("ws")]);
  return { KubeConfig: c.KubeConfig, WebSocket: w.default, source: "packages" };
}

const deps = await load();
export const KubeConfig = deps.KubeConfig;
export type KubeConfig = ClientNodeConfig.KubeConfig;
export const WebSocket = deps.WebSocket;
export type WebSocket = WebSocketClass;
/** Which was loaded: the build's bundle, or the packages themselves. */
export const kubeDepsSource = deps.source;
