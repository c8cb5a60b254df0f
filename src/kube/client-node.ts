// client-node's KubeConfig — kubeconfig loading and every auth method it implements — without
// the generated API clients its config module imports (dist/gen/index.js: most of the ~0.8 s
// and ~40 MB that loading the package costs). krsync talks to the API with its own requests
// (rest.ts, exec-ws.ts), and config.js uses the two names it takes from there only in
// KubeConfig.makeApiClient, which krsync never calls. A module resolve hook hands config.js a
// stand-in for that one import; if the hook cannot be installed, the whole package is loaded.
import { register } from "node:module";
import type * as ClientNodeConfig from "@kubernetes/client-node/dist/config.js";

const STAND_IN = `const no = () => { throw new Error("krsync does not load client-node's generated API clients"); };
export class ServerConfiguration { constructor() { no(); } }
export function createConfiguration() { no(); }`;

const HOOKS = `const standIn = ${JSON.stringify(`data:text/javascript,${encodeURIComponent(STAND_IN)}`)};
export async function resolve(specifier, context, next) {
  if (specifier === "./gen/index.js" && (context.parentURL ?? "").endsWith("/@kubernetes/client-node/dist/config.js")) {
    return { url: standIn, shortCircuit: true };
  }
  return next(specifier, context);
}`;

async function load(): Promise<typeof ClientNodeConfig> {
  try {
    register(`data:text/javascript,${encodeURIComponent(HOOKS)}`);
    return await import("@kubernetes/client-node/dist/config.js");
  } catch {
    return await import("@kubernetes/client-node");
  }
}

export const { KubeConfig } = await load();
export type KubeConfig = ClientNodeConfig.KubeConfig;
