// The generator (generator.c generate_files / recv_generator): walks the file list, brings
// directories, symlinks, devices and unchanged files up to date itself, and asks the sender
// for each file that differs — index, item flags, then the sum head and block checksums of
// the basis it already has. Also deletions (delete.c), hard links (hlink.c) and the final
// touch-up of directory permissions and times.
import * as fs from "node:fs";
import { createBlockSummer, createFlistSummer, type BlockSummer } from "../delta/checksum.js";
import { weakChecksum } from "../delta/rolling.js";
import { sumSizes } from "../delta/sumsizes.js";
import {
  FLAG_CONTENT_DIR,
  FLAG_IMPLIED_DIR,
  isDevice,
  isDir,
  isLink,
  isReg,
  isSpecial,
  S_IFMT,
  type FileEntry,
} from "../protocol/fileentry.js";
import { NDX_DEL_STATS, NDX_DONE } from "../protocol/ndx.js";
import { NULL_SUM_HEAD, writeSumHead, type SumHead } from "../protocol/sumhead.js";
import { attrChanges, pathTarget, setAttrs, wantedMode, wantedOwner } from "./attrs.js";
import { destName, reportError, throwIfAborted, type ReceiveContext } from "./context.js";
import { Destination, type LocalStat } from "./destination.js";
import type { ItemKind } from "./itemize.js";
import {
  ITEM_IS_NEW,
  ITEM_LOCAL_CHANGE,
  ITEM_REPORT_CHANGE,
  ITEM_REPORT_SIZE,
  ITEM_REPORT_TIME,
  ITEM_TRANSFER,
  ITEM_XNAME_FOLLOWS,
  itemizeString,
  SIGNIFICANT_ITEM_FLAGS,
} from "./itemize.js";

const SUM_READ = 1 << 20;

export interface GeneratorWaits {
  /** Resolves when the receiver has seen the end of phase n (1, 2) or read the stats (3). */
  phase(n: number): Promise<void>;
  /** Whether that has happened already. */
  phaseDone(n: number): boolean;
  /** Redo requests from the receiver, taken as they come; undefined when none is queued. */
  takeRedo(): number | undefined;
  /** Resolves when a redo is queued or the given phase ends. */
  redoOrPhase(n: number): Promise<void>;
  /** Resolves when the receiver has finished entry ndx (ok or not). */
  fileDone(ndx: number): Promise<boolean>;
}

const kindOf = (mode: number): ItemKind =>
  isDir(mode) ? "d" : isLink(mode) ? "L" : isDevice(mode) ? "D" : isSpecial(mode) ? "S" : "f";

export class Generator {
  private blockSummer: BlockSummer | null = null;
  /** read buffer for basis files, reused */
  private sumBuf: Buffer | null = null;
  /** dir name -> child base names present in the file list */
  private children = new Map<string, Set<string>>();
  /** directories whose permissions/times are fixed at the end (generator.c touch_up_dirs) */
  private dirs: number[] = [];
  /** dry run: directories that would have been created */
  private virtualDirs = new Set<string>();
  /** hard-link followers, linked once their leader is done */
  private followers: number[] = [];
  /** leaders whose outcome the followers wait for */
  private leaderPending = new Map<number, Promise<boolean>>();
  private deletedDirsDone = new Set<string>();
  /** directories this run created (they get their final permissions at touch-up) */
  private createdDirs = new Set<number>();
  private readonly deleteTiming: "before" | "during" | "delay" | "after";

  constructor(
    private readonly ctx: ReceiveContext,
    private readonly waits: GeneratorWaits,
  ) {
    const { opts, protocol } = ctx;
    this.deleteTiming = opts.deleteTiming ?? (protocol < 30 ? "before" : "during");
    if (opts.delete) {
      for (const f of ctx.files) {
        if (!f || f.name === ".") continue;
        const parent = Destination.parentOf(f.name);
        let set = this.children.get(parent);
        if (!set) this.children.set(parent, (set = new Set()));
        set.add(f.name.slice(parent ? parent.length + 1 : 0));
      }
    }
  }

  private get deleting(): boolean {
    return this.ctx.opts.delete && !this.ctx.localName && this.ctx.opts.recursive;
  }

  async run(): Promise<void> {
    const { ctx } = this;
    const { conn, protocol } = ctx;
    if (ctx.xferSum !== "none") this.blockSummer = await createBlockSummer(ctx.xferSum, protocol, ctx.seed);

    if (this.deleting && this.deleteTiming === "before") await this.deletePass();

    for (let ndx = 0; ndx < ctx.files.length; ndx++) {
      throwIfAborted(ctx);
      await this.generate(ndx, false);
      await conn.maybeFlush();
    }
    // phase 0 ends; the redo phase (full-length sums) follows.
    ctx.ndxOut.write(NDX_DONE, conn.scratch);
    conn.writeScratch();
    await conn.flush();
    for (;;) {
      const r = this.waits.takeRedo();
      if (r !== undefined) {
        await this.generate(r, true);
        await conn.flush();
        continue;
      }
      if (this.waits.phaseDone(1)) break;
      await this.waits.redoOrPhase(1);
    }
    ctx.ndxOut.write(NDX_DONE, conn.scratch);
    const earlyDelete = this.deleteTiming !== "after" && this.deleteTiming !== "delay";
    if (protocol >= 29) ctx.ndxOut.write(NDX_DONE, conn.scratch); // no --delay-updates
    if (protocol >= 31 && earlyDelete) {
      if (ctx.opts.delete) this.writeDelStats();
      ctx.ndxOut.write(NDX_DONE, conn.scratch);
    }
    conn.writeScratch();
    await conn.flush();

    await this.waits.phase(2);
    await this.waits.phase(3);
    await this.linkFollowers();
    if (this.deleting && !earlyDelete) await this.deletePass();
    if (protocol >= 31 && !earlyDelete) {
      if (ctx.opts.delete) this.writeDelStats();
      ctx.ndxOut.write(NDX_DONE, conn.scratch);
    }
    await this.touchUpDirs();
    // main.c: the final goodbye
    ctx.ndxOut.write(NDX_DONE, conn.scratch);
    conn.writeScratch();
    await conn.flush();
  }

  private writeDelStats(): void {
    const { ctx } = this;
    const s = ctx.stats;
    const w = ctx.conn.scratch;
    ctx.ndxOut.write(NDX_DEL_STATS, w);
    w.varint(s.deletedFiles).varint(s.deletedDirs).varint(s.deletedSymlinks).varint(s.deletedDevices).varint(s.deletedSpecials);
  }

  private emit(name: string, f: FileEntry, iflags: number, extra: { linkTarget?: string; hardLinkTo?: string } = {}): void {
    const { ctx } = this;
    if (!ctx.events.item) return;
    const kind = kindOf(f.mode);
    const significant = (iflags & SIGNIFICANT_ITEM_FLAGS) !== 0 || (iflags & ITEM_LOCAL_CHANGE) !== 0;
    if (!significant && ctx.opts.verbose < 2) return;
    ctx.events.item({
      name,
      iflags,
      kind,
      transferred: (iflags & ITEM_TRANSFER) !== 0,
      itemize: itemizeString(iflags, kind, true),
      ...extra,
    });
  }

  private lstatOrNull(name: string): LocalStat | null {
    if (this.ctx.opts.dryRun && this.virtualDirs.has(Destination.parentOf(name))) return null;
    return this.ctx.dest.lstat(name);
  }

  private async checkParents(name: string): Promise<boolean> {
    const { ctx } = this;
    const parent = Destination.parentOf(name);
    if (ctx.opts.dryRun && this.virtualDirs.has(parent)) return true;
    try {
      ctx.dest.checkParents(name);
      return true;
    } catch (e) {
      reportError(ctx, `krsync: recv_generator: ${(e as Error).message} (in ${name})`);
      return false;
    }
  }

  /** util.c make_path (MKP_DROP_NAME): the directories missing above `name`. */
  private makeParents(name: string): boolean {
    const { ctx } = this;
    const parent = Destination.parentOf(name);
    if (parent === "" || this.virtualDirs.has(parent)) return true;
    if (ctx.opts.dryRun) {
      if (!ctx.dest.exists(parent)) this.virtualDirs.add(parent);
      return true;
    }
    try {
      ctx.dest.makeParents(name);
      return true;
    } catch (e) {
      reportError(ctx, `krsync: recv_generator: mkdir "${parent}" failed: ${(e as Error).message}`);
      return false;
    }
  }

  /** Make way for a new item of another type (generator.c delete_item with DEL_FOR_*). */
  private async makeWay(name: string, st: LocalStat, f: FileEntry): Promise<boolean> {
    const { ctx } = this;
    if (ctx.opts.dryRun) return true;
    if (isDir(st.mode)) {
      if (ctx.opts.delete || ctx.opts.force) {
        ctx.dest.removeAny(name);
        return true;
      }
      try {
        fs.rmdirSync(ctx.dest.abs(name));
        ctx.dest.forgetDir(name);
        return true;
      } catch {
        reportError(ctx, `krsync: cannot delete non-empty directory: ${name}`);
        reportError(ctx, `krsync: could not make way for new ${isDir(f.mode) ? "directory" : isLink(f.mode) ? "symlink" : "regular file"}: ${name}`);
        return false;
      }
    }
    if (!isReg(f.mode) || !isReg(st.mode)) {
      ctx.dest.unlinkQuiet(name);
    }
    return true;
  }

  private async generate(ndx: number, redo: boolean): Promise<void> {
    const { ctx } = this;
    const f = ctx.files[ndx];
    if (!f) return; // a cleared duplicate
    const { opts } = ctx;
    // generator.c recv_generator: with -R --no-implied-dirs the directories the sender flags as
    // implied are neither made nor touched; a missing parent is made with default permissions.
    const noImplied = opts.relative && !opts.impliedDirs;
    if (noImplied && isDir(f.mode) && f.flags & FLAG_IMPLIED_DIR) return;
    const name = destName(ctx, ndx);
    if (noImplied && !this.makeParents(name)) return;
    if (!(await this.checkParents(name))) return;
    let st: LocalStat | null;
    try {
      st = this.lstatOrNull(name);
    } catch (e) {
      reportError(ctx, `krsync: recv_generator: failed to stat "${name}": ${(e as Error).message}`);
      return;
    }
    try {
      if (isDir(f.mode)) return await this.genDir(ndx, f, name, st);
      if (isLink(f.mode)) {
        if (!opts.links) {
          if (opts.verbose > 0) ctx.events.message?.("info", `skipping non-regular file "${name}"`);
          return;
        }
        return await this.genSymlink(ndx, f, name, st);
      }
      if (isDevice(f.mode) || isSpecial(f.mode)) {
        if ((isDevice(f.mode) && !opts.devices) || (isSpecial(f.mode) && !opts.specials)) {
          if (opts.verbose > 0) ctx.events.message?.("info", `skipping non-regular file "${name}"`);
          return;
        }
        return await this.genSpecial(ndx, f, name, st);
      }
      if (!isReg(f.mode)) return;
      const leader = ctx.hlinkLeader.get(ndx);
      if (leader !== undefined && leader !== ndx && opts.hardLinks && !redo) {
        this.followers.push(ndx);
        return;
      }
      await this.genFile(ndx, f, name, st, redo);
    } catch (e) {
      if ((e as Error).name === "AbortedError" || (e as Error).name === "ProtocolError") throw e;
      reportError(ctx, `krsync: ${name}: ${(e as Error).message}`);
    }
  }

  private async genDir(ndx: number, f: FileEntry, name: string, st: LocalStat | null): Promise<void> {
    const { ctx } = this;
    const { opts, dest } = ctx;
    let iflags = 0;
    if (st && !isDir(st.mode)) {
      if (!(await this.makeWay(name, st, f))) return;
      st = null;
    }
    const own = wantedOwner(f, opts, ctx.owners);
    if (!st) {
      // generator.c recv_generator: a directory it makes is a local change.
      iflags |= ITEM_IS_NEW | ITEM_LOCAL_CHANGE;
      ctx.stats.createdDirs++;
      if (opts.dryRun) this.virtualDirs.add(name === "." ? "" : name);
      else {
        dest.mkdir(name, 0o700);
        this.createdDirs.add(ndx);
        setAttrs(pathTarget(dest.abs(name), false), null, { own, mode: undefined, mtime: undefined }, false);
      }
    } else {
      dest.markDir(name);
      const mode = wantedMode(f, opts, st, ctx.dfltPerms) ?? st.mode;
      // FLAG_DIR_CREATED: the "." that get_local_name made shows as created.
      iflags |= name === "." && ctx.rootCreated ? ITEM_IS_NEW | ITEM_LOCAL_CHANGE : attrChanges(f, st, opts, own, mode, true);
      if (!opts.dryRun) setAttrs(pathTarget(dest.abs(name), false), st, { own, mode: undefined, mtime: undefined }, false);
    }
    this.dirs.push(ndx);
    this.emit(name === "." ? "./" : name + "/", f, iflags);
    if (this.deleting && this.deleteTiming === "during" && f.flags & FLAG_CONTENT_DIR) {
      await this.deleteInDir(name === "." ? "" : name);
    }
  }

  private async genSymlink(ndx: number, f: FileEntry, name: string, st: LocalStat | null): Promise<void> {
    const { ctx } = this;
    const { opts, dest } = ctx;
    const target = Buffer.from(f.linkTarget ?? new Uint8Array(0)).toString("utf8");
    const own = wantedOwner(f, opts, ctx.owners);
    let iflags = 0;
    if (st && isLink(st.mode)) {
      const cur = readlinkOrNull(dest.abs(name));
      if (cur === target) {
        iflags |= attrChanges(f, st, opts, own, st.mode, ctx.symlinkTimes);
        if (!opts.dryRun) this.setLinkAttrs(name, st, f, own);
        this.emit(name, f, iflags, { linkTarget: target });
        return;
      }
      iflags |= ITEM_REPORT_CHANGE;
    } else if (st) {
      if (!(await this.makeWay(name, st, f))) return;
      st = null;
    }
    if (!st) iflags |= ITEM_IS_NEW;
    ctx.stats.createdSymlinks += st ? 0 : 1;
    if (!opts.dryRun) {
      dest.symlink(name, target);
      this.setLinkAttrs(name, null, f, own);
    }
    this.emit(name, f, iflags | ITEM_LOCAL_CHANGE, { linkTarget: target });
  }

  private setLinkAttrs(name: string, st: LocalStat | null, f: FileEntry, own: ReturnType<typeof wantedOwner>): void {
    const { ctx } = this;
    setAttrs(
      pathTarget(ctx.dest.abs(name), true),
      st,
      { own, mode: undefined, mtime: ctx.opts.times && ctx.symlinkTimes ? { sec: f.mtime, nsec: f.mtimeNsec } : undefined },
      st === null,
    );
  }

  private async genSpecial(ndx: number, f: FileEntry, name: string, st: LocalStat | null): Promise<void> {
    const { ctx } = this;
    const { opts, dest } = ctx;
    const own = wantedOwner(f, opts, ctx.owners);
    const major = f.rdevMajor ?? 0;
    const minor = f.rdevMinor ?? 0;
    const wantRdev = isDevice(f.mode) ? makedev(major, minor) : 0;
    let iflags = 0;
    if (st && (st.mode & S_IFMT) === (f.mode & S_IFMT) && (!isDevice(f.mode) || st.rdev === wantRdev)) {
      const mode = wantedMode(f, opts, st, ctx.dfltPerms) ?? st.mode;
      iflags |= attrChanges(f, st, opts, own, mode, true);
      if (!opts.dryRun) {
        setAttrs(pathTarget(dest.abs(name), false), st, { own, mode: wantedMode(f, opts, st, ctx.dfltPerms), mtime: opts.times ? { sec: f.mtime, nsec: f.mtimeNsec } : undefined }, false);
      }
      this.emit(name, f, iflags);
      return;
    }
    if (st) {
      if (!(await this.makeWay(name, st, f))) return;
      iflags |= ITEM_REPORT_CHANGE;
    } else iflags |= ITEM_IS_NEW;
    if (isDevice(f.mode)) ctx.stats.createdDevices++;
    else ctx.stats.createdSpecials++;
    if (!opts.dryRun) {
      const mode = wantedMode(f, opts, null, ctx.dfltPerms) ?? f.mode & 0o7777;
      dest.mknod(name, (f.mode & S_IFMT) | (mode & 0o7777), major, minor);
      setAttrs(pathTarget(dest.abs(name), false), null, { own, mode, mtime: opts.times ? { sec: f.mtime, nsec: f.mtimeNsec } : undefined }, true);
    }
    this.emit(name, f, iflags | ITEM_LOCAL_CHANGE);
  }

  /** generator.c quick_check_ok for a regular file. */
  private async upToDate(f: FileEntry, name: string, st: LocalStat): Promise<boolean> {
    const { opts } = this.ctx;
    if (st.size !== f.size) return false;
    if (opts.checksum) {
      if (!f.checksum) return false;
      const sum = this.fileChecksum(name, st.size);
      return sum !== null && Buffer.compare(Buffer.from(sum.subarray(0, f.checksum.length)), Buffer.from(f.checksum)) === 0;
    }
    if (opts.sizeOnly) return true;
    if (opts.ignoreTimes) return false;
    return st.mtime === f.mtime;
  }

  private fileChecksum(name: string, size: number): Uint8Array | null {
    const basis = this.ctx.dest.openBasis(name);
    if (!basis) return null;
    try {
      const summer = createFlistSummer(this.ctx.fileSum);
      if (!this.sumBuf || this.sumBuf.length < SUM_READ) this.sumBuf = Buffer.allocUnsafe(SUM_READ);
      const buf = this.sumBuf;
      let pos = 0;
      while (pos < size) {
        const n = fs.readSync(basis.fd, buf, 0, Math.min(buf.length, size - pos), pos);
        if (n === 0) break;
        summer.update(buf.subarray(0, n));
        pos += n;
      }
      return summer.digest();
    } finally {
      fs.closeSync(basis.fd);
    }
  }

  private async genFile(ndx: number, f: FileEntry, name: string, st: LocalStat | null, redo: boolean): Promise<void> {
    const { ctx } = this;
    const { opts, dest, conn, protocol } = ctx;
    const own = wantedOwner(f, opts, ctx.owners);
    if (st && !isReg(st.mode)) {
      if (!(await this.makeWay(name, st, f))) return;
      if (isDir(st.mode)) st = null;
    }
    const regular = st !== null && isReg(st.mode);
    if (!redo && regular && (await this.upToDate(f, name, st!))) {
      const mode = wantedMode(f, opts, st, ctx.dfltPerms) ?? st!.mode;
      const iflags = attrChanges(f, st!, opts, own, mode, true);
      if (!opts.dryRun) {
        setAttrs(
          pathTarget(dest.abs(name), false),
          st,
          { own, mode: wantedMode(f, opts, st, ctx.dfltPerms), mtime: opts.times ? { sec: f.mtime, nsec: f.mtimeNsec } : undefined },
          opts.checksum,
        );
      }
      this.emit(name, f, iflags);
      this.leaderPending.set(ndx, Promise.resolve(true));
      return;
    }
    if (!redo && opts.append && regular && st!.size >= f.size) {
      // recv_generator: --append leaves a file at least as long as the sender's alone, attributes too.
      this.leaderPending.set(ndx, Promise.resolve(true));
      return;
    }
    let iflags = ITEM_TRANSFER;
    if (!st) iflags |= ITEM_IS_NEW;
    else {
      if (!regular || st.size !== f.size) iflags |= ITEM_REPORT_SIZE;
      const mode = wantedMode(f, opts, st, ctx.dfltPerms) ?? st.mode;
      iflags |= attrChanges(f, st, opts, own, mode, true);
      if (opts.times) iflags |= ITEM_REPORT_TIME & (st.mtime !== f.mtime ? ITEM_REPORT_TIME : 0);
      if (opts.checksum && st.size === f.size) iflags |= ITEM_REPORT_CHANGE;
    }
    if (!redo) this.emit(name, f, iflags);
    if (opts.hardLinks && ctx.hlinkLeader.get(ndx) === ndx) this.leaderPending.set(ndx, this.waits.fileDone(ndx));
    if (opts.dryRun) return;

    // The request: ndx, item flags (>= 29), then the sum head and sums.
    const w = conn.scratch;
    ctx.ndxOut.write(ndx, w);
    if (protocol >= 29) w.int16(iflags & 0xffff);
    const whole = opts.wholeFile === true || !regular || this.blockSummer === null || st!.size === 0;
    if (whole) {
      ctx.sentHeads.set(ndx, NULL_SUM_HEAD);
      writeSumHead(NULL_SUM_HEAD, w);
      conn.writeScratch();
      return;
    }
    await this.sendSums(ndx, name, st!.size, redo);
  }

  /** generator.c generate_and_send_sums, streamed from the basis file. */
  private async sendSums(ndx: number, name: string, size: number, redo: boolean): Promise<void> {
    const { ctx } = this;
    const { conn, protocol } = ctx;
    const w = conn.scratch;
    const basis = ctx.dest.openBasis(name);
    if (!basis) {
      ctx.sentHeads.set(ndx, NULL_SUM_HEAD);
      writeSumHead(NULL_SUM_HEAD, w);
      conn.writeScratch();
      return;
    }
    try {
      let head: SumHead;
      try {
        head = sumSizes(size, protocol, {
          blockSize: ctx.opts.blockSize,
          digestLength: ctx.xferSumLen,
          csumLength: redo ? 16 : 2,
        });
      } catch {
        head = NULL_SUM_HEAD;
      }
      ctx.sentHeads.set(ndx, head);
      writeSumHead(head, w);
      // generate_and_send_sums: --append sends the head alone (the sender skips what we have);
      // the redo phase is a whole transfer again.
      if (head.count === 0 || (ctx.opts.append && !redo)) {
        conn.writeScratch();
        return;
      }
      const summer = this.blockSummer!;
      const bl = head.blength;
      const per = Math.max(1, Math.floor(SUM_READ / bl));
      if (!this.sumBuf || this.sumBuf.length < per * bl) this.sumBuf = Buffer.allocUnsafe(per * bl);
      const buf = this.sumBuf;
      let block = 0;
      let pos = 0;
      while (block < head.count) {
        const want = Math.min(per * bl, size - pos); // whole blocks per read
        let got = 0;
        while (got < want) {
          const n = fs.readSync(basis.fd, buf, got, want - got, pos + got);
          if (n === 0) break;
          got += n;
        }
        if (got < want) buf.fill(0, got, want); // the basis shrank: sums of zeros, the redo fixes it
        for (let off = 0; off < want && block < head.count; block++) {
          const n = Math.min(bl, want - off);
          w.int32(weakChecksum(buf, off, n));
          w.bytes(summer(buf, off, n).subarray(0, head.s2length));
          off += n;
        }
        pos += want;
        conn.writeScratch();
        await conn.maybeFlush();
      }
    } finally {
      fs.closeSync(basis.fd);
    }
  }

  /** hlink.c finish_hard_link: followers become links to their group's leader. */
  private async linkFollowers(): Promise<void> {
    const { ctx } = this;
    const { dest, opts } = ctx;
    for (const ndx of this.followers) {
      const f = ctx.files[ndx]!;
      const leader = ctx.hlinkLeader.get(ndx)!;
      const ok = await (this.leaderPending.get(leader) ?? Promise.resolve(false));
      const name = destName(ctx, ndx);
      const lname = destName(ctx, leader);
      if (!ok) {
        // The leader did not arrive, and the transfer phases are over: say so (exit 23).
        reportError(ctx, `krsync: ${name}: not linked: its hard-link group leader ${lname} was not transferred`);
        continue;
      }
      if (!(await this.checkParents(name)) || !(await this.checkParents(lname))) continue;
      const st = this.lstatOrNull(name);
      const lst = opts.dryRun ? null : dest.lstat(lname);
      // Link only to what this run made the leader: an item of the leader's own type, reached
      // through real directories (never to something a later entry swapped in).
      if (!opts.dryRun && (!lst || (lst.mode & S_IFMT) !== (f.mode & S_IFMT))) {
        reportError(ctx, `krsync: ${name}: not linked: ${lname} is not the group's ${isLink(f.mode) ? "symlink" : "file"}`);
        continue;
      }
      if (st && lst && st.ino === lst.ino && st.dev === lst.dev) {
        continue;
      }
      if (st && isDir(st.mode) && !(await this.makeWay(name, st, f))) continue;
      let iflags = ITEM_LOCAL_CHANGE | ITEM_XNAME_FOLLOWS;
      if (!st) iflags |= ITEM_IS_NEW;
      if (!opts.dryRun) {
        try {
          dest.link(lname, name);
        } catch (e) {
          reportError(ctx, `krsync: link "${name}" => ${lname} failed: ${(e as Error).message}`);
          continue;
        }
      }
      this.emit(name, f, iflags, { hardLinkTo: lname });
    }
  }

  /** generator.c touch_up_dirs: final permissions and mtimes of the directories. */
  private async touchUpDirs(): Promise<void> {
    const { ctx } = this;
    const { opts, dest } = ctx;
    if (opts.dryRun) return;
    for (let i = this.dirs.length - 1; i >= 0; i--) {
      const ndx = this.dirs[i]!;
      const f = ctx.files[ndx]!;
      const name = destName(ctx, ndx);
      const st = dest.lstat(name);
      if (!st || !isDir(st.mode)) continue;
      const mode = opts.perms ? f.mode & 0o7777 : this.createdDirs.has(ndx) ? wantedMode(f, opts, null, ctx.dfltPerms) : undefined;
      try {
        setAttrs(
          pathTarget(dest.abs(name), false),
          st,
          { own: { uid: undefined, gid: undefined }, mode, mtime: opts.times ? { sec: f.mtime, nsec: f.mtimeNsec } : undefined },
          false,
        );
      } catch (e) {
        reportError(ctx, `krsync: failed to set times/permissions on "${name}": ${(e as Error).message}`);
      }
    }
  }

  // ---- deletion (delete.c) ----

  private async deletePass(): Promise<void> {
    const { ctx } = this;
    for (const f of ctx.files) {
      if (f && isDir(f.mode) && f.flags & FLAG_CONTENT_DIR) {
        const name = f.name === "." ? "" : f.name;
        const st = ctx.dest.lstat(name || ".");
        if (st && isDir(st.mode)) await this.deleteInDir(name);
      }
    }
  }

  /** delete.c delete_in_dir: remove what the file list does not have in this directory. */
  private async deleteInDir(dir: string): Promise<void> {
    const { ctx } = this;
    if (this.deletedDirsDone.has(dir)) return;
    this.deletedDirsDone.add(dir);
    if (ctx.opts.dryRun && this.virtualDirs.has(dir)) return;
    let names: string[];
    try {
      ctx.dest.checkParents(dir ? dir + "/x" : "x");
      names = ctx.dest.readdir(dir || ".");
    } catch {
      return;
    }
    const keep = this.children.get(dir) ?? new Set<string>();
    const filters = ctx.filters;
    // exclude.c change_local_filter_dir: this directory's rules (and its dir-merge files).
    filters?.changeDir(dir, dir === "" ? 0 : dir.split("/").length);
    names.sort();
    for (const n of names) {
      if (keep.has(n)) continue;
      const rel = dir ? `${dir}/${n}` : n;
      if (ctx.temps.has(rel)) continue;
      if (filters) {
        const st = ctx.dest.lstat(rel);
        // An excluded name is protected from deletion (unless --delete-excluded).
        if (st && filters.check(rel, isDir(st.mode)) === "exclude") continue;
      }
      await this.deleteItem(rel);
    }
  }

  private async deleteItem(rel: string, inside = false): Promise<void> {
    const { ctx } = this;
    const st = ctx.dest.lstat(rel);
    if (!st) return;
    // Inside a directory being deleted, perishable rules no longer protect (delete.c).
    if (inside && ctx.filters?.check(rel, isDir(st.mode), true) === "exclude") return;
    if (isDir(st.mode)) {
      let inner: string[] = [];
      try {
        inner = ctx.dest.readdir(rel);
      } catch {
        /* unreadable: rmdir below reports it */
      }
      inner.sort();
      // delete.c delete_dir_contents: the directory's own dir-merge files apply inside it.
      ctx.filters?.enterDir(rel);
      try {
        for (const n of inner) await this.deleteItem(`${rel}/${n}`, true);
      } finally {
        ctx.filters?.leaveDir(rel);
      }
      if (!ctx.opts.dryRun) {
        try {
          fs.rmdirSync(ctx.dest.abs(rel));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === "ENOTEMPTY" && ctx.filters) {
            // It still holds protected names: delete.c says so and moves on.
            ctx.events.message?.("info", `cannot delete non-empty directory: ${rel}`);
            return;
          }
          reportError(ctx, `krsync: delete_file: rmdir(${rel}) failed: ${(e as Error).message}`);
          return;
        }
        ctx.dest.forgetDir(rel);
      }
      ctx.stats.deletedDirs++;
      ctx.events.deleted?.(rel + "/");
      return;
    }
    if (!ctx.opts.dryRun) {
      try {
        fs.unlinkSync(ctx.dest.abs(rel));
      } catch (e) {
        reportError(ctx, `krsync: delete_file: unlink(${rel}) failed: ${(e as Error).message}`);
        return;
      }
    }
    if (isLink(st.mode)) ctx.stats.deletedSymlinks++;
    else if (isDevice(st.mode)) ctx.stats.deletedDevices++;
    else if (isSpecial(st.mode)) ctx.stats.deletedSpecials++;
    else ctx.stats.deletedFiles++;
    ctx.events.deleted?.(rel);
  }
}

/** Linux makedev (glibc's encoding of major/minor into st_rdev). */
export function makedev(major: number, minor: number): number {
  return (
    (minor & 0xff) |
    ((major & 0xfff) << 8) |
    ((minor & ~0xff) << 12) |
    (major > 0xfff ? (major & ~0xfff) * 2 ** 32 : 0)
  ) >>> 0;
}

function readlinkOrNull(p: string): string | null {
  try {
    return fs.readlinkSync(p);
  } catch {
    return null;
  }
}
