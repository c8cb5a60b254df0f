// Ready-made object sets for the fake API server: a Deployment half way through a rolling
// update (two ReplicaSets, pods of both revisions), and a StatefulSet mid-update.

import type { ContainerSpec, PodSpec, WorkloadSpec } from "./objects.js";

const minutesAgo = (now: number, m: number) => new Date(now - m * 60_000).toISOString().replace(/\.\d{3}Z$/, "Z");

export interface RolloutFixture {
  workloads: WorkloadSpec[];
  pods: PodSpec[];
  /** Pod names by role, for assertions. */
  oldReady: string;
  oldTerminating: string;
  newReady: string;
  newNotReady: string;
}

/**
 * Deployment `name` (revision 2) with ReplicaSet `name-old` (revision 1) and `name-new`
 * (revision 2), pods labelled app=name plus pod-template-hash:
 * - `${name}-old-term`: old revision, Ready for 55 min, terminating (deletionTimestamp set);
 * - `${name}-old-ready`: old revision, Ready for 50 min;
 * - `${name}-new-ready`: new revision, Ready for 1 min;
 * - `${name}-new-starting`: new revision, Running but not Ready.
 */
export function halfDoneRollout(name: string, container: (pod: string) => ContainerSpec[], now = Date.now()): RolloutFixture {
  const labels = (hash: string) => ({ app: name, "pod-template-hash": hash });
  const pod = (suffix: string, hash: string, rs: string, extra: Partial<PodSpec>): PodSpec => ({
    name: `${name}-${suffix}`,
    labels: labels(hash),
    containers: container(`${name}-${suffix}`),
    owner: { kind: "ReplicaSet", name: rs },
    ...extra,
  });
  const oldRs = `${name}-old`;
  const newRs = `${name}-new`;
  return {
    workloads: [
      { kind: "Deployment", name, selector: { app: name }, replicas: 2, revision: 2 },
      { kind: "ReplicaSet", name: oldRs, owner: name, revision: 1, selector: labels("old1111"), replicas: 1 },
      { kind: "ReplicaSet", name: newRs, owner: name, revision: 2, selector: labels("new2222"), replicas: 2 },
    ],
    pods: [
      pod("old-term", "old1111", oldRs, { creationTimestamp: minutesAgo(now, 60), readySince: minutesAgo(now, 55), deletionTimestamp: minutesAgo(now, 0.5) }),
      pod("old-ready", "old1111", oldRs, { creationTimestamp: minutesAgo(now, 58), readySince: minutesAgo(now, 50) }),
      pod("new-ready", "new2222", newRs, { creationTimestamp: minutesAgo(now, 2), readySince: minutesAgo(now, 1) }),
      pod("new-starting", "new2222", newRs, { creationTimestamp: minutesAgo(now, 0.5), ready: false, readySince: minutesAgo(now, 0.5) }),
    ],
    oldReady: `${name}-old-ready`,
    oldTerminating: `${name}-old-term`,
    newReady: `${name}-new-ready`,
    newNotReady: `${name}-new-starting`,
  };
}

/** StatefulSet `name` updating from revision `${name}-aaa` to `${name}-bbb`: pod -1 updated, -0 not. */
export function statefulSetMidUpdate(name: string, container: (pod: string) => ContainerSpec[], now = Date.now()): { workloads: WorkloadSpec[]; pods: PodSpec[] } {
  const cur = `${name}-aaa`;
  const upd = `${name}-bbb`;
  const pod = (i: number, rev: string, readyMin: number): PodSpec => ({
    name: `${name}-${i}`,
    labels: { app: name, "controller-revision-hash": rev, "statefulset.kubernetes.io/pod-name": `${name}-${i}` },
    containers: container(`${name}-${i}`),
    owner: { kind: "StatefulSet", name },
    creationTimestamp: minutesAgo(now, readyMin + 1),
    readySince: minutesAgo(now, readyMin),
  });
  return {
    workloads: [
      { kind: "StatefulSet", name, selector: { app: name }, replicas: 2, currentRevision: cur, updateRevision: upd },
      { kind: "ControllerRevision", name: cur, owner: { kind: "StatefulSet", name }, revision: 1, labels: { app: name, "controller.kubernetes.io/hash": "aaa" } },
      { kind: "ControllerRevision", name: upd, owner: { kind: "StatefulSet", name }, revision: 2, labels: { app: name, "controller.kubernetes.io/hash": "bbb" } },
    ],
    pods: [pod(0, cur, 40), pod(1, upd, 2)],
  };
}
