import { Prng } from "@dmakit/core";
import { PhysRangeList } from "@dmakit/phyr";
import { type BenchFigure, type BenchSuite, measureOpsPerSec } from "../../../tools/bench/BenchSuite.js";

const N_PAGES = 1 << 20;

/**
 * A 4 GiB buffer's pfn array as a fragmented buddy allocator hands it out: runs of 2^order pages,
 * orders 0..9 weighted heavily towards small ones (order 0 is 60% of the runs, mean run about 13.5
 * pages), each run at a random naturally aligned place in a 64 GiB machine.
 */
function fragmentedPfns(seed: number): { pfns: Uint32Array; runs: number } {
  const rng = new Prng(seed);
  const weights = [60, 14, 8, 6, 4, 3, 2, 1, 1, 1];
  const sum = weights.reduce((a, b) => a + b, 0);
  const pfns = new Uint32Array(N_PAGES);
  let i = 0;
  let runs = 0;
  while (i < N_PAGES) {
    let r = rng.below(sum);
    let order = 0;
    while (r >= weights[order]!) r -= weights[order++]!;
    const len = Math.min(1 << order, N_PAGES - i);
    const start = rng.below((1 << 24) >>> order) << order; // naturally aligned, below 64 GiB
    for (let k = 0; k < len; k++) pfns[i++] = start + k;
    runs++;
  }
  return { pfns, runs };
}

const suite: BenchSuite = {
  package: "phyr",
  async run(): Promise<BenchFigure[]> {
    const { pfns, runs } = fragmentedPfns(42);
    let sink = 0;
    const pagesPerSec = await measureOpsPerSec(
      () => {
        sink += PhysRangeList.fromPfns(pfns).count;
      },
      { opsPerCall: N_PAGES, timeMs: 1000 },
    );
    const list = PhysRangeList.fromPfns(pfns);
    if (sink === 0 || list.totalLength !== N_PAGES * 4096) throw new Error("phyr bench: bad build");
    const fp = list.footprint();
    return [
      {
        id: "phyr.from-pfns",
        value: pagesPerSec,
        unit: "pages/s",
        target: ">= 1e8",
        note: `PhysRangeList.fromPfns over ${N_PAGES} pfns (Uint32Array), buddy-like runs of orders 0..9 → ${list.count} ranges (${runs} runs before adjacency merges)`,
      },
      {
        id: "phyr.bytes-per-entry",
        value: fp.jsBytes / list.count,
        unit: "bytes/entry",
        target: "<= 16",
        note: `footprint().jsBytes ${fp.jsBytes} (typed-array byteLength sum) / ${list.count} entries; C layout ${fp.cBytes} bytes`,
      },
    ];
  },
};

export default suite;
