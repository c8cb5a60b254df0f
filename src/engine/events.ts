// What a transfer reports as it goes: the library's events, which the CLI turns into rsync's
// output. The engine never writes to a terminal itself.

export interface ItemEvent {
  /** Name relative to the destination root ('/'-separated). */
  name: string;
  /** rsync.h ITEM_* bits as itemize() computes them. */
  iflags: number;
  /** 'f' file, 'd' dir, 'L' symlink, 'D' device, 'S' special. */
  kind: "f" | "d" | "L" | "D" | "S";
  /** Whether content was (or, with -n, would be) transferred. */
  transferred: boolean;
  /** Symlink target for display. */
  linkTarget?: string;
  /** Hard-link target for display ("=> name"). */
  hardLinkTo?: string;
  /** Itemize string as rsync's %i prints it, e.g. ">f.st......". */
  itemize: string;
}

export interface TransferStats {
  protocol: number;
  /** The file data's compression: negotiated or fixed by --zc ("none" when not compressing). */
  compression: string;
  /** The file list went incrementally (compat.c CF_INC_RECURSE was in effect). */
  incRecurse: boolean;
  numFiles: number;
  numRegFiles: number;
  numDirs: number;
  numSymlinks: number;
  numDevices: number;
  numSpecials: number;
  createdFiles: number;
  createdDirs: number;
  createdSymlinks: number;
  createdDevices: number;
  createdSpecials: number;
  deletedFiles: number;
  deletedDirs: number;
  deletedSymlinks: number;
  deletedDevices: number;
  deletedSpecials: number;
  transferredFiles: number;
  totalSize: number;
  totalTransferredSize: number;
  literalData: number;
  matchedData: number;
  flistSize: number;
  flistBuildTime: number;
  flistXferTime: number;
  /** Bytes we wrote to / read from the stream. */
  totalWritten: number;
  totalRead: number;
  /** The peer's view (the sender reports them at the end). */
  peerRead: number;
  peerWritten: number;
  elapsedMs: number;
}

export function emptyStats(): TransferStats {
  return {
    protocol: 0,
    compression: "none",
    incRecurse: false,
    numFiles: 0,
    numRegFiles: 0,
    numDirs: 0,
    numSymlinks: 0,
    numDevices: 0,
    numSpecials: 0,
    createdFiles: 0,
    createdDirs: 0,
    createdSymlinks: 0,
    createdDevices: 0,
    createdSpecials: 0,
    deletedFiles: 0,
    deletedDirs: 0,
    deletedSymlinks: 0,
    deletedDevices: 0,
    deletedSpecials: 0,
    transferredFiles: 0,
    totalSize: 0,
    totalTransferredSize: 0,
    literalData: 0,
    matchedData: 0,
    flistSize: 0,
    flistBuildTime: 0,
    flistXferTime: 0,
    totalWritten: 0,
    totalRead: 0,
    peerRead: 0,
    peerWritten: 0,
    elapsedMs: 0,
  };
}

export type MessageLevel = "info" | "warning" | "error";

export interface SyncEvents {
  /** The file list is complete (count entries); with inc-recursion (`incremental`), the first
   *  list has been sent and the rest follow as the transfer goes. */
  fileList?(count: number, incremental?: boolean): void;
  /** An item was created, changed or transferred (what -v / -i print). */
  item?(item: ItemEvent): void;
  /** Something was deleted in the destination (name ends in '/' for a directory). */
  deleted?(name: string): void;
  /** A message: from the peer (its text as sent) or our own warnings/errors. */
  message?(level: MessageLevel, text: string): void;
  /** The transfer finished. */
  stats?(stats: TransferStats): void;
}
