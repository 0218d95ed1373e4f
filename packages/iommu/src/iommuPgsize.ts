import { fls, KernelError } from "@dmakit/core";

/** Result of {@link iommuPgsize}: the page size to use and how many such pages in a run. */
export interface IommuPgsizeResult {
  pgsize: number;
  count: number;
}

/** Bit `n` of a non-negative integer below 2^53. */
function bitSet(x: number, n: number): boolean {
  return Math.floor(x / 2 ** n) % 2 === 1;
}

/** `__ffs(a | b)` for non-negative integers below 2^53; -1 when both are 0. */
function ffsOr(a: number, b: number): number {
  if (a === 0 && b === 0) return -1;
  for (let n = 0; ; n++) if (bitSet(a, n) || bitSet(b, n)) return n;
}

/**
 * `iommu_pgsize(domain, iova, paddr, size, &count)`: the largest page size in `pgsizeBitmap` that
 * fits in `size` and that both `iova` and `paddr` are aligned to, and how many pages of it to map
 * in one run: up to where the next larger supported size could start being used (when `iova` and
 * `paddr` are congruent modulo that larger size and `size` reaches one whole larger page past the
 * boundary), else as many as fit in `size`.
 *
 * Takes the bitmap rather than the domain so dma-iommu and tests can call it directly.
 * Throws `EINVAL` where the kernel would `BUG_ON(!pgsizes)` (no usable size: callers check
 * alignment to the smallest page size first).
 * @see drivers/iommu/iommu.c iommu_pgsize
 */
export function iommuPgsize(
  pgsizeBitmap: number,
  iova: number,
  paddr: number,
  size: number,
): IommuPgsizeResult {
  // Page sizes supported by the hardware and small enough for size ...
  let maxIdx = fls(size);
  // ... and no larger than the alignment of iova | paddr.
  const align = ffsOr(iova, paddr);
  if (align >= 0 && align < maxIdx) maxIdx = align;
  let pgsizeIdx = -1;
  for (let n = maxIdx; n >= 0; n--)
    if (bitSet(pgsizeBitmap, n)) {
      pgsizeIdx = n;
      break;
    }
  if (pgsizeIdx < 0)
    throw new KernelError(
      "EINVAL",
      `iommu: iommu_pgsize: no page size in bitmap 0x${pgsizeBitmap.toString(16)} for iova 0x${iova.toString(16)} pa 0x${paddr.toString(16)} size 0x${size.toString(16)}`,
    );
  const pgsize = 2 ** pgsizeIdx;

  // The next larger supported page size, if any.
  let nextIdx = -1;
  for (let n = pgsizeIdx + 1; n <= 52; n++)
    if (bitSet(pgsizeBitmap, n)) {
      nextIdx = n;
      break;
    }
  let runSize = size;
  if (nextIdx >= 0) {
    const pgsizeNext = 2 ** nextIdx;
    // Only worth stopping early when iova and paddr sit at the same offset in the larger page.
    if (iova % pgsizeNext === paddr % pgsizeNext) {
      const offset = pgsizeNext - (iova % pgsizeNext);
      if (offset + pgsizeNext <= size) runSize = offset;
    }
  }
  return { pgsize, count: Math.floor(runSize / pgsize) };
}
