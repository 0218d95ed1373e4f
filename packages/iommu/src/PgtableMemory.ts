import type { PhysMem } from "@dmakit/mm-pages";

/**
 * Where a page-table format gets the pages its tables live in, and the simulated RAM they are in.
 * Tables are real bytes in {@link PhysMem}: the format writes descriptors there with
 * `phys.pageView(pfn)` / `phys.writeU32`, and the hardware walker reads the same bytes.
 *
 * The kernel allocates table pages with `iommu_alloc_pages_node_sz(nid, gfp | __GFP_ZERO, size)`
 * and frees them with `iommu_free_pages` / `iommu_put_pages_list`. The model routes both through
 * this handle so the machine's page allocator (mm-pages `PageAllocator`) accounts for them, and so
 * tests can check that no table page leaks.
 *
 * @see drivers/iommu/iommu-pages.h iommu_alloc_pages_node_sz, iommu_free_pages
 */
export interface PgtableMemory {
  /** The simulated physical memory the tables live in. */
  readonly phys: PhysMem;
  /**
   * Allocates 2^order physically contiguous, naturally aligned, ZEROED pages for a table and returns
   * the first pfn, or null when memory is exhausted (the caller turns that into `-ENOMEM`).
   * `gfp` is the caller's `gfp_t` (0 when it has none); implementations may ignore it.
   */
  allocTablePage(order: number, gfp?: number): number | null;
  /** Frees pages from {@link allocTablePage}. */
  freeTablePage(pfn: number, order: number): void;
  /** Pages currently held for tables (the "every allocator reports what it holds" figure). */
  readonly pagesInUse: number;
}
