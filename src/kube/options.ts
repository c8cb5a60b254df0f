// The Kubernetes options of a transfer (the CLI's --namespace --container --context
// --kubeconfig --pod-wait --all-pods --remote-tmp).
export interface KubeOptions {
  namespace?: string;
  container?: string;
  context?: string;
  kubeconfig?: string;
  podWait?: number; // seconds
  allPods?: boolean;
  remoteTmp?: string;
}
