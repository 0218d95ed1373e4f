import { Bench } from "tinybench";

/** Units a figure may be reported in (bench/results.json contract). */
export type BenchUnit =
  | "ops/s"
  | "pages/s"
  | "entries/s"
  | "GB/s"
  | "ns/op"
  | "ms"
  | "bytes/page"
  | "bytes/entry"
  | "bytes";

/** One figure in bench/results.json. */
export interface BenchFigure {
  /** Stable id, e.g. `mm-pages.buddy.alloc-free.order0`. */
  id: string;
  value: number;
  unit: BenchUnit;
  /** The target, e.g. `">= 5e6"` or `"<= 16"`; omitted where none is set. */
  target?: string;
  /** Free-form note (workload details). */
  note?: string;
}

/** What a `packages/<pkg>/bench/<name>.bench.ts` file default-exports. */
export interface BenchSuite {
  /** Package folder name, e.g. `mm-pages`; `pnpm bench --filter mm-pages` selects on it. */
  package: string;
  run(): Promise<BenchFigure[]>;
}

/**
 * Runs `fn` under tinybench and returns operations per second: the best of `rounds` runs (default
 * 3), each the mean over its samples. One 2-core machine runs everything here, so a single run can
 * land on a GC pause or a JIT tier change; the best round is the steady state the code reaches.
 * `opsPerCall` scales the figure when one call does many operations (e.g. 1024 pages).
 */
export async function measureOpsPerSec(
  fn: () => void,
  options: { opsPerCall?: number; timeMs?: number; warmupMs?: number; rounds?: number } = {},
): Promise<number> {
  let best = 0;
  const rounds = options.rounds ?? 3;
  for (let r = 0; r < rounds; r++) {
    const bench = new Bench({ time: options.timeMs ?? 500, warmupTime: options.warmupMs ?? 200 });
    bench.add("x", fn);
    await bench.run();
    const task = bench.tasks[0];
    const result = task?.result;
    if (!result || !("throughput" in result)) throw new Error(`benchmark failed: ${String(task?.result)}`);
    best = Math.max(best, result.throughput.mean);
  }
  return best * (options.opsPerCall ?? 1);
}

/** Wall-clock milliseconds of one call of `fn` (for one-shot figures like boot time); best of `runs` (default 5). */
export function measureMs(fn: () => void, runs = 5): number {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}
