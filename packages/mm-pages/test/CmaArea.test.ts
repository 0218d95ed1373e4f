import { KernelLog, PAGE_SIZE, SZ_1G, SZ_1M, SZ_4G } from "@dmakit/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  __GFP_COMP,
  __GFP_NOWARN,
  bootMemory,
  CMA_MIN_ALIGNMENT_BYTES,
  type CmaArea,
  cmaAlloc,
  cmaDeclareContiguous,
  cmaRelease,
  GFP_HIGHUSER_MOVABLE,
  GFP_KERNEL,
  type MemorySystem,
  PG_cma,
  PG_lru,
} from "../src/index.js";

const SZ_8M = 8 * SZ_1M;

function boot(cmaSize = SZ_8M, ram = 64 * SZ_1M): MemorySystem & { log: KernelLog } {
  const log = new KernelLog();
  const sys = bootMemory(
    { banks: [{ start: SZ_1G, size: ram }], reserved: [{ start: SZ_1G, size: SZ_1M, name: "kernel" }] },
    { log, cma: [{ name: "reserved", size: cmaSize }] },
  );
  return { ...sys, log };
}

function area(sys: MemorySystem): CmaArea {
  return sys.cma[0] as CmaArea;
}

/** A stand-in for user memory: movable pages with contents, migrated by copying. */
function userMemory(sys: MemorySystem) {
  const { phys, pages } = sys;
  const mm = phys.memmap;
  const owned = new Map<number, number>(); // pfn → tag written in the page
  const pinned = new Set<number>();
  const alloc = (tag: number): number | null => {
    const p = pages.allocPages(GFP_HIGHUSER_MOVABLE | __GFP_NOWARN, 0);
    if (p === null) return null;
    const i = mm.idx(p);
    mm.flags[i] = (mm.flags[i] as number) | PG_lru;
    phys.writeU32(p * PAGE_SIZE, tag);
    owned.set(p, tag);
    return p;
  };
  const free = (p: number): void => {
    const i = mm.idx(p);
    mm.flags[i] = (mm.flags[i] as number) & ~PG_lru;
    owned.delete(p);
    pages.putPage(p);
  };
  const migrate = (p: number): number | null => {
    if (pinned.has(p)) return null;
    const tag = owned.get(p);
    if (tag === undefined) return null;
    const to = alloc(tag);
    if (to === null) return null;
    phys.pageView(to).set(phys.pageView(p));
    free(p);
    return to;
  };
  return { owned, pinned, alloc, free, migrate };
}

describe("CmaArea boot", () => {
  it("carves an aligned area of PG_cma pages owned by the area and lends them to the buddy", () => {
    const sys = boot();
    const cma = area(sys);
    expect(cma.base % CMA_MIN_ALIGNMENT_BYTES).toBe(0);
    expect(cma.count).toBe(SZ_8M / PAGE_SIZE);
    const mm = sys.phys.memmap;
    for (let p = cma.basePfn; p < cma.basePfn + cma.count; p += 97) {
      expect((mm.flags[mm.idx(p)] as number) & PG_cma).toBe(PG_cma);
      expect(mm.owner[mm.idx(p)]).toBe(cma.id + 1);
    }
    expect((mm.flags[mm.idx(cma.basePfn - 1)] as number) & PG_cma).toBe(0);
    expect(sys.pages.nrFreeCmaPages()).toBe(cma.count);
    expect(sys.pages.nrFreePages()).toBe((64 * SZ_1M - SZ_1M) / PAGE_SIZE);
    expect(sys.log.find({ prefix: "cma", message: "Reserved 8 MiB" })).toHaveLength(1);
  });

  it("GFP_KERNEL never gets CMA pages; movable allocations may", () => {
    const sys = boot();
    const mm = sys.phys.memmap;
    const got: number[] = [];
    for (;;) {
      const p = sys.pages.allocPages(GFP_KERNEL | __GFP_NOWARN, 0);
      if (p === null) break;
      expect((mm.flags[mm.idx(p)] as number) & PG_cma).toBe(0);
      got.push(p);
    }
    expect(got.length).toBe((64 * SZ_1M - SZ_1M - SZ_8M) / PAGE_SIZE);
    const m = sys.pages.allocPages(GFP_HIGHUSER_MOVABLE, 0) as number;
    expect((mm.flags[mm.idx(m)] as number) & PG_cma).toBe(PG_cma);
  });

  it("places areas below a limit, at a fixed base, and rejects bad requests", () => {
    const log = new KernelLog();
    const sys = bootMemory(
      { banks: [{ start: 0, size: 8 * SZ_1G }] },
      {
        log,
        cma: [
          { name: "dma32", size: 3 * SZ_1M, limit: SZ_4G },
          { name: "high", size: 4 * SZ_1M },
          { name: "fixed", size: 2 * SZ_1M, base: 0x4000_0000 },
        ],
      },
    );
    const [low, high, fixed] = sys.cma as CmaArea[];
    expect(low?.size).toBe(4 * SZ_1M);
    expect((low?.base ?? 0) + (low?.size ?? 0)).toBe(SZ_4G);
    expect(high?.base).toBe(SZ_4G);
    expect(fixed?.base).toBe(0x4000_0000);
    expect(() => cmaDeclareContiguous(sys.pages, 0x4000_1000, SZ_1M, 0, 0, 0, true, "unaligned")).toThrow(
      /EINVAL/,
    );
    expect(() => cmaDeclareContiguous(sys.pages, 0x4000_0000, 2 * SZ_1M, 0, 0, 0, true, "again")).toThrow(
      /EBUSY/,
    );
    expect(() => cmaDeclareContiguous(sys.pages, 0, 16 * SZ_1G, 0, 0, 0, false, "huge")).toThrow(/ENOMEM/);
  });
});

describe("cma_alloc / cma_release", () => {
  it("property: aligned, inside the area, never overlapping, and everything returns", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            release: fc.boolean(),
            count: fc.integer({ min: 1, max: 700 }),
            align: fc.integer({ min: 0, max: 9 }),
            pick: fc.nat(),
          }),
          { maxLength: 60 },
        ),
        (ops) => {
          const sys = boot();
          const cma = area(sys);
          const bootReport = sys.pages.report();
          const held: { pfn: number; count: number }[] = [];
          const used = new Set<number>();
          for (const op of ops) {
            if (op.release && held.length > 0) {
              const [h] = held.splice(op.pick % held.length, 1);
              if (h === undefined) continue;
              expect(cmaRelease(cma, h.pfn, h.count)).toBe(true);
              for (let i = 0; i < h.count; i++) used.delete(h.pfn + i);
              continue;
            }
            const pfn = cmaAlloc(cma, op.count, op.align, true);
            if (pfn === null) continue;
            expect(pfn % 2 ** op.align).toBe(0);
            expect(pfn).toBeGreaterThanOrEqual(cma.basePfn);
            expect(pfn + op.count).toBeLessThanOrEqual(cma.basePfn + cma.count);
            for (let i = 0; i < op.count; i++) {
              expect(used.has(pfn + i)).toBe(false);
              used.add(pfn + i);
              expect(sys.pages.pageRefCount(pfn + i)).toBe(1);
            }
            held.push({ pfn, count: op.count });
            expect(cma.used).toBe(used.size);
          }
          for (const h of held) expect(cmaRelease(cma, h.pfn, h.count)).toBe(true);
          expect(cma.report().used).toBe(0);
          expect(cma.report().allocations).toEqual([]);
          expect(sys.pages.report()).toEqual(bootReport);
        },
      ),
      { numRuns: 40 },
    );
  });

  it("fails with ENOMEM when the area is too small, logging unless no_warn", () => {
    const sys = boot();
    const cma = area(sys);
    expect(cmaAlloc(cma, cma.count + 1, 0, false)).toBeNull();
    expect(
      sys.log.find({ prefix: "cma", message: "reserved: alloc failed, req-size: 2049 pages, ret: -12" }),
    ).toHaveLength(1);
    expect(cmaAlloc(cma, cma.count + 1, 0, true)).toBeNull();
    expect(sys.log.find({ message: "alloc failed" })).toHaveLength(1);
    expect(cmaAlloc(cma, 0, 0, false)).toBeNull();
    expect(cmaAlloc(cma, cma.count, 0, false)).toBe(cma.basePfn);
  });

  it("cma_release of a foreign or unallocated range returns false and changes nothing", () => {
    const sys = boot();
    const cma = area(sys);
    const p = cmaAlloc(cma, 16, 4, false) as number;
    const snap = { pages: sys.pages.report(), cma: cma.report() };
    expect(cmaRelease(cma, cma.basePfn - 16, 16)).toBe(false);
    expect(cmaRelease(cma, cma.basePfn + cma.count - 8, 16)).toBe(false);
    const other = sys.pages.allocPages(GFP_KERNEL, 0) as number;
    expect(cmaRelease(cma, other, 1)).toBe(false);
    expect(cmaRelease(cma, p + 16, 4)).toBe(false);
    expect(sys.log.warnCount).toBe(1);
    sys.pages.freePages(other, 0);
    expect({ pages: sys.pages.report(), cma: cma.report() }).toEqual(snap);
    expect(cmaRelease(cma, p, 16)).toBe(true);
    expect(cma.used).toBe(0);
  });

  it("migrates movable pages out of the claimed range through the hook, and fails EBUSY without it", () => {
    // 8 MiB of CMA in 16 MiB: more than half the free pages are CMA, so movable allocations land there.
    const sys = boot(SZ_8M, 16 * SZ_1M);
    const cma = area(sys);
    const user = userMemory(sys);
    const bootReport = sys.pages.report();
    const tags: number[] = [];
    for (let t = 1; t <= 1000; t++) if (user.alloc(t) !== null) tags.push(t);
    const inArea = [...user.owned.keys()].filter((p) => p >= cma.basePfn && p < cma.basePfn + cma.count);
    expect(inArea.length).toBeGreaterThan(0);

    const snap = sys.pages.report();
    expect(cmaAlloc(cma, cma.count, 0, false)).toBeNull();
    expect(sys.log.find({ message: /reserved: alloc failed, req-size: 2048 pages, ret: -16/ })).toHaveLength(
      1,
    );
    expect(sys.pages.report()).toEqual(snap);

    sys.pages.setMigrateHook(user.migrate);
    const p = cmaAlloc(cma, cma.count, 0, false) as number;
    expect(p).toBe(cma.basePfn);
    for (const [pfn, tag] of user.owned) {
      expect(pfn < cma.basePfn || pfn >= cma.basePfn + cma.count).toBe(true);
      expect(sys.phys.readU32(pfn * PAGE_SIZE)).toBe(tag);
    }
    expect(user.owned.size).toBe(tags.length);
    expect(cmaRelease(cma, p, cma.count)).toBe(true);
    for (const pfn of [...user.owned.keys()]) user.free(pfn);
    expect(sys.pages.report()).toEqual(bootReport);
  });

  it("a pinned page makes its range busy; cma_alloc retries at the next aligned offset", () => {
    const sys = boot(SZ_8M, 16 * SZ_1M);
    const cma = area(sys);
    const user = userMemory(sys);
    sys.pages.setMigrateHook(user.migrate);
    // Fill the area with user pages, then give back the ones outside it (migration targets).
    for (let t = 1; sys.pages.nrFreeCmaPages() > 0; t++) expect(user.alloc(t)).not.toBeNull();
    for (const q of [...user.owned.keys()]) if (q < cma.basePfn || q >= cma.basePfn + cma.count) user.free(q);
    const pinnedPfn = cma.basePfn + 17;
    expect(user.owned.has(pinnedPfn)).toBe(true);
    user.pinned.add(pinnedPfn);
    const p = cmaAlloc(cma, 256, 8, false) as number;
    expect(p).toBe(cma.basePfn + 256);
    expect(
      sys.log.find({ level: "debug", message: `pfn 0x${cma.basePfn.toString(16)} is busy, retrying` }),
    ).toHaveLength(1);
    expect(sys.log.find({ message: "alloc failed" })).toHaveLength(0);
    expect(user.owned.has(pinnedPfn as number)).toBe(true);
    expect(sys.pages.report().isolated).toBe(0);
    expect(cmaRelease(cma, p, 256)).toBe(true);
  });

  it("migrates a compound movable page that straddles the claimed range and frees its outside part", () => {
    const sys = boot(SZ_8M, 16 * SZ_1M);
    const cma = area(sys);
    const { pages, phys } = sys;
    const mm = phys.memmap;
    const bootReport = pages.report();
    const folios = new Set<number>();
    const allocFolio = (): number | null => {
      const p = pages.allocPages(GFP_HIGHUSER_MOVABLE | __GFP_COMP | __GFP_NOWARN, 2);
      if (p === null) return null;
      mm.flags[mm.idx(p)] = (mm.flags[mm.idx(p)] as number) | PG_lru;
      folios.add(p);
      return p;
    };
    const freeFolio = (p: number): void => {
      mm.flags[mm.idx(p)] = (mm.flags[mm.idx(p)] as number) & ~PG_lru;
      folios.delete(p);
      pages.putPage(p);
    };
    while (pages.nrFreeCmaPages() > 0) expect(allocFolio()).not.toBeNull();
    for (const p of [...folios]) if (p < cma.basePfn || p >= cma.basePfn + cma.count) freeFolio(p);
    expect(folios.has(cma.basePfn)).toBe(true);
    let migrated = 0;
    let newFolio = -1;
    pages.setMigrateHook((p) => {
      expect(p).toBe(cma.basePfn);
      const to = allocFolio();
      if (to === null) return null;
      migrated++;
      newFolio = to;
      freeFolio(p);
      return to;
    });
    const got = cmaAlloc(cma, 3, 0, false) as number;
    expect(got).toBe(cma.basePfn);
    expect(migrated).toBe(1);
    // The fourth page of the old folio went back to the buddy allocator; the new folio is outside the area.
    expect(pages.nrFreeCmaPages()).toBe(1);
    expect(newFolio < cma.basePfn || newFolio >= cma.basePfn + cma.count).toBe(true);
    expect(pages.compoundOrder(newFolio)).toBe(2);
    expect(cmaRelease(cma, got, 3)).toBe(true);
    for (const p of [...folios]) freeFolio(p);
    expect(pages.report()).toEqual(bootReport);
  });
});
