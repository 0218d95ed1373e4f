import { KernelLog, Prng, SZ_1G, SZ_2M, SZ_16K } from "@dmakit/core";
import {
  type BenchFigure,
  type BenchSuite,
  measureMs,
  measureOpsPerSec,
} from "../../../tools/bench/BenchSuite.js";
import { copyPhysRange, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, PageAllocator, PhysMem } from "../src/index.js";

const RAM = 0x8000_0000;

/** A 4 GiB machine whose allocator already holds a few thousand mixed-order allocations. */
function warmAllocator(): PageAllocator {
  const mem = new PhysMem({ banks: [{ start: RAM, size: 4 * SZ_1G }] }, { log: new KernelLog() });
  const pages = new PageAllocator(mem);
  const prng = new Prng(7);
  const held: [number, number][] = [];
  for (let i = 0; i < 20_000; i++) {
    const order = prng.below(4);
    const p = pages.allocPages(i % 2 === 0 ? GFP_KERNEL : GFP_HIGHUSER_MOVABLE, order);
    if (p !== null) held.push([p, order]);
  }
  // Free every third allocation, leaving holes so buddies do not always merge.
  for (let i = 0; i < held.length; i += 3) {
    const [p, o] = held[i] as [number, number];
    pages.freePages(p, o);
  }
  return pages;
}

const suite: BenchSuite = {
  package: "mm-pages",
  async run(): Promise<BenchFigure[]> {
    const figures: BenchFigure[] = [];

    let mem64: PhysMem | undefined;
    const bootMs = measureMs(() => {
      mem64 = undefined;
      mem64 = new PhysMem({ banks: [{ start: 0, size: 64 * SZ_1G }] }, { log: new KernelLog() });
      new PageAllocator(mem64);
    }, 3);
    const mm = (mem64 as PhysMem).memmap;
    figures.push({
      id: "mm-pages.memmap.bytes-per-page",
      value: mm.byteLength / mm.pages,
      unit: "bytes/page",
      target: "<= 16",
      note: `64 GiB machine: ${mm.byteLength} bytes of memmap for ${mm.pages} pages`,
    });
    figures.push({
      id: "mm-pages.boot.64g",
      value: bootMs,
      unit: "ms",
      target: "<= 300",
      note: "new PhysMem (64 GiB, one bank) + new PageAllocator (16384 max-order blocks); best of 3",
    });
    mem64 = undefined;

    const BATCH = 1000;
    const p0 = warmAllocator();
    const order0 = await measureOpsPerSec(
      () => {
        for (let i = 0; i < BATCH; i++) {
          const p = p0.allocPages(GFP_KERNEL, 0) as number;
          p0.freePages(p, 0);
        }
      },
      { opsPerCall: BATCH, timeMs: 1000 },
    );
    figures.push({
      id: "mm-pages.buddy.alloc-free.order0",
      value: order0,
      unit: "ops/s",
      target: ">= 5e6",
      note: "one op = alloc_pages(GFP_KERNEL, 0) + __free_pages on a 4 GiB machine holding ~13k mixed-order allocations",
    });

    const p9 = warmAllocator();
    const order9 = await measureOpsPerSec(
      () => {
        for (let i = 0; i < 100; i++) {
          const p = p9.allocPages(GFP_KERNEL, 9) as number;
          p9.freePages(p, 9);
        }
      },
      { opsPerCall: 100, timeMs: 1000 },
    );
    figures.push({
      id: "mm-pages.buddy.alloc-free.order9",
      value: order9,
      unit: "ops/s",
      note: "one op = alloc_pages(GFP_KERNEL, 9) + __free_pages (2 MiB block split and merged)",
    });

    const mem = new PhysMem({ banks: [{ start: RAM, size: 64 * SZ_2M }] }, { log: new KernelLog() });
    const src = RAM + SZ_16K;
    const dst = RAM + 8 * SZ_2M;
    mem.write(src, new Prng(3).fill(new Uint8Array(SZ_2M)));
    mem.fill(dst, SZ_2M, 1);
    const copy = await measureOpsPerSec(() => copyPhysRange(mem, dst, src, SZ_2M), {
      opsPerCall: SZ_2M / 1e9,
      timeMs: 1000,
    });
    figures.push({
      id: "mm-pages.ram.copy.2m",
      value: copy,
      unit: "GB/s",
      note: "copyPhysRange of 2 MiB between two backed RAM ranges (source not chunk-aligned)",
    });
    return figures;
  },
};

export default suite;
