// Types for bench/run.mjs (used by src/cli/bench.ts and test/bench-smoke.test.ts).
export interface BenchIo {
  /** Report output, one call per chunk of lines (default: process.stdout). */
  stdout?: (text: string) => void;
  /** Progress output (default: process.stderr). */
  stderr?: (text: string) => void;
}
export interface BenchSizes {
  files: number;
  totalMB: number;
  bigMB: number;
}
export const FULL: BenchSizes;
export const QUICK: BenchSizes;
/** Run the harness with command-line arguments (no program name); resolves to the exit status. */
export function runBench(argv: string[], io?: BenchIo): Promise<number>;
