// The transfer options that shape what goes on the wire: both the server argument string
// (options.c server_options) and the behaviour of each role depend on them. The CLI parses
// rsync's command line into this; the library API accepts it directly.

export type DeleteTiming = "before" | "during" | "delay" | "after";

export interface TransferOptions {
  verbose: number; // -v count
  quiet: boolean; // -q
  itemize: boolean; // -i (--itemize-changes)
  stats: boolean; // --stats
  dryRun: boolean; // -n
  recursive: boolean; // -r
  dirs: boolean; // -d (transfer dirs without recursing)
  links: boolean; // -l
  perms: boolean; // -p
  times: boolean; // -t
  group: boolean; // -g
  owner: boolean; // -o
  devices: boolean; // --devices (half of -D)
  specials: boolean; // --specials (half of -D)
  hardLinks: boolean; // -H
  numericIds: boolean; // --numeric-ids
  checksum: boolean; // -c
  sizeOnly: boolean; // --size-only
  ignoreTimes: boolean; // -I
  wholeFile: boolean | undefined; // -W / --no-whole-file; undefined = rsync's default (on for local)
  inplace: boolean; // --inplace
  append: boolean; // --append
  partial: boolean; // --partial
  sparse: boolean; // -S
  delete: boolean; // --delete and friends
  deleteTiming: DeleteTiming | undefined; // undefined = rsync's default (during, with inc-recursion)
  deleteExcluded: boolean;
  force: boolean;
  compress: boolean; // -z
  compressChoice: string | undefined; // --zc / --compress-choice
  compressLevel: number | undefined; // --compress-level
  checksumChoice: string | undefined; // --cc / --checksum-choice (first of "a,b" = transfer sum)
  blockSize: number | undefined; // -B
  protocol: number | undefined; // --protocol=N (27..32)
  timeout: number; // --timeout seconds, 0 = none
  blockingIo: boolean; // --blocking-io (affects only how the remote shell is driven)
  relative: boolean; // -R
  oneFileSystem: boolean; // -x
  /** Filter rules in rsync's long form ("- *.o", "+ keep/", "P x"), sent to the sender. */
  filters: string[];
  /** --rsync-path: the remote rsync command. */
  rsyncPath: string | undefined;
  /** -e / --rsh: the remote shell command line. */
  rsh: string | undefined;
  bwlimit: number | undefined; // KiB/s
}

export function defaultTransferOptions(): TransferOptions {
  return {
    verbose: 0,
    quiet: false,
    itemize: false,
    stats: false,
    dryRun: false,
    recursive: false,
    dirs: false,
    links: false,
    perms: false,
    times: false,
    group: false,
    owner: false,
    devices: false,
    specials: false,
    hardLinks: false,
    numericIds: false,
    checksum: false,
    sizeOnly: false,
    ignoreTimes: false,
    wholeFile: undefined,
    inplace: false,
    append: false,
    partial: false,
    sparse: false,
    delete: false,
    deleteTiming: undefined,
    deleteExcluded: false,
    force: false,
    compress: false,
    compressChoice: undefined,
    compressLevel: undefined,
    checksumChoice: undefined,
    blockSize: undefined,
    protocol: undefined,
    timeout: 0,
    blockingIo: false,
    relative: false,
    oneFileSystem: false,
    filters: [],
    rsyncPath: undefined,
    rsh: undefined,
    bwlimit: undefined,
  };
}

/** Oldest and newest protocol krsync speaks. */
export const MIN_PROTOCOL = 27;
export const MAX_PROTOCOL = 32;
