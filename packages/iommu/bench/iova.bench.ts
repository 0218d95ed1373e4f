import { Prng, SimClock } from "@dmakit/core";
import { type BenchFigure, type BenchSuite, measureOpsPerSec } from "../../../tools/bench/BenchSuite.js";
import { initIovaDomain } from "../src/index.js";

const LIMIT_48 = 2 ** 36 - 1; // 48-bit IOVA space in 4 KiB pages

/** alloc_iova_fast + free_iova_fast pairs through a warm per-CPU cache, mixed size classes. */
function rcacheWorkload(): () => void {
  const iovad = initIovaDomain(4096, 1, { numCpus: 4, clock: new SimClock() });
  const sizes = [1, 1, 2, 1, 4, 1, 8, 16];
  const pfns = new Float64Array(sizes.length);
  // Warm the caches so the measured loop never reaches the rbtree.
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < sizes.length; i++) pfns[i] = iovad.allocIovaFast(sizes[i]!, LIMIT_48, true);
    for (let i = 0; i < sizes.length; i++) iovad.freeIovaFast(pfns[i]!, sizes[i]!);
  }
  let k = 0;
  return () => {
    for (let j = 0; j < 1024; j++) {
      const size = sizes[k++ & 7]!;
      const pfn = iovad.allocIovaFast(size, LIMIT_48, true);
      iovad.freeIovaFast(pfn, size);
    }
  };
}

/**
 * 100k live IOVAs of 1..64 pages in the rbtree (alloc_iova, size-aligned, 48-bit limit). Each op
 * frees one live range or allocates its replacement (random size). `fifo` frees the oldest range,
 * the completion order of a streaming DMA ring; `random` frees a random one, which leaves holes
 * below the cached node that the top-down walk must step over (the kernel's O(n) slow path).
 */
function rbtreeWorkload(order: "fifo" | "random"): () => void {
  const LIVE = 100_000;
  const iovad = initIovaDomain(4096, 1, { rcaches: false, initialCapacity: LIVE + 16 });
  const rng = new Prng(42);
  const live = new Float64Array(LIVE);
  for (let i = 0; i < LIVE; i++) {
    const r = iovad.allocIova(rng.int(1, 64), LIMIT_48, true);
    if (r === null) throw new Error("prefill failed");
    live[i] = r.pfnLo;
  }
  const picks = new Uint32Array(4096);
  const sizes = new Uint8Array(4096);
  for (let i = 0; i < picks.length; i++) {
    picks[i] = rng.below(LIVE);
    sizes[i] = rng.int(1, 64);
  }
  let k = 0;
  let oldest = 0;
  return () => {
    for (let j = 0; j < 512; j++) {
      let slot: number;
      if (order === "fifo") {
        slot = oldest;
        oldest = oldest + 1 === LIVE ? 0 : oldest + 1;
      } else {
        slot = picks[k]!;
      }
      const size = sizes[k]!;
      k = (k + 1) & 4095;
      iovad.freeIova(live[slot]!);
      const r = iovad.allocIova(size, LIMIT_48, true);
      live[slot] = r === null ? 0 : r.pfnLo;
    }
  };
}

const suite: BenchSuite = {
  package: "iommu",
  async run(): Promise<BenchFigure[]> {
    const rcache = await measureOpsPerSec(rcacheWorkload(), { opsPerCall: 1024 });
    const rbtree = await measureOpsPerSec(rbtreeWorkload("fifo"), { opsPerCall: 1024 });
    const rbtreeRandom = await measureOpsPerSec(rbtreeWorkload("random"), { opsPerCall: 1024 });
    return [
      {
        id: "iommu.iova.alloc-free.rcache",
        value: rcache,
        unit: "ops/s",
        target: ">= 1e7",
        note: "alloc_iova_fast + free_iova_fast pairs/s, warm per-CPU magazines, sizes 1-16 pages, 48-bit limit",
      },
      {
        id: "iommu.iova.alloc.rbtree.100k-live",
        value: rbtree,
        unit: "ops/s",
        target: ">= 1e6",
        note: "free_iova of the oldest + alloc_iova (size-aligned, 1-64 pages, 48-bit limit), each one op, 100k live",
      },
      {
        id: "iommu.iova.alloc.rbtree.100k-live.random-free",
        value: rbtreeRandom,
        unit: "ops/s",
        note: "as above but freeing a random live IOVA: holes below the cached node make the top-down walk O(n)",
      },
    ];
  },
};

export default suite;
