import { PAGE_SIZE, Prng } from "@dmakit/core";
import { GFP_KERNEL, PageAllocator } from "@dmakit/mm-pages";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  forEachSgPage,
  forEachSgtableDmaPage,
  NO_PAGE,
  SG_MITER_FROM_SG,
  SgMappingIter,
  SgPool,
  SgTable,
  sgAllocTable,
  sgAllocTableFromPages,
  sgCopyFromBuffer,
  sgCopyToBuffer,
  sgDmaSetAddress,
  sgDmaSetLen,
  sgFreeTable,
  sglAlloc,
  sglAllocOrder,
  sglFree,
  sglFreeOrder,
  sgMiterNext,
  sgMiterSkip,
  sgMiterStart,
  sgMiterStop,
  sgNentsForLen,
  sgPageIterDmaAddress,
  sgPageIterPage,
  sgPcopyToBuffer,
  sgSetPage,
  sgZeroBuffer,
} from "../src/index.js";
import { machine } from "./helpers.js";

const P = PAGE_SIZE;

// The iterators yield one reused SgPageIter (as the C loops reuse one struct): read it inside the loop.
function collect<T>(it: Iterable<T>, f: (x: T) => number): number[] {
  const out: number[] = [];
  for (const x of it) out.push(f(x));
  return out;
}

describe("sg_copy_buffer family through PhysMem", () => {
  it("copies, skips and zeroes the right bytes, and returns the kernel's counts", () => {
    const { pool, mem } = machine();
    const t = new SgTable(pool);
    sgAllocTableFromPages(t, [20, 21, 40], 3, 100, 3 * P - 200);
    const src = new Prng(7).fill(new Uint8Array(3 * P - 200));
    expect(sgCopyFromBuffer(t.sgl, t.origNents, src, src.length)).toBe(src.length);
    const phys = new Uint8Array(2 * P - 100);
    mem.read(20 * P + 100, phys);
    expect(phys).toEqual(src.subarray(0, 2 * P - 100));
    const tail = new Uint8Array(P - 100);
    mem.read(40 * P, tail);
    expect(tail).toEqual(src.subarray(2 * P - 100));
    // pcopy with skip, and skip past the end returns 0.
    const out = new Uint8Array(500);
    expect(sgPcopyToBuffer(t.sgl, t.origNents, out, 500, 2 * P - 300)).toBe(500);
    expect(out).toEqual(src.subarray(2 * P - 300, 2 * P + 200));
    expect(sgPcopyToBuffer(t.sgl, t.origNents, out, 500, 3 * P)).toBe(0);
    // Asking for more than the list holds copies what is there.
    const big = new Uint8Array(4 * P);
    expect(sgCopyToBuffer(t.sgl, t.origNents, big, big.length)).toBe(3 * P - 200);
    expect(sgZeroBuffer(t.sgl, t.origNents, 50, 10)).toBe(50);
    mem.read(20 * P + 100, phys);
    expect(phys.subarray(10, 60).every((b) => b === 0)).toBe(true);
    expect(phys[9]).toBe(src[9]);
    expect(phys[60]).toBe(src[60]);
    expect(sgNentsForLen(t.sgl, 3 * P - 200)).toBe(2);
    expect(sgNentsForLen(t.sgl, 3 * P)).toBe(-22);
    expect(sgNentsForLen(t.sgl, 0)).toBe(0);
  });

  it("sg_miter maps at most one page at a time and honours consumed", () => {
    const { pool } = machine();
    const t = new SgTable(pool);
    sgAllocTableFromPages(t, [5, 6, 7], 3, 4000, 200);
    const m = new SgMappingIter();
    sgMiterStart(m, t.sgl, t.origNents, SG_MITER_FROM_SG);
    expect(sgMiterNext(m)).toBe(true);
    expect([m.page, m.addr, m.length]).toEqual([5, 5 * P + 4000, 96]);
    m.consumed = 40;
    expect(sgMiterNext(m)).toBe(true);
    expect([m.page, m.addr, m.length]).toEqual([5, 5 * P + 4040, 56]);
    expect(sgMiterNext(m)).toBe(true);
    expect([m.page, m.addr, m.length]).toEqual([6, 6 * P, 104]);
    expect(sgMiterNext(m)).toBe(false);
    sgMiterStop(m);
    sgMiterStart(m, t.sgl, t.origNents, 0);
    expect(pool.log.warnCount).toBe(1);
    expect(sgMiterSkip(m, 150)).toBe(true);
    expect(sgMiterNext(m)).toBe(true);
    expect([m.page, m.addr, m.length]).toEqual([6, 6 * P + 54, 50]);
  });

  it("property: copy out equals the naive byte gather of the page layout", () => {
    const { pool, mem } = machine();
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 2000 }), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 0, max: P - 1 }),
        fc.integer({ min: 0, max: 3 * P }),
        fc.integer({ min: 0, max: 5000 }),
        (pages, offset, skip, len) => {
          const size = pages.length * P - offset;
          const t = new SgTable(pool);
          sgAllocTableFromPages(t, pages, pages.length, offset, size);
          const naive: number[] = [];
          for (let i = 0; i < pages.length; i++) {
            const b = new Uint8Array(P);
            mem.read(pages[i]! * P, b);
            naive.push(...(i === 0 ? b.subarray(offset) : b));
          }
          const out = new Uint8Array(len);
          const n = sgPcopyToBuffer(t.sgl, t.origNents, out, len, skip);
          expect(n).toBe(skip >= size ? 0 : Math.min(len, size - skip));
          expect([...out.subarray(0, n)]).toEqual(naive.slice(skip, skip + n));
          sgFreeTable(t);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe("page iterators", () => {
  it("walk pages of the CPU view and DMA addresses of the DMA view", () => {
    const { pool } = machine();
    const t = new SgTable(pool);
    sgAllocTableFromPages(t, [3, 4, 5, 9], 4, 0, 4 * P);
    expect(collect(forEachSgPage(t.sgl, t.origNents), sgPageIterPage)).toEqual([3, 4, 5, 9]);
    expect(collect(forEachSgPage(t.sgl, t.origNents, 2), sgPageIterPage)).toEqual([5, 9]);
    // Pretend an IOMMU merged everything into one DMA segment.
    sgDmaSetAddress(t.sgl!, 0x10000);
    sgDmaSetLen(t.sgl!, 4 * P);
    t.nents = 1;
    expect(collect(forEachSgtableDmaPage(t), sgPageIterDmaAddress)).toEqual([
      0x10000, 0x11000, 0x12000, 0x13000,
    ]);
  });

  it("DMA-only entries have no page", () => {
    const { pool } = machine();
    const t = new SgTable(pool);
    sgAllocTable(t, 1);
    sgSetPage(t.sgl!, NO_PAGE, 0, 0);
    const buf = new Uint8Array(8);
    expect(sgCopyToBuffer(t.sgl, 1, buf, 8)).toBe(0);
    sgSetPage(t.sgl!, NO_PAGE, 8, 0);
    expect(() => sgCopyToBuffer(t.sgl, 1, buf, 8)).toThrow(/EFAULT/);
  });
});

describe("sgl_alloc_order", () => {
  it("allocates entries backed by pages of the order and frees them", () => {
    const { mem } = machine();
    const pa = new PageAllocator(mem);
    const pool = new SgPool({ mem, pageAllocator: pa });
    const nent: number[] = [];
    const sgl = sglAllocOrder(pool, 3 * 8 * P + 5, 3, true, GFP_KERNEL, nent);
    expect(sgl).not.toBeNull();
    expect(nent[0]).toBe(4);
    const pages = collect(forEachSgPage(sgl, 4), sgPageIterPage);
    expect(pages).toHaveLength(3 * 8 + 1);
    expect(pages[0]! % 8).toBe(0);
    // The 32-bit overflow check rejects 4 GiB, as the kernel does.
    expect(sglAllocOrder(pool, 2 ** 32, 0, false, GFP_KERNEL)).toBeNull();
    sglFreeOrder(sgl!, 3);
    expect(pool.stats().blocks).toBe(0);
    const one = sglAlloc(pool, 2 * P, GFP_KERNEL);
    sglFree(one!);
    expect(pool.stats().blocks).toBe(0);
  });
});
