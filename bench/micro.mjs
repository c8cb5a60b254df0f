// Micro-benchmarks of krsync's hot paths, using the built modules from dist/:
//   - the weak (rolling) checksum: weakChecksum over whole blocks, RollingChecksum.roll per byte
//   - the strong block sums of every checksum type (createBlockSummer), small and large blocks
//   - file-list encoding and decoding (FileListEncoder / FileListDecoder), entries per second
// Each figure is the best of three timed batches of at least `ms` milliseconds.

import { Rng, treePath } from "./trees.mjs";

const DIST = new URL("../dist/", import.meta.url);

async function load(rel) {
  try {
    return await import(new URL(rel, DIST).href);
  } catch (e) {
    throw new Error(`cannot load dist/${rel} (run \`npm run build\` first): ${e.message}`);
  }
}

/** Calls fn(iteration) in batches until `ms` pass; best rate (units per second) of 3 batches. */
function rate(fn, unitsPerCall, ms) {
  // Warm-up (JIT tiers, wasm instantiation) before the timed batches.
  for (let k = 0, t0 = performance.now(); k < 3 || performance.now() - t0 < Math.min(ms, 50); k++) fn(k);
  let best = 0;
  for (let rep = 0; rep < 3; rep++) {
    let calls = 0;
    const t0 = performance.now();
    let t = t0;
    while (t - t0 < ms) {
      fn(calls++);
      t = performance.now();
    }
    best = Math.max(best, (calls * unitsPerCall) / ((t - t0) / 1000));
  }
  return best;
}

/**
 * @param {{ ms?: number, log?: (s: string) => void, entries?: number }} o
 * @returns {Promise<Array<{ name: string, value: number, unit: string, detail?: string }>>}
 */
export async function runMicro(o = {}) {
  const ms = o.ms ?? 250;
  const log = o.log ?? (() => {});
  const out = [];
  const add = (name, value, unit, detail) => {
    out.push(detail ? { name, value, unit, detail } : { name, value, unit });
    log(`  ${name}: ${fmt(value)} ${unit}`);
  };

  const rolling = await load("delta/rolling.js");
  const checksum = await load("delta/checksum.js");
  const flist = await load("protocol/flist.js");
  const wire = await load("protocol/wire.js");

  const data = new Rng(5).fill(new Uint8Array(8 << 20));
  const MB = 1e6;

  // Weak checksum over consecutive blocks (the generator's and the sender's first pass).
  for (const bl of [700, 32768]) {
    const blocks = Math.floor(data.length / bl);
    let sink = 0;
    const r = rate(
      (k) => {
        const b = k % blocks;
        sink ^= rolling.weakChecksum(data, b * bl, bl);
      },
      bl,
      ms,
    );
    if (sink === 0.5) log("");
    add(`weakChecksum ${bl} B blocks`, r / MB, "MB/s");
  }

  // The same sums and XXH3-128's long form in wasm SIMD, over data in a SimdBuffer (the
  // sender's matcher keeps the file there).
  {
    const simd = await load("delta/wasm-simd.js");
    const sb = new simd.SimdBuffer(data.length);
    sb.bytes.set(data);
    for (const bl of [700, 32768]) {
      const blocks = Math.floor(data.length / bl);
      let sink = 0;
      const r = rate((k) => (sink ^= sb.sum((k % blocks) * bl, bl)), bl, ms);
      if (sink === 0.5) log("");
      add(`SimdBuffer.sum ${bl} B blocks`, r / MB, "MB/s", "wasm SIMD get_checksum1");
    }
    const bl = 32768;
    const blocks = Math.floor(data.length / bl);
    const r = rate((k) => sb.xxh128Long(sb.bytes, (k % blocks) * bl, bl, 0x5eed1234), bl, ms);
    add(`SimdBuffer.xxh128Long ${bl} B blocks`, r / MB, "MB/s", "wasm SIMD XXH3-128");
  }

  // The rolling update, one byte at a time (the sender's search between matches).
  {
    const bl = 700;
    const span = 1 << 20;
    const rc = new rolling.RollingChecksum();
    let sink = 0;
    const r = rate(
      (k) => {
        const base = (k % 4) * span;
        rc.init(data, base, bl);
        const end = base + span;
        for (let i = base; i < end; i++) rc.roll(data[i], data[i + bl]);
        sink ^= rc.value;
      },
      span,
      ms,
    );
    if (sink === 0.5) log("");
    add("RollingChecksum.roll", r / MB, "MB/s", "700 B window, per byte");
  }

  // The sender's whole search (match.c hash_search, BlockMatcher over its wasm buffer) on a
  // file of 8 MB against the sums of a basis, blocks sized as the generator sizes them: with
  // no block in common (every offset rolled and looked up: the rolling checksum's throughput
  // as the sender runs it) and with every block in place (a weak hit, a strong sum and a jump).
  {
    const match = await load("delta/match.js");
    const sizes = await load("delta/sumsizes.js");
    await checksum.initChecksums();
    const summer = await checksum.createBlockSummer("xxh128", 31, 0x5eed1234);
    const basis = data;
    const head = sizes.sumSizes(basis.length, 31, { digestLength: 16, csumLength: 16 });
    const sum1 = new Uint32Array(head.count);
    const sum2 = new Uint8Array(head.count * head.s2length);
    for (let i = 0; i < head.count; i++) {
      const off = i * head.blength;
      const len = Math.min(head.blength, basis.length - off);
      sum1[i] = rolling.weakChecksum(basis, off, len);
      sum2.set(summer(basis, off, len).subarray(0, head.s2length), i * head.s2length);
    }
    const other = new Rng(6).fill(new Uint8Array(basis.length));
    const piece = 1 << 20;
    for (const [label, src] of [["no block matches", other], ["every block matches", basis]]) {
      const r = rate(
        () => {
          const m = new match.BlockMatcher(head, { sum1, sum2 }, summer);
          for (let p = 0; p < src.length; p += piece) m.push(src.subarray(p, p + piece));
          m.finish();
        },
        src.length,
        ms,
      );
      add(`BlockMatcher, ${label}`, r / MB, "MB/s", `the sender's search, ${head.blength} B blocks`);
    }
  }

  // Strong block sums, as the generator (and the sender on a weak hit) computes them.
  const types = ["md4", "md5", "sha1", "xxh64", "xxh3", "xxh128"];
  for (const type of types) {
    const summer = await checksum.createBlockSummer(type, 31, 0x5eed1234);
    for (const bl of [700, 32768]) {
      const blocks = Math.floor(data.length / bl);
      const r = rate((k) => summer(data, (k % blocks) * bl, bl), bl, ms);
      add(`block sum ${type} ${bl} B`, r / MB, "MB/s", `${fmt(r / bl)} blocks/s`);
    }
  }

  // File list: encode and decode a tree-shaped list (files + their directories).
  {
    const n = o.entries ?? 20000;
    const entries = flistEntries(n);
    const ctx = {
      protocol: 31,
      compatFlags: flist.CF_VARINT_FLIST_FLAGS | flist.CF_SAFE_FLIST | flist.CF_CHKSUM_SEED_FIX,
      recursive: true,
      preserveUid: true,
      preserveGid: true,
      preserveLinks: true,
      preserveDevices: true,
      preserveSpecials: true,
      preserveHardLinks: false,
      alwaysChecksum: false,
      checksumLength: 16,
      ndxStart: 0,
    };
    const encodeOnce = () => {
      const enc = new flist.FileListEncoder(ctx);
      const w = new wire.Writer(1 << 20);
      for (const e of entries) enc.encode(e, w);
      enc.end(w, 0);
      return w.take();
    };
    const bytes = encodeOnce();
    const decodeOnce = () => {
      const dec = new flist.FileListDecoder(ctx);
      const c = new wire.Cursor(bytes);
      let count = 0;
      for (;;) {
        const r = dec.decode(c);
        if ("end" in r) break;
        count++;
      }
      if (count !== entries.length) throw new Error(`flist decode: ${count} entries, expected ${entries.length}`);
    };
    add("file list decode", rate(decodeOnce, entries.length, ms), "entries/s", `${entries.length} entries, ${bytes.length} bytes, protocol 31`);
    add("file list encode", rate(encodeOnce, entries.length, ms), "entries/s");
  }
  return out;
}

/** A sorted list shaped like the benchmark tree: "." , the directories, the files. */
function flistEntries(n) {
  const rng = new Rng(9);
  const names = new Set();
  const files = [];
  for (let i = 0; i < n; i++) {
    const p = treePath(i);
    files.push(p);
    const parts = p.split("/");
    for (let k = 1; k < parts.length; k++) names.add(parts.slice(0, k).join("/"));
  }
  const all = [
    { name: ".", mode: 0o040755, size: 4096, mtime: 1_600_000_000, mtimeNsec: 0, uid: 1000, gid: 1000, flags: 1 | 4 },
  ];
  for (const d of names) all.push({ name: d, mode: 0o040755, size: 4096, mtime: 1_600_000_000, mtimeNsec: 0, uid: 1000, gid: 1000, flags: 4 });
  files.forEach((f, i) =>
    all.push({ name: f, mode: 0o100644, size: 100 + rng.int(1e6), mtime: 1_600_000_000 + i, mtimeNsec: 0, uid: 1000, gid: 1000, flags: 0 }),
  );
  // Close to rsync's order (f_name_cmp puts a directory's files before its subdirectories;
  // plain byte order is near enough for the encoder's shared-prefix compression).
  return [all[0], ...all.slice(1).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))];
}

function fmt(v) {
  if (v >= 100) return Math.round(v).toLocaleString("en-US");
  return v.toFixed(v >= 10 ? 1 : 2);
}

/**
 * Process start-up: `krsync --version` (node + loading the CLI), a bare `node -e 0`, and
 * `rsync --version` — the fixed cost under every small transfer. Median wall ms of `runs`.
 */
export async function runStartup({ krsync, rsync, runs = 5, log = () => {} }) {
  const { run, median } = await import("./measure.mjs");
  const cases = [
    ["start-up: krsync --version", [...krsync, "--version"]],
    ["start-up: node -e 0", [process.execPath, "-e", "0"]],
    ["start-up: rsync --version", [rsync, "--version"]],
  ];
  const out = [];
  for (const [name, argv] of cases) {
    const ms = [];
    for (let i = 0; i < runs; i++) {
      const t0 = process.hrtime.bigint();
      const r = await run(argv, { timeoutMs: 60_000 });
      if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code}`);
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const m = median(ms);
    out.push({ name, value: m, unit: "ms", detail: `median of ${runs}` });
    log(`  ${name}: ${m.toFixed(1)} ms`);
  }
  return out;
}
