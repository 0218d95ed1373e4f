import { PAGE_SIZE } from "@dmakit/core";
import type { PgtableMemory } from "@dmakit/iommu";
import { __GFP_NOWARN, __GFP_ZERO, GFP_KERNEL, type PageAllocator, type PhysMem } from "@dmakit/mm-pages";

/**
 * A {@link PgtableMemory} on the machine's buddy allocator: table pages come from
 * `alloc_pages(gfp | __GFP_ZERO, order)` and go back with `__free_pages`, so the allocator's own
 * report accounts for them; {@link BuddyPgtableMemory.pagesInUse} counts what is held.
 *
 * The kernel's counterpart is `iommu_alloc_pages_node_sz` / `iommu_free_pages` (which also keep
 * the NR_IOMMU_PAGES vmstat); the model routes them through this object.
 * @see drivers/iommu/iommu-pages.c iommu_alloc_pages_node_sz, iommu_free_pages
 */
export class BuddyPgtableMemory implements PgtableMemory {
  readonly phys: PhysMem;
  readonly allocator: PageAllocator;
  private held = 0;
  /** Allocations refused (the `-ENOMEM` paths taken). */
  failures = 0;

  constructor(allocator: PageAllocator) {
    this.allocator = allocator;
    this.phys = allocator.mem;
  }

  allocTablePage(order: number, gfp = 0): number | null {
    const pfn = this.allocator.allocPages((gfp === 0 ? GFP_KERNEL : gfp) | __GFP_ZERO | __GFP_NOWARN, order);
    if (pfn === null) {
      this.failures++;
      return null;
    }
    // Table writers and the SMMU's walker use RAM directly: no line of a table page may stay in
    // the CPU cache (the kernel cleans new tables for a non-coherent walker).
    this.phys.cpuStore?.cleanInvalidateRange(pfn * PAGE_SIZE, PAGE_SIZE * 2 ** order);
    this.held += 2 ** order;
    return pfn;
  }

  freeTablePage(pfn: number, order: number): void {
    this.allocator.freePages(pfn, order);
    this.held -= 2 ** order;
  }

  get pagesInUse(): number {
    return this.held;
  }
}
