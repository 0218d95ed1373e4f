import { DMA_MAPPING_ERROR, PAGE_SIZE } from "@dmakit/core";
import { type DmaRangeList, PHYR_F_BUS_ADDR, PhysRangeList } from "@dmakit/phyr";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  dmaRangesToTriples,
  forEachSgtableSg,
  NO_PAGE,
  pageArrayFootprint,
  SgTable,
  sgAllocTableFromDmaRanges,
  sgAllocTableFromPages,
  sgAllocTableFromPhysRanges,
  sgAllocTableFromTriples,
  sgDmaIsBusAddress,
  sgDmaMarkBusAddress,
  sgDmaSetAddress,
  sgDmaSetLen,
  sgFreeTable,
  sgPage,
  sgTableFootprint,
  sgTableToDmaRanges,
  sgTableToPageBuffer,
  sgTableToPhysRanges,
  sgTableToTriples,
} from "../src/index.js";
import { coalesce, machine, pageRanges } from "./helpers.js";

const P = PAGE_SIZE;
const list = (l: PhysRangeList | DmaRangeList): [number, number][] =>
  coalesce(l.toArray().map((e) => [e.addr, e.len]));

/** A fake dma-direct mapping with a bus offset: one DMA entry per CPU entry. */
function mapDirect(t: SgTable, busOffset: number): void {
  for (const sg of forEachSgtableSg(t)) {
    const phys = sgPage(sg) * P + t.pool.u32[sg.index * 8 + 2]!;
    sgDmaSetAddress(sg, phys + busOffset);
    sgDmaSetLen(sg, t.pool.u32[sg.index * 8 + 3]!);
  }
  t.nents = t.origNents;
}

describe("representations", () => {
  const m = machine();
  const layout = fc
    .array(
      fc.record({
        base: fc.oneof(
          fc.integer({ min: 0, max: 16000 }),
          fc.integer({ min: m.p2pA, max: m.p2pA + 200 }),
          fc.integer({ min: m.p2pB, max: m.p2pB + 200 }),
          fc.integer({ min: m.mmio, max: m.mmio + 200 }),
        ),
        len: fc.integer({ min: 1, max: 40 }),
      }),
      { minLength: 1, maxLength: 6 },
    )
    .map((runs) => runs.flatMap((r) => Array.from({ length: r.len }, (_, i) => r.base + i)));

  it("property: every round trip preserves every byte range", () => {
    fc.assert(
      fc.property(
        layout,
        fc.integer({ min: 0, max: P - 1 }),
        fc.integer({ min: 0, max: P - 1 }),
        (pages, offset, tail) => {
          const size = Math.max(1, pages.length * P - offset - tail);
          const want = pageRanges(pages, offset, size);
          const t = new SgTable(m.pool);
          sgAllocTableFromPages(t, pages, pages.length, offset, size);
          // sg → phys ranges → sg (the Phyr Starter fallback) → pages
          const phys = sgTableToPhysRanges(t);
          expect(list(phys)).toEqual(want);
          expect(list(PhysRangeList.fromPfns(pages, offset, size))).toEqual(want);
          const t2 = new SgTable(m.pool);
          sgAllocTableFromPhysRanges(t2, phys, 8 * P);
          const buf = sgTableToPageBuffer(t2);
          expect([...buf.pages]).toEqual(pages);
          expect([buf.offset, buf.size]).toEqual([offset, size]);
          // DMA view → DMA ranges → DMA-only sg_table → DMA ranges
          mapDirect(t, 0x1_0000_0000_0);
          const dma = sgTableToDmaRanges(t);
          expect(list(dma)).toEqual(want.map(([a, l]) => [a + 0x1_0000_0000_0, l]));
          const t3 = new SgTable(m.pool);
          sgAllocTableFromDmaRanges(t3, dma);
          expect(sgPage(t3.sgl!)).toBe(NO_PAGE);
          expect(list(sgTableToDmaRanges(t3))).toEqual(list(dma));
          // sg (both views) → triples → sg → both views
          const tri = sgTableToTriples(t, true);
          expect(list(tri.toPhysRanges())).toEqual(want);
          expect(list(tri.toDmaRanges())).toEqual(list(dma));
          const t4 = new SgTable(m.pool);
          sgAllocTableFromTriples(t4, tri);
          expect(list(sgTableToPhysRanges(t4))).toEqual(want);
          expect(list(sgTableToDmaRanges(t4))).toEqual(list(dma));
          // DMA ranges → triples (no pages)
          const dt = dmaRangesToTriples(dma);
          expect(list(dt.toDmaRanges())).toEqual(list(dma));
          for (const x of [t, t2, t3, t4]) sgFreeTable(x);
        },
      ),
      { numRuns: 80 },
    );
    expect(m.pool.stats().blocks).toBe(0);
  });

  it("carries the bus-address flag between dma_flags and PHYR_F_BUS_ADDR", () => {
    const t = new SgTable(m.pool);
    sgAllocTableFromPages(t, [m.p2pA], 1, 0, P);
    mapDirect(t, 0);
    sgDmaMarkBusAddress(t.sgl!);
    const d = sgTableToDmaRanges(t);
    expect(d.flags(0)).toBe(PHYR_F_BUS_ADDR);
    const t2 = new SgTable(m.pool);
    sgAllocTableFromDmaRanges(t2, d);
    expect(sgDmaIsBusAddress(t2.sgl!)).toBe(true);
    sgFreeTable(t);
    sgFreeTable(t2);
  });

  it("unmapped triples hold DMA_MAPPING_ERROR and merge page runs", () => {
    const t = new SgTable(m.pool);
    sgAllocTableFromPages(t, [1, 2, 3, 7], 4, 0, 4 * P);
    const tri = sgTableToTriples(t, false);
    expect(tri.count).toBe(2);
    expect([tri.page(0), tri.numPages(0), tri.dma(0)]).toEqual([1, 3, DMA_MAPPING_ERROR]);
    expect(tri.footprint().cBytes).toBe(48);
    sgFreeTable(t);
  });

  it("reports footprints the kernel's way and as the model holds them", () => {
    const pages = Array.from({ length: 1000 }, (_, i) => 2 * i);
    const t = new SgTable(m.pool);
    sgAllocTableFromPages(t, pages, pages.length, 0, pages.length * P);
    // 1000 entries = 127 * 7 + 111: 8 chunks, 7 chain slots.
    const f = sgTableFootprint(t);
    expect(f).toEqual({
      entries: 1000,
      chainSlots: 7,
      cBytes: 16 + (7 * 128 + 111) * 32,
      jsBytes: (7 * 128 + 128) * 32,
    });
    expect(pageArrayFootprint(new Float64Array(pages))).toEqual({ cBytes: 8000, jsBytes: 8000 });
    expect(sgTableToPhysRanges(t).footprint()).toEqual({ cBytes: 16000, jsBytes: 16000 });
    sgFreeTable(t);
  });
});
