import type { PgtableMemory } from "./PgtableMemory.js";

/**
 * `struct iommu_pages_list`: page-table pages unlinked from a table whose freeing must wait until
 * the IOTLB (and the walk caches) no longer reference them. They travel in
 * `iommu_iotlb_gather.freelist` and are freed by {@link IommuPagesList.put} after the invalidation,
 * or handed to a flush queue when invalidation is lazy.
 *
 * The model stores (memory, pfn, order) triples in parallel arrays: a handful per unmap, never one
 * per data page.
 *
 * @see drivers/iommu/iommu-pages.h struct iommu_pages_list, iommu_pages_list_add,
 * iommu_pages_list_splice, iommu_put_pages_list
 */
export class IommuPagesList {
  private mems: PgtableMemory[] = [];
  private pfns: number[] = [];
  private orders: number[] = [];

  /** Number of table allocations on the list. */
  get length(): number {
    return this.pfns.length;
  }

  /** Number of 4 KiB pages on the list. */
  get pages(): number {
    let n = 0;
    for (const o of this.orders) n += 2 ** o;
    return n;
  }

  /** `iommu_pages_list_empty`. */
  isEmpty(): boolean {
    return this.pfns.length === 0;
  }

  /** `iommu_pages_list_add(list, virt)`: queues a table page allocated from `mem`. */
  add(mem: PgtableMemory, pfn: number, order = 0): void {
    this.mems.push(mem);
    this.pfns.push(pfn);
    this.orders.push(order);
  }

  /** True when `pfn` is queued (tests use it to prove a page is not yet reusable). */
  has(pfn: number): boolean {
    return this.pfns.includes(pfn);
  }

  /** `iommu_pages_list_splice(from, to)`: moves every entry of `from` onto this list; `from` becomes empty. */
  splice(from: IommuPagesList): void {
    if (from === this) return;
    this.mems.push(...from.mems);
    this.pfns.push(...from.pfns);
    this.orders.push(...from.orders);
    from.clear();
  }

  /** `iommu_put_pages_list(list)`: frees every page back to its memory; the list becomes empty. */
  put(): void {
    for (let i = 0; i < this.pfns.length; i++)
      (this.mems[i] as PgtableMemory).freeTablePage(this.pfns[i] as number, this.orders[i] as number);
    this.clear();
  }

  private clear(): void {
    this.mems = [];
    this.pfns = [];
    this.orders = [];
  }
}
