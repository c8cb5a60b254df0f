// `krsync bench [options]`: runs the benchmark harness of a krsync checkout (bench/run.mjs,
// the same code as `npm run bench`). The harness is not part of the installed package, so it
// is loaded on demand and its absence is reported rather than breaking the CLI.

type BenchModule = typeof import("../../bench/run.mjs");

/** Run the harness with the arguments after `bench`; resolves to the exit status. */
export async function runBench(argv: string[]): Promise<number> {
  let mod: BenchModule;
  try {
    mod = await import("../../bench/run.mjs");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ERR_MODULE_NOT_FOUND" && /bench[/\\]run\.mjs/.test(err.message)) {
      process.stderr.write("krsync bench: the benchmark harness (bench/) comes with a krsync source checkout, not the package\n");
      return 1;
    }
    throw e;
  }
  return mod.runBench(argv);
}
