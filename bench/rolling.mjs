#!/usr/bin/env node
// Micro-benchmarks for src/delta: weak sums, rolling, strong block sums, the block matcher.
// Usage: node bench/rolling.mjs [MB]   (default 100)
// The TypeScript sources are transpiled on the fly (typescript's transpileModule) into a
// temporary directory, so no build is needed.
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import ts from "typescript";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const MB = Number(process.argv[2] ?? 100);

async function load() {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "krsync-bench-"));
  fs.symlinkSync(path.join(root, "node_modules"), path.join(out, "node_modules"));
  fs.writeFileSync(path.join(out, "package.json"), '{"type":"module"}');
  for (const rel of ["src/delta/rolling.ts", "src/delta/sumsizes.ts", "src/delta/checksum.ts", "src/delta/match.ts", "src/delta/wasm-simd.ts", "src/protocol/wire.ts"]) {
    const src = fs.readFileSync(path.join(root, rel), "utf8");
    const js = ts.transpileModule(src, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
    }).outputText;
    const dst = path.join(out, rel.replace(/\.ts$/, ".js"));
    fs.mkdirSync(path.dirname(dst), { recursive: true });
    fs.writeFileSync(dst, js);
  }
  const imp = (rel) => import(pathToFileURL(path.join(out, rel)).href);
  const mods = {
    rolling: await imp("src/delta/rolling.js"),
    sumsizes: await imp("src/delta/sumsizes.js"),
    checksum: await imp("src/delta/checksum.js"),
    match: await imp("src/delta/match.js"),
  };
  return { ...mods, cleanup: () => fs.rmSync(out, { recursive: true, force: true }) };
}

/** CPU seconds (user + system) of fn: steadier than wall time on a shared machine. */
function time(fn) {
  const t = process.cpuUsage();
  const r = fn();
  const u = process.cpuUsage(t);
  return { secs: (u.user + u.system) / 1e6, r };
}
const mbps = (bytes, secs) => `${(bytes / 1e6 / secs).toFixed(0)} MB/s`;

const { rolling, sumsizes, checksum, match, cleanup } = await load();
const { weakChecksum, RollingChecksum } = rolling;
await checksum.initChecksums();

const N = MB * 1024 * 1024;
console.log(`data: ${MB} MiB random; figures are per CPU second`);
const data = randomBytes(N);

// 1. weak block sums
for (const bl of [700, 10_000, 131_072]) {
  weakChecksum(data, 0, bl);
  const { secs } = time(() => {
    let x = 0;
    for (let off = 0; off + bl <= N; off += bl) x ^= weakChecksum(data, off, bl);
    return x;
  });
  console.log(`weakChecksum, ${bl}-byte blocks: ${mbps(N, secs)}`);
}

// 2. rolling one byte at a time
{
  const k = 10_000;
  const r = new RollingChecksum().init(data, 0, k);
  const { secs } = time(() => {
    let x = 0;
    for (let off = 0; off + k < N; off++) {
      r.roll(data[off], data[off + k]);
      x ^= r.value;
    }
    return x;
  });
  console.log(`RollingChecksum.roll, byte by byte (window ${k}): ${mbps(N, secs)}`);
}

// 3. strong block sums: per-call cost at 700 bytes, throughput at 128 KiB
for (const type of ["md4", "md5", "sha1", "xxh64", "xxh3", "xxh128"]) {
  const bs = await checksum.createBlockSummer(type, 31, 0x1234);
  const calls = 200_000;
  for (let i = 0; i < 20_000; i++) bs(data, (i % 1000) * 700, 700);
  const small = time(() => {
    for (let i = 0; i < calls; i++) bs(data, (i % 100_000) * 700, 700);
  });
  const bigBytes = Math.min(N, 64 << 20);
  const big = time(() => {
    for (let off = 0; off + 131_072 <= bigBytes; off += 131_072) bs(data, off, 131_072);
  });
  console.log(
    `block sum ${type.padEnd(6)}: ${((small.secs / calls) * 1e9).toFixed(0)} ns/call at 700 B (${mbps(calls * 700, small.secs)}), ` +
      `${mbps(bigBytes, big.secs)} at 128 KiB`,
  );
}

// 4. the matcher on a 100 MB file with scattered changes
function makeSums(basis, head, bs) {
  const sum1 = new Uint32Array(head.count);
  const sum2 = new Uint8Array(head.count * head.s2length);
  for (let i = 0; i < head.count; i++) {
    const off = i * head.blength;
    const len = Math.min(head.blength, basis.length - off);
    sum1[i] = weakChecksum(basis, off, len);
    sum2.set(bs(basis, off, len).subarray(0, head.s2length), i * head.s2length);
  }
  return { sum1, sum2 };
}

function runMatch(head, sums, bs, source) {
  const m = new match.BlockMatcher(head, sums, bs);
  let tokens = 0;
  const piece = 256 * 1024;
  for (let p = 0; p < source.length; p += piece) tokens += m.push(source.subarray(p, p + piece)).length;
  tokens += m.finish().length;
  return { tokens, stats: m.stats };
}

const source = Buffer.from(data);
for (let i = 1; i <= 8; i++) {
  // eight scattered edits: overwrite a few hundred bytes, and one insertion
  const at = Math.floor((N / 9) * i);
  randomBytes(300).copy(source, at);
}
const edited = Buffer.concat([source.subarray(0, N >> 1), randomBytes(777), source.subarray(N >> 1)]);
const different = randomBytes(N);

for (const type of ["xxh128", "md5", "md4"]) {
  const bs = await checksum.createBlockSummer(type, 31, 0x1234);
  const head = sumsizes.sumSizes(N, 31, { digestLength: checksum.checksumDigestLength(type) });
  const gen = time(() => makeSums(data, head, bs));
  const sums = gen.r;
  console.log(`\n${type}: basis sums (generator side, blength ${head.blength}, s2length ${head.s2length}): ${mbps(N, gen.secs)}`);
  for (const [name, src] of [
    ["unchanged", data],
    ["9 scattered edits + 1 insert", edited],
    ["completely different", different],
  ]) {
    const { secs, r } = time(() => runMatch(head, sums, bs, src));
    console.log(
      `  match ${name.padEnd(28)}: ${mbps(src.length, secs)}  (${r.stats.matches} blocks, ${(r.stats.literalBytes / 1e6).toFixed(2)} MB literal, ${r.tokens} tokens)`,
    );
  }
}

cleanup();
