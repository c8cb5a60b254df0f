// The package's entry point (`import { sync } from "krsync"`): the library call, its errors
// and the types a caller writes against. The command line is src/cli/bin.ts.
export { sync, SyncError, localRole } from "./api.js";
export type { SyncOptions, SyncResult, SyncEvents, TransferStats, ItemEvent, MessageLevel, TransferOptions } from "./api.js";
export type { KubeOptions } from "./kube/options.js";
