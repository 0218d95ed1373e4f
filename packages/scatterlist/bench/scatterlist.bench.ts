import { PAGE_SIZE, Prng, SZ_1G, SZ_2M } from "@dmakit/core";
import { PhysRangeList } from "@dmakit/phyr";
import type { BenchFigure, BenchSuite } from "../../../tools/bench/BenchSuite.js";
import { measureOpsPerSec } from "../../../tools/bench/BenchSuite.js";
import {
  forEachSgtableSg,
  pageArrayFootprint,
  SG_SLOT_BYTES,
  SgPool,
  SgTable,
  sgAllocTableFromPages,
  sgAllocTableFromPagesSegment,
  sgFreeTable,
  sgTableFootprint,
  sgTableToDmaRanges,
  sgTableToTriples,
  sgWalk,
} from "../src/index.js";

/** 1M pfns in runs of 1..64 pages (mean ~32: a fragmented but not shattered user buffer). */
function fragmentedPfns(n: number, seed: number): Float64Array {
  const rng = new Prng(seed);
  const out = new Float64Array(n);
  let pfn = 0x1000;
  for (let i = 0; i < n; ) {
    const run = 1 + rng.below(64);
    pfn += 1 + rng.below(1024);
    for (let k = 0; k < run && i < n; k++) out[i++] = pfn++;
  }
  return out;
}

function layout(kind: "scattered-4k" | "chunks-2m" | "contiguous"): Float64Array {
  const n = SZ_1G / PAGE_SIZE;
  const pages = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (kind === "scattered-4k") pages[i] = 0x100000 + 2 * i;
    else if (kind === "chunks-2m") {
      const per = SZ_2M / PAGE_SIZE;
      pages[i] = 0x100000 + Math.floor(i / per) * 2 * per + (i % per);
    } else pages[i] = 0x100000 + i;
  }
  return pages;
}

const suite: BenchSuite = {
  package: "scatterlist",
  async run(): Promise<BenchFigure[]> {
    const figures: BenchFigure[] = [];
    const pool = new SgPool();
    const n = 1 << 20;
    const pfns = fragmentedPfns(n, 42);

    const fromPages = await measureOpsPerSec(
      () => {
        const t = new SgTable(pool);
        sgAllocTableFromPagesSegment(t, pfns, n, 0, n * PAGE_SIZE, 0xffffffff);
        sgFreeTable(t);
      },
      { opsPerCall: n, timeMs: 1500 },
    );
    figures.push({
      id: "scatterlist.from-pages.1m",
      value: fromPages,
      unit: "pages/s",
      target: ">= 2e7",
      note: "sg_alloc_table_from_pages_segment + sg_free_table, 1,048,576 pfns in runs of 1..64 pages",
    });

    const stats = pool.stats();
    figures.push({
      id: "scatterlist.bytes-per-entry",
      value: stats.slotBytes / stats.slotsCapacity,
      unit: "bytes/entry",
      target: "<= 32",
      note: `slot storage / slots; per-frame metadata adds ${(stats.metaBytes / stats.slotsCapacity).toFixed(2)} B/slot`,
    });

    // Every other pfn: 1,048,576 entries in 8257 chained chunks.
    const scattered = new Float64Array(n);
    for (let i = 0; i < n; i++) scattered[i] = 0x1000 + 2 * i;
    const t = new SgTable(pool);
    sgAllocTableFromPages(t, scattered, n, 0, n * PAGE_SIZE);
    const entries = t.origNents;
    let sink = 0;
    const iterate = await measureOpsPerSec(
      () => {
        for (const sg of forEachSgtableSg(t)) sink += sg.index;
      },
      { opsPerCall: entries, timeMs: 1000 },
    );
    figures.push({
      id: "scatterlist.iterate.1m",
      value: iterate,
      unit: "entries/s",
      note: `for_each_sgtable_sg generator over ${entries} entries (chained chunks)`,
    });
    const walk = await measureOpsPerSec(
      () => {
        sgWalk(t.sgl, entries, (_i, _o, len) => {
          sink += len;
        });
      },
      { opsPerCall: entries, timeMs: 1000 },
    );
    figures.push({
      id: "scatterlist.iterate.1m.walk",
      value: walk,
      unit: "entries/s",
      note: "sgWalk (raw slot callback, no handle per entry)",
    });
    sgFreeTable(t);
    if (sink === -1) console.log(sink);

    for (const kind of ["scattered-4k", "chunks-2m", "contiguous"] as const) {
      const pages = layout(kind);
      const p = new SgPool();
      const sgt = new SgTable(p);
      sgAllocTableFromPages(sgt, pages, pages.length, 0, SZ_1G);
      const phys = PhysRangeList.fromPfns(pages, 0, SZ_1G);
      // dma-direct mapping (DMA = phys): one DMA entry per CPU entry.
      sgWalk(sgt.sgl, sgt.origNents, (i, off, len) => {
        p.f64[i * 4 + 2] = (Math.floor((p.f64[i * 4] as number) / 4) - 1) * PAGE_SIZE + off;
        p.u32[i * 8 + 6] = len;
      });
      const dma = sgTableToDmaRanges(sgt);
      const tri = sgTableToTriples(sgt, true);
      const note = (js: number, extra = ""): string => `JS heap ${js} bytes${extra}`;
      const sgf = sgTableFootprint(sgt);
      const pa = pageArrayFootprint(pages);
      const add = (what: string, c: number, js: number, extra = ""): void => {
        figures.push({
          id: `representations.footprint.${kind}.${what}`,
          value: c,
          unit: "bytes",
          note: note(js, extra),
        });
      };
      add("page-array", pa.cBytes, pa.jsBytes, `; ${pages.length} struct page pointers`);
      add(
        "sg-table",
        sgf.cBytes,
        sgf.jsBytes,
        `; ${sgf.entries} entries + ${sgf.chainSlots} chain slots of ${SG_SLOT_BYTES} B`,
      );
      add("phys-range-list", phys.footprint().cBytes, phys.footprint().jsBytes, `; ${phys.count} phys_vec`);
      add(
        "dma-range-list",
        dma.footprint().cBytes,
        dma.footprint().jsBytes,
        `; ${dma.count} dma_range (dma-direct)`,
      );
      add(
        "triple-list",
        tri.footprint().cBytes,
        tri.footprint().jsBytes,
        `; ${tri.count} (page, dma, num_pages)`,
      );
      sgFreeTable(sgt);
    }
    return figures;
  },
};

export default suite;
