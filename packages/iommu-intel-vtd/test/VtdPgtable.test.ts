import { errnoOf, KernelLog, SZ_1G, SZ_2M, SZ_4K } from "@dmakit/core";
import { IommuPagesList, MapPagesError, pgtableMemoryFromAllocator } from "@dmakit/iommu";
import { PageAllocator, PhysMem } from "@dmakit/mm-pages";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DMA_PTE_LARGE_PAGE,
  DMA_PTE_READ,
  DMA_PTE_WRITE,
  VtdPgtable,
  type VtdPgtableConfig,
} from "../src/index.js";

const RW = DMA_PTE_READ | DMA_PTE_WRITE;
const P = (addr: number) => addr / SZ_4K;

function setup(cfg: Partial<VtdPgtableConfig> = {}) {
  const log = new KernelLog();
  const phys = new PhysMem({ banks: [{ start: 0x8000_0000, size: 64 * 1024 * 1024 }] }, { log });
  const mem = pgtableMemoryFromAllocator(phys, new PageAllocator(phys));
  const flushes: Array<[number, number]> = [];
  const pt = new VtdPgtable({ mem, agaw: 2, log, flushRange: (s, e) => flushes.push([s, e]), ...cfg });
  return { log, phys, mem, pt, flushes };
}

/** The raw 64-bit descriptor words of entry `idx` of table page `pfn`. */
function desc(phys: PhysMem, pfn: number, idx: number): [number, number] {
  return [phys.readU32(pfn * SZ_4K + idx * 8), phys.readU32(pfn * SZ_4K + idx * 8 + 4)];
}

describe("VtdPgtable", () => {
  it("builds a 4-level table in RAM: R|W table pointers down to a 4 KiB leaf", () => {
    const { phys, pt } = setup();
    expect(pt.levels).toBe(4);
    expect(pt.tablePages).toBe(1);
    pt.map(P(0x1234_5000), P(0x9_8765_4000), 1, DMA_PTE_READ);
    expect(pt.tablePages).toBe(4);
    // Level-4 index of iova 0x12345000 is 0, level 3 is 0, level 2 is 0x91, level 1 is 0x145.
    const [l4lo, l4hi] = desc(phys, pt.pgdPfn, 0);
    expect(l4lo & 0xfff).toBe(RW);
    expect(l4hi).toBe(0);
    const l3 = l4lo >>> 12;
    const [l3lo] = desc(phys, l3, 0);
    const l2 = l3lo >>> 12;
    const [l2lo] = desc(phys, l2, 0x91);
    expect(l2lo & DMA_PTE_LARGE_PAGE).toBe(0);
    const [leafLo, leafHi] = desc(phys, l2lo >>> 12, 0x145);
    // Output 0x9_87654000: low word holds bits 31:12 and the R bit, high word bits 51:32.
    expect(leafLo >>> 0).toBe((0x8765_4000 | DMA_PTE_READ) >>> 0);
    expect(leafHi).toBe(9);
    expect(pt.iovaToPhys(0x1234_5abc)).toBe(0x9_8765_4abc);
    expect(pt.iovaToPhys(0x1234_6000)).toBe(0);
  });

  it("5-level tables (agaw 3) translate IOVAs above 2^48; 4-level refuses them", () => {
    const five = setup({ agaw: 3 });
    expect(five.pt.levels).toBe(5);
    expect(five.pt.gaw).toBe(57);
    const iova = 2 ** 50 + 0x20_0000;
    five.pt.map(P(iova), P(0x1_0000_0000), 2, RW);
    expect(five.pt.tablePages).toBe(5);
    expect(five.pt.iovaToPhys(iova + 0x1008)).toBe(0x1_0000_1008);
    expect(five.pt.leafInfo(iova) >> 8).toBe(1);
    const four = setup();
    expect(errnoOf(() => four.pt.map(P(2 ** 48), 0, 1, RW))).toBe("EINVAL");
    expect(errnoOf(() => four.pt.map(P(2 ** 48 - SZ_4K), 0, 2, RW))).toBe("EINVAL");
    four.pt.map(P(2 ** 48 - SZ_4K), P(0x5000), 1, RW);
    expect(four.pt.iovaToPhys(2 ** 48 - 1)).toBe(0x5fff);
  });

  it("chooses 1 GiB, 2 MiB and 4 KiB pages from alignment and length (hardware_largepage_caps)", () => {
    const { phys, pt } = setup();
    const iova = 3 * SZ_1G;
    const pa = 5 * SZ_1G;
    pt.map(P(iova), P(pa), P(SZ_1G + SZ_2M + SZ_4K), RW);
    expect(pt.leafInfo(iova)).toBe(RW + (3 << 8));
    expect(pt.leafInfo(iova + SZ_1G)).toBe(RW + (2 << 8));
    expect(pt.leafInfo(iova + SZ_1G + SZ_2M)).toBe(RW + (1 << 8));
    expect(pt.iovaToPhys(iova + 0x3456_789a)).toBe(pa + 0x3456_789a);
    expect(pt.iovaToPhys(iova + SZ_1G + 0x1_2345)).toBe(pa + SZ_1G + 0x1_2345);
    // pgd + L3 (holding the 1 GiB leaf and a pointer) + L2 (2 MiB leaf + pointer) + L1.
    expect(pt.tablePages).toBe(4);
    const [l4lo] = desc(phys, pt.pgdPfn, 0);
    const [l3lo] = desc(phys, l4lo >>> 12, 3);
    expect(l3lo & DMA_PTE_LARGE_PAGE).toBe(DMA_PTE_LARGE_PAGE);
    // IOVA and PA congruent only modulo 2 MiB: 2 MiB pages only.
    const b = setup();
    b.pt.map(P(SZ_1G), P(SZ_1G + SZ_2M), P(SZ_1G), RW);
    expect(b.pt.leafInfo(SZ_1G) >> 8).toBe(2);
    expect(b.pt.leafInfo(2 * SZ_1G - SZ_2M) >> 8).toBe(2);
    // Only 4 KiB aligned: 512 leaf entries per 2 MiB.
    const c = setup();
    c.pt.map(P(SZ_2M), P(SZ_2M + SZ_4K), P(SZ_2M), RW);
    expect(c.pt.leafInfo(SZ_2M) >> 8).toBe(1);
    expect(c.pt.iovaToPhys(2 * SZ_2M - 1)).toBe(2 * SZ_2M + SZ_4K - 1);
    // Without 1 GiB support (cap.SLLPS = 2M only) a 1 GiB range becomes 512 superpages.
    const d = setup({ superpage: 1 });
    d.pt.map(P(SZ_1G), P(SZ_1G), P(SZ_1G), RW);
    expect(d.pt.leafInfo(SZ_1G) >> 8).toBe(2);
    expect(d.pt.tablePages).toBe(3);
    // No superpages at all.
    const e = setup({ superpage: 0 });
    e.pt.map(P(SZ_2M), P(SZ_2M), P(SZ_2M), RW);
    expect(e.pt.leafInfo(SZ_2M) >> 8).toBe(1);
  });

  it("refuses a present entry with EEXIST after the kernel's 'already set' line and a WARN", () => {
    const { pt, log } = setup();
    pt.map(P(0x10_0000), P(0x20_0000), 2, RW);
    let err: unknown = null;
    try {
      pt.map(P(0x10_0000) - 1, P(0x30_0000), 3, DMA_PTE_READ);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MapPagesError);
    expect((err as MapPagesError).errno).toBe("EEXIST");
    // The first page (0xff000) was installed before the conflict; the caller unwinds it.
    expect((err as MapPagesError).mapped).toBe(SZ_4K);
    expect(pt.iovaToPhys(0xff000)).toBe(0x30_0000);
    expect(pt.iovaToPhys(0x10_0000)).toBe(0x20_0000);
    const crit = log.records().find((r) => r.level === "crit");
    expect(crit?.message).toBe("ERROR: DMA PTE for vPFN 0x100 already set (to 200003 not 301001)");
    expect(log.records().some((r) => r.level === "warning" && r.message.includes("__domain_mapping"))).toBe(
      true,
    );
    // A 4 KiB page inside a 2 MiB superpage is a conflict too.
    pt.map(P(4 * SZ_2M), P(8 * SZ_2M), P(SZ_2M), RW);
    expect(errnoOf(() => pt.map(P(4 * SZ_2M + SZ_4K), 0, 1, RW))).toBe("EEXIST");
    // And a superpage over a table that still maps pages.
    pt.map(P(6 * SZ_2M + SZ_4K), P(0x40_0000), 1, RW);
    expect(errnoOf(() => pt.map(P(6 * SZ_2M), P(10 * SZ_2M), P(SZ_2M), RW))).toBe("EEXIST");
    expect(pt.iovaToPhys(6 * SZ_2M + SZ_4K)).toBe(0x40_0000);
    expect(errnoOf(() => pt.map(P(0x50_0000), P(0x50_0000), 1, 0))).toBe("EINVAL");
  });

  it("switch_to_super_page: a superpage over an emptied table frees it after a range flush", () => {
    const { pt, flushes } = setup();
    pt.map(P(SZ_2M + SZ_4K), P(0x10_0000), 3, RW);
    const before = pt.tablePages;
    const fl = new IommuPagesList();
    expect(pt.unmap(P(SZ_2M + SZ_4K), 3, fl)).toBe(3);
    fl.put();
    expect(pt.tablePages).toBe(before); // the empty L1 table stays linked
    pt.map(P(SZ_2M), P(4 * SZ_2M), P(SZ_2M), RW);
    expect(pt.tablePages).toBe(before - 1);
    expect(flushes).toEqual([[SZ_2M, 2 * SZ_2M - 1]]);
    expect(pt.leafInfo(SZ_2M + SZ_4K) >> 8).toBe(2);
  });

  it("unmaps a whole superpage when asked for part of it, and nothing from inside it", () => {
    const { pt, log } = setup();
    pt.map(P(SZ_1G), P(2 * SZ_1G), P(SZ_1G), RW);
    pt.map(P(2 * SZ_1G), P(4 * SZ_1G), P(SZ_2M), RW);
    const fl = new IommuPagesList();
    // From inside a superpage: WARN, 0 bytes, still mapped.
    expect(pt.unmap(P(SZ_1G + SZ_4K), 1, fl)).toBe(0);
    expect(log.records().some((r) => r.message.includes("inside a 0x40000000 superpage"))).toBe(true);
    expect(pt.iovaToPhys(SZ_1G + SZ_4K)).toBe(2 * SZ_1G + SZ_4K);
    // 4 KiB at the start of the 1 GiB page: the kernel rounds the size up to the large page.
    expect(pt.unmap(P(SZ_1G), 1, fl)).toBe(P(SZ_1G));
    expect(pt.iovaToPhys(SZ_1G + 0x1234)).toBe(0);
    expect(pt.unmap(P(2 * SZ_1G), 8, fl)).toBe(P(SZ_2M));
    expect(pt.unmap(P(2 * SZ_1G), 1, fl)).toBe(0);
    fl.put();
  });

  it("stops at the first hole and before a superpage reaching past the range", () => {
    const { pt } = setup();
    pt.map(P(0x40_0000), P(0x80_0000), 4, RW);
    pt.map(P(0x40_5000), P(0x90_0000), 1, RW);
    const fl = new IommuPagesList();
    expect(pt.unmap(P(0x40_0000), 8, fl)).toBe(4);
    expect(pt.iovaToPhys(0x40_5000)).toBe(0x90_0000);
    pt.map(P(SZ_2M - 2 * SZ_4K), P(0x100_0000), 2, RW);
    pt.map(P(SZ_2M), P(SZ_2M * 8), P(SZ_2M), RW);
    expect(pt.unmap(P(SZ_2M - 2 * SZ_4K), 4, fl)).toBe(2);
    expect(pt.leafInfo(SZ_2M) >> 8).toBe(2);
    fl.put();
  });

  it("random map/unmap agrees with an interval map, returns the kernel's counts, and frees every page", () => {
    type Op = { kind: "map" | "unmap"; at: number; len: number; off: number; big: boolean };
    const op = fc.record({
      kind: fc.constantFrom<"map" | "unmap">("map", "map", "unmap"),
      at: fc.integer({ min: 0, max: 127 }),
      len: fc.integer({ min: 1, max: 1100 }),
      off: fc.integer({ min: 0, max: 4095 }),
      big: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), (ops: Op[]) => {
        const { pt, mem } = setup();
        // Reference: pfn → phys pfn, plus the size of the leaf each page sits in.
        const ref = new Map<number, { phys: number; leaf: number; base: number }>();
        for (const o of ops) {
          const start = o.big ? o.at * 512 : o.at * 512 + o.off * 7;
          if (o.kind === "map") {
            const physStart = o.big ? 0x100000 + o.off * 512 : 0x100000 + o.off;
            let clash = false;
            for (let p = start; p < start + o.len; p++) if (ref.has(p)) clash = true;
            // A superpage needs its whole region in the range, so any live page under it is a clash.
            const e = errnoOf(() => pt.map(start, physStart, o.len, RW));
            if (clash) {
              expect(e).toBe("EEXIST");
              // Unwind what the failed call installed, as iommu_map does.
              const fl = new IommuPagesList();
              for (let p = start; p < start + o.len; p++)
                if (!ref.has(p) && pt.iovaToPhys(p * SZ_4K) !== 0) pt.unmap(p, 1, fl);
              fl.put();
              continue;
            }
            expect(e).toBeNull();
            for (let p = start; p < start + o.len; p++) {
              const lvl = pt.leafInfo(p * SZ_4K) >> 8;
              const leaf = lvl === 3 ? 512 * 512 : lvl === 2 ? 512 : 1;
              ref.set(p, { phys: physStart + (p - start), leaf, base: p - ((p - start) % leaf) });
            }
          } else {
            const fl = new IommuPagesList();
            const first = ref.get(start);
            // Expected count: a hole → 0; from inside a superpage → 0; else contiguous mapped
            // leaves from start, whole superpages, stopping before one reaching past the range.
            let want = 0;
            if (first !== undefined && (first.leaf === 1 || first.base === start)) {
              const last = start + Math.max(o.len, first.leaf) - 1;
              let p = start;
              while (p <= last) {
                const r = ref.get(p);
                if (r === undefined || (r.leaf > 1 && r.base + r.leaf - 1 > last)) break;
                p += r.leaf > 1 ? r.leaf - (p - r.base) : 1;
              }
              want = p - start;
            }
            expect(pt.unmap(start, o.len, fl)).toBe(want);
            for (let p = start; p < start + want; p++) ref.delete(p);
            fl.put();
          }
          for (let k = 0; k < 6; k++) {
            const p = (start + k * 97) % (128 * 512);
            const r = ref.get(p);
            expect(pt.iovaToPhys(p * SZ_4K + 8)).toBe(r === undefined ? 0 : r.phys * SZ_4K + 8);
          }
        }
        const fl = new IommuPagesList();
        pt.freeAll(fl);
        fl.put();
        expect(pt.tablePages).toBe(0);
        expect(mem.pagesInUse).toBe(0);
      }),
      { numRuns: 60, seed: 42 },
    );
  });
});
