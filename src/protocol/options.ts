// The transfer options that shape what goes on the wire: both the server argument string
// (options.c server_options) and the behaviour of each role depend on them. The CLI parses
// rsync's command line into this; the library API accepts it directly.

export type DeleteTiming = "before" | "during" | "delay" | "after";

export interface TransferOptions {
  verbose: number; // -v count
  quiet: boolean; // -q
  itemize: boolean; // -i (--itemize-changes)
  itemizeUnchanged: boolean; // -ii: itemize unchanged files too (log.c stdout_format_has_i > 1)
  progress: boolean; // --progress (with -P); a sender client then tells the server --log-format=X
  stats: boolean; // --stats
  dryRun: boolean; // -n
  recursive: boolean; // -r
  /** Inc-recursion allowed (rsync allow_inc_recurse; --no-inc-recursive clears it). It is used
   *  only with -r, and never by a receiver deleting before/after (compat.c set_allow_inc_recurse). */
  incRecursive: boolean;
  /** rsync xfer_dirs != 0: directories are sent as entries. The CLI sets it with -d, and also
   *  whenever -r is on or the run only lists; `dirs && !recursive` is -d's "dirs without recursing". */
  dirs: boolean;
  /** --list-only ("explicit", sent to the server) or a listing implied by a missing destination. */
  listOnly: false | "implied" | "explicit";
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
  partial: boolean; // --partial (the CLI clears it with --inplace/--append, as options.c does)
  sparse: boolean; // -S
  delete: boolean; // --delete and friends
  deleteTiming: DeleteTiming | undefined; // undefined = rsync's default (during, with inc-recursion)
  deleteExcluded: boolean;
  force: boolean;
  // Compression is on when any of these three is set, unless the choice is "none"
  // (options.c: a level alone means "auto"). See compressionEnabled().
  compress: boolean; // -z given: compress, algorithm negotiated (or zlib before protocol 30)
  compressChoice: string | undefined; // --zc / --compress-choice: a fixed algorithm or "none" ("auto" is not stored)
  compressLevel: number | undefined; // --compress-level / --zl
  /** --skip-compress=LIST: passed on to a remote sender. rsync 3.5.0 parses it but changes no
   *  level mid-stream (token.c set_compression), so it alters nothing on the wire. */
  skipCompress: string | undefined;
  checksumChoice: string | undefined; // --cc / --checksum-choice, lower-case (first of "a,b" = transfer sum; a part may be "auto")
  blockSize: number | undefined; // -B
  protocol: number | undefined; // --protocol=N (27..32)
  timeout: number; // --timeout seconds, 0 = none
  blockingIo: boolean; // --blocking-io (affects only how the remote shell is driven)
  relative: boolean; // -R
  /** With -R: send (sender) / create (receiver) the directories leading to each source path
   *  (--implied-dirs, the default; --no-implied-dirs turns it off). */
  impliedDirs: boolean;
  oneFileSystem: boolean; // -x
  /** Filter rules in rsync's rule syntax ("- *.o", "+ keep/", "P x", ": /.rsync-filter"), in
   *  command-line order; --exclude/--include/-from are already turned into "- "/"+ " rules. */
  filters: string[];
  /** --rsync-path: the remote rsync command. */
  rsyncPath: string | undefined;
  /** -e / --rsh: the remote shell command line. */
  rsh: string | undefined;
  bwlimit: number | undefined; // KiB/s
  /** --port: the daemon's TCP port for HOST::MODULE (an rsync:// URL's own port wins). */
  port: number | undefined;
  /** --password-file: where a daemon's password is read from (else RSYNC_PASSWORD). */
  passwordFile: string | undefined;
  /** --contimeout: seconds to wait for a daemon's TCP connection (0 = the system's). */
  contimeout: number;
  /** --motd / --no-motd: print the daemon's message of the day. */
  motd: boolean;
}

export function defaultTransferOptions(): TransferOptions {
  return {
    verbose: 0,
    quiet: false,
    itemize: false,
    itemizeUnchanged: false,
    progress: false,
    stats: false,
    dryRun: false,
    recursive: false,
    incRecursive: true,
    dirs: false,
    listOnly: false,
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
    skipCompress: undefined,
    checksumChoice: undefined,
    blockSize: undefined,
    protocol: undefined,
    timeout: 0,
    blockingIo: false,
    relative: false,
    impliedDirs: true,
    oneFileSystem: false,
    filters: [],
    rsyncPath: undefined,
    rsh: undefined,
    bwlimit: undefined,
    port: undefined,
    passwordFile: undefined,
    contimeout: 0,
    motd: true,
  };
}

/** options.c/compat.c: whether file data is compressed with these options. */
export function compressionEnabled(opts: TransferOptions): boolean {
  if (opts.compressChoice === "none") return false;
  return opts.compress || opts.compressChoice !== undefined || opts.compressLevel !== undefined;
}

/** Oldest and newest protocol krsync speaks. */
export const MIN_PROTOCOL = 27;
export const MAX_PROTOCOL = 32;
