import { SZ_4K, SZ_64K } from "@dmakit/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  alignedTo,
  ffsOr,
  highestBitAtMost,
  lowestBit,
  lowestBitAbove,
  pgsizeCount,
  pgsizeIdx,
} from "../src/internal/pgsizeBits.js";

const big = (x: number): bigint => BigInt(x);
const bitAt = (x: bigint, n: number): boolean => ((x >> BigInt(n)) & 1n) === 1n;

// Bitmaps with sizes above bit 31 (ARM 64K granule: 64K, 512M, 4T) and a dense one up to bit 52.
const BITMAPS = [
  SZ_64K | (2 ** 29) | (2 ** 42),
  SZ_4K | (2 ** 21) | (2 ** 30),
  2 ** 53 - SZ_4K,
  2 ** 31,
  (2 ** 32) | SZ_4K,
];

describe("pgsizeBits (the core's 32-bit-word arithmetic on 53-bit numbers)", () => {
  const u53 = fc.oneof(
    fc.nat({ max: 2 ** 53 - 1 }),
    fc.integer({ min: 0, max: 52 }).map((k) => 2 ** k),
  );

  it("lowestBit / lowestBitAbove / highestBitAtMost / ffsOr agree with BigInt bit scans", () => {
    fc.assert(
      fc.property(u53, u53, fc.integer({ min: -1, max: 63 }), (x, y, n) => {
        const bx = big(x);
        let lo = -1;
        for (let i = 0; i < 53; i++)
          if (bitAt(bx, i)) {
            lo = i;
            break;
          }
        expect(lowestBit(x)).toBe(lo);
        let above = -1;
        for (let i = n + 1; i < 53; i++)
          if (bitAt(bx, i)) {
            above = i;
            break;
          }
        expect(lowestBitAbove(x, n)).toBe(above);
        let atMost = -1;
        for (let i = Math.min(n, 52); i >= 0; i--)
          if (bitAt(bx, i)) {
            atMost = i;
            break;
          }
        expect(highestBitAtMost(x, n)).toBe(atMost);
        const bor = bx | big(y);
        let f = -1;
        for (let i = 0; i < 53; i++)
          if (bitAt(bor, i)) {
            f = i;
            break;
          }
        expect(ffsOr(x, y)).toBe(f);
      }),
      { numRuns: 2000, seed: 7 },
    );
  });

  it("alignedTo is x % 2^shift === 0 for integers, fractions, NaN and infinities", () => {
    const odd = [0.5, -4096, -4095, 4096.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 64, 2 ** 53 - 1, -0];
    for (const shift of [0, 12, 16, 30, 31, 32, 42])
      for (const x of [...odd, 2 ** shift, 3 * 2 ** shift, 2 ** shift + SZ_4K])
        expect(alignedTo(x, shift, 2 ** shift - 1)).toBe(x % 2 ** shift === 0);
  });

  it("pgsizeIdx / pgsizeCount match iommu_pgsize on 64-bit values for big bitmaps and addresses", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...BITMAPS),
        fc.nat({ max: 2 ** 41 - 1 }),
        fc.nat({ max: 2 ** 41 - 1 }),
        fc.integer({ min: 1, max: 2 ** 30 }),
        fc.integer({ min: 0, max: 4 }),
        (bitmap, iovaPg, paddrPg, sizePg, bias) => {
          const shift = [0, 9, 17, 19, 30][bias] as number;
          const iova = Math.floor(iovaPg / 2 ** shift) * 2 ** shift * SZ_4K;
          const paddr = Math.floor(paddrPg / 2 ** shift) * 2 ** shift * SZ_4K;
          const size = sizePg * SZ_4K;
          // Transcription of iommu_pgsize with BigInt.
          const b = big(bitmap);
          const merge = big(iova) | big(paddr);
          const GEN = (hi: number): bigint => (1n << BigInt(hi + 1)) - 1n;
          let pgsizes = b & GEN(big(size).toString(2).length - 1);
          if (merge !== 0n) {
            let f = 0;
            while (!bitAt(merge, f)) f++;
            pgsizes &= GEN(f);
          }
          if (pgsizes === 0n) {
            expect(pgsizeIdx(bitmap, iova, paddr, size)).toBe(-1);
            return;
          }
          const idx = pgsizes.toString(2).length - 1;
          expect(pgsizeIdx(bitmap, iova, paddr, size)).toBe(idx);
          let sz = big(size);
          const rest = b & ~GEN(idx);
          if (rest !== 0n) {
            let f = 0;
            while (!bitAt(rest, f)) f++;
            const next = 1n << BigInt(f);
            if (((big(iova) ^ big(paddr)) & (next - 1n)) === 0n) {
              const offset = next - (merge & (next - 1n));
              if (offset + next <= sz) sz = offset;
            }
          }
          expect(pgsizeCount(bitmap, idx, iova, paddr, size)).toBe(Number(sz >> BigInt(idx)));
        },
      ),
      { numRuns: 3000, seed: 11 },
    );
  });
});
