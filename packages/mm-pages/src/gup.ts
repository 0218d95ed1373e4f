import { hex, KernelError, PAGE_SIZE } from "@dmakit/core";
import { PHYR_F_BUS_ADDR, PHYR_F_PINNED, PhysRangeList } from "@dmakit/phyr";
import { type MmStruct, TASK_SIZE } from "./MmStruct.js";
import { MEMORY_DEVICE_COHERENT } from "./Pgmap.js";
import { PG_cma, PG_dirty, PG_head, PG_lru } from "./pageFlags.js";
import { UserMemory } from "./UserMemory.js";
import { ZONE_DEVICE, ZONE_MOVABLE } from "./zones.js";

// Public FOLL_* values as in include/linux/mm_types.h (enum), internal ones as in mm/internal.h.
/** `FOLL_WRITE`: check the PTE is writable (write fault / COW first). @see include/linux/mm_types.h */
export const FOLL_WRITE = 1 << 0;
/**
 * `FOLL_GET`: take a page reference (get_user_pages); not allowed with pin_user_pages (EINVAL).
 * @see include/linux/mm_types.h
 */
export const FOLL_GET = 1 << 1;
/** `FOLL_DUMP`. @see include/linux/mm_types.h */
export const FOLL_DUMP = 1 << 2;
/**
 * `FOLL_FORCE`: access despite VMA permissions (ptrace-style), private mappings only for writes.
 * @see include/linux/mm_types.h
 */
export const FOLL_FORCE = 1 << 3;
/**
 * `FOLL_NOWAIT`: do not wait for I/O in faults (the model's faults never wait: no effect).
 * @see include/linux/mm_types.h
 */
export const FOLL_NOWAIT = 1 << 4;
/** `FOLL_NOFAULT`: do not fault pages in; a missing page is EFAULT. @see include/linux/mm_types.h */
export const FOLL_NOFAULT = 1 << 5;
/** `FOLL_HWPOISON`. @see include/linux/mm_types.h */
export const FOLL_HWPOISON = 1 << 6;
/** `FOLL_ANON`. @see include/linux/mm_types.h */
export const FOLL_ANON = 1 << 7;
/**
 * `FOLL_LONGTERM`: a pin of indefinite duration; pages in ZONE_MOVABLE or CMA are migrated out first.
 * @see include/linux/mm_types.h
 */
export const FOLL_LONGTERM = 1 << 8;
/** `FOLL_SPLIT_PMD`. @see include/linux/mm_types.h */
export const FOLL_SPLIT_PMD = 1 << 9;
/**
 * `FOLL_PCI_P2PDMA`: the caller accepts P2PDMA (ZONE_DEVICE PCI BAR) pages; without it they are EREMOTEIO.
 * @see include/linux/mm_types.h
 */
export const FOLL_PCI_P2PDMA = 1 << 10;
/** `FOLL_INTERRUPTIBLE`. @see include/linux/mm_types.h */
export const FOLL_INTERRUPTIBLE = 1 << 11;
/** `FOLL_HONOR_NUMA_FAULT`. @see include/linux/mm_types.h */
export const FOLL_HONOR_NUMA_FAULT = 1 << 12;
/** `FOLL_TOUCH` (internal). @see mm/internal.h */
export const FOLL_TOUCH = 1 << 16;
/** `FOLL_TRIED` (internal). @see mm/internal.h */
export const FOLL_TRIED = 1 << 17;
/** `FOLL_REMOTE` (internal). @see mm/internal.h */
export const FOLL_REMOTE = 1 << 18;
/** `FOLL_PIN` (internal): set by the pin_user_pages*() entry points, never by callers. @see mm/internal.h */
export const FOLL_PIN = 1 << 19;
/** `FOLL_FAST_ONLY` (internal). @see mm/internal.h */
export const FOLL_FAST_ONLY = 1 << 20;
/** `FOLL_UNLOCKABLE` (internal). @see mm/internal.h */
export const FOLL_UNLOCKABLE = 1 << 21;
const INTERNAL_GUP_FLAGS =
  FOLL_TOUCH | FOLL_TRIED | FOLL_REMOTE | FOLL_PIN | FOLL_FAST_ONLY | FOLL_UNLOCKABLE;
const PUBLIC_GUP_FLAGS = (1 << 13) - 1;
const FAST_GUP_FLAGS =
  FOLL_WRITE |
  FOLL_LONGTERM |
  FOLL_FORCE |
  FOLL_PIN |
  FOLL_GET |
  FOLL_FAST_ONLY |
  FOLL_NOFAULT |
  FOLL_PCI_P2PDMA |
  FOLL_HONOR_NUMA_FAULT;

/**
 * `GUP_PIN_COUNTING_BIAS`: what one FOLL_PIN adds to a small folio's refcount, so that
 * `folio_maybe_dma_pinned` can tell pins from ordinary references.
 * @see include/linux/mm.h, Documentation/core-api/pin_user_pages.rst
 */
export const GUP_PIN_COUNTING_BIAS = 1024;

/** How many times a FOLL_LONGTERM pin re-pins after migrating before giving up with EAGAIN. */
const LONGTERM_RETRIES = 4;

/**
 * `pin_user_pages(start, nr_pages, gup_flags, pages)`: faults in and pins `nrPages` pages of `mm`
 * from `start` (rounded down to a page), returning their pfns. FOLL_PIN is implied; passing FOLL_GET
 * or an internal flag (FOLL_PIN itself included) WARNs and is EINVAL, as `is_valid_gup_args` does.
 *
 * Pin accounting exactly as `try_grab_folio`: a small folio's refcount grows by
 * {@link GUP_PIN_COUNTING_BIAS}; a large folio's head gets `_pincount` (memmap `priv`) + 1 and
 * refcount + 1, per page pinned. The shared zero page is returned but never pinned.
 *
 * `FOLL_LONGTERM`: folios that are not longterm-pinnable (ZONE_MOVABLE, CMA, device-coherent) are
 * migrated to `GFP_USER` folios first (`check_and_migrate_movable_pages`): everything is unpinned,
 * the folios are moved (contents copied, PTEs repointed), and the range is pinned again. A
 * migration that fails (no memory, or the folio is pinned by someone else) is ENOMEM; a folio that
 * cannot be isolated (not on the LRU) is EAGAIN (the kernel retries indefinitely; the model has no
 * concurrency, so a retry cannot help and it gives up after a few rounds).
 *
 * `FOLL_PCI_P2PDMA`: P2PDMA pages are returned only with it, else EREMOTEIO. The 6.2–6.15 rule that
 * FOLL_LONGTERM excludes P2PDMA is not modelled (it was lifted).
 *
 * Errors leave no pins behind (pages faulted in stay, as in the kernel). Unlike the kernel, which
 * may return a short count when a later page fails, the model pins all pages or throws:
 * EFAULT (unmapped address, permission, beyond TASK_SIZE), EINVAL (flags, negative count), ENOMEM,
 * EAGAIN, EREMOTEIO.
 * @see mm/gup.c pin_user_pages, __gup_longterm_locked, try_grab_folio, is_valid_gup_args
 */
export function pinUserPages(mm: MmStruct, start: number, nrPages: number, gupFlags: number): Float64Array {
  checkGupArgs(mm, gupFlags, "pin_user_pages", PUBLIC_GUP_FLAGS);
  return pinLocked(mm, start, nrPages, gupFlags | FOLL_PIN);
}

/**
 * `pin_user_pages_fast(start, nr_pages, gup_flags, pages)`: the lockless variant; the model walks
 * the same way as {@link pinUserPages} (no fast-path bail-outs to observe), but accepts only the
 * flags the kernel's fast path accepts (FOLL_NOWAIT, FOLL_DUMP, ... are EINVAL).
 * @see mm/gup.c pin_user_pages_fast, gup_fast_fallback
 */
export function pinUserPagesFast(
  mm: MmStruct,
  start: number,
  nrPages: number,
  gupFlags: number,
): Float64Array {
  checkGupArgs(mm, gupFlags, "pin_user_pages_fast", FAST_GUP_FLAGS & ~INTERNAL_GUP_FLAGS);
  return pinLocked(mm, start, nrPages, gupFlags | FOLL_PIN);
}

/**
 * `unpin_user_page(page)`: releases one FOLL_PIN (the zero page is ignored): a small folio's
 * refcount drops by {@link GUP_PIN_COUNTING_BIAS}, a large folio's `_pincount` and refcount by 1;
 * the folio is freed when nothing else holds it. A page that holds no pin WARNs and is left alone.
 * @see mm/gup.c unpin_user_page, gup_put_folio
 */
export function unpinUserPage(um: UserMemory, pfn: number): void {
  if (um.isZeroPfn(pfn)) return;
  const pages = um.pages;
  const mm = um.mem.memmap;
  const h = pages.compoundHead(pfn);
  const i = mm.idx(h);
  const large = ((mm.flags[i] as number) & PG_head) !== 0;
  const pinned = large ? (mm.priv[i] as number) > 0 : (mm.refcount[i] as number) >= GUP_PIN_COUNTING_BIAS;
  if (
    um.mem.log.warn(
      !pinned,
      "gup",
      `unpin_user_page: pfn ${hex(pfn)} is not pinned (refcount ${mm.refcount[i]})`,
    )
  )
    return;
  if (large) mm.priv[i] = (mm.priv[i] as number) - 1;
  else mm.refcount[i] = (mm.refcount[i] as number) - (GUP_PIN_COUNTING_BIAS - 1);
  pages.putPage(h);
}

/** `unpin_user_pages(pages, npages)`. @see mm/gup.c */
export function unpinUserPages(
  um: UserMemory,
  pages: ArrayLike<number>,
  npages: number = pages.length,
): void {
  for (let k = 0; k < npages; k++) unpinUserPage(um, pages[k] as number);
}

/**
 * `unpin_user_pages_dirty_lock(pages, npages, make_dirty)`: marks each folio dirty
 * (`folio_mark_dirty`, as after a device wrote into it) when `makeDirty`, then unpins.
 * @see mm/gup.c unpin_user_pages_dirty_lock
 */
export function unpinUserPagesDirtyLock(
  um: UserMemory,
  pages: ArrayLike<number>,
  npages: number,
  makeDirty: boolean,
): void {
  const mm = um.mem.memmap;
  for (let k = 0; k < npages; k++) {
    const pfn = pages[k] as number;
    if (makeDirty && !um.isZeroPfn(pfn)) {
      const i = mm.idx(um.pages.compoundHead(pfn));
      mm.flags[i] = (mm.flags[i] as number) | PG_dirty;
    }
    unpinUserPage(um, pfn);
  }
}

/**
 * `folio_maybe_dma_pinned(folio)` of the folio holding `pfn`: a large folio with `_pincount > 0`,
 * or a small folio whose refcount reaches {@link GUP_PIN_COUNTING_BIAS} (may be a false positive
 * with 1024 ordinary references, exactly as in the kernel).
 * @see include/linux/mm.h folio_maybe_dma_pinned
 */
export function folioMaybeDmaPinned(um: UserMemory, pfn: number): boolean {
  const mm = um.mem.memmap;
  const i = mm.index(um.pages.compoundHead(pfn));
  if (i < 0) return false;
  if (((mm.flags[i] as number) & PG_head) !== 0) return (mm.priv[i] as number) > 0;
  return (mm.refcount[i] as number) >= GUP_PIN_COUNTING_BIAS;
}

/**
 * `folio_is_longterm_pinnable(folio)` of the folio holding `pfn`: false for CMA pages, ZONE_MOVABLE
 * pages and device-coherent memory; true otherwise (the zero page and P2PDMA pages included).
 * @see include/linux/mm.h folio_is_longterm_pinnable
 */
export function folioIsLongtermPinnable(um: UserMemory, pfn: number): boolean {
  if (um.isZeroPfn(pfn)) return true;
  const mm = um.mem.memmap;
  const i = mm.idx(um.pages.compoundHead(pfn));
  if (((mm.flags[i] as number) & PG_cma) !== 0) return false;
  const zone = mm.zone[i] as number;
  if (zone === ZONE_DEVICE) return um.mem.pagePgmap(pfn)?.type !== MEMORY_DEVICE_COHERENT;
  return zone !== ZONE_MOVABLE;
}

/**
 * Pins the user range [start, start+size) like {@link pinUserPages} and describes it as a
 * {@link PhysRangeList}: one range per run of physically contiguous pages of the same kind, the
 * first starting at `start`'s offset in its page, the last ending at `start + size`. Every range
 * carries `PHYR_F_PINNED`; ranges of P2PDMA pages also carry `PHYR_F_BUS_ADDR` (marking P2PDMA
 * provider memory: the address stays the CPU physical one, the DMA layer picks bus or host-bridge
 * mapping), and never merge with RAM ranges or other pgmaps' (`zone_device_pages_have_same_pgmap`).
 * Release with {@link unpinUserPhyr}. Errors as {@link pinUserPages}; EINVAL for size 0.
 * @see mm/gup.c pin_user_pages_fast, block/bio.c bio_iov_iter_get_pages (the phyr proposal's consumer)
 */
export function pinUserPagesToPhyr(
  mm: MmStruct,
  start: number,
  size: number,
  gupFlags: number,
): PhysRangeList {
  if (!(size > 0) || !Number.isSafeInteger(size))
    throw new KernelError("EINVAL", `gup: ${mm.name}: pin ${hex(start)}+${size}: size must be positive`);
  const offset = start % PAGE_SIZE;
  const nr = Math.ceil((offset + size) / PAGE_SIZE);
  const pfns = pinUserPagesFast(mm, start, nr, gupFlags);
  const um = mm.um;
  const mem = um.mem;
  try {
    const list = new PhysRangeList();
    let runStart = -1;
    let runLen = 0;
    let runFlags = 0;
    let prev = -1;
    for (let k = 0; k < nr; k++) {
      const pfn = pfns[k] as number;
      const from = k === 0 ? offset : 0;
      const to = k === nr - 1 ? offset + size - (nr - 1) * PAGE_SIZE : PAGE_SIZE;
      const flags = PHYR_F_PINNED | (mem.isPciP2pdmaPage(pfn) ? PHYR_F_BUS_ADDR : 0);
      const contiguous =
        runStart >= 0 &&
        pfn === prev + 1 &&
        flags === runFlags &&
        mem.zoneDevicePagesHaveSamePgmap(prev, pfn);
      if (!contiguous) {
        if (runStart >= 0) list.push(runStart, runLen, runFlags);
        runStart = pfn * PAGE_SIZE + from;
        runLen = 0;
        runFlags = flags;
      }
      runLen += to - from;
      prev = pfn;
    }
    list.push(runStart, runLen, runFlags);
    return list;
  } catch (e) {
    unpinUserPages(um, pfns);
    throw e;
  }
}

/**
 * Releases the pins of a list made by {@link pinUserPagesToPhyr} (`unpin_user_pages_dirty_lock`
 * over its pages), marking them dirty when `makeDirty` (the device wrote). Ranges without
 * `PHYR_F_PINNED` WARN and are skipped: they were not pinned by GUP.
 * @see mm/gup.c unpin_user_pages_dirty_lock (the model takes a range list instead of a page array)
 */
export function unpinUserPhyr(um: UserMemory, list: PhysRangeList, makeDirty = false): void {
  list.forEach((addr, len, flags) => {
    if (
      um.mem.log.warn(
        (flags & PHYR_F_PINNED) === 0,
        "gup",
        `unpin of an unpinned range ${hex(addr)}+${hex(len)}`,
      )
    )
      return;
    const first = Math.floor(addr / PAGE_SIZE);
    const last = Math.floor((addr + len - 1) / PAGE_SIZE);
    const pfns = new Float64Array(last - first + 1);
    for (let p = first; p <= last; p++) pfns[p - first] = p;
    unpinUserPagesDirtyLock(um, pfns, pfns.length, makeDirty);
  });
}

function checkGupArgs(mm: MmStruct, gupFlags: number, what: string, allowed: number): void {
  const log = mm.um.mem.log;
  const bad = (cond: boolean, why: string): void => {
    if (log.warnOnce(cond, `gup:${what}:${why}`, "gup", `${what}: ${why} (gup_flags ${hex(gupFlags)})`))
      throw new KernelError("EINVAL", `gup: ${mm.name}: ${what}: ${why} (gup_flags ${hex(gupFlags)})`);
  };
  bad((gupFlags & INTERNAL_GUP_FLAGS) !== 0, "internal FOLL_* flag passed by the caller");
  bad((gupFlags & FOLL_GET) !== 0, "FOLL_GET and FOLL_PIN are mutually exclusive");
  bad((gupFlags & ~allowed) !== 0, "unsupported FOLL_* flag");
}

function pinLocked(mm: MmStruct, start: number, nrPages: number, flags: number): Float64Array {
  if (!Number.isInteger(nrPages) || nrPages < 0)
    throw new KernelError("EINVAL", `gup: ${mm.name}: nr_pages ${nrPages} is not a count`);
  const first = Math.floor(start / PAGE_SIZE) * PAGE_SIZE;
  if (first < 0 || first + nrPages * PAGE_SIZE > TASK_SIZE)
    throw new KernelError("EFAULT", `gup: ${mm.name}: ${hex(start)}+${nrPages} pages is outside user space`);
  if ((flags & FOLL_LONGTERM) === 0) return getUserPagesLocked(mm, first, nrPages, flags);
  for (let round = 0; ; round++) {
    const pfns = getUserPagesLocked(mm, first, nrPages, flags);
    const rc = checkAndMigrateMovablePages(mm, pfns);
    if (rc === 0) return pfns;
    if (rc === -1 || round + 1 >= LONGTERM_RETRIES)
      throw new KernelError(
        "EAGAIN",
        `gup: ${mm.name}: FOLL_LONGTERM pin of ${hex(first)}+${nrPages} pages: a movable folio could not be isolated for migration`,
      );
  }
}

/** __get_user_pages_locked with FOLL_PIN: all pages or nothing. */
function getUserPagesLocked(mm: MmStruct, start: number, nrPages: number, flags: number): Float64Array {
  const um = mm.um;
  const mem = um.mem;
  const out = new Float64Array(nrPages);
  let k = 0;
  try {
    for (; k < nrPages; k++) {
      const addr = start + k * PAGE_SIZE;
      const vma = mm.vmaLookup(addr);
      if (vma === undefined) throw new KernelError("EFAULT", `gup: ${mm.name}: no mapping at ${hex(addr)}`);
      checkVmaFlags(mm, vma.flags, flags, addr);
      const write = (flags & FOLL_WRITE) !== 0;
      let pte = mm.followPage(addr);
      if (pte === undefined || (write && !pte.write)) {
        if ((flags & FOLL_NOFAULT) !== 0)
          throw new KernelError(
            "EFAULT",
            `gup: ${mm.name}: FOLL_NOFAULT and no page present at ${hex(addr)}`,
          );
        mm.handleMmFault(addr, write, (flags & FOLL_FORCE) !== 0);
        pte = mm.followPage(addr);
        if (pte === undefined)
          throw new KernelError("EFAULT", `gup: ${mm.name}: fault did not map ${hex(addr)}`);
      }
      const pfn = pte.pfn;
      if ((flags & FOLL_PCI_P2PDMA) === 0 && mem.isPciP2pdmaPage(pfn))
        throw new KernelError(
          "EREMOTEIO",
          `gup: ${mm.name}: ${hex(addr)} maps P2PDMA page pfn ${hex(pfn)} of ${mem.pagePgmap(pfn)?.owner ?? "?"} and FOLL_PCI_P2PDMA is not set`,
        );
      tryGrabPage(um, pfn);
      out[k] = pfn;
    }
  } catch (e) {
    unpinUserPages(um, out, k);
    throw e;
  }
  mm.hasPinned = true;
  return out;
}

/** try_grab_folio(folio, 1, FOLL_PIN). */
function tryGrabPage(um: UserMemory, pfn: number): void {
  if (um.isZeroPfn(pfn)) return;
  const mm = um.mem.memmap;
  const h = um.pages.compoundHead(pfn);
  const i = mm.idx(h);
  if ((mm.refcount[i] as number) <= 0)
    throw new KernelError("EFAULT", `gup: pfn ${hex(pfn)} is free (refcount 0)`);
  if (((mm.flags[i] as number) & PG_head) !== 0) {
    mm.refcount[i] = (mm.refcount[i] as number) + 1;
    mm.priv[i] = (mm.priv[i] as number) + 1;
  } else {
    mm.refcount[i] = (mm.refcount[i] as number) + GUP_PIN_COUNTING_BIAS;
  }
}

/** check_vma_flags: EFAULT for VM_IO/VM_PFNMAP, writes to read-only mappings (unless FOLL_FORCE on a private one), reads of PROT_NONE. */
function checkVmaFlags(mm: MmStruct, vmFlags: number, gupFlags: number, addr: number): void {
  const VM_READ = 0x1;
  const VM_WRITE = 0x2;
  const VM_SHARED = 0x8;
  const VM_IO = 0x4000;
  const VM_PFNMAP = 0x400;
  if ((vmFlags & (VM_IO | VM_PFNMAP)) !== 0)
    throw new KernelError("EFAULT", `gup: ${mm.name}: ${hex(addr)} is a VM_IO/VM_PFNMAP mapping`);
  if ((gupFlags & FOLL_WRITE) !== 0) {
    if ((vmFlags & VM_WRITE) === 0 && ((gupFlags & FOLL_FORCE) === 0 || (vmFlags & VM_SHARED) !== 0))
      throw new KernelError("EFAULT", `gup: ${mm.name}: FOLL_WRITE on read-only mapping at ${hex(addr)}`);
  } else if ((vmFlags & VM_READ) === 0 && (gupFlags & FOLL_FORCE) === 0) {
    throw new KernelError("EFAULT", `gup: ${mm.name}: read of PROT_NONE mapping at ${hex(addr)}`);
  }
}

/**
 * check_and_migrate_movable_pages: 0 when every folio may stay pinned; otherwise all pins are
 * dropped and 1 is returned after migrating (the caller re-pins), -1 when an unpinnable folio could
 * not be isolated; a failed migration throws ENOMEM (pins dropped).
 */
function checkAndMigrateMovablePages(mm: MmStruct, pfns: Float64Array): number {
  const um = mm.um;
  const memmap = um.mem.memmap;
  const movable: number[] = [];
  let anyUnpinnable = false;
  let prev = -1;
  for (let k = 0; k < pfns.length; k++) {
    const pfn = pfns[k] as number;
    if (folioIsLongtermPinnable(um, pfn)) continue;
    anyUnpinnable = true;
    const h = um.pages.compoundHead(pfn);
    if (h === prev) continue;
    prev = h;
    if (((memmap.flags[memmap.idx(h)] as number) & PG_lru) !== 0 && !movable.includes(h)) movable.push(h);
  }
  if (!anyUnpinnable) return 0;
  unpinUserPages(um, pfns);
  if (movable.length === 0) return -1;
  for (const h of movable) {
    const to = um.migrateFolio(h, UserMemory.LONGTERM_GFP);
    if (to === null)
      throw new KernelError(
        "ENOMEM",
        `gup: ${mm.name}: FOLL_LONGTERM: migrating pfn ${hex(h)} out of ${(memmap.flags[memmap.idx(h)] as number) & PG_cma ? "CMA" : "ZONE_MOVABLE"} failed`,
      );
  }
  return 1;
}
