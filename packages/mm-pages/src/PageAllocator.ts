import { hex, KernelError, PAGE_SIZE } from "@dmakit/core";
import {
  __GFP_COMP,
  __GFP_HIGHMEM,
  __GFP_MOVABLE,
  __GFP_NOWARN,
  __GFP_ZERO,
  formatGfp,
  GFP_ZONEMASK,
  gfpZone,
  gfpZoneValid,
} from "./gfp.js";
import { PAGES_PER_SECTION } from "./Memmap.js";
import type { PhysMem } from "./PhysMem.js";
import { PG_buddy, PG_cma, PG_head, PG_lru, PG_reserved, PG_tail } from "./pageFlags.js";
import {
  MAX_NR_ZONES,
  ZONE_DEVICE,
  ZONE_DMA,
  ZONE_DMA32,
  ZONE_NAMES,
  ZONE_NORMAL,
  type ZoneType,
} from "./zones.js";

/** `MAX_PAGE_ORDER` (6.8+; inclusive): the largest buddy order, 1024 pages = 4 MiB. @see include/linux/mmzone.h */
export const MAX_PAGE_ORDER = 10;
/** `NR_PAGE_ORDERS` = MAX_PAGE_ORDER + 1. @see include/linux/mmzone.h */
export const NR_PAGE_ORDERS = MAX_PAGE_ORDER + 1;
/** `MAX_ORDER_NR_PAGES` = 1 << MAX_PAGE_ORDER. @see include/linux/mmzone.h */
export const MAX_ORDER_NR_PAGES = 1 << MAX_PAGE_ORDER;
/**
 * `PAGE_ALLOC_COSTLY_ORDER` = 3: larger orders are "costly" (fail rather than OOM).
 * @see include/linux/mmzone.h
 */
export const PAGE_ALLOC_COSTLY_ORDER = 3;
/**
 * `pageblock_order` on x86_64/arm64 with 4 KiB pages (HUGETLB_PAGE_ORDER = 9): CMA areas align to it.
 * @see include/linux/pageblock-flags.h
 */
export const pageblock_order = 9;
/** `pageblock_nr_pages` = 1 << pageblock_order. @see include/linux/pageblock-flags.h */
export const pageblock_nr_pages = 1 << pageblock_order;

/**
 * The migration hook CMA uses to move a movable in-use page out of a range it claims. Called with
 * the pfn of the page (the head of a compound page) that has `PG_lru` set. The hook copies the
 * contents to a new page, remaps every user, and drops its reference(s) on the old page so it
 * returns to the allocator; it returns the new pfn, or null when the page cannot move (pinned,
 * no memory). If the old page is still in use after a non-null return, the claim fails with EBUSY.
 * @see mm/migrate.c migrate_pages, mm/page_alloc.c __alloc_contig_migrate_range
 */
export type MigrateHook = (pfn: number) => number | null;

/**
 * One zone's line of {@link PageAllocatorReport}.
 * Model-only: the holdings report (the kernel prints the same counts in /proc/zoneinfo and /proc/buddyinfo).
 */
export interface BuddyZoneReport {
  readonly zone: ZoneType;
  readonly name: string;
  /** Pages the buddy allocator manages in this zone (`managed_pages`). */
  readonly managed: number;
  /** Free pages, CMA included (`NR_FREE_PAGES`). */
  readonly free: number;
  /** Free pages in CMA areas (`NR_FREE_CMA_PAGES`). */
  readonly freeCma: number;
  /** Free blocks per order, as /proc/buddyinfo prints them. */
  readonly freeArea: readonly number[];
}

/**
 * What a {@link PageAllocator} holds: equal reports mean equal free lists per zone and order.
 * Model-only: the holdings report every allocator gives.
 */
export interface PageAllocatorReport {
  readonly managed: number;
  readonly free: number;
  readonly freeCma: number;
  /** Pages held by callers (managed − free − isolated). */
  readonly allocated: number;
  /** Free pages parked by an in-progress `alloc_contig_range` (0 between calls). */
  readonly isolated: number;
  readonly zones: readonly BuddyZoneReport[];
}

/**
 * Per-CPU pageset batch and high mark (`pcp->batch`, `pcp->high`; the model has one CPU's lists).
 * @see mm/page_alloc.c zone_batchsize (computed per zone in the kernel; the model fixes its cap, 63)
 */
export const PCP_BATCH = 63;
/**
 * `pcp->high`: computed per zone in the kernel; the model fixes the old default, `6 * batch`.
 * @see mm/page_alloc.c zone_highsize
 */
export const PCP_HIGH = 6 * PCP_BATCH;
const NR_MT = 2; // MIGRATE_MOVABLE-and-friends, MIGRATE_CMA
const MT_CMA = 1;
const NR_LISTS = MAX_NR_ZONES * NR_MT * NR_PAGE_ORDERS;

interface Isolation {
  readonly start: number;
  readonly end: number;
  /** 1 where the page is free and parked here. */
  readonly free: Uint8Array;
  count: number;
}

/**
 * The buddy page allocator: per-zone free lists of power-of-two blocks, orders 0..MAX_PAGE_ORDER.
 * Every non-reserved RAM page of a {@link PhysMem} is given to it at construction
 * (`memblock_free_all`). Pages are pfns; metadata lives in the memmap: a free block's head has
 * `PG_buddy`, its order in `order` and its free-list slot in `priv` (max-order blocks keep their
 * slot in a side array, so booting a large machine writes one memmap page in 1024, not `priv` too).
 *
 * The model keeps one free list per zone, order and "CMA or not", plus one CPU's order-0 list
 * (`pcp`, drained by `drainAllPages`). The kernel also splits by migratetype and has watermarks,
 * reclaim and compaction; the model has none, so an allocation fails exactly when no block is free
 * in an allowed zone. `__GFP_MOVABLE` allocations
 * may use CMA pages, preferring them when more than half of the zone's free pages are CMA, as
 * `__rmqueue` does.
 *
 * @see mm/page_alloc.c
 */
export class PageAllocator {
  readonly mem: PhysMem;
  private readonly lists: Float64Array[] = [];
  private readonly lens = new Int32Array(NR_LISTS);
  /** Free pages per zone × migratetype. */
  private readonly freeZ = new Float64Array(MAX_NR_ZONES * NR_MT);
  private readonly managedZ = new Float64Array(MAX_NR_ZONES);
  /** Per-CPU order-0 free lists per zone × migratetype (stacks of pfns) and their lengths. */
  private readonly pcp: Float64Array[] = [];
  private readonly pcpLen = new Int32Array(MAX_NR_ZONES * NR_MT);
  /** gfp zone bits → zone on this machine (OPT_ZONE_DMA/DMA32 fold to NORMAL when absent); -1 = bad. */
  private readonly zoneOf = new Int8Array(16);
  private readonly isolations: Isolation[] = [];
  private migrateHook: MigrateHook | null = null;
  private nextCmaId = 0;
  /** Free-list slot of each max-order free block, by memmap index >> MAX_PAGE_ORDER. */
  private maxSlot = new Int32Array(0);

  constructor(mem: PhysMem) {
    this.mem = mem;
    for (let i = 0; i < NR_LISTS; i++) this.lists.push(new Float64Array(16));
    for (let i = 0; i < MAX_NR_ZONES * NR_MT; i++) this.pcp.push(new Float64Array(PCP_HIGH + 1));
    const hasDma = mem.zoneLimits.dma > 0;
    const hasDma32 = mem.zoneLimits.dma32 > 0;
    for (let bits = 0; bits < 16; bits++) {
      if (!gfpZoneValid(bits)) {
        this.zoneOf[bits] = -1;
        continue;
      }
      let z: number = gfpZone(bits);
      if (z === ZONE_DMA && !hasDma) z = hasDma32 ? ZONE_DMA32 : ZONE_NORMAL;
      if (z === ZONE_DMA32 && !hasDma32) z = ZONE_NORMAL;
      this.zoneOf[bits] = z;
    }
    this.freeAllBootMemory();
  }

  // ---------------------------------------------------------------- public API

  /**
   * `alloc_pages(gfp, order)`: 2^order contiguous pages, naturally aligned, from the highest zone
   * `gfp` allows and falling back down the zonelist. Returns the first pfn, or null (the NULL
   * contract) when no zone has a free block, logging "page allocation failure" unless
   * `__GFP_NOWARN`. Order > MAX_PAGE_ORDER: WARN_ON_ONCE (unless `__GFP_NOWARN`) and null.
   * The head gets refcount 1; `__GFP_COMP` makes a compound page, `__GFP_ZERO` zeroes the memory.
   * CMA pages go only to `__GFP_MOVABLE` allocations.
   * @see mm/page_alloc.c __alloc_pages, rmqueue, expand, warn_alloc
   */
  allocPages(gfp: number, order: number): number | null {
    if (!(order >= 0 && order <= MAX_PAGE_ORDER) || (order | 0) !== order) {
      if ((gfp & __GFP_NOWARN) === 0)
        this.mem.log.warnOnce(
          true,
          "mm-pages:alloc_pages:order",
          "mm",
          `alloc_pages: order ${order} exceeds MAX_PAGE_ORDER ${MAX_PAGE_ORDER}`,
        );
      return null;
    }
    let z = this.zoneOf[gfp & GFP_ZONEMASK] as number;
    if (z < 0) {
      this.mem.log.warn(true, "mm", `alloc_pages: contradictory zone modifiers in mode:${formatGfp(gfp)}`);
      return null;
    }
    const cmaOk = (gfp & __GFP_MOVABLE) !== 0;
    let pfn = -1;
    for (; z >= 0; z--) {
      pfn = order === 0 ? this.rmqueuePcp(z, cmaOk) : this.rmqueue(z, order, cmaOk);
      if (pfn >= 0) break;
    }
    if (pfn < 0) {
      if ((gfp & __GFP_NOWARN) === 0)
        this.mem.log.warning(
          "mm",
          `page allocation failure: order:${order}, mode:${formatGfp(gfp)}, nodemask=(null)`,
        );
      return null;
    }
    const mm = this.mem.memmap;
    const idx = mm.index(pfn);
    mm.refcount[idx] = 1;
    mm.order[idx] = order;
    mm.priv[idx] = 0;
    if ((gfp & __GFP_COMP) !== 0 && order > 0) {
      const flags = mm.flags;
      flags[idx] = (flags[idx] as number) | PG_head;
      const end = idx + (1 << order);
      for (let i = idx + 1; i < end; i++) flags[i] = (flags[i] as number) | PG_tail;
    }
    if ((gfp & __GFP_ZERO) !== 0) this.mem.cpuFill(pfn * PAGE_SIZE, PAGE_SIZE << order, 0);
    return pfn;
  }

  /** `alloc_page(gfp)` = `alloc_pages(gfp, 0)`. */
  allocPage(gfp: number): number | null {
    return this.allocPages(gfp, 0);
  }

  /**
   * `__free_pages(page, order)`: drops the caller's reference on the head; at zero the block
   * returns to the buddy allocator, merging with free buddies (`__free_one_page`). If other
   * references remain on a non-compound high-order page, the tail pages are freed now and the
   * head stays as an order-0 page, as the kernel does. Throws EINVAL (state unchanged) for a page
   * that is not an allocated head (free, double free, tail page, reserved, ZONE_DEVICE) or when
   * `order` differs from the allocation's order (the kernel would report a bad page).
   * @see mm/page_alloc.c __free_pages, __free_one_page
   */
  freePages(pfn: number, order: number): void {
    const mm = this.mem.memmap;
    const idx = this.checkAllocatedHead(pfn, "__free_pages");
    if (mm.order[idx] !== order)
      throw new KernelError(
        "EINVAL",
        `page_alloc: __free_pages: pfn ${hex(pfn)} was allocated at order ${mm.order[idx]}, freed at order ${order}`,
      );
    const rc = (mm.refcount[idx] as number) - 1;
    mm.refcount[idx] = rc;
    if (rc === 0) {
      this.freeBlock(pfn, idx, order);
    } else if (((mm.flags[idx] as number) & PG_head) === 0 && order > 0) {
      mm.order[idx] = 0;
      for (let o = order - 1; o >= 0; o--) {
        const off = 1 << o;
        this.freeBlock(pfn + off, idx + off, o);
      }
    }
  }

  /** `__free_page(page)` = `__free_pages(page, 0)`. */
  freePage(pfn: number): void {
    this.freePages(pfn, 0);
  }

  /**
   * `get_page(page)`: takes a reference on the page's folio (a tail page's reference goes to its
   * compound head). EINVAL on a free page (the kernel's `VM_BUG_ON_PAGE(page_ref_count == 0)`).
   * @see include/linux/mm.h get_page
   */
  getPage(pfn: number): void {
    const mm = this.mem.memmap;
    const h = this.compoundHead(pfn);
    const idx = mm.index(h);
    if (idx < 0 || (mm.refcount[idx] as number) <= 0)
      throw new KernelError("EINVAL", `page_alloc: get_page: pfn ${hex(pfn)} is not in use (refcount 0)`);
    mm.refcount[idx] = (mm.refcount[idx] as number) + 1;
  }

  /**
   * `put_page(page)`: drops a reference on the page's folio; at zero the whole allocation (the
   * compound page, or the non-compound block at its allocation order) returns to the buddy
   * allocator. ZONE_DEVICE pages keep their pgmap reference (refcount never drops below 1 here).
   * EINVAL (state unchanged) when the page holds no reference.
   * @see include/linux/mm.h put_page, mm/swap.c __folio_put
   */
  putPage(pfn: number): void {
    const mm = this.mem.memmap;
    const h = this.compoundHead(pfn);
    const idx = mm.index(h);
    if (idx < 0) throw new KernelError("EINVAL", `page_alloc: put_page: pfn ${hex(pfn)} has no struct page`);
    const rc = mm.refcount[idx] as number;
    const floor = mm.zone[idx] === ZONE_DEVICE ? 1 : 0;
    if (rc <= floor || ((mm.flags[idx] as number) & (PG_buddy | PG_reserved)) !== 0)
      throw new KernelError(
        "EINVAL",
        `page_alloc: put_page: pfn ${hex(pfn)} holds no reference (refcount ${rc})`,
      );
    mm.refcount[idx] = rc - 1;
    if (rc - 1 === 0) this.freeBlock(h, idx, mm.order[idx] as number);
  }

  /**
   * `page_count(page)`: the reference count of the page's folio (a tail page reports its head's).
   * 0 for a free page. @see include/linux/mm.h page_count
   */
  pageRefCount(pfn: number): number {
    const mm = this.mem.memmap;
    const idx = mm.index(this.compoundHead(pfn));
    return idx < 0 ? 0 : (mm.refcount[idx] as number);
  }

  /**
   * `compound_head(page)`: the head pfn of the compound page holding `pfn`, or `pfn` itself.
   * @see include/linux/page-flags.h compound_head
   */
  compoundHead(pfn: number): number {
    const mm = this.mem.memmap;
    const idx = mm.index(pfn);
    if (idx < 0 || ((mm.flags[idx] as number) & PG_tail) === 0) return pfn;
    for (let o = 1; o <= MAX_PAGE_ORDER; o++) {
      const off = pfn & ((1 << o) - 1);
      const h = idx - off;
      if (((mm.flags[h] as number) & PG_head) !== 0 && (mm.order[h] as number) >= o) return pfn - off;
    }
    return pfn;
  }

  /** `compound_order(page)`: the order of a compound head, 0 for any other page. */
  compoundOrder(pfn: number): number {
    const mm = this.mem.memmap;
    const idx = mm.index(pfn);
    if (idx < 0 || ((mm.flags[idx] as number) & PG_head) === 0) return 0;
    return mm.order[idx] as number;
  }

  /**
   * `split_page(page, order)`: turns a non-compound allocated block into 2^order order-0 pages,
   * each with refcount 1 (the head keeps its count). EINVAL for a compound page (the kernel
   * `VM_BUG_ON`s), a page not allocated, or an order other than the allocation's.
   * @see mm/page_alloc.c split_page
   */
  splitPage(pfn: number, order: number): void {
    const mm = this.mem.memmap;
    const idx = this.checkAllocatedHead(pfn, "split_page");
    if (((mm.flags[idx] as number) & PG_head) !== 0)
      throw new KernelError("EINVAL", `page_alloc: split_page: pfn ${hex(pfn)} is a compound page`);
    if (mm.order[idx] !== order)
      throw new KernelError(
        "EINVAL",
        `page_alloc: split_page: pfn ${hex(pfn)} was allocated at order ${mm.order[idx]}, not ${order}`,
      );
    mm.order[idx] = 0;
    const end = idx + (1 << order);
    for (let i = idx + 1; i < end; i++) {
      mm.refcount[i] = 1;
      mm.order[i] = 0;
      mm.priv[i] = 0;
    }
  }

  /**
   * `alloc_pages_exact(size, gfp)`: allocates `get_order(size)` pages, splits them and frees the
   * pages beyond `PAGE_ALIGN(size)`; returns the first pfn (each page has refcount 1) or null.
   * `__GFP_COMP` is dropped with a WARN_ONCE as in the kernel; size ≤ 0 returns null.
   * @see mm/page_alloc.c alloc_pages_exact, make_alloc_exact
   */
  allocPagesExact(size: number, gfp: number): number | null {
    if (!(size > 0)) return null;
    let g = gfp;
    if (
      this.mem.log.warnOnce(
        (g & (__GFP_COMP | __GFP_HIGHMEM)) !== 0,
        "mm-pages:alloc_pages_exact",
        "mm",
        `alloc_pages_exact: invalid mode:${formatGfp(g)} (__GFP_COMP or __GFP_HIGHMEM)`,
      )
    )
      g &= ~(__GFP_COMP | __GFP_HIGHMEM);
    const nr = Math.ceil(size / PAGE_SIZE);
    let order = 0;
    while (1 << order < nr) order++;
    const pfn = this.allocPages(g, order);
    if (pfn === null) return null;
    this.splitPage(pfn, order);
    const mm = this.mem.memmap;
    const idx = mm.index(pfn);
    const end = 1 << order;
    for (let i = nr; i < end; i++) mm.refcount[idx + i] = 0;
    this.freeRange(pfn + nr, pfn + end);
    return pfn;
  }

  /**
   * `free_pages_exact(virt, size)`: frees the `PAGE_ALIGN(size)` pages of an `alloc_pages_exact`
   * allocation (each page's reference is dropped; pages reaching zero return to the allocator).
   * EINVAL (state unchanged) if any page holds no reference.
   * @see mm/page_alloc.c free_pages_exact
   */
  freePagesExact(pfn: number, size: number): void {
    this.freeContigRange(pfn, Math.ceil(size / PAGE_SIZE), "free_pages_exact");
  }

  /**
   * `free_contig_range(pfn, nr_pages)`: drops one reference on each order-0 page; pages reaching
   * zero return to the allocator. WARNs "%lu pages are still in use!" for pages whose count was
   * not 1. EINVAL (state unchanged) if a page is free, compound or not RAM.
   * @see mm/page_alloc.c free_contig_range
   */
  freeContigRange(pfn: number, nrPages: number, caller = "free_contig_range"): void {
    const mm = this.mem.memmap;
    for (let p = pfn; p < pfn + nrPages; p++) {
      const idx = this.checkAllocatedHead(p, caller);
      if (mm.order[idx] !== 0 || ((mm.flags[idx] as number) & PG_head) !== 0)
        throw new KernelError(
          "EINVAL",
          `page_alloc: ${caller}: pfn ${hex(p)} heads an order-${mm.order[idx]} allocation, not an order-0 page`,
        );
    }
    let busy = 0;
    let runStart = -1;
    for (let p = pfn; p < pfn + nrPages; p++) {
      const idx = mm.index(p);
      const rc = (mm.refcount[idx] as number) - 1;
      if (rc !== 0) busy++;
      mm.refcount[idx] = rc;
      if (rc === 0) {
        if (runStart < 0) runStart = p;
      } else if (runStart >= 0) {
        this.freeRange(runStart, p);
        runStart = -1;
      }
    }
    if (runStart >= 0) this.freeRange(runStart, pfn + nrPages);
    this.mem.log.warn(busy !== 0, "mm", `${caller}: ${busy} pages are still in use!`);
  }

  /**
   * `nr_free_pages()` or one zone's `NR_FREE_PAGES` (CMA pages included).
   */
  nrFreePages(zone?: ZoneType): number {
    if (zone === undefined) {
      let n = 0;
      for (let i = 0; i < this.freeZ.length; i++) n += (this.freeZ[i] as number) + (this.pcpLen[i] as number);
      return n;
    }
    const k = zone * NR_MT;
    return (
      (this.freeZ[k] as number) +
      (this.freeZ[k + MT_CMA] as number) +
      (this.pcpLen[k] as number) +
      (this.pcpLen[k + MT_CMA] as number)
    );
  }

  /** Free CMA pages (`NR_FREE_CMA_PAGES`), in one zone or in all. */
  nrFreeCmaPages(zone?: ZoneType): number {
    if (zone !== undefined)
      return (this.freeZ[zone * NR_MT + MT_CMA] as number) + (this.pcpLen[zone * NR_MT + MT_CMA] as number);
    let n = 0;
    for (let z = 0; z < MAX_NR_ZONES; z++)
      n += (this.freeZ[z * NR_MT + MT_CMA] as number) + (this.pcpLen[z * NR_MT + MT_CMA] as number);
    return n;
  }

  /** Pages the allocator manages in a zone, or in all (`zone_managed_pages`, `totalram_pages`). */
  managedPages(zone?: ZoneType): number {
    if (zone !== undefined) return this.managedZ[zone] as number;
    let n = 0;
    for (let z = 0; z < MAX_NR_ZONES; z++) n += this.managedZ[z] as number;
    return n;
  }

  /** Number of free blocks of `order` in `zone` (`zone->free_area[order].nr_free`, /proc/buddyinfo). */
  freeArea(zone: ZoneType, order: number): number {
    this.drainAllPages();
    const base = zone * NR_MT * NR_PAGE_ORDERS + order;
    return (this.lens[base] as number) + (this.lens[base + NR_PAGE_ORDERS] as number);
  }

  /** Pages currently held by callers (managed − free − isolated). */
  allocated(): number {
    return this.managedPages() - this.nrFreePages() - this.isolatedPages();
  }

  /** Everything this allocator holds, per zone. */
  report(): PageAllocatorReport {
    this.drainAllPages();
    const zones: BuddyZoneReport[] = [];
    for (let z = 0; z < MAX_NR_ZONES; z++) {
      if ((this.managedZ[z] as number) === 0) continue;
      const zt = z as ZoneType;
      const freeArea: number[] = [];
      for (let o = 0; o < NR_PAGE_ORDERS; o++) freeArea.push(this.freeArea(zt, o));
      zones.push({
        zone: zt,
        name: ZONE_NAMES[z] as string,
        managed: this.managedZ[z] as number,
        free: this.nrFreePages(zt),
        freeCma: this.nrFreeCmaPages(zt),
        freeArea,
      });
    }
    return {
      managed: this.managedPages(),
      free: this.nrFreePages(),
      freeCma: this.nrFreeCmaPages(),
      allocated: this.allocated(),
      isolated: this.isolatedPages(),
      zones,
    };
  }

  /** /proc/buddyinfo lines: `Node 0, zone   Normal      3      1 ...`. */
  buddyinfo(): string {
    return this.report()
      .zones.map(
        (z) => `Node 0, zone ${z.name.padStart(8)} ${z.freeArea.map((n) => String(n).padStart(6)).join(" ")}`,
      )
      .join("\n");
  }

  /**
   * The zone an allocation with `gfp` starts from on this machine: {@link gfpZone} with zones this
   * machine lacks folded away (no ZONE_DMA → `__GFP_DMA` acts as DMA32 or NORMAL, like
   * OPT_ZONE_DMA without CONFIG_ZONE_DMA). EINVAL for contradictory modifiers.
   */
  gfpZone(gfp: number): ZoneType {
    const z = this.zoneOf[gfp & GFP_ZONEMASK] as number;
    if (z < 0) return gfpZone(gfp);
    return z as ZoneType;
  }

  /**
   * Installs the page-migration hook that `alloc_contig_range` (CMA) calls for in-use `PG_lru`
   * pages in the range it claims; null removes it. See {@link MigrateHook}.
   */
  setMigrateHook(hook: MigrateHook | null): void {
    this.migrateHook = hook;
  }

  /**
   * `alloc_contig_range(start, end)`: claims every page of [startPfn, endPfn) as order-0 pages
   * with refcount 1. Free pages are isolated from the free lists (blocks straddling the edges are
   * split); in-use `PG_lru` pages are moved away by the migrate hook. Throws EBUSY (the range
   * returns to the allocator, migrated pages stay moved) when a page is unmovable, no hook is
   * installed, or a migration fails; EINVAL for a range outside RAM, spanning zones or empty.
   * @see mm/page_alloc.c alloc_contig_range, mm/page_isolation.c start_isolate_page_range
   */
  allocContigRange(startPfn: number, endPfn: number): void {
    const mm = this.mem.memmap;
    const what = `alloc_contig_range [${hex(startPfn)}, ${hex(endPfn)})`;
    this.drainAllPages();
    if (!(endPfn > startPfn) || !Number.isSafeInteger(startPfn) || !Number.isSafeInteger(endPfn))
      throw new KernelError("EINVAL", `page_alloc: ${what}: empty or invalid range`);
    const i0 = mm.index(startPfn);
    if (i0 < 0 || !this.mem.pfnValid(startPfn) || !this.mem.pfnValid(endPfn - 1))
      throw new KernelError("EINVAL", `page_alloc: ${what}: not RAM`);
    const zone = mm.zone[i0] as number;
    if (zone === ZONE_DEVICE) throw new KernelError("EINVAL", `page_alloc: ${what}: ZONE_DEVICE memory`);
    // Pass 1 checks without side effects, as has_unmovable_pages does before isolating.
    let pfn = startPfn;
    while (pfn < endPfn) {
      const idx = mm.index(pfn);
      if (idx < 0 || !this.mem.isRam(pfn * PAGE_SIZE))
        throw new KernelError("EINVAL", `page_alloc: ${what}: pfn ${hex(pfn)} is not RAM`);
      if (mm.zone[idx] !== zone)
        throw new KernelError(
          "EINVAL",
          `page_alloc: ${what}: spans zones ${ZONE_NAMES[zone]} and ${ZONE_NAMES[mm.zone[idx] as number]}`,
        );
      const fb = this.freeBlockHead(pfn, idx);
      if (fb >= 0) {
        pfn = fb + (1 << (mm.order[mm.index(fb)] as number));
        continue;
      }
      const h = this.compoundHead(pfn);
      const hidx = mm.index(h);
      const f = mm.flags[hidx] as number;
      if ((f & PG_reserved) !== 0)
        throw new KernelError("EBUSY", `page_alloc: ${what}: pfn ${hex(pfn)} is reserved`);
      if ((f & PG_lru) === 0 || (mm.refcount[hidx] as number) <= 0)
        throw new KernelError("EBUSY", `page_alloc: ${what}: pfn ${hex(pfn)} is in use and unmovable`);
      if (this.migrateHook === null)
        throw new KernelError(
          "EBUSY",
          `page_alloc: ${what}: pfn ${hex(pfn)} is in use (movable) and no migrate hook is installed`,
        );
      pfn = h + ((f & PG_head) !== 0 ? 1 << (mm.order[hidx] as number) : 1);
    }

    const iso: Isolation = {
      start: startPfn,
      end: endPfn,
      free: new Uint8Array(endPfn - startPfn),
      count: 0,
    };
    this.isolations.push(iso);
    pfn = startPfn;
    while (pfn < endPfn) {
      const idx = mm.index(pfn);
      const fb = this.freeBlockHead(pfn, idx);
      if (fb < 0) {
        pfn++;
        continue;
      }
      const bidx = mm.index(fb);
      const o = mm.order[bidx] as number;
      this.removeFree(bidx);
      // Re-freeing routes the part inside the range to the isolation, the rest to the free lists.
      this.freeOne(fb, bidx, o);
      pfn = fb + (1 << o);
    }

    let failure: string | null = null;
    pfn = startPfn;
    while (pfn < endPfn) {
      if (iso.free[pfn - startPfn] === 1) {
        pfn++;
        continue;
      }
      const h = this.compoundHead(pfn);
      const hidx = mm.index(h);
      const n = ((mm.flags[hidx] as number) & PG_head) !== 0 ? 1 << (mm.order[hidx] as number) : 1;
      const hook = this.migrateHook;
      if (
        hook === null ||
        ((mm.flags[hidx] as number) & PG_lru) === 0 ||
        (mm.refcount[hidx] as number) <= 0
      ) {
        failure = `pfn ${hex(pfn)} is in use and unmovable`;
        break;
      }
      const moved = hook(h);
      if (moved === null) {
        failure = `migration of pfn ${hex(h)} failed`;
        break;
      }
      const to = Math.min(h + n, endPfn);
      for (let p = Math.max(h, startPfn); p < to; p++)
        if (iso.free[p - startPfn] !== 1) {
          failure = `pfn ${hex(p)} still in use after migrating to ${hex(moved)}`;
          break;
        }
      if (failure !== null) break;
      pfn = to;
    }

    this.isolations.splice(this.isolations.indexOf(iso), 1);
    if (failure !== null) {
      let run = -1;
      for (let p = startPfn; p <= endPfn; p++) {
        const isFree = p < endPfn && iso.free[p - startPfn] === 1;
        if (isFree && run < 0) run = p;
        else if (!isFree && run >= 0) {
          this.freeRange(run, p);
          run = -1;
        }
      }
      throw new KernelError("EBUSY", `page_alloc: ${what}: ${failure}`);
    }
    for (let p = startPfn; p < endPfn; ) {
      const idx = mm.index(p);
      const n = Math.min(endPfn - p, PAGES_PER_SECTION - (p % PAGES_PER_SECTION));
      for (let i = idx; i < idx + n; i++) {
        mm.refcount[i] = 1;
        mm.order[i] = 0;
        mm.priv[i] = 0;
      }
      p += n;
    }
  }

  /** @internal CMA: a new area id (memmap.owner = id + 1). */
  allocCmaId(): number {
    return this.nextCmaId++;
  }

  /**
   * @internal CMA at boot (`init_cma_reserved_pageblock`): claims the free range, marks every page
   * PG_cma with `owner`, and gives the pages back so only movable allocations and `cma_alloc`
   * see them. EBUSY if a page is in use.
   */
  markCma(startPfn: number, endPfn: number, owner: number): void {
    const mm = this.mem.memmap;
    for (let p = startPfn; p < endPfn; p++) {
      const idx = mm.index(p);
      if (idx >= 0 && ((mm.flags[idx] as number) & PG_cma) !== 0)
        throw new KernelError("EBUSY", `cma: pfn ${hex(p)} already belongs to a CMA area`);
    }
    const hook = this.migrateHook;
    this.migrateHook = null;
    try {
      this.allocContigRange(startPfn, endPfn);
    } finally {
      this.migrateHook = hook;
    }
    for (let p = startPfn; p < endPfn; p++) {
      const idx = mm.index(p);
      mm.flags[idx] = (mm.flags[idx] as number) | PG_cma;
      mm.owner[idx] = owner;
    }
    this.freeContigRange(startPfn, endPfn - startPfn);
  }

  /** @internal True if every page of [startPfn, endPfn) is free in the buddy lists. */
  rangeIsFree(startPfn: number, endPfn: number): boolean {
    this.drainAllPages();
    const mm = this.mem.memmap;
    let pfn = startPfn;
    while (pfn < endPfn) {
      const idx = mm.index(pfn);
      if (idx < 0) return false;
      const fb = this.freeBlockHead(pfn, idx);
      if (fb < 0) return false;
      pfn = fb + (1 << (mm.order[mm.index(fb)] as number));
    }
    return true;
  }

  // ---------------------------------------------------------------- internals

  private isolatedPages(): number {
    let n = 0;
    for (const iso of this.isolations) n += iso.count;
    return n;
  }

  /** Validates an allocated head (refcount > 0, not free/tail/reserved/device) and returns its index. */
  private checkAllocatedHead(pfn: number, caller: string): number {
    const mm = this.mem.memmap;
    const idx = Number.isSafeInteger(pfn) ? mm.index(pfn) : -1;
    if (idx < 0) throw new KernelError("EINVAL", `page_alloc: ${caller}: pfn ${hex(pfn)} has no struct page`);
    const f = mm.flags[idx] as number;
    if (mm.zone[idx] === ZONE_DEVICE)
      throw new KernelError("EINVAL", `page_alloc: ${caller}: pfn ${hex(pfn)} is ZONE_DEVICE memory`);
    if ((f & PG_reserved) !== 0)
      throw new KernelError("EINVAL", `page_alloc: ${caller}: pfn ${hex(pfn)} is reserved`);
    if ((f & PG_tail) !== 0)
      throw new KernelError("EINVAL", `page_alloc: ${caller}: pfn ${hex(pfn)} is a tail page`);
    if ((f & PG_buddy) !== 0 || (mm.refcount[idx] as number) <= 0)
      throw new KernelError(
        "EINVAL",
        `page_alloc: ${caller}: pfn ${hex(pfn)} is not allocated (free page or double free)`,
      );
    return idx;
  }

  /** The head pfn of the free block containing `pfn`, or -1. */
  private freeBlockHead(pfn: number, idx: number): number {
    const mm = this.mem.memmap;
    const flags = mm.flags;
    const ord = mm.order;
    for (let o = 0; o <= MAX_PAGE_ORDER; o++) {
      const off = pfn & ((1 << o) - 1);
      const h = idx - off;
      if (((flags[h] as number) & PG_buddy) !== 0 && (ord[h] as number) >= o) return pfn - off;
    }
    return -1;
  }

  private rmqueue(z: number, order: number, cmaOk: boolean): number {
    const base = z * NR_MT * NR_PAGE_ORDERS;
    if (cmaOk) {
      const cma = this.freeZ[z * NR_MT + MT_CMA] as number;
      if (cma > ((this.freeZ[z * NR_MT] as number) + cma) / 2) {
        const p = this.take(base + NR_PAGE_ORDERS, order);
        if (p >= 0) return p;
      }
    }
    const p = this.take(base, order);
    if (p >= 0 || !cmaOk) return p;
    return this.take(base + NR_PAGE_ORDERS, order);
  }

  /** Pops a block of at least `order` from the lists at `base` and splits it down (`expand`). */
  private take(base: number, order: number): number {
    const lens = this.lens;
    for (let o = order; o <= MAX_PAGE_ORDER; o++) {
      const L = base + o;
      const n = (lens[L] as number) - 1;
      if (n < 0) continue;
      const pfn = (this.lists[L] as Float64Array)[n] as number;
      lens[L] = n;
      const mm = this.mem.memmap;
      const idx = mm.index(pfn);
      mm.flags[idx] = (mm.flags[idx] as number) & ~PG_buddy;
      const mt = (L / NR_PAGE_ORDERS) | 0;
      this.freeZ[mt] = (this.freeZ[mt] as number) - (1 << o);
      for (let s = o - 1; s >= order; s--) {
        const off = 1 << s;
        this.push(base + s, pfn + off, idx + off, s);
      }
      return pfn;
    }
    return -1;
  }

  private push(L: number, pfn: number, idx: number, order: number): void {
    let list = this.lists[L] as Float64Array;
    const n = this.lens[L] as number;
    if (n === list.length) {
      const grown = new Float64Array(list.length * 2);
      grown.set(list);
      this.lists[L] = grown;
      list = grown;
    }
    list[n] = pfn;
    this.lens[L] = n + 1;
    const mm = this.mem.memmap;
    if (order === MAX_PAGE_ORDER) {
      const k = idx >>> MAX_PAGE_ORDER;
      if (k >= this.maxSlot.length) {
        const grown = new Int32Array(Math.max(k + 1, mm.pages >>> MAX_PAGE_ORDER));
        grown.set(this.maxSlot);
        this.maxSlot = grown;
      }
      this.maxSlot[k] = n;
    } else {
      mm.priv[idx] = n;
    }
    mm.flags[idx] = (mm.flags[idx] as number) | PG_buddy;
    mm.order[idx] = order;
    const mt = (L / NR_PAGE_ORDERS) | 0;
    this.freeZ[mt] = (this.freeZ[mt] as number) + (1 << order);
  }

  /** Takes the free block headed at memmap index `idx` off its list (swap-remove via `priv`). */
  private removeFree(idx: number): void {
    const mm = this.mem.memmap;
    const f = mm.flags[idx] as number;
    const order = mm.order[idx] as number;
    const mt = (mm.zone[idx] as number) * NR_MT + ((f & PG_cma) !== 0 ? MT_CMA : 0);
    const L = mt * NR_PAGE_ORDERS + order;
    const list = this.lists[L] as Float64Array;
    const isMax = order === MAX_PAGE_ORDER;
    const slot = (isMax ? this.maxSlot[idx >>> MAX_PAGE_ORDER] : mm.priv[idx]) as number;
    const last = (this.lens[L] as number) - 1;
    if (slot !== last) {
      const moved = list[last] as number;
      list[slot] = moved;
      if (isMax) this.maxSlot[mm.index(moved) >>> MAX_PAGE_ORDER] = slot;
      else mm.priv[mm.index(moved)] = slot;
    }
    this.lens[L] = last;
    mm.flags[idx] = f & ~PG_buddy;
    if (!isMax) mm.priv[idx] = 0;
    this.freeZ[mt] = (this.freeZ[mt] as number) - (1 << order);
  }

  /** `free_pages_prepare` + `__free_one_page` for an allocated block whose refcount reached 0. */
  private freeBlock(pfn: number, idx: number, order: number): void {
    const mm = this.mem.memmap;
    const flags = mm.flags;
    if ((mm.mapcount[idx] as number) !== 0)
      this.mem.log.err(
        "mm",
        `BUG: Bad page state: pfn ${hex(pfn)} freed with nonzero mapcount ${mm.mapcount[idx]}`,
      );
    if (order === 0) {
      flags[idx] = (flags[idx] as number) & PG_cma;
      mm.mapcount[idx] = 0;
      mm.refcount[idx] = 0;
    } else {
      const end = idx + (1 << order);
      // A block never mixes CMA and non-CMA pages, so the head's PG_cma holds for every page.
      flags.fill((flags[idx] as number) & PG_cma, idx, end);
      mm.mapcount.fill(0, idx, end);
      mm.refcount.fill(0, idx, end);
    }
    mm.priv[idx] = 0;
    if (order === 0 && this.isolations.length === 0) {
      this.pcpPush(
        (mm.zone[idx] as number) * NR_MT + (((flags[idx] as number) & PG_cma) !== 0 ? MT_CMA : 0),
        pfn,
      );
      return;
    }
    this.freeOne(pfn, idx, order);
  }

  /**
   * `drain_all_pages()`: returns every page on the per-CPU lists to the buddy free lists (where
   * they merge). Called by `alloc_contig_range`, {@link report} and {@link freeArea}.
   * @see mm/page_alloc.c drain_all_pages, free_pcppages_bulk
   */
  drainAllPages(): void {
    const mm = this.mem.memmap;
    for (let k = 0; k < this.pcpLen.length; k++) {
      const n = this.pcpLen[k] as number;
      if (n === 0) continue;
      const list = this.pcp[k] as Float64Array;
      this.pcpLen[k] = 0;
      for (let i = 0; i < n; i++) {
        const p = list[i] as number;
        this.freeOne(p, mm.index(p), 0);
      }
    }
  }

  /** `free_frozen_pages` of an order-0 page: onto the pcp list; past `high`, a batch goes to the buddy lists. */
  private pcpPush(k: number, pfn: number): void {
    const list = this.pcp[k] as Float64Array;
    let n = this.pcpLen[k] as number;
    list[n++] = pfn;
    if (n > PCP_HIGH) {
      // Oldest first, as free_pcppages_bulk takes from the list tail.
      const mm = this.mem.memmap;
      this.pcpLen[k] = 0;
      for (let i = 0; i < PCP_BATCH; i++) {
        const p = list[i] as number;
        this.freeOne(p, mm.index(p), 0);
      }
      list.copyWithin(0, PCP_BATCH, n);
      n -= PCP_BATCH;
    }
    this.pcpLen[k] = n;
  }

  /** `rmqueue_pcplist`: an order-0 page from the zone's pcp lists, refilled by `rmqueue_bulk`. */
  private rmqueuePcp(z: number, cmaOk: boolean): number {
    const k = z * NR_MT;
    let first = k;
    let second = -1;
    if (cmaOk) {
      const cma = (this.freeZ[k + MT_CMA] as number) + (this.pcpLen[k + MT_CMA] as number);
      const normal = (this.freeZ[k] as number) + (this.pcpLen[k] as number);
      if (cma > (cma + normal) / 2) {
        first = k + MT_CMA;
        second = k;
      } else {
        second = k + MT_CMA;
      }
    }
    const p = this.pcpPop(first);
    if (p >= 0 || second < 0) return p;
    return this.pcpPop(second);
  }

  private pcpPop(k: number): number {
    let n = this.pcpLen[k] as number;
    const list = this.pcp[k] as Float64Array;
    if (n === 0) {
      const base = k * NR_PAGE_ORDERS;
      while (n < PCP_BATCH) {
        const p = this.take(base, 0);
        if (p < 0) break;
        list[n++] = p;
      }
      if (n === 0) return -1;
      // rmqueue_bulk appends in allocation order and rmqueue_pcplist takes from the head.
      list.subarray(0, n).reverse();
    }
    n--;
    this.pcpLen[k] = n;
    return list[n] as number;
  }

  /** `__free_one_page`: merges with free buddies of the same zone and migratetype, then lists the block. */
  private freeOne(pfn0: number, idx0: number, order0: number): void {
    if (this.isolations.length !== 0 && this.freeIntoIsolation(pfn0, idx0, order0)) return;
    const mm = this.mem.memmap;
    const flags = mm.flags;
    const ord = mm.order;
    const zone = mm.zone[idx0] as number;
    const cma = (flags[idx0] as number) & PG_cma;
    let pfn = pfn0;
    let idx = idx0;
    let order = order0;
    while (order < MAX_PAGE_ORDER) {
      const bit = 1 << order;
      const bidx = idx ^ bit;
      const bf = flags[bidx] as number;
      if ((bf & PG_buddy) === 0 || ord[bidx] !== order || mm.zone[bidx] !== zone || (bf & PG_cma) !== cma)
        break;
      this.removeFree(bidx);
      if (bidx < idx) {
        idx = bidx;
        pfn -= bit;
      }
      order++;
    }
    this.push((zone * NR_MT + (cma !== 0 ? MT_CMA : 0)) * NR_PAGE_ORDERS + order, pfn, idx, order);
  }

  /** Parks the parts of a freed block that lie in an isolated range; returns true if it handled the block. */
  private freeIntoIsolation(pfn: number, idx: number, order: number): boolean {
    const end = pfn + (1 << order);
    for (const iso of this.isolations) {
      if (end <= iso.start || pfn >= iso.end) continue;
      if (pfn >= iso.start && end <= iso.end) {
        iso.free.fill(1, pfn - iso.start, end - iso.start);
        iso.count += 1 << order;
        return true;
      }
      const half = 1 << (order - 1);
      this.freeOne(pfn, idx, order - 1);
      this.freeOne(pfn + half, idx + half, order - 1);
      return true;
    }
    return false;
  }

  /**
   * Frees [start, end) of pages with refcount 0 as maximal aligned blocks; `clean` clears their
   * flags first (boot memory is already clean, and 16M page writes would dominate boot time).
   */
  private freeRange(start: number, end: number, clean = true): void {
    const mm = this.mem.memmap;
    let pfn = start;
    while (pfn < end) {
      let o = MAX_PAGE_ORDER;
      while ((pfn & ((1 << o) - 1)) !== 0 || pfn + (1 << o) > end) o--;
      const idx = mm.index(pfn);
      if (clean) {
        const last = idx + (1 << o);
        for (let i = idx; i < last; i++) mm.flags[i] = (mm.flags[i] as number) & PG_cma;
      }
      this.freeOne(pfn, idx, o);
      pfn += 1 << o;
    }
  }

  /** `memblock_free_all`: every non-reserved RAM page goes to the free lists as max-order blocks. */
  private freeAllBootMemory(): void {
    const mem = this.mem;
    const mm = mem.memmap;
    const limits = mem.zoneLimits;
    const bounds = [limits.dma, limits.dma32, limits.movableStart]
      .filter((b) => b > 0 && Number.isFinite(b))
      .map((b) => Math.floor(b / PAGE_SIZE));
    for (const bank of mem.banks) {
      const bankEnd = (bank.start + bank.size) / PAGE_SIZE;
      let pfn = bank.start / PAGE_SIZE;
      while (pfn < bankEnd) {
        // One section at a time (indices are contiguous within it), cut at zone boundaries.
        let end = Math.min(bankEnd, (Math.floor(pfn / PAGES_PER_SECTION) + 1) * PAGES_PER_SECTION);
        for (const b of bounds) if (b > pfn && b < end) end = b;
        const flags = mm.flags;
        const base = mm.idx(pfn);
        const n = end - pfn;
        if (allZero(flags, base, base + n)) {
          const z = mm.zone[base] as number;
          this.managedZ[z] = (this.managedZ[z] as number) + n;
          this.freeRange(pfn, end, false);
          pfn = end;
          continue;
        }
        let i = 0;
        while (i < n) {
          const v = flags[base + i] as number;
          let j = i + 1;
          while (j < n && flags[base + j] === v) j++;
          if ((v & ~PG_cma) === 0) {
            const z = mm.zone[base + i] as number;
            this.managedZ[z] = (this.managedZ[z] as number) + (j - i);
            this.freeRange(pfn + i, pfn + j, false);
          }
          i = j;
        }
        pfn = end;
      }
    }
  }
}

/** True if `a[from..to)` is all zero; reads two u16 at a time where aligned. */
function allZero(a: Uint16Array, from: number, to: number): boolean {
  if ((a.byteOffset & 3) !== 0) {
    for (let k = from; k < to; k++) if (a[k] !== 0) return false;
    return true;
  }
  let i = from;
  if ((i & 1) !== 0 && i < to) if (a[i++] !== 0) return false;
  const words = new Uint32Array(a.buffer, a.byteOffset, a.length >>> 1);
  const wEnd = to >>> 1;
  for (let w = i >>> 1; w < wEnd; w++) if (words[w] !== 0) return false;
  for (let k = wEnd << 1; k < to; k++) if (k >= i && a[k] !== 0) return false;
  return true;
}
