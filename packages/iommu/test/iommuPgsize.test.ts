import { SZ_1G, SZ_2M, SZ_4K, SZ_64K } from "@dmakit/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { iommuPgsize } from "../src/index.js";

// A literal transcription of drivers/iommu/iommu.c iommu_pgsize() on 64-bit unsigned longs.
function kernelPgsize(
  bitmap: bigint,
  iova: bigint,
  paddr: bigint,
  size: bigint,
): { pgsize: bigint; count: bigint } {
  const __fls = (x: bigint): bigint => BigInt(x.toString(2).length - 1);
  const __ffs = (x: bigint): bigint => {
    let n = 0n;
    while (((x >> n) & 1n) === 0n) n++;
    return n;
  };
  const GENMASK = (h: bigint, l: bigint): bigint => ((1n << (h + 1n)) - 1n) & ~((1n << l) - 1n);
  const addrMerge = paddr | iova;
  let pgsizes = bitmap & GENMASK(__fls(size), 0n);
  if (addrMerge) pgsizes &= GENMASK(__ffs(addrMerge), 0n);
  if (!pgsizes) throw new Error("BUG_ON(!pgsizes)");
  const pgsizeIdx = __fls(pgsizes);
  const pgsize = 1n << pgsizeIdx;
  pgsizes = bitmap & ~GENMASK(pgsizeIdx, 0n);
  if (pgsizes) {
    const pgsizeNext = 1n << __ffs(pgsizes);
    if (!((iova ^ paddr) & (pgsizeNext - 1n))) {
      const offset = pgsizeNext - (addrMerge & (pgsizeNext - 1n));
      if (offset + pgsizeNext <= size) size = offset;
    }
  }
  return { pgsize, count: size >> pgsizeIdx };
}

const BITMAPS = [SZ_4K | SZ_2M | SZ_1G, SZ_4K, SZ_4K | SZ_64K | SZ_2M, SZ_4K | SZ_2M, 0x40201000, 0x7ffff000];

describe("iommuPgsize", () => {
  it("picks the largest aligned size and runs up to the next larger size's boundary", () => {
    const b = SZ_4K | SZ_2M | SZ_1G;
    // 2 MiB-aligned both sides, 4 MiB: two 2 MiB blocks.
    expect(iommuPgsize(b, 0x40000000 + SZ_2M, 0x80000000 + SZ_2M, 2 * SZ_2M)).toEqual({
      pgsize: SZ_2M,
      count: 2,
    });
    // 4 KiB-misaligned start congruent mod 2 MiB: 4 KiB pages only up to the 2 MiB boundary.
    expect(iommuPgsize(b, 0x1ff000, 0x801ff000, SZ_2M + SZ_4K)).toEqual({ pgsize: SZ_4K, count: 1 });
    // Not congruent mod 2 MiB: 4 KiB pages for the whole size.
    expect(iommuPgsize(b, 0x1ff000, 0x80000000, SZ_2M + SZ_4K)).toEqual({ pgsize: SZ_4K, count: 513 });
    // Size too small for the next boundary + one larger page: whole size in small pages.
    expect(iommuPgsize(b, 0x1ff000, 0x801ff000, SZ_2M)).toEqual({ pgsize: SZ_4K, count: 512 });
    // Both addresses zero: only size limits.
    expect(iommuPgsize(b, 0, 0, SZ_1G + SZ_2M)).toEqual({ pgsize: SZ_1G, count: 1 });
  });

  it("matches a literal transcription of the kernel for random (iova, paddr, size, bitmap)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...BITMAPS),
        fc.nat({ max: 2 ** 36 - 1 }),
        fc.nat({ max: 2 ** 36 - 1 }),
        fc.integer({ min: 1, max: 2 ** 22 }),
        fc.integer({ min: 0, max: 3 }),
        (bitmap, iovaPg, paddrPg, sizePg, alignBias) => {
          // Bias towards big alignments so large pages are actually exercised.
          const shift = [0, 9, 12, 18][alignBias] as number;
          const iova = Math.floor(iovaPg / 2 ** shift) * 2 ** shift * SZ_4K;
          const paddr = Math.floor(paddrPg / 2 ** shift) * 2 ** shift * SZ_4K;
          const size = sizePg * SZ_4K;
          const k = kernelPgsize(BigInt(bitmap), BigInt(iova), BigInt(paddr), BigInt(size));
          const m = iommuPgsize(bitmap, iova, paddr, size);
          expect(BigInt(m.pgsize)).toBe(k.pgsize);
          expect(BigInt(m.count)).toBe(k.count);
        },
      ),
      { numRuns: 3000, seed: 42 },
    );
  });

  it("throws EINVAL where the kernel would BUG (no usable page size)", () => {
    expect(() => iommuPgsize(SZ_2M, SZ_4K, 0, SZ_2M)).toThrow(/EINVAL/);
  });
});
