import { KernelLog, PAGE_SIZE, SZ_1G, SZ_1M, SZ_4G } from "@dmakit/core";

const SZ_16M = 16 * SZ_1M;

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  __GFP_COMP,
  __GFP_MOVABLE,
  __GFP_NOWARN,
  __GFP_ZERO,
  cmaDeclareContiguous,
  GFP_DMA,
  GFP_DMA32,
  GFP_HIGHUSER_MOVABLE,
  GFP_KERNEL,
  MAX_ORDER_NR_PAGES,
  MAX_PAGE_ORDER,
  PageAllocator,
  PG_cma,
  PG_head,
  PG_tail,
  PhysMem,
  ZONE_DMA,
  ZONE_DMA32,
  ZONE_NORMAL,
} from "../src/index.js";

function machine(opts: { ram?: number; start?: number } = {}) {
  const log = new KernelLog();
  const mem = new PhysMem(
    {
      banks: [{ start: opts.start ?? 0, size: opts.ram ?? 64 * 1024 * 1024 }],
      reserved: [{ start: opts.start ?? 0, size: 3 * PAGE_SIZE, name: "firmware" }],
      zones: { dma: SZ_16M },
    },
    { log },
  );
  return { log, mem, pages: new PageAllocator(mem) };
}

describe("PageAllocator boot", () => {
  it("takes every non-reserved RAM page, as max-order blocks where aligned", () => {
    const { pages } = machine();
    const total = (64 * 1024 * 1024) / PAGE_SIZE;
    expect(pages.managedPages()).toBe(total - 3);
    expect(pages.nrFreePages()).toBe(total - 3);
    expect(pages.allocated()).toBe(0);
    // pfns 0..2 reserved: pfn 3 (order 0), 4 (2), 8 (3), ... 512 (9) then max-order blocks.
    expect(pages.freeArea(ZONE_DMA, 0)).toBe(1);
    expect(pages.freeArea(ZONE_DMA, 1)).toBe(0);
    expect(pages.freeArea(ZONE_DMA, 2)).toBe(1);
    expect(pages.freeArea(ZONE_DMA, 9)).toBe(1);
    expect(pages.freeArea(ZONE_DMA, MAX_PAGE_ORDER)).toBe(SZ_16M / PAGE_SIZE / MAX_ORDER_NR_PAGES - 1);
    expect(pages.freeArea(ZONE_DMA32, MAX_PAGE_ORDER)).toBe(12);
    expect(pages.nrFreePages(ZONE_NORMAL)).toBe(0);
  });

  it("boots a 64 GiB machine into 16384 max-order blocks", () => {
    const log = new KernelLog();
    const mem = new PhysMem({ banks: [{ start: 0, size: 64 * SZ_1G }] }, { log });
    const pages = new PageAllocator(mem);
    let blocks = 0;
    for (const z of pages.report().zones) blocks += z.freeArea[MAX_PAGE_ORDER] as number;
    expect(blocks).toBe(16384);
    expect(pages.nrFreePages()).toBe((64 * SZ_1G) / PAGE_SIZE);
  });
});

describe("PageAllocator alloc/free", () => {
  it("allocates naturally aligned blocks with refcount 1 and merges them back", () => {
    const { pages } = machine();
    const boot = pages.report();
    const a = pages.allocPages(GFP_KERNEL, 4) as number;
    expect(a % 16).toBe(0);
    expect(pages.pageRefCount(a)).toBe(1);
    expect(pages.allocated()).toBe(16);
    pages.freePages(a, 4);
    expect(pages.report()).toEqual(boot);
  });

  it("respects gfp zones and falls back down the zonelist", () => {
    const { mem, pages } = machine({ ram: SZ_4G + SZ_1G });
    const n = pages.allocPages(GFP_KERNEL, 0) as number;
    expect(mem.pageZonenum(n)).toBe(ZONE_NORMAL);
    const d32 = pages.allocPages(GFP_DMA32, 0) as number;
    expect(d32 * PAGE_SIZE).toBeLessThan(SZ_4G);
    expect(mem.pageZonenum(d32)).toBe(ZONE_DMA32);
    const d = pages.allocPages(GFP_DMA, 0) as number;
    expect(d * PAGE_SIZE).toBeLessThan(SZ_16M);
  });

  it("returns null and logs warn_alloc when no allowed zone has memory", () => {
    const { log, pages } = machine();
    const before = pages.report();
    // 64 MiB machine: order 10 blocks exist, but ZONE_DMA (16 MiB) runs out after 4 of them.
    const got: number[] = [];
    for (;;) {
      const p = pages.allocPages(GFP_DMA, MAX_PAGE_ORDER);
      if (p === null) break;
      got.push(p);
    }
    expect(got.length).toBe(3);
    expect(log.find({ message: "page allocation failure: order:10, mode:0x1(GFP_DMA)" })).toHaveLength(1);
    expect(pages.allocPages(GFP_DMA | __GFP_NOWARN, MAX_PAGE_ORDER)).toBeNull();
    expect(log.find({ message: "page allocation failure" })).toHaveLength(1);
    for (const p of got) pages.freePages(p, MAX_PAGE_ORDER);
    expect(pages.report()).toEqual(before);
  });

  it("order > MAX_PAGE_ORDER WARNs once and returns null", () => {
    const { log, pages } = machine();
    expect(pages.allocPages(GFP_KERNEL, 11)).toBeNull();
    expect(log.warnCount).toBe(1);
    expect(log.find({ warn: true })[0]?.message).toMatch(/order 11 exceeds MAX_PAGE_ORDER 10/);
    expect(pages.allocPages(GFP_KERNEL | __GFP_NOWARN, 12)).toBeNull();
    expect(log.warnCount).toBe(1);
  });

  it("double free, wrong order and tail frees throw EINVAL and change nothing", () => {
    const { pages } = machine();
    const a = pages.allocPages(GFP_KERNEL | __GFP_COMP, 2) as number;
    const snap = pages.report();
    expect(() => pages.freePages(a, 1)).toThrow(/EINVAL/);
    expect(() => pages.freePages(a + 1, 0)).toThrow(/tail page/);
    expect(pages.report()).toEqual(snap);
    pages.freePages(a, 2);
    const freed = pages.report();
    expect(() => pages.freePages(a, 2)).toThrow(/not allocated/);
    expect(() => pages.putPage(a)).toThrow(/EINVAL/);
    expect(() => pages.freePages(0, 0)).toThrow(/reserved/);
    expect(pages.report()).toEqual(freed);
  });

  it("__GFP_COMP builds a compound page; get/put on a tail count on the head", () => {
    const { mem, pages } = machine();
    const boot = pages.report();
    const a = pages.allocPages(GFP_KERNEL | __GFP_COMP, 3) as number;
    const mm = mem.memmap;
    expect((mm.flags[mm.idx(a)] as number) & PG_head).toBe(PG_head);
    expect(mm.order[mm.idx(a)]).toBe(3);
    for (let i = 1; i < 8; i++) expect((mm.flags[mm.idx(a + i)] as number) & PG_tail).toBe(PG_tail);
    expect(pages.compoundHead(a + 5)).toBe(a);
    pages.getPage(a + 5);
    expect(pages.pageRefCount(a)).toBe(2);
    pages.putPage(a + 7);
    pages.putPage(a);
    expect(pages.report()).toEqual(boot);
    expect((mm.flags[mm.idx(a + 1)] as number) & PG_tail).toBe(0);
  });

  it("__free_pages of a shared non-compound block frees the tails and keeps the head", () => {
    const { pages } = machine();
    const boot = pages.report();
    const a = pages.allocPages(GFP_KERNEL, 2) as number;
    pages.getPage(a);
    pages.freePages(a, 2);
    expect(pages.allocated()).toBe(1);
    expect(pages.pageRefCount(a)).toBe(1);
    pages.putPage(a);
    expect(pages.report()).toEqual(boot);
  });

  it("__GFP_ZERO zeroes the memory", () => {
    const { mem, pages } = machine();
    const a = pages.allocPages(GFP_KERNEL, 1) as number;
    mem.fill(a * PAGE_SIZE, 2 * PAGE_SIZE, 0xab);
    pages.freePages(a, 1);
    const b = pages.allocPages(GFP_KERNEL | __GFP_ZERO, 1) as number;
    expect(b).toBe(a);
    const buf = new Uint8Array(2 * PAGE_SIZE);
    mem.read(b * PAGE_SIZE, buf);
    expect(buf.every((x) => x === 0)).toBe(true);
  });

  it("splitPage and allocPagesExact/freePagesExact", () => {
    const { pages } = machine();
    const boot = pages.report();
    const a = pages.allocPages(GFP_KERNEL, 3) as number;
    pages.splitPage(a, 3);
    expect(pages.allocated()).toBe(8);
    for (let i = 0; i < 8; i++) expect(pages.pageRefCount(a + i)).toBe(1);
    for (let i = 7; i >= 0; i--) pages.freePages(a + i, 0);
    expect(pages.report()).toEqual(boot);
    expect(() => pages.splitPage(pages.allocPages(GFP_KERNEL | __GFP_COMP, 2) as number, 2)).toThrow(
      /compound/,
    );

    const { pages: p2 } = machine();
    const boot2 = p2.report();
    const e = p2.allocPagesExact(5 * PAGE_SIZE + 1, GFP_KERNEL) as number;
    expect(p2.allocated()).toBe(6);
    expect(p2.pageRefCount(e + 5)).toBe(1);
    expect(p2.pageRefCount(e + 6)).toBe(0);
    p2.freePagesExact(e, 5 * PAGE_SIZE + 1);
    expect(p2.report()).toEqual(boot2);
  });

  it("property: random alloc/free never overlaps, aligns, respects zones and returns to boot", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            free: fc.boolean(),
            order: fc.integer({ min: 0, max: MAX_PAGE_ORDER }),
            zone: fc.constantFrom(
              GFP_KERNEL,
              GFP_DMA32,
              GFP_DMA,
              GFP_HIGHUSER_MOVABLE,
              GFP_KERNEL | __GFP_MOVABLE,
            ),
            comp: fc.boolean(),
            pick: fc.nat(),
          }),
          { maxLength: 200 },
        ),
        (ops) => {
          const { mem, pages } = machine({ start: SZ_4G - 32 * 1024 * 1024, ram: 64 * 1024 * 1024 });
          cmaDeclareContiguous(pages, 0, 8 * SZ_1M, 0, 0, 0, false, "cma");
          const boot = pages.report();
          const owner = new Map<number, number>(); // pfn → id of holder
          const held: { pfn: number; order: number }[] = [];
          for (const op of ops) {
            if (op.free && held.length > 0) {
              const [h] = held.splice(op.pick % held.length, 1);
              if (h === undefined) continue;
              pages.freePages(h.pfn, h.order);
              for (let i = 0; i < 1 << h.order; i++) owner.delete(h.pfn + i);
              continue;
            }
            const gfp = op.zone | (op.comp ? __GFP_COMP : 0) | __GFP_NOWARN;
            const pfn = pages.allocPages(gfp, op.order);
            if (pfn === null) continue;
            expect(pfn % (1 << op.order)).toBe(0);
            if ((gfp & __GFP_MOVABLE) === 0)
              expect((mem.memmap.flags[mem.memmap.idx(pfn)] as number) & PG_cma).toBe(0);
            if (op.zone === GFP_DMA32) expect((pfn + (1 << op.order)) * PAGE_SIZE).toBeLessThanOrEqual(SZ_4G);
            if (op.zone === GFP_DMA) expect(mem.pageZonenum(pfn)).toBe(ZONE_DMA);
            for (let i = 0; i < 1 << op.order; i++) {
              expect(owner.has(pfn + i)).toBe(false);
              owner.set(pfn + i, pfn);
            }
            held.push({ pfn, order: op.order });
            expect(pages.allocated()).toBe(owner.size);
          }
          for (const h of held) pages.freePages(h.pfn, h.order);
          expect(pages.report()).toEqual(boot);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe("PageAllocator across banks", () => {
  it("merges buddies across adjacent banks and zeroes such a block", () => {
    const log = new KernelLog();
    const mem = new PhysMem(
      {
        banks: [
          { start: 0x1000_0000, size: 2 * SZ_1M },
          { start: 0x1000_0000 + 2 * SZ_1M, size: 2 * SZ_1M },
        ],
      },
      { log },
    );
    const pages = new PageAllocator(mem);
    expect(pages.freeArea(ZONE_DMA32, MAX_PAGE_ORDER)).toBe(1);
    mem.write(0x1000_0000 + SZ_1M, new Uint8Array(2 * SZ_1M).fill(0x5a));
    const p = pages.allocPages(GFP_KERNEL | __GFP_ZERO, MAX_PAGE_ORDER) as number;
    expect(p * PAGE_SIZE).toBe(0x1000_0000);
    const buf = new Uint8Array(2 * SZ_1M);
    mem.read(0x1000_0000 + SZ_1M, buf);
    expect(buf.every((x) => x === 0)).toBe(true);
  });
});
