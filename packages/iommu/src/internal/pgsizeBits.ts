import { fls } from "@dmakit/core";

/**
 * Bit arithmetic on page-size bitmaps and addresses below 2^53 for `iommu_pgsize` and the map/unmap
 * loops, in 32-bit words so no call divides by a power of two in floating point (V8 turns `%` on
 * non-small integers into an fmod call) and none returns an object.
 *
 * `x >>> 0` is exactly `x mod 2^32` for any integer-valued number, and `Math.floor(x / 2^32)` the
 * high word of one below 2^53.
 */

const TWO32 = 4294967296;

/** 2^n for n in [0, 64). */
export const POW2: Float64Array = Float64Array.from({ length: 64 }, (_, n) => 2 ** n);

/** Index of the highest set bit of `bitmap` at or below bit `m`; -1 when there is none (or m < 0). */
export function highestBitAtMost(bitmap: number, m: number): number {
  if (m < 0) return -1;
  if (m < 32) {
    // (2 << 31) - 1 is -1 (all 32 bits) once ToInt32 applies; (2 << 30) - 1 is 0x7fffffff.
    const lo = bitmap & ((2 << m) - 1);
    return lo === 0 ? -1 : 31 - Math.clz32(lo);
  }
  if (bitmap >= TWO32) {
    const hi = Math.floor(bitmap / TWO32);
    const hm = m >= 63 ? hi : hi & ((2 << (m - 32)) - 1);
    if (hm !== 0) return 63 - Math.clz32(hm);
  }
  const lo = bitmap >>> 0;
  return lo === 0 ? -1 : 31 - Math.clz32(lo);
}

/** `__ffs(x)` for a non-negative integer below 2^53; -1 for 0. */
export function lowestBit(x: number): number {
  const lo = x | 0;
  if (lo !== 0) return 31 - Math.clz32(lo & -lo);
  if (x < TWO32) return -1;
  const hi = Math.floor(x / TWO32);
  return hi === 0 ? -1 : 63 - Math.clz32(hi & -hi);
}

/** Index of the lowest set bit of `bitmap` strictly above bit `n` (n ≥ -1); -1 when there is none. */
export function lowestBitAbove(bitmap: number, n: number): number {
  if (n < 0) return lowestBit(bitmap);
  if (n < 31) {
    const lo = bitmap & ~((2 << n) - 1);
    if (lo !== 0) return 31 - Math.clz32(lo & -lo);
  }
  if (bitmap < TWO32) return -1;
  let hi = Math.floor(bitmap / TWO32);
  if (n >= 32) hi &= ~((2 << (n - 32)) - 1);
  return hi === 0 ? -1 : 63 - Math.clz32(hi & -hi);
}

/** `__ffs(a | b)` for non-negative integers below 2^53; -1 when both are 0. */
export function ffsOr(a: number, b: number): number {
  const lo = a | b;
  if (lo !== 0) return 31 - Math.clz32(lo & -lo);
  const hi = Math.floor(a / TWO32) | Math.floor(b / TWO32);
  return hi === 0 ? -1 : 63 - Math.clz32(hi & -hi);
}

/**
 * `x % 2^shift === 0`, exactly as that expression evaluates for any number (NaN, infinities and
 * fractions are not aligned); `mask` is `2^shift - 1`.
 */
export function alignedTo(x: number, shift: number, mask: number): boolean {
  if (shift < 31) return (x & mask) === 0 && x - Math.trunc(x) === 0;
  return x % (POW2[shift] as number) === 0;
}

/**
 * The page-size index `iommu_pgsize` picks: the largest size in `bitmap` no larger than `size` and
 * than the alignment of `iova | paddr`; -1 when there is none (the kernel's `BUG_ON(!pgsizes)`).
 */
export function pgsizeIdx(bitmap: number, iova: number, paddr: number, size: number): number {
  let maxIdx = fls(size);
  const align = ffsOr(iova, paddr);
  if (align >= 0 && align < maxIdx) maxIdx = align;
  return highestBitAtMost(bitmap, maxIdx);
}

/**
 * `iommu_pgsize`'s count for page-size index `idx`: pages of `2^idx` up to where the next larger
 * supported size could start being used (when `iova` and `paddr` are congruent modulo it and `size`
 * reaches one whole larger page past the boundary), else as many as fit in `size`.
 */
export function pgsizeCount(bitmap: number, idx: number, iova: number, paddr: number, size: number): number {
  let runSize = size;
  const nextIdx = lowestBitAbove(bitmap, idx);
  if (nextIdx >= 0) {
    const pgsizeNext = POW2[nextIdx] as number;
    if (nextIdx < 31) {
      const m = pgsizeNext - 1;
      if (((iova ^ paddr) & m) === 0) {
        const offset = pgsizeNext - (iova & m);
        if (offset + pgsizeNext <= size) runSize = offset;
      }
    } else if (iova % pgsizeNext === paddr % pgsizeNext) {
      const offset = pgsizeNext - (iova % pgsizeNext);
      if (offset + pgsizeNext <= size) runSize = offset;
    }
  }
  return Math.floor(runSize / (POW2[idx] as number));
}
