import { SZ_1G, SZ_2M, SZ_4K } from "@dmakit/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IOMMU_READ, IOMMU_WRITE, Iotlb } from "../src/index.js";

describe("Iotlb", () => {
  it("caches per tag and page size, translating offsets within the page", () => {
    const t = new Iotlb({ capacity: 8 });
    t.insert(1, 0x200123, 0x80000000 + 0x123, SZ_2M, IOMMU_READ);
    t.insert(2, 0x200000, 0x90000000, SZ_4K, IOMMU_READ | IOMMU_WRITE);
    const s1 = t.lookup(1, 0x3fffff);
    expect(s1).toBeGreaterThanOrEqual(0);
    expect(t.physOf(s1, 0x3fffff)).toBe(0x801fffff);
    expect(t.sizeOf(s1)).toBe(SZ_2M);
    const s2 = t.lookup(2, 0x200010);
    expect(t.physOf(s2, 0x200010)).toBe(0x90000010);
    expect(t.protOf(s2)).toBe(IOMMU_READ | IOMMU_WRITE);
    expect(t.lookup(2, 0x201000)).toBe(-1);
    expect(t.lookup(3, 0x200000)).toBe(-1);
    expect([t.hits, t.misses]).toEqual([2, 2]);
  });

  it("evicts the least recently used entry, deterministically", () => {
    const t = new Iotlb({ capacity: 3 });
    for (let i = 0; i < 3; i++) t.insert(1, i * SZ_4K, i * SZ_4K, SZ_4K, IOMMU_READ);
    t.lookup(1, 0); // 0 becomes most recent; 1 is now the LRU
    t.insert(1, 3 * SZ_4K, 0, SZ_4K, IOMMU_READ);
    expect(t.peek(1, SZ_4K)).toBe(-1);
    expect(t.peek(1, 0)).toBeGreaterThanOrEqual(0);
    expect(t.peek(1, 2 * SZ_4K)).toBeGreaterThanOrEqual(0);
    // The survivors and the new entry translate as inserted (iova i*4K -> phys i*4K; 3*4K -> 0).
    expect(t.physOf(t.peek(1, 0), 0x10)).toBe(0x10);
    expect(t.physOf(t.peek(1, 2 * SZ_4K), 2 * SZ_4K + 0x10)).toBe(2 * SZ_4K + 0x10);
    expect(t.physOf(t.peek(1, 3 * SZ_4K), 3 * SZ_4K + 0x10)).toBe(0x10);
    expect(t.evictions).toBe(1);
    expect(t.size).toBe(3);
  });

  it("invalidates all, by tag and by range (overlap, any tag with -1)", () => {
    const t = new Iotlb({ capacity: 16 });
    t.insert(1, 0, 0, SZ_2M, IOMMU_READ);
    t.insert(1, SZ_2M, 0, SZ_4K, IOMMU_READ);
    t.insert(2, SZ_2M, 0, SZ_4K, IOMMU_READ);
    t.insert(2, SZ_1G, 0, SZ_1G, IOMMU_READ);
    expect(t.invalidateRange(1, SZ_2M - SZ_4K, SZ_4K)).toBe(1); // hits the 2M block's last page
    expect(t.invalidateRange(-1, SZ_2M, 1)).toBe(2);
    expect(t.invalidateTag(2)).toBe(1);
    expect(t.size).toBe(0);
    t.insert(7, 0, 0, SZ_4K, 0);
    expect(t.invalidateAll()).toBe(1);
    expect(t.counters()["iommu.iotlb.inval"]).toBe(4);
    expect(t.counters()["iommu.iotlb.inval-entries"]).toBe(5);
  });

  it("agrees with a naive LRU list over random operations", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.constantFrom("ins", "look", "inv"),
            fc.integer({ min: 0, max: 3 }),
            fc.integer({ min: 0, max: 40 }),
          ),
          { maxLength: 300 },
        ),
        (ops) => {
          const cap = 6;
          const t = new Iotlb({ capacity: cap });
          let ref: Array<{ tag: number; page: number }> = []; // most recent first
          for (const [op, tag, page] of ops) {
            const iova = page * SZ_4K;
            if (op === "ins") {
              ref = ref.filter((e) => !(e.tag === tag && e.page === page));
              ref.unshift({ tag, page });
              if (ref.length > cap) ref.pop();
              t.insert(tag, iova, iova + 0x1000000, SZ_4K, IOMMU_READ);
            } else if (op === "look") {
              const i = ref.findIndex((e) => e.tag === tag && e.page === page);
              const slot = t.lookup(tag, iova + 5);
              expect(slot >= 0).toBe(i >= 0);
              if (i >= 0) {
                expect(t.physOf(slot, iova + 5)).toBe(iova + 0x1000005);
                ref.unshift(...ref.splice(i, 1));
              }
            } else {
              ref = ref.filter((e) => !(e.tag === tag && e.page >= page && e.page < page + 3));
              t.invalidateRange(tag, iova, 3 * SZ_4K);
            }
            expect(t.size).toBe(ref.length);
          }
        },
      ),
      { numRuns: 200, seed: 7 },
    );
  });
});
