import type { Device } from "@dmakit/core";
import type { IommuIotlbGather } from "./IommuIotlbGather.js";
import type { IoPgtableFmt } from "./ioPgtableFmt.js";
import type { PgtableMemory } from "./PgtableMemory.js";

/** `IO_PGTABLE_QUIRK_ARM_NS`: set the non-secure bit in descriptors. @see include/linux/io-pgtable.h */
export const IO_PGTABLE_QUIRK_ARM_NS = 1 << 0;
/**
 * `IO_PGTABLE_QUIRK_NO_PERMS`: ignore permission bits (read/write always allowed).
 * @see include/linux/io-pgtable.h
 */
export const IO_PGTABLE_QUIRK_NO_PERMS = 1 << 1;
/**
 * `IO_PGTABLE_QUIRK_ARM_MTK_EXT`: MediaTek 35-bit physical address extension.
 * @see include/linux/io-pgtable.h
 */
export const IO_PGTABLE_QUIRK_ARM_MTK_EXT = 1 << 3;
/** `IO_PGTABLE_QUIRK_ARM_MTK_TTBR_EXT`: MediaTek 35-bit TTBR. @see include/linux/io-pgtable.h */
export const IO_PGTABLE_QUIRK_ARM_MTK_TTBR_EXT = 1 << 4;
/**
 * `IO_PGTABLE_QUIRK_ARM_TTBR1`: the table covers the upper (TTBR1) half of the address space.
 * @see include/linux/io-pgtable.h
 */
export const IO_PGTABLE_QUIRK_ARM_TTBR1 = 1 << 5;
/**
 * `IO_PGTABLE_QUIRK_ARM_OUTER_WBWA`: outer write-back write-allocate table walks.
 * @see include/linux/io-pgtable.h
 */
export const IO_PGTABLE_QUIRK_ARM_OUTER_WBWA = 1 << 6;
/** `IO_PGTABLE_QUIRK_ARM_HD`: hardware dirty-bit management in stage 1. @see include/linux/io-pgtable.h */
export const IO_PGTABLE_QUIRK_ARM_HD = 1 << 7;
/**
 * `IO_PGTABLE_QUIRK_ARM_S2FWB`: stage-2 forced write-back memory attributes.
 * @see include/linux/io-pgtable.h
 */
export const IO_PGTABLE_QUIRK_ARM_S2FWB = 1 << 8;
/**
 * `IO_PGTABLE_QUIRK_NO_WARN`: mapping over a valid entry returns -EEXIST without a WARN.
 * @see include/linux/io-pgtable.h
 */
export const IO_PGTABLE_QUIRK_NO_WARN = 1 << 9;

/**
 * `struct iommu_flush_ops`: how a page-table format asks its IOMMU driver to invalidate TLBs.
 * `cookie` is what the driver passed to `alloc_io_pgtable_ops` (typically its domain).
 * @see include/linux/io-pgtable.h struct iommu_flush_ops
 */
export interface IommuFlushOps {
  /** `tlb_flush_all(cookie)`: invalidate every TLB entry for the context (synchronously). */
  tlbFlushAll(cookie: unknown): void;
  /**
   * `tlb_flush_walk(iova, size, granule, cookie)`: invalidate leaf and walk-cache entries for
   * `[iova, iova+size)` because table pages are about to be freed; synchronous.
   */
  tlbFlushWalk(iova: number, size: number, granule: number, cookie: unknown): void;
  /**
   * `tlb_add_page(gather, iova, granule, cookie)`: optional; queue one leaf invalidation in the
   * gather (typically `iommu_iotlb_gather_add_page`), issued at `iotlb_sync`.
   */
  tlbAddPage?(gather: IommuIotlbGather, iova: number, granule: number, cookie: unknown): void;
}

/**
 * `struct io_pgtable_cfg`: what the IOMMU driver asks of a page table and where the format reports
 * back. `alloc_io_pgtable_ops` may narrow `pgsizeBitmap` to what the format supports and fills
 * `fmtCfg` (the kernel's format-specific union: TTBR/TCR/MAIR for ARM LPAE stage 1, VTTBR/VTCR
 * for stage 2, the root pointer for VT-d) which the driver copies into its context descriptors.
 *
 * Model differences: the tables live in simulated RAM given by {@link IoPgtableCfg.mem}; the
 * format-specific registers are the generic `fmtCfg`, typed by the implementation package.
 * @see include/linux/io-pgtable.h struct io_pgtable_cfg
 */
export interface IoPgtableCfg<FmtCfg = unknown> {
  /** `IO_PGTABLE_QUIRK_*` bits. */
  quirks: number;
  /** Supported page sizes (bit n ⇒ 2^n bytes); the format may clear bits it cannot do. */
  pgsizeBitmap: number;
  /** Input (IOVA) address size in bits. */
  ias: number;
  /** Output (physical) address size in bits. */
  oas: number;
  /** The walker snoops CPU caches: no cache maintenance needed after table writes. */
  coherentWalk: boolean;
  /** Invalidation callbacks; null when the caller manages the TLB itself. */
  tlb: IommuFlushOps | null;
  /** `iommu_dev`: the IOMMU device doing the walks (for messages); null if none. */
  iommuDev: Device | null;
  /** Where the table pages come from and live. */
  mem: PgtableMemory;
  /** Format-specific output filled in by the format's `alloc` (register values for the driver). */
  fmtCfg?: FmtCfg;
}

/**
 * `struct io_pgtable_ops`: map, unmap and look up in one page table. Unlike `iommu_domain_ops`, the
 * ops object belongs to exactly one table, so the kernel's leading `ops` argument is `this`.
 * @see include/linux/io-pgtable.h struct io_pgtable_ops
 */
export interface IoPgtableOps {
  /**
   * `map_pages(ops, iova, paddr, pgsize, pgcount, prot, gfp, &mapped)`: installs `pgcount` leaf
   * entries of `pgsize` bytes (a size in `pgsizeBitmap`) from `iova` to `paddr` with `IOMMU_*`
   * `prot`, and returns the bytes mapped (`pgsize * pgcount` on success). The format may map
   * fewer than `pgcount` when the run crosses a table boundary; the caller loops.
   *
   * Throws `EINVAL` for a bad size/alignment or an out-of-range address, `EEXIST` when a target
   * entry is already valid (WARN unless `IO_PGTABLE_QUIRK_NO_WARN`), `ENOMEM` when a table page
   * cannot be allocated; a throw after some entries were installed is a {@link MapPagesError}
   * carrying the bytes mapped. `prot` without READ or WRITE maps nothing and returns 0.
   */
  mapPages(iova: number, paddr: number, pgsize: number, pgcount: number, prot: number, gfp: number): number;
  /**
   * `unmap_pages(ops, iova, pgsize, pgcount, gather)`: removes up to `pgcount` entries of `pgsize`
   * and returns the bytes unmapped; stops (returning what it did, possibly 0) at an entry that is
   * not mapped. A larger block covering the range is unmapped whole, returning its size. Leaf
   * invalidations go through `tlb.tlbAddPage(gather, ...)`; table pages freed by the unmap either
   * follow `tlb.tlbFlushWalk` and are freed at once (ARM), or go on `gather.freelist` (VT-d).
   * `gather` may be null for callers that flush everything afterwards.
   */
  unmapPages(iova: number, pgsize: number, pgcount: number, gather: IommuIotlbGather | null): number;
  /** `iova_to_phys(ops, iova)`: the physical address `iova` maps to, or 0 when unmapped. */
  iovaToPhys(iova: number): number;
  /**
   * `read_and_clear_dirty(ops, iova, size, flags, dirty)`: optional dirty tracking; calls
   * `record(iova, size)` for each dirty range and clears the dirty bits unless `flags` has
   * `IOMMU_DIRTY_NO_CLEAR` (1).
   */
  readAndClearDirty?(
    iova: number,
    size: number,
    flags: number,
    record: (iova: number, size: number) => void,
  ): void;
}

/**
 * `struct io_pgtable`: one allocated page table: its format, the driver's cookie, the (possibly
 * updated) config and its ops.
 * @see include/linux/io-pgtable.h struct io_pgtable
 */
export interface IoPgtable<FmtCfg = unknown> {
  readonly fmt: IoPgtableFmt;
  readonly cookie: unknown;
  readonly cfg: IoPgtableCfg<FmtCfg>;
  readonly ops: IoPgtableOps;
}

/**
 * `struct io_pgtable_init_fns`: how a format creates and destroys a table. `alloc` returns null (or
 * throws) when the config is unsupported or memory is short; it may adjust `cfg`.
 * @see include/linux/io-pgtable.h struct io_pgtable_init_fns
 */
export interface IoPgtableInitFns {
  alloc(cfg: IoPgtableCfg, cookie: unknown): IoPgtable | null;
  /** Frees every page of the table (after the caller's TLB flush). */
  free(iop: IoPgtable): void;
  /** `configure(cfg, &pgd_size)`: optional; validates `cfg` without allocating, returns the top-level table size in bytes. */
  configure?(cfg: IoPgtableCfg): number;
}

/**
 * `io_pgtable_tlb_flush_all(iop)`.
 * @see include/linux/io-pgtable.h io_pgtable_tlb_flush_all
 */
export function ioPgtableTlbFlushAll(iop: IoPgtable): void {
  iop.cfg.tlb?.tlbFlushAll(iop.cookie);
}

/**
 * `io_pgtable_tlb_flush_walk(iop, iova, size, granule)`.
 * @see include/linux/io-pgtable.h io_pgtable_tlb_flush_walk
 */
export function ioPgtableTlbFlushWalk(iop: IoPgtable, iova: number, size: number, granule: number): void {
  iop.cfg.tlb?.tlbFlushWalk(iova, size, granule, iop.cookie);
}

/**
 * `io_pgtable_tlb_add_page(iop, gather, iova, granule)`: no-op without a gather or a `tlbAddPage`.
 * @see include/linux/io-pgtable.h io_pgtable_tlb_add_page
 */
export function ioPgtableTlbAddPage(
  iop: IoPgtable,
  gather: IommuIotlbGather | null,
  iova: number,
  granule: number,
): void {
  if (gather !== null) iop.cfg.tlb?.tlbAddPage?.(gather, iova, granule, iop.cookie);
}
