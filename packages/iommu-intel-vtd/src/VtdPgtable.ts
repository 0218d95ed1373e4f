import { hex, KernelError, KernelLog } from "@dmakit/core";
import { type IommuPagesList, MapPagesError, type PgtableMemory } from "@dmakit/iommu";
import type { PhysMem } from "@dmakit/mm-pages";
import { descPfn, LEVEL_PAGES, type TableViews, tableViewsFor } from "./internal/TableViews.js";
import {
  agawToLevel,
  agawToWidth,
  DMA_PTE_LARGE_PAGE,
  DMA_PTE_READ,
  DMA_PTE_SNP,
  DMA_PTE_WRITE,
  VTD_PAGE_SIZE,
} from "./vtdConstants.js";

/** How a {@link VtdPgtable} is set up. Model-only: the kernel keeps these in `struct dmar_domain`. */
export interface VtdPgtableConfig {
  /** Where table pages come from (zeroed 4 KiB pages in simulated RAM). */
  mem: PgtableMemory;
  /** `agaw`: 1 → 3-level/39-bit, 2 → 4-level/48-bit, 3 → 5-level/57-bit. */
  agaw: number;
  /** `gaw`: the domain's guest address width in bits (≤ the agaw's width); default the agaw's width. */
  gaw?: number;
  /** `iommu_superpage`: 0 = 4 KiB only, 1 = also 2 MiB, 2 = also 1 GiB. Default 2. */
  superpage?: number;
  /** Where `pr_crit`/WARN lines go. */
  log?: KernelLog;
  /** Name for messages. */
  name?: string;
  /**
   * `cache_tag_flush_range(domain, start, end, 0)`: called when mapping a superpage replaces an
   * empty lower-level table (`switch_to_super_page`), before the table page is freed.
   */
  flushRange?: (start: number, end: number) => void;
  /** `gfp` used for tables allocated on the unmap/superpage path (the kernel's GFP_ATOMIC). */
  atomicGfp?: number;
}

/** Counts and forwards table pages; drops cached views on free. */
class TableMemory implements PgtableMemory {
  readonly phys: PhysMem;
  pagesInUse = 0;
  /** Called before a page is freed (the table forgets the views it memoised). */
  onFree: (() => void) | null = null;
  constructor(
    private readonly inner: PgtableMemory,
    private readonly views: TableViews,
  ) {
    this.phys = inner.phys;
  }
  allocTablePage(order: number, gfp?: number): number | null {
    const pfn = this.inner.allocTablePage(order, gfp);
    if (pfn !== null) this.pagesInUse += order === 0 ? 1 : 2 ** order;
    return pfn;
  }
  freeTablePage(pfn: number, order: number): void {
    this.onFree?.();
    const n = order === 0 ? 1 : 2 ** order;
    for (let i = 0; i < n; i++) this.views.drop(pfn + i);
    this.pagesInUse -= n;
    this.inner.freeTablePage(pfn, order);
  }
}

const TWO32 = 4294967296;

function hex64(lo: number, hi: number): string {
  return hi !== 0 ? hi.toString(16) + (lo >>> 0).toString(16).padStart(8, "0") : (lo >>> 0).toString(16);
}

/**
 * A VT-d second-level page table in simulated RAM, with the kernel driver's classic algorithms:
 * `__domain_mapping` (superpages chosen by `hardware_largepage_caps` from the alignment of IOVA and
 * physical pfn and the remaining length), `switch_to_super_page`, `domain_unmap` /
 * `dma_pte_clear_level` (subtables wholly inside the range go to the freelist without being
 * cleared), `pfn_to_dma_pte` and `intel_iommu_iova_to_phys`.
 *
 * Descriptors are 64-bit, stored as two little-endian 32-bit words: R (bit 0), W (1), PS (7),
 * SNP (11), address bits 51:12. An entry with R = W = 0 is not present. Table pointers carry R|W,
 * as the kernel writes them.
 *
 * Model differences (see the package README): mapping over a present entry throws `EEXIST` after
 * the kernel's `pr_crit` and WARN (the kernel carries on leaving the old entry); a superpage over a
 * table that still maps pages throws `EEXIST` (the kernel's `switch_to_super_page` would drop those
 * mappings); unmapping stops at the first hole (the kernel clears the whole rounded range and
 * reports its size); unmapping from inside a superpage WARNs and unmaps nothing.
 * @see drivers/iommu/intel/iommu.c __domain_mapping, domain_unmap, pfn_to_dma_pte
 */
export class VtdPgtable {
  readonly agaw: number;
  readonly levels: number;
  /** Guest address width in bits. */
  readonly gaw: number;
  /** `DOMAIN_MAX_PFN(gaw)`. */
  readonly maxPfn: number;
  readonly superpage: number;
  /** Root table page (`domain->pgd`); -1 after {@link freeAll}. */
  pgdPfn: number;
  readonly name: string;
  readonly log: KernelLog;
  readonly phys: PhysMem;
  private readonly views: TableViews;
  private readonly mem: TableMemory;
  private readonly flushRange: ((start: number, end: number) => void) | null;
  private readonly atomicGfp: number;
  // Walk results (no object per walk).
  private wIdx = 0;
  private wLevel = 0;
  private wConflict = false;
  // The last table page looked up at each level and its view, so walks of neighbouring pages skip
  // the view cache's Map probe; forgotten whenever any of this table's pages is freed.
  private readonly memoPfn: Float64Array;
  private readonly memoView: Array<Uint32Array | null>;

  constructor(cfg: VtdPgtableConfig) {
    if (!Number.isInteger(cfg.agaw) || cfg.agaw < 1 || cfg.agaw > 3)
      throw new KernelError("EINVAL", `vtd-pgtable: agaw ${cfg.agaw} not in 1..3 (39/48/57-bit)`);
    this.agaw = cfg.agaw;
    this.levels = agawToLevel(cfg.agaw);
    const width = agawToWidth(cfg.agaw);
    this.gaw = cfg.gaw ?? width;
    if (this.gaw > width || this.gaw < 12)
      throw new KernelError(
        "EINVAL",
        `vtd-pgtable: gaw ${this.gaw} outside 12..${width} for agaw ${cfg.agaw}`,
      );
    this.maxPfn = 2 ** (this.gaw - 12) - 1;
    this.superpage = Math.min(cfg.superpage ?? 2, this.levels - 1);
    this.name = cfg.name ?? "vtd-pgtable";
    this.log = cfg.log ?? new KernelLog();
    this.phys = cfg.mem.phys;
    this.views = tableViewsFor(cfg.mem.phys);
    this.mem = new TableMemory(cfg.mem, this.views);
    this.memoPfn = new Float64Array(this.levels + 1).fill(-1);
    this.memoView = new Array<Uint32Array | null>(this.levels + 1).fill(null);
    this.mem.onFree = () => this.memoPfn.fill(-1);
    this.flushRange = cfg.flushRange ?? null;
    this.atomicGfp = cfg.atomicGfp ?? 0;
    const pgd = this.mem.allocTablePage(0);
    if (pgd === null) throw new KernelError("ENOMEM", `vtd-pgtable: ${this.name}: no page for the pgd`);
    this.pgdPfn = pgd;
  }

  /** Table pages this table holds (including pages on a freelist not yet freed). */
  get tablePages(): number {
    return this.mem.pagesInUse;
  }

  /** The memory handle freed pages must go back through (for `IommuPagesList.add`). */
  get memory(): PgtableMemory {
    return this.mem;
  }

  /** The view of the level-`level` table page `pfn` (memoised per level). */
  private view(level: number, pfn: number): Uint32Array {
    if (this.memoPfn[level] === pfn) return this.memoView[level] as Uint32Array;
    const v = this.views.get(pfn);
    this.memoPfn[level] = pfn;
    this.memoView[level] = v;
    return v;
  }

  /** Largest superpage level usable at (iovPfn, physPfn) for `pages`: `hardware_largepage_caps`. */
  largepageCaps(iovPfn: number, physPfn: number, pages: number): number {
    let support = this.superpage;
    let level = 1;
    let a = iovPfn;
    let b = physPfn;
    // `a | b` works on the low 32 bits (ToInt32 keeps them exactly), which is all the test needs.
    while (support > 0 && ((a | b) & 511) === 0) {
      pages = Math.floor(pages / 512);
      if (pages === 0) break;
      a /= 512;
      b /= 512;
      level++;
      support--;
    }
    return level;
  }

  /**
   * `pfn_to_dma_pte(domain, pfn, &level, gfp)` with a target level: walks from the pgd, allocating
   * missing tables, and returns the view of the table holding the entry for `pfn` at `target`
   * (index in `wIdx`), or null when a table page cannot be allocated. A superpage met above the
   * target sets `wConflict` and returns its table (the kernel would descend into the data page).
   */
  private walkAlloc(pfn: number, target: number, gfp: number): Uint32Array | null {
    let table = this.pgdPfn;
    this.wConflict = false;
    for (let level = this.levels; ; level--) {
      const v = this.view(level, table);
      const idx = (pfn / (LEVEL_PAGES[level] as number)) & 511;
      if (level === target) {
        this.wIdx = idx;
        return v;
      }
      const lo = v[2 * idx] as number;
      if ((lo & 3) === 0) {
        const page = this.mem.allocTablePage(0, gfp);
        if (page === null) return null;
        v[2 * idx] = ((page & 0xfffff) * 4096 + DMA_PTE_READ + DMA_PTE_WRITE) >>> 0;
        v[2 * idx + 1] = (page / 1048576) | 0;
        table = page;
      } else if ((lo & DMA_PTE_LARGE_PAGE) !== 0) {
        this.wIdx = idx;
        this.wLevel = level;
        this.wConflict = true;
        return v;
      } else {
        table = descPfn(lo, v[2 * idx + 1] as number);
      }
    }
  }

  /**
   * Finds the leaf for `pfn` (`pfn_to_dma_pte` with target level 0): returns the table view with
   * the index in `wIdx` and the level in `wLevel`, or null when the walk meets a non-present entry
   * (`wLevel` is then where it stopped) or `pfn` is beyond the address width.
   */
  private lookupLeaf(pfn: number): Uint32Array | null {
    if (pfn > this.maxPfn || this.pgdPfn < 0) {
      this.wLevel = this.levels;
      return null;
    }
    let table = this.pgdPfn;
    for (let level = this.levels; ; level--) {
      const v = this.view(level, table);
      const idx = (pfn / (LEVEL_PAGES[level] as number)) & 511;
      const lo = v[2 * idx] as number;
      this.wLevel = level;
      if ((lo & 3) === 0) return null;
      if (level === 1 || (lo & DMA_PTE_LARGE_PAGE) !== 0) {
        this.wIdx = idx;
        return v;
      }
      table = descPfn(lo, v[2 * idx + 1] as number);
    }
  }

  private alreadySet(iovPfn: number, v: Uint32Array, idx: number, newLo: number, newHi: number): void {
    this.log.log(
      "crit",
      "DMAR",
      `ERROR: DMA PTE for vPFN 0x${iovPfn.toString(16)} already set (to ${hex64(v[2 * idx] as number, v[2 * idx + 1] as number)} not ${hex64(newLo, newHi)})`,
    );
    this.log.warn(
      true,
      "DMAR",
      `WARNING: __domain_mapping: ${this.name}: PTE for iova ${hex(iovPfn * VTD_PAGE_SIZE)} already set`,
    );
  }

  /**
   * `__domain_mapping(domain, iov_pfn, phys_pfn, nr_pages, prot, gfp)`: maps `nrPages` 4 KiB pages,
   * using 2 MiB / 1 GiB superpages wherever both pfns are aligned and enough pages remain. `prot` is
   * `DMA_PTE_READ | DMA_PTE_WRITE | DMA_PTE_SNP` bits.
   *
   * Throws `EINVAL` when the range is beyond the address width or `prot` has neither R nor W
   * (nothing mapped); `EEXIST` (after the kernel's "already set" line and a WARN) or `ENOMEM` as a
   * {@link MapPagesError} carrying the bytes installed before the failure, in IOVA order.
   */
  map(iovPfn: number, physPfn: number, nrPages: number, prot: number, gfp = 0): void {
    if (iovPfn + nrPages - 1 > this.maxPfn || nrPages < 0)
      throw new KernelError(
        "EINVAL",
        `vtd-pgtable: ${this.name}: iova ${hex(iovPfn * VTD_PAGE_SIZE)}+${hex(nrPages * VTD_PAGE_SIZE)} beyond the ${this.gaw}-bit address width`,
      );
    if ((prot & (DMA_PTE_READ | DMA_PTE_WRITE)) === 0)
      throw new KernelError(
        "EINVAL",
        `vtd-pgtable: ${this.name}: prot 0x${prot.toString(16)} has neither read nor write`,
      );
    const attr = prot & (DMA_PTE_READ | DMA_PTE_WRITE | DMA_PTE_SNP);
    const start = iovPfn;
    while (nrPages > 0) {
      const lvl = this.largepageCaps(iovPfn, physPfn, nrPages);
      const v = this.walkAlloc(iovPfn, lvl, gfp);
      if (v === null)
        throw new MapPagesError(
          "ENOMEM",
          `vtd-pgtable: ${this.name}: no page for a level-${lvl} table at iova ${hex(iovPfn * VTD_PAGE_SIZE)}`,
          (iovPfn - start) * VTD_PAGE_SIZE,
        );
      let idx = this.wIdx;
      if (this.wConflict) {
        this.alreadySet(iovPfn, v, idx, 0, 0);
        throw this.eexist(start, iovPfn);
      }
      const lvlPages = LEVEL_PAGES[lvl] as number;
      const large = lvl > 1 ? DMA_PTE_LARGE_PAGE : 0;
      if (lvl > 1) {
        const pagesToRemove = Math.min(nrPages, (512 - idx) * lvlPages);
        const bad = this.switchToSuperPage(iovPfn, iovPfn + pagesToRemove - 1, lvl);
        if (bad >= 0) {
          this.log.log(
            "crit",
            "DMAR",
            `ERROR: DMA PTE for vPFN 0x${bad.toString(16)} already set (a level-${lvl} superpage would replace a table that still maps pages)`,
          );
          this.log.warn(
            true,
            "DMAR",
            `WARNING: switch_to_super_page: ${this.name}: live mappings under iova ${hex(bad * VTD_PAGE_SIZE)}`,
          );
          throw this.eexist(start, iovPfn);
        }
      }
      // Split the output address into words once per table; carry between them by hand.
      let lo = ((physPfn % 1048576) * 4096 + attr + large) >>> 0;
      let hi = Math.floor(physPfn / 1048576);
      const step = lvlPages * VTD_PAGE_SIZE;
      while (nrPages > 0) {
        const i2 = 2 * idx;
        if (((v[i2] as number) & 3) !== 0) {
          this.alreadySet(iovPfn, v, idx, lo, hi);
          throw this.eexist(start, iovPfn);
        }
        v[i2] = lo;
        v[i2 + 1] = hi;
        nrPages -= lvlPages;
        iovPfn += lvlPages;
        physPfn += lvlPages;
        lo += step;
        if (lo >= TWO32) {
          lo -= TWO32;
          hi++;
        }
        idx++;
        if (idx === 512 || (lvl > 1 && nrPages < lvlPages)) break;
      }
    }
  }

  private eexist(start: number, at: number): MapPagesError {
    return new MapPagesError(
      "EEXIST",
      `vtd-pgtable: ${this.name}: iova ${hex(at * VTD_PAGE_SIZE)} is already mapped`,
      (at - start) * VTD_PAGE_SIZE,
    );
  }

  /**
   * `switch_to_super_page(domain, start_pfn, end_pfn, level)`: frees the lower-level tables that
   * the superpages about to be written replace. Returns -1, or the first pfn still mapped under such
   * a table (the caller fails with EEXIST; tables before it were empty and are already freed).
   */
  private switchToSuperPage(startPfn: number, endPfn: number, level: number): number {
    const lvlPages = LEVEL_PAGES[level] as number;
    let v: Uint32Array | null = null;
    let idx = 0;
    while (startPfn <= endPfn) {
      if (v === null) {
        v = this.walkAlloc(startPfn, level, this.atomicGfp);
        if (v === null || this.wConflict) return -1;
        idx = this.wIdx;
      }
      const lo = v[2 * idx] as number;
      if ((lo & 3) !== 0 && (lo & DMA_PTE_LARGE_PAGE) === 0) {
        const sub = descPfn(lo, v[2 * idx + 1] as number);
        const live = this.scanLevel(level - 1, sub, startPfn, startPfn + lvlPages - 1, true);
        if (live >= 0) return live;
        v[2 * idx] = 0;
        v[2 * idx + 1] = 0;
        this.flushRange?.(startPfn * VTD_PAGE_SIZE, (startPfn + lvlPages) * VTD_PAGE_SIZE - 1);
        this.freeSubtree(level - 1, sub);
      }
      idx++;
      startPfn += lvlPages;
      if (idx === 512) v = null;
    }
    return -1;
  }

  private freeSubtree(level: number, table: number): void {
    if (level > 1) {
      const v = this.views.get(table);
      for (let i = 0; i < 512; i++) {
        const lo = v[2 * i] as number;
        if ((lo & 3) !== 0 && (lo & DMA_PTE_LARGE_PAGE) === 0)
          this.freeSubtree(level - 1, descPfn(lo, v[2 * i + 1] as number));
      }
    }
    this.mem.freeTablePage(table, 0);
  }

  /**
   * Scans `[start, last]` in the subtree of `table` (a level-`level` table). With `findMapped`,
   * returns the first pfn that is mapped, else -1. Without, returns the first pfn that is not
   * mapped, or the first pfn of a superpage reaching past `last`, else -1.
   */
  private scanLevel(level: number, table: number, start: number, last: number, findMapped: boolean): number {
    const v = this.view(level, table);
    const size = LEVEL_PAGES[level] as number;
    let pfn = start;
    let idx = (pfn / size) & 511;
    for (;;) {
      const base = pfn - (pfn % size);
      const lo = v[2 * idx] as number;
      if ((lo & 3) === 0) {
        if (!findMapped) return pfn;
      } else if (level === 1 || (lo & DMA_PTE_LARGE_PAGE) !== 0) {
        if (findMapped) return pfn;
        if (base + size - 1 > last) return base;
      } else {
        const subLast = Math.min(last, base + size - 1);
        const r = this.scanLevel(level - 1, descPfn(lo, v[2 * idx + 1] as number), pfn, subLast, findMapped);
        if (r >= 0) return r;
      }
      pfn = base + size;
      idx++;
      if (pfn > last || idx === 512) return -1;
    }
  }

  /** `dma_pte_list_pagetables(domain, level, parent_pte, freelist)`. */
  private listPagetables(level: number, table: number, freelist: IommuPagesList): void {
    freelist.add(this.mem, table, 0);
    if (level === 1) return;
    const v = this.views.get(table);
    for (let i = 0; i < 512; i++) {
      const lo = v[2 * i] as number;
      if ((lo & 3) !== 0 && (lo & DMA_PTE_LARGE_PAGE) === 0)
        this.listPagetables(level - 1, descPfn(lo, v[2 * i + 1] as number), freelist);
    }
  }

  /** `dma_pte_clear_level(domain, level, pte, pfn, start_pfn, last_pfn, freelist)`. */
  private clearLevel(
    level: number,
    table: number,
    pfn: number,
    start: number,
    last: number,
    freelist: IommuPagesList,
  ): void {
    const v = this.view(level, table);
    const size = LEVEL_PAGES[level] as number;
    if (pfn < start) pfn = start;
    let idx = (pfn / size) & 511;
    do {
      const levelPfn = pfn - (pfn % size);
      const i2 = 2 * idx;
      const lo = v[i2] as number;
      if ((lo & 3) !== 0) {
        if (start <= levelPfn && last >= levelPfn + size - 1) {
          // Subtables wholly inside the range go to the freelist as they are: nothing walks them
          // once the parent entry is clear and the IOTLB flushed.
          if (level > 1 && (lo & DMA_PTE_LARGE_PAGE) === 0)
            this.listPagetables(level - 1, descPfn(lo, v[i2 + 1] as number), freelist);
          v[i2] = 0;
          v[i2 + 1] = 0;
        } else if (level > 1) {
          this.clearLevel(level - 1, descPfn(lo, v[i2 + 1] as number), levelPfn, start, last, freelist);
        }
      }
      pfn = levelPfn + size;
      idx++;
    } while (idx < 512 && pfn <= last);
  }

  /**
   * `intel_iommu_unmap(domain, iova, size, gather)` on the table: unmaps `nrPages` pages from
   * `startPfn` and returns the pages unmapped. A superpage at `startPfn` is unmapped whole (the
   * kernel rounds `size` up to it), so the count may exceed `nrPages`. Stops at the first page that
   * is not mapped, and before a superpage that reaches past the range; 0 when `startPfn` itself is
   * not mapped, or lies inside a superpage without being its first page (WARN). Freed table pages
   * go on `freelist`; the caller frees them after the IOTLB invalidation.
   */
  unmap(startPfn: number, nrPages: number, freelist: IommuPagesList): number {
    if (nrPages <= 0) return 0;
    const v = this.lookupLeaf(startPfn);
    if (v === null) return 0;
    const lvlPages = LEVEL_PAGES[this.wLevel] as number;
    if (this.wLevel > 1) {
      if (startPfn % lvlPages !== 0) {
        this.log.warn(
          true,
          "DMAR",
          `WARNING: intel_iommu_unmap: ${this.name}: iova ${hex(startPfn * VTD_PAGE_SIZE)} is inside a ${hex(lvlPages * VTD_PAGE_SIZE)} superpage; unmap its first page`,
        );
        return 0;
      }
      if (nrPages < lvlPages) nrPages = lvlPages;
    }
    let last = startPfn + nrPages - 1;
    if (last > this.maxPfn) last = this.maxPfn;
    const idx = this.wIdx;
    if (this.wLevel === 1 && idx + (last - startPfn) < 512 && (idx !== 0 || last - startPfn < 511)) {
      // The range lies in the leaf table just found and does not cover all of it, so the scan and
      // dma_pte_clear_level below come down to: clear the present entries up to the first hole.
      const end = idx + (last - startPfn);
      let i = idx;
      while (i <= end && ((v[2 * i] as number) & 3) !== 0) {
        v[2 * i] = 0;
        v[2 * i + 1] = 0;
        i++;
      }
      return i - idx;
    }
    const stop = this.scanLevel(this.levels, this.pgdPfn, startPfn, last, false);
    if (stop >= 0) last = stop - 1;
    this.clearLevel(this.levels, this.pgdPfn, 0, startPfn, last, freelist);
    return last - startPfn + 1;
  }

  /**
   * `intel_iommu_iova_to_phys(domain, iova)`: the physical address, or 0 when not mapped.
   * @see drivers/iommu/intel/iommu.c intel_iommu_iova_to_phys
   */
  iovaToPhys(iova: number): number {
    const pfn = Math.floor(iova / VTD_PAGE_SIZE);
    const v = this.lookupLeaf(pfn);
    if (v === null) return 0;
    const i2 = 2 * this.wIdx;
    const pageBytes = (LEVEL_PAGES[this.wLevel] as number) * VTD_PAGE_SIZE;
    // iova % pageBytes without an fmod call for the (non-negative) addresses that can be mapped.
    const off = iova >= 0 ? iova - Math.floor(iova / pageBytes) * pageBytes : iova % pageBytes;
    return descPfn(v[i2] as number, v[i2 + 1] as number) * VTD_PAGE_SIZE + off;
  }

  /**
   * The leaf entry for `iova` as (`prot` R/W bits, level) without allocating: `-1` when not mapped.
   * Returns `DMA_PTE_READ | DMA_PTE_WRITE` bits + `level << 8`.
   */
  leafInfo(iova: number): number {
    const v = this.lookupLeaf(Math.floor(iova / VTD_PAGE_SIZE));
    if (v === null) return -1;
    return ((v[2 * this.wIdx] as number) & 3) + this.wLevel * 256;
  }

  /**
   * `domain_unmap(domain, 0, DOMAIN_MAX_PFN(gaw), freelist)` plus the pgd: every table page goes on
   * `freelist` (free it with `freelist.put()` after the invalidation). The table is unusable after.
   */
  freeAll(freelist: IommuPagesList): void {
    if (this.pgdPfn < 0) return;
    this.clearLevel(this.levels, this.pgdPfn, 0, 0, this.maxPfn, freelist);
    freelist.add(this.mem, this.pgdPfn, 0);
    this.pgdPfn = -1;
  }
}
