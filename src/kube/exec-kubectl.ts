// The `kubectl` transport: `kubectl exec -i [--context C] [--kubeconfig K] -n NS POD -c CONTAINER
// -- argv...` as a spawned child. kubectl does the auth (any plugin it knows), the WebSocket
// or SPDY stream, and ends the remote stdin when we end its stdin.
import { SpawnedTransport } from "../transport/spawned.js";
import type { KubeOptions } from "./options.js";
import type { KubectlCommand } from "./rest.js";

/** KRSYNC_KUBECTL, else "kubectl" from PATH. */
export function kubectlCommand(o: KubeOptions, env: NodeJS.ProcessEnv): KubectlCommand {
  const globalArgs: string[] = [];
  if (o.context) globalArgs.push("--context", o.context);
  if (o.kubeconfig) globalArgs.push("--kubeconfig", o.kubeconfig);
  return { kubectl: env.KRSYNC_KUBECTL || "kubectl", globalArgs, env };
}

export function kubectlExecArgv(cmd: KubectlCommand, namespace: string, pod: string, container: string, command: readonly string[]): string[] {
  return [cmd.kubectl, ...cmd.globalArgs, "exec", "-i", "-n", namespace, pod, "-c", container, "--", ...command];
}

export function spawnKubectlExec(
  cmd: KubectlCommand,
  namespace: string,
  pod: string,
  container: string,
  command: readonly string[],
  stderr: (chunk: Buffer) => void,
): SpawnedTransport {
  return new SpawnedTransport(kubectlExecArgv(cmd, namespace, pod, container, command), { env: cmd.env, stderr });
}
