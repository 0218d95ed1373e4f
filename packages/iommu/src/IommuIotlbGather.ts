import { ULONG_MAX } from "@dmakit/core";
import type { IommuDomain } from "./IommuDomain.js";
import { IommuPagesList } from "./IommuPagesList.js";

/**
 * `struct iommu_iotlb_gather`: the IOVA range unmapped since the last invalidation, the page size it
 * was unmapped at, and the table pages waiting for the invalidation before they may be freed.
 * Create one with `new IommuIotlbGather()` (already initialised, as `iommu_iotlb_gather_init`).
 *
 * @see include/linux/iommu.h struct iommu_iotlb_gather
 */
export class IommuIotlbGather {
  /** First IOVA of the gathered range; `ULONG_MAX` when empty. */
  start = ULONG_MAX;
  /** Last IOVA (inclusive) of the gathered range; 0 when empty. */
  end = 0;
  /** Granule the range was gathered at (0 = none yet). */
  pgsize = 0;
  /** Table pages freed by the unmaps, to free after the IOTLB sync. */
  freelist = new IommuPagesList();
  /** True when a flush queue took over the invalidation (lazy / DMA-FQ). */
  queued = false;
}

/**
 * `iommu_iotlb_gather_init(gather)`: empties the range (start = ULONG_MAX, end = 0, pgsize = 0,
 * queued = false) and gives it a fresh freelist. As in the kernel, pages still on the old freelist
 * are dropped from the gather (whoever holds them must free them).
 * @see include/linux/iommu.h iommu_iotlb_gather_init
 */
export function iommuIotlbGatherInit(gather: IommuIotlbGather): void {
  gather.start = ULONG_MAX;
  gather.end = 0;
  gather.pgsize = 0;
  gather.freelist = new IommuPagesList();
  gather.queued = false;
}

/**
 * `iommu_iotlb_gather_is_disjoint(gather, iova, size)`: true when the gather holds a range and
 * `[iova, iova+size)` neither overlaps nor touches it.
 * @see include/linux/iommu.h iommu_iotlb_gather_is_disjoint
 */
export function iommuIotlbGatherIsDisjoint(gather: IommuIotlbGather, iova: number, size: number): boolean {
  const start = iova;
  const end = start + size - 1;
  return gather.end !== 0 && (end + 1 < gather.start || start > gather.end + 1);
}

/**
 * `iommu_iotlb_gather_add_range(gather, iova, size)`: widens the range to cover `[iova, iova+size)`
 * (no sync, no page size bookkeeping; for drivers that invalidate by range).
 * @see include/linux/iommu.h iommu_iotlb_gather_add_range
 */
export function iommuIotlbGatherAddRange(gather: IommuIotlbGather, iova: number, size: number): void {
  const end = iova + size - 1;
  if (gather.start > iova) gather.start = iova;
  if (gather.end < end) gather.end = end;
}

/**
 * `iommu_iotlb_gather_add_page(domain, gather, iova, size)`: adds one unmapped page. If the page is
 * at a different granularity than what is gathered, or disjoint from the gathered range, the gather
 * is synced first (`iommu_iotlb_sync`) so it can be rewritten.
 * @see include/linux/iommu.h iommu_iotlb_gather_add_page
 */
export function iommuIotlbGatherAddPage(
  domain: IommuDomain,
  gather: IommuIotlbGather,
  iova: number,
  size: number,
): void {
  if ((gather.pgsize !== 0 && gather.pgsize !== size) || iommuIotlbGatherIsDisjoint(gather, iova, size))
    iommuIotlbSync(domain, gather);
  gather.pgsize = size;
  iommuIotlbGatherAddRange(gather, iova, size);
}

/**
 * `iommu_iotlb_gather_queued(gather)`: a flush queue owns the invalidation.
 * @see include/linux/iommu.h iommu_iotlb_gather_queued
 */
export function iommuIotlbGatherQueued(gather: IommuIotlbGather | null): boolean {
  return gather?.queued === true;
}

/**
 * `iommu_iotlb_sync(domain, gather)`: calls the driver's `iotlbSync` for the gathered range, then
 * re-initialises the gather. Callers that queued the gather (`gather.queued`) skip this, as
 * `__iommu_dma_unmap` does.
 *
 * Model difference: table pages the driver left on `gather.freelist` are freed here, after the
 * driver's invalidation (the kernel would drop the list and leak them); drivers that free the list
 * themselves, like VT-d's `intel_iommu_tlb_sync`, leave nothing to free.
 * @see include/linux/iommu.h iommu_iotlb_sync
 */
export function iommuIotlbSync(domain: IommuDomain, gather: IommuIotlbGather): void {
  domain.ops.iotlbSync?.(domain, gather);
  const pages = gather.freelist;
  iommuIotlbGatherInit(gather);
  pages.put();
}
