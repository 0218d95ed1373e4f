import { KernelError } from "@dmakit/core";
import { ZONE_DMA, ZONE_DMA32, ZONE_MOVABLE, ZONE_NORMAL, type ZoneType } from "./zones.js";

/**
 * GFP ("get free pages") flags: how an allocation may be satisfied. The values are the kernel's
 * bit values, so `mode:%#x` in the model's logs reads like the kernel's.
 * @see include/linux/gfp_types.h
 */
/** `__GFP_DMA`: allocate from ZONE_DMA. */
export const __GFP_DMA = 0x01;
/**
 * `__GFP_HIGHMEM`: accepted and ignored on 64-bit (no ZONE_HIGHMEM); with `__GFP_MOVABLE` selects ZONE_MOVABLE.
 * @see include/linux/gfp_types.h
 */
export const __GFP_HIGHMEM = 0x02;
/** `__GFP_DMA32`: allocate from ZONE_DMA32 (below 4 GiB) or lower. @see include/linux/gfp_types.h */
export const __GFP_DMA32 = 0x04;
/**
 * `__GFP_MOVABLE`: the page can be migrated (MIGRATE_MOVABLE); may use CMA pageblocks.
 * @see include/linux/gfp_types.h
 */
export const __GFP_MOVABLE = 0x08;
/**
 * `__GFP_RECLAIMABLE`: reclaimable slab pages (kept for the mode string; no behaviour).
 * @see include/linux/gfp_types.h
 */
export const __GFP_RECLAIMABLE = 0x10;
/**
 * `__GFP_HIGH`: high priority, may use reserves (the model has no watermarks: no behaviour).
 * @see include/linux/gfp_types.h
 */
export const __GFP_HIGH = 0x20;
/** `__GFP_IO`: may start physical IO. @see include/linux/gfp_types.h */
export const __GFP_IO = 0x40;
/** `__GFP_FS`: may call into the filesystem. @see include/linux/gfp_types.h */
export const __GFP_FS = 0x80;
/** `__GFP_ZERO`: return zeroed memory. @see include/linux/gfp_types.h */
export const __GFP_ZERO = 0x100;
/**
 * `__GFP_DIRECT_RECLAIM`: the caller may sleep in direct reclaim (a blocking allocation).
 * @see include/linux/gfp_types.h
 */
export const __GFP_DIRECT_RECLAIM = 0x400;
/** `__GFP_KSWAPD_RECLAIM`: wake kswapd at the low watermark. @see include/linux/gfp_types.h */
export const __GFP_KSWAPD_RECLAIM = 0x800;
/** `__GFP_WRITE`: the caller intends to dirty the page. @see include/linux/gfp_types.h */
export const __GFP_WRITE = 0x1000;
/** `__GFP_NOWARN`: suppress allocation failure reports. @see include/linux/gfp_types.h */
export const __GFP_NOWARN = 0x2000;
/** `__GFP_RETRY_MAYFAIL`. @see include/linux/gfp_types.h */
export const __GFP_RETRY_MAYFAIL = 0x4000;
/**
 * `__GFP_NOFAIL` (the model still fails when memory is exhausted: there is no reclaim to wait for).
 * @see include/linux/gfp_types.h
 */
export const __GFP_NOFAIL = 0x8000;
/** `__GFP_NORETRY`: light reclaim only, fail early. @see include/linux/gfp_types.h */
export const __GFP_NORETRY = 0x10000;
/** `__GFP_MEMALLOC`. @see include/linux/gfp_types.h */
export const __GFP_MEMALLOC = 0x20000;
/**
 * `__GFP_COMP`: make a compound page (PG_head on the first page, PG_tail on the others).
 * @see include/linux/gfp_types.h
 */
export const __GFP_COMP = 0x40000;
/** `__GFP_NOMEMALLOC`. @see include/linux/gfp_types.h */
export const __GFP_NOMEMALLOC = 0x80000;
/** `__GFP_HARDWALL`: enforce the cpuset policy (no behaviour: one node). @see include/linux/gfp_types.h */
export const __GFP_HARDWALL = 0x100000;
/** `__GFP_THISNODE`. @see include/linux/gfp_types.h */
export const __GFP_THISNODE = 0x200000;
/** `__GFP_ACCOUNT`: account to kmemcg. @see include/linux/gfp_types.h */
export const __GFP_ACCOUNT = 0x400000;
/** `__GFP_RECLAIM` = direct | kswapd reclaim. @see include/linux/gfp_types.h */
export const __GFP_RECLAIM = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM;
/** `GFP_ZONEMASK`: the zone modifier bits. @see include/linux/gfp_types.h */
export const GFP_ZONEMASK = __GFP_DMA | __GFP_HIGHMEM | __GFP_DMA32 | __GFP_MOVABLE;

/** `GFP_ATOMIC`: cannot sleep, may use atomic reserves. @see include/linux/gfp_types.h */
export const GFP_ATOMIC = __GFP_HIGH | __GFP_KSWAPD_RECLAIM;
/** `GFP_KERNEL`: ordinary kernel allocation, may sleep and reclaim. @see include/linux/gfp_types.h */
export const GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS;
/** `GFP_KERNEL_ACCOUNT`. @see include/linux/gfp_types.h */
export const GFP_KERNEL_ACCOUNT = GFP_KERNEL | __GFP_ACCOUNT;
/**
 * `GFP_NOWAIT`: no direct reclaim, no warnings (includes `__GFP_NOWARN` since 6.15).
 * @see include/linux/gfp_types.h
 */
export const GFP_NOWAIT = __GFP_KSWAPD_RECLAIM | __GFP_NOWARN;
/** `GFP_NOIO`. @see include/linux/gfp_types.h */
export const GFP_NOIO = __GFP_RECLAIM;
/** `GFP_NOFS`. @see include/linux/gfp_types.h */
export const GFP_NOFS = __GFP_RECLAIM | __GFP_IO;
/**
 * `GFP_USER`: userspace allocation the kernel or hardware accesses directly.
 * @see include/linux/gfp_types.h
 */
export const GFP_USER = __GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HARDWALL;
/** `GFP_DMA` = `__GFP_DMA` (lowest zone). @see include/linux/gfp_types.h */
export const GFP_DMA = __GFP_DMA;
/** `GFP_DMA32` = `__GFP_DMA32` (32-bit addressable). @see include/linux/gfp_types.h */
export const GFP_DMA32 = __GFP_DMA32;
/** `GFP_HIGHUSER` = `GFP_USER | __GFP_HIGHMEM`. @see include/linux/gfp_types.h */
export const GFP_HIGHUSER = GFP_USER | __GFP_HIGHMEM;
/**
 * `GFP_HIGHUSER_MOVABLE`: movable user pages (page cache, anonymous memory); may land in ZONE_MOVABLE and CMA.
 * @see include/linux/gfp_types.h
 */
export const GFP_HIGHUSER_MOVABLE = GFP_HIGHUSER | __GFP_MOVABLE;

/**
 * `gfpflags_allow_blocking(gfp)`: true if the allocation may sleep (`__GFP_DIRECT_RECLAIM`).
 * @see include/linux/gfp.h gfpflags_allow_blocking
 */
export function gfpflagsAllowBlocking(gfp: number): boolean {
  return (gfp & __GFP_DIRECT_RECLAIM) !== 0;
}

// GFP_ZONE_TABLE of include/linux/gfp.h for a 64-bit kernel with ZONE_DMA and ZONE_DMA32
// configured; -1 marks GFP_ZONE_BAD combinations (the kernel VM_BUG_ONs on them).
const ZONE_TABLE: readonly number[] = (() => {
  const t: number[] = new Array(16).fill(-1);
  t[0] = ZONE_NORMAL;
  t[__GFP_DMA] = ZONE_DMA;
  t[__GFP_HIGHMEM] = ZONE_NORMAL;
  t[__GFP_DMA32] = ZONE_DMA32;
  t[__GFP_MOVABLE] = ZONE_NORMAL;
  t[__GFP_MOVABLE | __GFP_DMA] = ZONE_DMA;
  t[__GFP_MOVABLE | __GFP_HIGHMEM] = ZONE_MOVABLE;
  t[__GFP_MOVABLE | __GFP_DMA32] = ZONE_DMA32;
  return t;
})();

/**
 * `gfp_zone(gfp)`: the highest zone an allocation may use; the allocator then falls back down the
 * zonelist (MOVABLE → NORMAL → DMA32 → DMA). As in the kernel's GFP_ZONE_TABLE, ZONE_MOVABLE needs
 * `__GFP_MOVABLE | __GFP_HIGHMEM` (as in `GFP_HIGHUSER_MOVABLE`); `__GFP_MOVABLE` alone gives
 * ZONE_NORMAL. Assumes ZONE_DMA and ZONE_DMA32 are configured ({@link PageAllocator.gfpZone} applies
 * a machine's zone configuration). Throws EINVAL for a contradictory combination such as
 * `__GFP_DMA | __GFP_DMA32` (the kernel's `VM_BUG_ON`).
 * @see include/linux/gfp.h gfp_zone, GFP_ZONE_TABLE
 */
export function gfpZone(gfp: number): ZoneType {
  const z = ZONE_TABLE[gfp & GFP_ZONEMASK] as number;
  if (z < 0)
    throw new KernelError("EINVAL", `gfp: gfp_zone: contradictory zone modifiers in mode ${formatGfp(gfp)}`);
  return z as ZoneType;
}

/**
 * True if `gfp`'s zone modifiers are a valid combination (not GFP_ZONE_BAD).
 * Model-only: a non-throwing check of the `GFP_ZONE_BAD` table. @see include/linux/gfp.h GFP_ZONE_BAD
 */
export function gfpZoneValid(gfp: number): boolean {
  return (ZONE_TABLE[gfp & GFP_ZONEMASK] as number) >= 0;
}

// Composite names first, largest first, as %pGg prints them (include/trace/events/mmflags.h).
const GFP_NAMES: readonly (readonly [number, string])[] = [
  [GFP_HIGHUSER_MOVABLE, "GFP_HIGHUSER_MOVABLE"],
  [GFP_HIGHUSER, "GFP_HIGHUSER"],
  [GFP_USER, "GFP_USER"],
  [GFP_KERNEL_ACCOUNT, "GFP_KERNEL_ACCOUNT"],
  [GFP_KERNEL, "GFP_KERNEL"],
  [GFP_NOFS, "GFP_NOFS"],
  [GFP_ATOMIC, "GFP_ATOMIC"],
  [GFP_NOIO, "GFP_NOIO"],
  [GFP_NOWAIT, "GFP_NOWAIT"],
  [GFP_DMA, "GFP_DMA"],
  [__GFP_HIGHMEM, "__GFP_HIGHMEM"],
  [GFP_DMA32, "GFP_DMA32"],
  [__GFP_HIGH, "__GFP_HIGH"],
  [__GFP_IO, "__GFP_IO"],
  [__GFP_FS, "__GFP_FS"],
  [__GFP_NOWARN, "__GFP_NOWARN"],
  [__GFP_RETRY_MAYFAIL, "__GFP_RETRY_MAYFAIL"],
  [__GFP_NOFAIL, "__GFP_NOFAIL"],
  [__GFP_NORETRY, "__GFP_NORETRY"],
  [__GFP_COMP, "__GFP_COMP"],
  [__GFP_ZERO, "__GFP_ZERO"],
  [__GFP_NOMEMALLOC, "__GFP_NOMEMALLOC"],
  [__GFP_MEMALLOC, "__GFP_MEMALLOC"],
  [__GFP_HARDWALL, "__GFP_HARDWALL"],
  [__GFP_THISNODE, "__GFP_THISNODE"],
  [__GFP_RECLAIMABLE, "__GFP_RECLAIMABLE"],
  [__GFP_MOVABLE, "__GFP_MOVABLE"],
  [__GFP_ACCOUNT, "__GFP_ACCOUNT"],
  [__GFP_WRITE, "__GFP_WRITE"],
  [__GFP_RECLAIM, "__GFP_RECLAIM"],
  [__GFP_DIRECT_RECLAIM, "__GFP_DIRECT_RECLAIM"],
  [__GFP_KSWAPD_RECLAIM, "__GFP_KSWAPD_RECLAIM"],
];

/**
 * Formats a gfp mask the way the kernel's `%#x(%pGg)` does in warn_alloc:
 * `0xcc0(GFP_KERNEL)`, `0x140cc0(GFP_USER|__GFP_COMP)`; `0x0()` for 0.
 * @see lib/vsprintf.c flags_string, include/trace/events/mmflags.h __def_gfpflag_names
 */
export function formatGfp(gfp: number): string {
  let rest = gfp >>> 0;
  const names: string[] = [];
  for (const [mask, name] of GFP_NAMES) {
    if (rest !== 0 && (rest & mask) === mask) {
      names.push(name);
      rest &= ~mask;
    }
  }
  if (rest !== 0) names.push(`0x${rest.toString(16)}`);
  return `0x${(gfp >>> 0).toString(16)}(${names.join("|")})`;
}
