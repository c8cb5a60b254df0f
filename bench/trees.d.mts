// Types for bench/trees.mjs (the parts the tests use).
export const BASE_MTIME: number;
export const MUTATED_MTIME: number;
export const BIG_NAME: string;
export const MUTATIONS: readonly string[];
export class Rng {
  constructor(seed: number);
  u32(): number;
  float(): number;
  int(n: number): number;
  shuffle<T>(a: T[]): T[];
  fill<B extends Uint8Array>(buf: B): B;
}
export function treeSizes(files: number, totalMB: number, rng: Rng): number[];
export function treePath(i: number): string;
export function generateTree(dir: string, o: { files: number; totalMB: number; seed?: number }): { files: number; bytes: number };
export function fixDirTimes(dir: string): void;
export function listFiles(dir: string): string[];
export function linkClone(from: string, to: string): void;
export function mutateTree(dir: string, kind: string, seed?: number): { kind: string; changed: number };
export function generateBigFile(dir: string, o: { mb: number; seed?: number }): void;
export function mutateBigFile(fromDir: string, toDir: string, o: { count?: number; size?: number; seed?: number }): Array<[number, number]>;
export function restoreBigFile(baseDir: string, dir: string, ranges: ReadonlyArray<readonly [number, number]>): void;
export function cached<R>(dir: string, params: unknown, build: (dir: string) => R, log?: (s: string) => void): R;
