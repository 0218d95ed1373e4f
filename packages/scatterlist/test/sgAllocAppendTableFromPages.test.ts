import { PAGE_SIZE } from "@dmakit/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  forEachSgtableSg,
  SgAppendTable,
  SgPool,
  SgTable,
  sgAllocAppendTableFromPages,
  sgAllocTableFromPages,
  sgAllocTableFromPagesSegment,
  sgFreeAppendTable,
  sgFreeTable,
  sgIsLast,
  sgLength,
  sgNents,
  sgOffset,
  sgPage,
  sgPhys,
  sgTableToPageBuffer,
} from "../src/index.js";
import { coalesce, machine, pageRanges } from "./helpers.js";

const P = PAGE_SIZE;

function entries(t: SgTable): [number, number, number][] {
  return [...forEachSgtableSg(t)].map((sg) => [sgPage(sg), sgOffset(sg), sgLength(sg)]);
}

/** Naive merge rule: the kernel's chunking, restated. */
function naiveChunks(
  pages: number[],
  maxSeg: number,
  mergeable: (a: number, b: number) => boolean,
): number[][] {
  const m = maxSeg - (maxSeg % P);
  const out: number[][] = [];
  let cur: number[] = [];
  let segLen = 0;
  for (let i = 0; i < pages.length; i++) {
    if (i > 0) {
      segLen += P;
      if (segLen >= m || !mergeable(pages[i]!, pages[i - 1]!)) {
        out.push(cur);
        cur = [];
        segLen = 0;
      }
    }
    cur.push(pages[i]!);
  }
  out.push(cur);
  return out;
}

describe("merge rule", () => {
  it("merges consecutive pfns only within one ZONE_DEVICE pgmap and never RAM with device pages", () => {
    const { pool, mem, p2pA, p2pB } = machine();
    const t = new SgTable(pool);
    // Last RAM page before the hole is not adjacent; use the last two pages of pgmap A then B.
    const pages = [10, 11, p2pA + 254, p2pA + 255, p2pB, p2pB + 1, 12];
    sgAllocTableFromPages(t, pages, pages.length, 0, pages.length * P);
    expect(entries(t)).toEqual([
      [10, 0, 2 * P],
      [p2pA + 254, 0, 2 * P],
      [p2pB, 0, 2 * P],
      [12, 0, P],
    ]);
    expect(mem.zoneDevicePagesHaveSamePgmap(p2pB, p2pA + 255)).toBe(false);
  });

  it("honours max_segment, rounds it down to a page and rejects < PAGE_SIZE with a WARN", () => {
    const pool = new SgPool();
    const t = new SgTable(pool);
    const pages = Array.from({ length: 10 }, (_, i) => 100 + i);
    sgAllocTableFromPagesSegment(t, pages, 10, 0, 10 * P, 3 * P + 100);
    expect(entries(t).map((e) => e[2])).toEqual([3 * P, 3 * P, 3 * P, P]);
    const u = new SgTable(pool);
    expect(() => sgAllocTableFromPagesSegment(u, pages, 10, 0, 10 * P, P - 1)).toThrow(/EINVAL/);
    expect(pool.log.warnCount).toBe(1);
    expect(u.sgl).toBeNull();
  });

  it("puts the offset on the first entry and trims the entry where size runs out (unsigned wrap)", () => {
    const t = new SgTable(new SgPool());
    // size 100 bytes over pages (5, 9): the kernel trims entry 0, and size -= chunk_size wraps,
    // so entry 1 keeps its full page.
    sgAllocTableFromPages(t, [5, 9], 2, 16, 100);
    expect(entries(t)).toEqual([
      [5, 16, 100],
      [9, 0, P],
    ]);
    expect(sgPhys(t.sgl!)).toBe(5 * P + 16);
  });

  it("rejects offsets past the page, bad pfns and n_pages 0 without touching the table", () => {
    const pool = new SgPool();
    const t = new SgTable(pool);
    expect(() => sgAllocTableFromPages(t, [1], 1, P, 10)).toThrow(/EINVAL/);
    expect(() => sgAllocTableFromPages(t, [1.5], 1, 0, 10)).toThrow(/EINVAL/);
    expect(() => sgAllocTableFromPages(t, [], 0, 0, 0)).toThrow(/EINVAL/);
    expect(() => sgAllocTableFromPages(t, [1], 1, 0, -1)).toThrow(/EINVAL/);
    expect(t.sgl).toBeNull();
    expect(pool.stats().blocks).toBe(0);
  });
});

describe("append tables", () => {
  it("merges into prv, keeps END off while left_pages > 0, WARNs on offset when appending", () => {
    const pool = new SgPool();
    const a = new SgAppendTable(pool);
    sgAllocAppendTableFromPages(a, [1, 2], 2, 0, 2 * P, 0xffffffff, 4);
    expect(sgIsLast(a.prv!)).toBe(false);
    expect(() => sgAllocAppendTableFromPages(a, [3], 1, 8, P, 0xffffffff, 0)).toThrow(/EINVAL/);
    expect(pool.log.warnCount).toBe(1);
    expect(sgLength(a.prv!)).toBe(2 * P);
    sgAllocAppendTableFromPages(a, [3, 4, 9], 3, 0, 3 * P, 0xffffffff, 0);
    expect(entries(a.sgt)).toEqual([
      [1, 0, 4 * P],
      [9, 0, P],
    ]);
    expect(sgIsLast(a.prv!)).toBe(true);
    // first call: chunks 1 + left_pages 4 = a 5-slot chunk; the second call fits in it.
    expect(a.totalNents).toBe(5);
    // Appending after the END mark, with a page that cannot merge: the kernel dereferences NULL.
    expect(() => sgAllocAppendTableFromPages(a, [20], 1, 0, P, 0xffffffff, 0)).toThrow(/EFAULT/);
    expect(entries(a.sgt)).toHaveLength(2);
    // ... but one that merges into prv is fine, as in the kernel.
    sgAllocAppendTableFromPages(a, [10], 1, 0, P, 0xffffffff, 0);
    expect(sgLength(a.prv!)).toBe(2 * P);
    sgFreeAppendTable(a);
    expect(pool.stats().blocks).toBe(0);
    expect(() => sgAllocAppendTableFromPages(a, [11], 1, 0, P, 0xffffffff, 0)).toThrow(/EFAULT/);
  });

  it("an ENOMEM in the middle of an append restores prv, the chain slot and the counts", () => {
    let fail = false;
    const pool = new SgPool({ failAlloc: () => fail });
    const a = new SgAppendTable(pool);
    // 3 entries now, 1 page announced: a 4-slot chunk, so the second call must chain a new chunk.
    sgAllocAppendTableFromPages(a, [1, 3, 5], 3, 0, 3 * P, 0xffffffff, 1);
    const snapshot = new Float64Array(pool.f64.slice(0, 16));
    fail = true;
    expect(() => sgAllocAppendTableFromPages(a, [6, 8, 10, 12, 14], 5, 0, 5 * P, 0xffffffff, 0)).toThrow(
      /ENOMEM/,
    );
    expect(new Float64Array(pool.f64.slice(0, 16))).toEqual(snapshot);
    expect([a.sgt.nents, a.totalNents, pool.stats().blocks]).toEqual([3, 4, 1]);
    fail = false;
    sgAllocAppendTableFromPages(a, [6, 8, 10, 12, 14], 5, 0, 5 * P, 0xffffffff, 0);
    expect(entries(a.sgt).map((e) => e[0])).toEqual([1, 3, 5, 8, 10, 12, 14]);
    expect(sgLength(a.sgt.sgl!.add(2))).toBe(2 * P);
  });
});

// Page layouts: runs of consecutive pfns from RAM, P2P BAR A/B (different pgmaps) and plain MMIO
// (no struct page), possibly adjacent to each other.
const layoutArb = (m: ReturnType<typeof machine>) =>
  fc
    .array(
      fc.record({
        base: fc.oneof(
          fc.integer({ min: 0, max: 16000 }),
          fc.integer({ min: m.p2pA + 200, max: m.p2pA + 255 }),
          fc.integer({ min: m.p2pB, max: m.p2pB + 50 }),
          fc.integer({ min: m.mmio, max: m.mmio + 50 }),
        ),
        len: fc.integer({ min: 1, max: 300 }),
      }),
      { minLength: 1, maxLength: 8 },
    )
    .map((runs) => runs.flatMap((r) => Array.from({ length: r.len }, (_, i) => r.base + i)));

describe("property: pages → sg_table", () => {
  const m = machine();
  const mergeable = (a: number, b: number): boolean =>
    a === b + 1 && m.mem.zoneDevicePagesHaveSamePgmap(a, b);

  it("covers the same bytes, with the kernel's chunking", () => {
    fc.assert(
      fc.property(
        layoutArb(m),
        fc.integer({ min: 0, max: P - 1 }),
        fc.integer({ min: 0, max: P - 1 }),
        fc.oneof(fc.constant(0xffffffff), fc.integer({ min: P, max: 64 * P })),
        (pages, offset, tail, maxSeg) => {
          const size = Math.max(1, pages.length * P - offset - tail);
          const t = new SgTable(m.pool);
          sgAllocTableFromPagesSegment(t, pages, pages.length, offset, size, maxSeg);
          const chunks = naiveChunks(pages, maxSeg, mergeable);
          expect(t.origNents).toBe(chunks.length);
          expect(t.nents).toBe(chunks.length);
          expect(sgNents(t.sgl)).toBe(chunks.length);
          const got = entries(t);
          expect(got.map((e) => e[0])).toEqual(chunks.map((c) => c[0]));
          expect(coalesce(got.map(([pg, off, len]) => [pg * P + off, len]))).toEqual(
            pageRanges(pages, offset, size),
          );
          const back = sgTableToPageBuffer(t);
          expect([...back.pages]).toEqual(pages);
          expect([back.offset, back.size]).toEqual([offset, size]);
          sgFreeTable(t);
        },
      ),
      { numRuns: 150 },
    );
    expect(m.pool.stats().blocks).toBe(0);
  });

  it("appending in pieces gives the same entries as one shot", () => {
    fc.assert(
      fc.property(
        layoutArb(m),
        fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 5 }),
        fc.oneof(fc.constant(0xffffffff), fc.integer({ min: P, max: 16 * P })),
        fc.integer({ min: 0, max: P - 1 }),
        (pages, cuts, maxSeg, offset) => {
          const one = new SgTable(m.pool);
          sgAllocTableFromPagesSegment(one, pages, pages.length, offset, pages.length * P - offset, maxSeg);
          const a = new SgAppendTable(m.pool);
          let at = 0;
          let k = 0;
          while (at < pages.length) {
            const n = Math.min(cuts[k++ % cuts.length]!, pages.length - at);
            const off = at === 0 ? offset : 0;
            const left = pages.length - at - n;
            sgAllocAppendTableFromPages(a, pages.slice(at, at + n), n, off, n * P - off, maxSeg, left);
            at += n;
          }
          expect(entries(a.sgt)).toEqual(entries(one));
          expect(a.sgt.nents).toBe(one.nents);
          sgFreeAppendTable(a);
          sgFreeTable(one);
        },
      ),
      { numRuns: 100 },
    );
    expect(m.pool.stats().blocks).toBe(0);
  });
});
