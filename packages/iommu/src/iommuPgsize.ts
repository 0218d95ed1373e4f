import { KernelError } from "@dmakit/core";
import { pgsizeCount, pgsizeIdx } from "./internal/pgsizeBits.js";

/**
 * Result of {@link iommuPgsize}: the page size to use and how many such pages in a run.
 * Model-only: the return value plus the `size_t *count` out-parameter of `iommu_pgsize`.
 */
export interface IommuPgsizeResult {
  pgsize: number;
  count: number;
}

/**
 * `iommu_pgsize(domain, iova, paddr, size, &count)`: the largest page size in `pgsizeBitmap` that
 * fits in `size` and that both `iova` and `paddr` are aligned to, and how many pages of it to map
 * in one run: up to where the next larger supported size could start being used (when `iova` and
 * `paddr` are congruent modulo that larger size and `size` reaches one whole larger page past the
 * boundary), else as many as fit in `size`.
 *
 * Takes the bitmap rather than the domain so dma-iommu and tests can call it directly. The core's
 * map/unmap loops use the same arithmetic without the result object.
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
  const idx = pgsizeIdx(pgsizeBitmap, iova, paddr, size);
  if (idx < 0)
    throw new KernelError(
      "EINVAL",
      `iommu: iommu_pgsize: no page size in bitmap 0x${pgsizeBitmap.toString(16)} for iova 0x${iova.toString(16)} pa 0x${paddr.toString(16)} size 0x${size.toString(16)}`,
    );
  return { pgsize: 2 ** idx, count: pgsizeCount(pgsizeBitmap, idx, iova, paddr, size) };
}
