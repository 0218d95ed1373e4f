import { PAGE_SIZE } from "@dmakit/core";
import { __GFP_ZERO, GFP_KERNEL, type PageAllocator, type PhysMem } from "@dmakit/mm-pages";
import type { PgtableMemory } from "./PgtableMemory.js";

/**
 * A {@link PgtableMemory} on the machine's buddy allocator: table pages come from
 * `alloc_pages(gfp | __GFP_ZERO, order)` (default gfp `GFP_KERNEL`) and go back with
 * `__free_pages`, so they show in the allocator's report like the kernel's `iommu_alloc_pages_*`
 * pages do (the kernel accounts them as `NR_IOMMU_PAGES`; {@link PgtableMemory.pagesInUse} is that
 * figure for this memory).
 * @see drivers/iommu/iommu-pages.c iommu_alloc_pages_node_sz, iommu_free_pages
 */
export function pgtableMemoryFromAllocator(
  phys: PhysMem,
  allocator: PageAllocator,
  defaultGfp: number = GFP_KERNEL,
): PgtableMemory {
  let inUse = 0;
  return {
    phys,
    allocTablePage(order: number, gfp?: number): number | null {
      const pfn = allocator.allocPages(
        (gfp === undefined || gfp === 0 ? defaultGfp : gfp) & ~__GFP_ZERO,
        order,
      );
      if (pfn === null) return null;
      // Table writers and hardware walkers use RAM directly (a coherent walk), so no line of a
      // table page may stay in the CPU cache. The kernel zeroes through the cache and then cleans
      // (dma_map_single of a new table for a non-coherent walker); dropping the old lines and
      // zeroing RAM ends in the same state without filling the cache model first.
      const bytes = PAGE_SIZE * 2 ** order;
      phys.cpuStore?.cleanInvalidateRange(pfn * PAGE_SIZE, bytes);
      phys.fill(pfn * PAGE_SIZE, bytes, 0);
      inUse += 2 ** order;
      return pfn;
    },
    freeTablePage(pfn: number, order: number): void {
      allocator.freePages(pfn, order);
      inUse -= 2 ** order;
    },
    get pagesInUse(): number {
      return inUse;
    },
  };
}
