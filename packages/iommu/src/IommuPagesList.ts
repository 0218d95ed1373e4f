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
  // Allocated on first add: most unmaps free no table page, and every gather carries a list.
  private mems: PgtableMemory[] | null = null;
  private pfns: number[] | null = null;
  private orders: number[] | null = null;

  /** Number of table allocations on the list. */
  get length(): number {
    return this.pfns === null ? 0 : this.pfns.length;
  }

  /** Number of 4 KiB pages on the list. */
  get pages(): number {
    let n = 0;
    if (this.orders !== null) for (const o of this.orders) n += 2 ** o;
    return n;
  }

  /** `iommu_pages_list_empty`. */
  isEmpty(): boolean {
    return this.pfns === null || this.pfns.length === 0;
  }

  /** `iommu_pages_list_add(list, virt)`: queues a table page allocated from `mem`. */
  add(mem: PgtableMemory, pfn: number, order = 0): void {
    if (this.pfns === null) {
      this.mems = [mem];
      this.pfns = [pfn];
      this.orders = [order];
      return;
    }
    (this.mems as PgtableMemory[]).push(mem);
    this.pfns.push(pfn);
    (this.orders as number[]).push(order);
  }

  /** True when `pfn` is queued (tests use it to prove a page is not yet reusable). */
  has(pfn: number): boolean {
    return this.pfns?.includes(pfn) === true;
  }

  /** `iommu_pages_list_splice(from, to)`: moves every entry of `from` onto this list; `from` becomes empty. */
  splice(from: IommuPagesList): void {
    if (from === this || from.pfns === null) return;
    if (this.pfns === null) {
      this.mems = from.mems;
      this.pfns = from.pfns;
      this.orders = from.orders;
    } else {
      (this.mems as PgtableMemory[]).push(...(from.mems as PgtableMemory[]));
      this.pfns.push(...from.pfns);
      (this.orders as number[]).push(...(from.orders as number[]));
    }
    from.clear();
  }

  /** `iommu_put_pages_list(list)`: frees every page back to its memory; the list becomes empty. */
  put(): void {
    const pfns = this.pfns;
    if (pfns === null) return;
    const mems = this.mems as PgtableMemory[];
    const orders = this.orders as number[];
    for (let i = 0; i < pfns.length; i++)
      (mems[i] as PgtableMemory).freeTablePage(pfns[i] as number, orders[i] as number);
    this.clear();
  }

  private clear(): void {
    this.mems = null;
    this.pfns = null;
    this.orders = null;
  }
}
