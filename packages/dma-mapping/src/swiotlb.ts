import {
  alignUp,
  type Device,
  DeviceKey,
  DMA_MAPPING_ERROR,
  defineTracepoint,
  dmaGetMinAlignMask,
  dmaGetSegBoundary,
  hex,
  hex16,
  KernelError,
  PAGE_SIZE,
  physToDma,
  roundupPowOfTwo,
  SZ_4G,
} from "@dmakit/core";
import { type CpuCache, PG_cma } from "@dmakit/mm-pages";
import { archSyncDmaForDevice } from "./archSync.js";
import { type DmaSystem, DmaSystemKey } from "./DmaSystem.js";
import { DMA_ATTR_NO_WARN, DMA_ATTR_SKIP_CPU_SYNC } from "./dmaAttrs.js";
import { devDmaState } from "./dmaDevice.js";
import { dmaCapable } from "./dmaDirect.js";
import {
  checkDmaDirection,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  type DmaDataDirection,
} from "./dmaDirection.js";
import { devPrefix, devWarnOnce } from "./internal/devWarn.js";
import { llx } from "./internal/llx.js";
import {
  IO_TLB_DEFAULT_SIZE,
  IO_TLB_MIN_SLABS,
  IO_TLB_SEGSIZE,
  IO_TLB_SHIFT,
  IO_TLB_SIZE,
  nrSlots,
  SwiotlbMem,
} from "./SwiotlbMem.js";

/**
 * The machine's default software IO TLB (`io_tlb_default_mem`), set by {@link swiotlbInit}.
 * @see kernel/dma/swiotlb.c io_tlb_default_mem
 */
export const SWIOTLB = new DmaSystemKey<SwiotlbMem>("swiotlb");

/** A device's own pool (`dev->dma_io_tlb_mem` pointing at a restricted-dma-pool). */
const SWIOTLB_DEV_MEM = new DeviceKey<SwiotlbMem>("swiotlb");

/** `pr_fmt` of kernel/dma/swiotlb.c. */
const PR = "software IO TLB";

/** `trace_swiotlb_bounced(dev, dev_addr, size)`. @see include/trace/events/swiotlb.h */
export const SWIOTLB_BOUNCED = defineTracepoint<{ dev: string; dmaAddr: number; size: number }>(
  "swiotlb:swiotlb_bounced",
  (f) => `dev_name=${f.dev} dma_addr=${hex(f.dmaAddr).slice(2)} size=${f.size}`,
);

/** `DEFAULT_RATELIMIT_INTERVAL` (5 s) and `DEFAULT_RATELIMIT_BURST` (10) of `dev_warn_ratelimited`. */
const RATELIMIT_INTERVAL_NS = 5e9;
const RATELIMIT_BURST = 10;
interface RatelimitState {
  begin: number;
  printed: number;
  missed: number;
}
const SWIOTLB_RATELIMIT = new DmaSystemKey<Map<string, RatelimitState>>("swiotlb-ratelimit");

/**
 * `dev_warn_ratelimited()` for one call site: at most 10 lines per 5 s of simulated time; when a
 * new interval starts after suppressed lines, "FUNC: N callbacks suppressed" first.
 * @see lib/ratelimit.c ___ratelimit
 */
function devWarnRatelimited(system: DmaSystem, func: string, dev: Device, message: string): void {
  let states = system.get(SWIOTLB_RATELIMIT);
  if (states === undefined) {
    states = new Map();
    system.set(SWIOTLB_RATELIMIT, states);
  }
  const now = system.clock.now();
  let rs = states.get(func);
  if (rs === undefined) {
    rs = { begin: now, printed: 0, missed: 0 };
    states.set(func, rs);
  }
  if (rs.begin + RATELIMIT_INTERVAL_NS < now) {
    if (rs.missed > 0) dev.log.warning("", `${func}: ${rs.missed} callbacks suppressed`);
    rs.missed = 0;
    rs.begin = now;
    rs.printed = 0;
  }
  if (rs.printed < RATELIMIT_BURST) {
    rs.printed++;
    dev.log.warning(devPrefix(dev), message);
  } else rs.missed++;
}

/**
 * `dev->dma_io_tlb_mem`: the device's restricted pool, else the machine's default pool, else none.
 * @see include/linux/device.h dma_io_tlb_mem
 */
export function swiotlbDevMem(dev: Device): SwiotlbMem | undefined {
  return dev.get(SWIOTLB_DEV_MEM) ?? devDmaState(dev).system.get(SWIOTLB);
}

/**
 * Options of {@link swiotlbInit}: the `swiotlb=` command line and the architecture's choices.
 * @see kernel/dma/swiotlb.c setup_io_tlb_npages, swiotlb_init_remap
 */
export interface SwiotlbInitOptions {
  /** Pool size in bytes (`swiotlb_adjust_size`); default {@link IO_TLB_DEFAULT_SIZE}. */
  readonly size?: number;
  /** Pool size in slots (`swiotlb=<nslabs>`), rounded up to IO_TLB_SEGSIZE; wins over `size`. */
  readonly nslabs?: number;
  /** Areas (`swiotlb=,<nareas>`); default the machine's CPU count. Rounded up to a power of two. */
  readonly nareas?: number;
  /** `swiotlb=force` / SWIOTLB_FORCE: every device bounces every streaming mapping. */
  readonly force?: boolean;
  /** `swiotlb=noforce`: no pool at all. */
  readonly noforce?: boolean;
  /** Exact physical base (a reserved-memory carve-out); absent = placed like `memblock_alloc_low`. */
  readonly base?: number;
  /** Highest end address of the placement (`ARCH_LOW_ADDRESS_LIMIT + 1`); default 4 GiB. */
  readonly limit?: number;
  /** `SWIOTLB_ANY`: place anywhere in RAM (memory-encryption guests), ignoring `limit`. */
  readonly any?: boolean;
  /** `SWIOTLB_VERBOSE`: log "mapped [mem ...]"; default true. */
  readonly verbose?: boolean;
}

/**
 * Parses the `swiotlb=` boot parameter: `[<nslabs>][,<nareas>][,force|noforce]`.
 * @see kernel/dma/swiotlb.c setup_io_tlb_npages
 * @example setupIoTlbNpages("65536,4,force") // { nslabs: 65536, nareas: 4, force: true }
 */
export function setupIoTlbNpages(str: string): SwiotlbInitOptions {
  const out: { nslabs?: number; nareas?: number; force?: boolean; noforce?: boolean } = {};
  let s = str;
  const num = /^(0x[0-9a-fA-F]+|\d+)/;
  let m = num.exec(s);
  if (m !== null) {
    out.nslabs = alignUp(Number(m[1]), IO_TLB_SEGSIZE);
    s = s.slice(m[0].length);
  }
  if (s.startsWith(",")) s = s.slice(1);
  m = num.exec(s);
  if (m !== null) {
    out.nareas = Number(m[1]);
    s = s.slice(m[0].length);
  }
  if (s.startsWith(",")) s = s.slice(1);
  if (s === "force") out.force = true;
  else if (s === "noforce") out.noforce = true;
  return out;
}

/**
 * `swiotlb_init(addressing_limit, flags)` / `swiotlb_init_remap`: reserves the bounce pool at boot
 * and installs it as the machine's default pool ({@link SWIOTLB}).
 *
 * Sizing as the kernel does it: `nslabs` from the options (default 32768 slots = 64 MiB), the
 * area count rounded up to a power of two ("area num N."), `nslabs` raised to at least
 * `IO_TLB_SEGSIZE * nareas` and rounded up to a power of two ("SWIOTLB bounce buffer size roundup
 * to NMB"). Placement (the model's `memblock_alloc_low`): the highest free page-aligned range
 * below `limit` (default 4 GiB, x86's ARCH_LOW_ADDRESS_LIMIT; pass the end of ZONE_DMA for an
 * arm64 SoC with a small DMA zone) within one RAM bank and zone, claimed from the buddy allocator
 * with `allocContigRange` (it shows as allocated pages in the allocator's report), or exactly at
 * `base`. When it does not fit, the pool is halved (`ALIGN(nslabs >> 1, IO_TLB_SEGSIZE)`) until
 * IO_TLB_MIN_SLABS, logging "swiotlb_memblock_alloc: Failed to allocate N bytes tlb structure"
 * each time; then "SWIOTLB bounce buffer size adjusted A -> B slabs". The pool is zeroed in RAM
 * (after a clean+invalidate of any cached lines: memset through the cache, then written back).
 *
 * Returns the pool, or null (nothing installed, as the kernel boots on without one) for
 * `noforce` or when not even IO_TLB_MIN_SLABS fit. Throws EEXIST if the machine has a pool.
 * @see kernel/dma/swiotlb.c swiotlb_init_remap, swiotlb_memblock_alloc, swiotlb_init_io_tlb_pool,
 *      swiotlb_print_info. The model differs: the kernel reserves the range in memblock before the
 *      buddy allocator exists; the model claims it from the allocator, which leaves the same state.
 */
export function swiotlbInit(system: DmaSystem, options: SwiotlbInitOptions = {}): SwiotlbMem | null {
  if (system.get(SWIOTLB) !== undefined)
    throw new KernelError("EEXIST", `swiotlb: the machine already has a default pool`);
  if (options.noforce) return null;
  const log = system.log;
  let nslabs =
    options.nslabs !== undefined
      ? alignUp(options.nslabs, IO_TLB_SEGSIZE)
      : alignUp(alignUp(options.size ?? IO_TLB_DEFAULT_SIZE, IO_TLB_SIZE) / IO_TLB_SIZE, IO_TLB_SEGSIZE);
  if (!(nslabs >= IO_TLB_SEGSIZE))
    throw new KernelError("EINVAL", `swiotlb: pool of ${nslabs} slots is below ${IO_TLB_SEGSIZE}`);
  let nareas = Math.max(1, options.nareas ?? system.numCpus);
  if ((nareas & (nareas - 1)) !== 0) nareas = roundupPowOfTwo(nareas);
  log.info(PR, `area num ${nareas}.`);
  if (nslabs < IO_TLB_SEGSIZE * nareas || (nslabs & (nslabs - 1)) !== 0) {
    nslabs = roundupPowOfTwo(Math.max(nslabs, IO_TLB_SEGSIZE * nareas));
    log.info(PR, `SWIOTLB bounce buffer size roundup to ${(nslabs * IO_TLB_SIZE) / 2 ** 20}MB`);
  }
  const wanted = nslabs;
  nareas = limitNareas(nareas, nslabs);
  let start: number;
  for (;;) {
    const bytes = nslabs * IO_TLB_SIZE;
    const at = claimLowRange(system, bytes, options);
    if (at >= 0) {
      start = at;
      break;
    }
    log.warning(PR, `swiotlb_memblock_alloc: Failed to allocate ${bytes} bytes tlb structure`);
    if (nslabs <= IO_TLB_MIN_SLABS) return null;
    nslabs = alignUp(Math.floor(nslabs / 2), IO_TLB_SEGSIZE);
    nareas = limitNareas(nareas, nslabs);
  }
  if (nslabs !== wanted) log.info(PR, `SWIOTLB bounce buffer size adjusted ${wanted} -> ${nslabs} slabs`);
  const bytes = nslabs * IO_TLB_SIZE;
  system.cache.cleanInvalidateRange(start, bytes);
  system.phys.fill(start, bytes, 0);
  const mem = new SwiotlbMem({
    start,
    nslabs,
    nareas,
    forceBounce: options.force ?? false,
    vaddr: system.vm.physToVirt(start),
    name: "default",
  });
  system.set(SWIOTLB, mem);
  if (options.verbose ?? true)
    log.info(PR, `mapped [mem ${hex16(mem.start)}-${hex16(mem.end)}] (${bytes / 2 ** 20}MB)`);
  return mem;
}

/** `limit_nareas(nareas, nslots)`. */
function limitNareas(nareas: number, nslots: number): number {
  return nslots < nareas * IO_TLB_SEGSIZE ? Math.floor(nslots / IO_TLB_SEGSIZE) : nareas;
}

/** Finds and claims `bytes` of RAM for a pool; returns the base or -1 (nothing claimed). */
function claimLowRange(
  system: DmaSystem,
  bytes: number,
  options: { readonly base?: number; readonly limit?: number; readonly any?: boolean },
): number {
  const pages = system.pages;
  const phys = system.phys;
  const n = Math.ceil(bytes / PAGE_SIZE);
  // CMA areas are memblock reservations of their own: free in the buddy allocator (as
  // MIGRATE_CMA) but never available to another boot-time carve-out.
  const mm = phys.memmap;
  const isCma = (pfn: number): boolean => ((mm.flags[mm.idx(pfn)] as number) & PG_cma) !== 0;
  const claim = (pfn: number): boolean => {
    try {
      pages.allocContigRange(pfn, pfn + n);
      return true;
    } catch {
      return false;
    }
  };
  if (options.base !== undefined) {
    if (options.base % PAGE_SIZE !== 0) return -1;
    const pfn = options.base / PAGE_SIZE;
    for (let q = pfn; q < pfn + n; q++) if (isCma(q)) return -1;
    return pages.rangeIsFree(pfn, pfn + n) && claim(pfn) ? options.base : -1;
  }
  const limit = options.any ? Number.POSITIVE_INFINITY : (options.limit ?? SZ_4G);
  const banks = [...phys.banks].sort((a, b) => b.start - a.start);
  for (const bank of banks) {
    const lo = bank.start / PAGE_SIZE;
    let end = Math.floor(Math.min(bank.start + bank.size, limit) / PAGE_SIZE);
    // memblock allocates top-down: the highest window of n free pages in one zone.
    while (end - n >= lo) {
      const zone = phys.pageZonenum(end - 1);
      let bad = -1;
      for (let q = end - 1; q >= end - n; q--)
        if (phys.pageZonenum(q) !== zone || isCma(q) || !pages.rangeIsFree(q, q + 1)) {
          bad = q;
          break;
        }
      if (bad < 0) return claim(end - n) ? (end - n) * PAGE_SIZE : -1;
      end = bad;
    }
  }
  return -1;
}

/** Options of {@link swiotlbInitRestricted}. @see kernel/dma/swiotlb.c rmem_swiotlb_setup */
export interface SwiotlbRestrictedOptions {
  /** The reserved-memory node name, e.g. `"restricted_dma_reserved"`. */
  readonly name: string;
  readonly size: number;
  /** Exact base; absent = placed top-down below `limit`. */
  readonly base?: number;
  readonly limit?: number;
}

/**
 * A `restricted-dma-pool` reserved-memory region (`rmem_swiotlb_setup` + the first
 * `rmem_swiotlb_device_init`): a pool with one area that forces bouncing for the devices attached
 * with {@link swiotlbRestrictedAttach}. Logs "Reserved memory: created restricted DMA pool at
 * BASE, size N MiB". Throws ENOMEM when the range cannot be claimed, EINVAL for a size below one
 * segment.
 * @see kernel/dma/swiotlb.c rmem_swiotlb_setup, rmem_swiotlb_device_init
 */
export function swiotlbInitRestricted(system: DmaSystem, options: SwiotlbRestrictedOptions): SwiotlbMem {
  const nslabs = Math.floor(options.size / IO_TLB_SIZE);
  if (nslabs < IO_TLB_SEGSIZE)
    throw new KernelError(
      "EINVAL",
      `swiotlb: restricted pool ${options.name}: ${options.size} bytes is below one segment (${IO_TLB_SEGSIZE * IO_TLB_SIZE})`,
    );
  const bytes = nslabs * IO_TLB_SIZE;
  const start = claimLowRange(system, bytes, options);
  if (start < 0)
    throw new KernelError("ENOMEM", `swiotlb: restricted pool ${options.name}: no free ${bytes} bytes`);
  system.cache.cleanInvalidateRange(start, bytes);
  system.phys.fill(start, bytes, 0);
  system.log.info(
    "",
    `Reserved memory: created restricted DMA pool at ${hex16(start)}, size ${Math.floor(bytes / 2 ** 20)} MiB`,
  );
  return new SwiotlbMem({
    start,
    nslabs,
    nareas: 1,
    forceBounce: true,
    vaddr: system.vm.physToVirt(start),
    name: options.name,
  });
}

/**
 * `rmem_swiotlb_device_init(rmem, dev)`: points `dev->dma_io_tlb_mem` at a restricted pool; null
 * restores the default pool (`rmem_swiotlb_device_release`).
 * @see kernel/dma/swiotlb.c rmem_swiotlb_device_init
 */
export function swiotlbRestrictedAttach(dev: Device, mem: SwiotlbMem | null): void {
  devDmaState(dev);
  if (mem === null) dev.delete(SWIOTLB_DEV_MEM);
  else dev.set(SWIOTLB_DEV_MEM, mem);
}

/**
 * `swiotlb_exit()`: tears the default pool down and returns its pages to the allocator ("tearing
 * down default memory pool"). A no-op with `swiotlb=force`, as in the kernel. The model refuses
 * (EBUSY) while bounce buffers are live, where the kernel would free memory under them.
 * @see kernel/dma/swiotlb.c swiotlb_exit
 */
export function swiotlbExit(system: DmaSystem): void {
  const mem = system.get(SWIOTLB);
  if (mem === undefined || mem.forceBounce) return;
  if (mem.used > 0) throw new KernelError("EBUSY", `swiotlb: exit with ${mem.used} slots still mapped`);
  system.log.info(PR, "tearing down default memory pool");
  system.pages.freeContigRange(mem.start / PAGE_SIZE, (mem.end - mem.start) / PAGE_SIZE);
  system.delete(SWIOTLB);
}

/**
 * `is_swiotlb_allocated()`: the machine has a default pool.
 * @see kernel/dma/swiotlb.c is_swiotlb_allocated
 */
export function isSwiotlbAllocated(system: DmaSystem): boolean {
  return (system.get(SWIOTLB)?.nslabs ?? 0) > 0;
}

/**
 * `swiotlb_size_or_default()`: bytes of the default pool, or IO_TLB_DEFAULT_SIZE without one.
 * @see kernel/dma/swiotlb.c swiotlb_size_or_default
 */
export function swiotlbSizeOrDefault(system: DmaSystem): number {
  const mem = system.get(SWIOTLB);
  return mem === undefined ? IO_TLB_DEFAULT_SIZE : mem.nslabs * IO_TLB_SIZE;
}

/**
 * `default_swiotlb_base()`: lowest physical address of the default pool (0 without one).
 * @see kernel/dma/swiotlb.c default_swiotlb_base
 */
export function defaultSwiotlbBase(system: DmaSystem): number {
  return system.get(SWIOTLB)?.start ?? 0;
}

/**
 * `default_swiotlb_limit()`: highest physical address of the default pool (`end - 1`; -1 without one).
 * @see kernel/dma/swiotlb.c default_swiotlb_limit
 */
export function defaultSwiotlbLimit(system: DmaSystem): number {
  const mem = system.get(SWIOTLB);
  return mem === undefined ? -1 : mem.end - 1;
}

/**
 * `is_swiotlb_buffer(dev, paddr)`: `paddr` lies in the device's pool.
 * @see include/linux/swiotlb.h is_swiotlb_buffer (!CONFIG_SWIOTLB_DYNAMIC)
 */
export function isSwiotlbBuffer(dev: Device, phys: number): boolean {
  const mem = swiotlbDevMem(dev);
  return mem?.contains(phys) ?? false;
}

/** `is_swiotlb_active(dev)`: the device has a pool with slots. @see kernel/dma/swiotlb.c */
export function isSwiotlbActive(dev: Device): boolean {
  return (swiotlbDevMem(dev)?.nslabs ?? 0) > 0;
}

/**
 * `is_swiotlb_force_bounce(dev)`: every streaming mapping of `dev` bounces — the pool forces it
 * (`swiotlb=force`, a restricted pool) or the device does (`devDmaState(dev).swiotlbForceBounce`,
 * the model's stand-in for a CoCo guest's `force_dma_unencrypted`).
 * @see include/linux/swiotlb.h is_swiotlb_force_bounce
 */
export function isSwiotlbForceBounce(dev: Device): boolean {
  if (devDmaState(dev).swiotlbForceBounce) return true;
  return swiotlbDevMem(dev)?.forceBounce ?? false;
}

/**
 * `swiotlb_max_mapping_size(dev)`: `IO_TLB_SIZE * IO_TLB_SEGSIZE` (256 KiB) less
 * `roundup(min_align_mask, IO_TLB_SIZE)`, because the slot search skips slots to keep those bits.
 * @see kernel/dma/swiotlb.c swiotlb_max_mapping_size
 */
export function swiotlbMaxMappingSize(dev: Device): number {
  const minAlignMask = dmaGetMinAlignMask(dev);
  const minAlign = minAlignMask ? alignUp(minAlignMask, IO_TLB_SIZE) : 0;
  return IO_TLB_SIZE * IO_TLB_SEGSIZE - minAlign;
}

/**
 * `swiotlb_align_offset(dev, align_mask, addr)`: the offset into the allocation that keeps the
 * device's `min_align_mask` bits: `addr & min_align_mask & (align_mask | (IO_TLB_SIZE - 1))`.
 */
function swiotlbAlignOffset(minAlignMask: number, alignMask: number, addr: number): number {
  return (addr & minAlignMask & (alignMask | (IO_TLB_SIZE - 1))) >>> 0;
}

/**
 * `swiotlb_bounce()`: the CPU copy between the original buffer and the bounce buffer, through the
 * CPU cache (`system.cache` cpuRead/cpuWrite, as the kernel's memcpy through the linear map).
 * DMA_TO_DEVICE copies original → bounce, anything else bounce → original. The original address
 * comes from the slot of `tlbAddr` (so a sub-range sync copies the matching sub-range); a copy past
 * the allocation is cut short with the kernel's WARN_ONCE "Buffer overflow detected. Allocation
 * size: A. Mapping size: S.". Bytes copied are added to `system.stats.bytesBounced`.
 * @see kernel/dma/swiotlb.c swiotlb_bounce
 */
function swiotlbBounce(dev: Device, mem: SwiotlbMem, tlbAddr: number, size: number, dir: number): void {
  const index = mem.slotIndex(tlbAddr);
  let origAddr = mem.slotOrigAddr[index] as number;
  if (origAddr < 0) return;
  const system = devDmaState(dev).system;
  let n = size;
  // tlb_offset may be negative: a sub-range inside the first `offset` bytes of a later slot.
  const tlbOffset = (tlbAddr & (IO_TLB_SIZE - 1)) - swiotlbAlignOffset(dmaGetMinAlignMask(dev), 0, origAddr);
  origAddr += tlbOffset;
  // alloc_size is a size_t: a negative value here is a huge one in the kernel.
  const allocSize = (mem.slotAllocSize[index] as number) - tlbOffset;
  if (allocSize >= 0 && n > allocSize) {
    devWarnOnce(
      dev,
      true,
      "swiotlb_bounce:overflow",
      `Buffer overflow detected. Allocation size: ${allocSize}. Mapping size: ${n}.`,
    );
    n = allocSize;
  }
  if (n <= 0) return;
  const buf = mem.scratch(n);
  const cache = system.cache;
  const from = dir === DMA_TO_DEVICE ? origAddr : tlbAddr;
  const to = dir === DMA_TO_DEVICE ? tlbAddr : origAddr;
  // The copy runs inside the DMA API call, before its debug hook hands the buffer back to the CPU:
  // it is the kernel's access, not the driver's. Without dma-debug no closure is made per bounce.
  if (system.debug === null) bounceCopy(cache, from, to, buf);
  else system.debug.kernelAccess(() => bounceCopy(cache, from, to, buf));
  system.stats.bytesBounced += n;
}

/** The `memcpy` of a bounce, through the CPU cache (swiotlb copies with the CPU). */
function bounceCopy(cache: CpuCache, from: number, to: number, buf: Uint8Array): void {
  cache.cpuRead(from, buf);
  cache.cpuWrite(to, buf);
}

/**
 * `swiotlb_tbl_map_single(dev, orig_addr, mapping_size, alloc_align_mask, dir, attrs)` (6.10+):
 * allocates a bounce buffer for `mappingSize` bytes at `orig` and copies the original into it —
 * always, even for DMA_FROM_DEVICE, so a device that writes only part of the buffer leaves the
 * rest as it was instead of leaking stale bounce-buffer contents (CVE-2022-0854, commit
 * ddbd89deb7d3 "swiotlb: fix info leak with DMA_FROM_DEVICE" and its follow-ups).
 *
 * The buffer keeps `orig & min_align_mask` (within `alloc_align_mask | (IO_TLB_SIZE - 1)`) as its
 * offset; whole slots of that offset become `pad_slots`. The allocation is
 * `ALIGN(mapping_size + offset, alloc_align_mask + 1)` bytes. On success `dma_skip_sync` is reset
 * (`dma_reset_need_sync`): syncs of this device are needed from now on.
 *
 * Returns the bounce buffer's physical address, or DMA_MAPPING_ERROR (the kernel's sentinel):
 * - no pool: dev_warn_ratelimited "Can not allocate SWIOTLB buffer earlier and can't now provide
 *   you with the DMA bounce buffer";
 * - no free run: dev_warn_ratelimited "swiotlb buffer is full (sz: N bytes), total T (slots),
 *   used U (slots)" unless DMA_ATTR_NO_WARN. A mapping larger than {@link swiotlbMaxMappingSize}
 *   can never find a run and fails this way (mainline has no separate size check).
 * `alloc_align_mask > PAGE_SIZE - 1` WARNs once ("Alloc alignment may prevent fulfilling requests
 * with max mapping_size"). A zero-size request is the kernel's BUG_ON(!nslots): EINVAL, nothing
 * changed.
 * @see kernel/dma/swiotlb.c swiotlb_tbl_map_single
 */
export function swiotlbTblMapSingle(
  dev: Device,
  orig: number,
  mappingSize: number,
  allocAlignMask: number,
  _dir: number,
  attrs: number,
): number {
  const state = devDmaState(dev);
  const system = state.system;
  const mem = swiotlbDevMem(dev);
  if (mem === undefined || mem.nslabs === 0) {
    devWarnRatelimited(
      system,
      "swiotlb_tbl_map_single",
      dev,
      "Can not allocate SWIOTLB buffer earlier and can't now provide you with the DMA bounce buffer",
    );
    return DMA_MAPPING_ERROR;
  }
  devWarnOnce(
    dev,
    allocAlignMask > PAGE_SIZE - 1,
    "swiotlb_tbl_map_single:alloc_align",
    "Alloc alignment may prevent fulfilling requests with max mapping_size",
  );
  const minAlignMask = dmaGetMinAlignMask(dev);
  let offset = swiotlbAlignOffset(minAlignMask, allocAlignMask, orig);
  const size = alignUp(mappingSize + offset, allocAlignMask + 1);
  const index = mem.findSlots(
    0,
    orig,
    physToDma(dev, mem.start),
    size,
    allocAlignMask,
    minAlignMask,
    dmaGetSegBoundary(dev),
  );
  if (index === -1) {
    if ((attrs & DMA_ATTR_NO_WARN) === 0)
      devWarnRatelimited(
        system,
        "swiotlb_tbl_map_single",
        dev,
        `swiotlb buffer is full (sz: ${size} bytes), total ${mem.nslabs} (slots), used ${mem.used} (slots)`,
      );
    return DMA_MAPPING_ERROR;
  }
  state.dmaSkipSync = false;
  const padSlots = offset >> IO_TLB_SHIFT;
  offset &= IO_TLB_SIZE - 1;
  mem.setOrig(index, padSlots, nrSlots(size), orig);
  const tlbAddr = mem.slotAddr(index + padSlots) + offset;
  swiotlbBounce(dev, mem, tlbAddr, mappingSize, DMA_TO_DEVICE);
  return tlbAddr;
}

/**
 * `swiotlb_tbl_unmap_single(dev, tlb_addr, mapping_size, dir, attrs)`: copies the bounce buffer
 * back for DMA_FROM_DEVICE / DMA_BIDIRECTIONAL (unless DMA_ATTR_SKIP_CPU_SYNC) and frees the slots.
 * The slot count comes from the pool, not from `mappingSize`: a wrong size only changes how much
 * is copied (a larger one WARNs "Buffer overflow detected" and is cut to the allocation).
 * An address outside the pool is ignored, as the kernel's inline wrapper does. An address inside
 * the pool that is not a live bounce buffer (double unmap, a pointer into the middle) is where the
 * kernel would corrupt its free lists; the model WARNs "swiotlb_tbl_unmap_single: ADDR is not a
 * mapped bounce buffer" and changes nothing.
 * @see include/linux/swiotlb.h swiotlb_tbl_unmap_single, kernel/dma/swiotlb.c __swiotlb_tbl_unmap_single,
 *      swiotlb_release_slots
 */
export function swiotlbTblUnmapSingle(
  dev: Device,
  tlbAddr: number,
  mappingSize: number,
  dir: number,
  attrs: number,
): void {
  const mem = swiotlbDevMem(dev);
  if (mem === undefined || !mem.contains(tlbAddr)) return;
  const offset = swiotlbAlignOffset(dmaGetMinAlignMask(dev), 0, tlbAddr);
  const alloc = mem.allocationAt(tlbAddr, offset);
  if (alloc === null) {
    dev.log.warn(
      true,
      devPrefix(dev),
      `swiotlb_tbl_unmap_single: ${hex16(tlbAddr)} is not a mapped bounce buffer (size ${mappingSize})`,
    );
    return;
  }
  if ((attrs & DMA_ATTR_SKIP_CPU_SYNC) === 0 && (dir === DMA_FROM_DEVICE || dir === DMA_BIDIRECTIONAL))
    swiotlbBounce(dev, mem, tlbAddr, mappingSize, DMA_FROM_DEVICE);
  mem.releaseSlots(alloc.index, alloc.nslots);
}

/**
 * `swiotlb_sync_single_for_device(dev, tlb_addr, size, dir)`: copies original → bounce for
 * DMA_TO_DEVICE / DMA_BIDIRECTIONAL; nothing for DMA_FROM_DEVICE; an address outside the pool is
 * ignored. DMA_NONE is the kernel's BUG_ON: EINVAL.
 * @see include/linux/swiotlb.h, kernel/dma/swiotlb.c __swiotlb_sync_single_for_device
 */
export function swiotlbSyncSingleForDevice(dev: Device, tlbAddr: number, size: number, dir: number): void {
  checkDmaDirection(dir, "swiotlb_sync_single_for_device");
  const mem = swiotlbDevMem(dev);
  if (mem === undefined || !mem.contains(tlbAddr)) return;
  if (dir === DMA_TO_DEVICE || dir === DMA_BIDIRECTIONAL)
    swiotlbBounce(dev, mem, tlbAddr, size, DMA_TO_DEVICE);
}

/**
 * `swiotlb_sync_single_for_cpu(dev, tlb_addr, size, dir)`: copies bounce → original for
 * DMA_FROM_DEVICE / DMA_BIDIRECTIONAL; nothing for DMA_TO_DEVICE; an address outside the pool is
 * ignored. DMA_NONE is the kernel's BUG_ON: EINVAL.
 * @see include/linux/swiotlb.h, kernel/dma/swiotlb.c __swiotlb_sync_single_for_cpu
 */
export function swiotlbSyncSingleForCpu(dev: Device, tlbAddr: number, size: number, dir: number): void {
  checkDmaDirection(dir, "swiotlb_sync_single_for_cpu");
  const mem = swiotlbDevMem(dev);
  if (mem === undefined || !mem.contains(tlbAddr)) return;
  if (dir === DMA_FROM_DEVICE || dir === DMA_BIDIRECTIONAL)
    swiotlbBounce(dev, mem, tlbAddr, size, DMA_FROM_DEVICE);
}

/**
 * `swiotlb_map(dev, paddr, size, dir, attrs)`: dma-direct's bounce path. Traces
 * `swiotlb_bounced`, maps through {@link swiotlbTblMapSingle}, and checks that the device can
 * reach the bounce buffer; if not, frees it (no copy back) and WARNs once "swiotlb addr
 * 0xADDR+SIZE overflow (mask M, bus limit L)." → DMA_MAPPING_ERROR. For a non-coherent device the
 * bounce buffer is cleaned to the point of coherency (`arch_sync_dma_for_device`, arm64
 * `dcache_clean_poc` for every direction) unless DMA_ATTR_SKIP_CPU_SYNC. Returns the DMA address.
 * @see kernel/dma/swiotlb.c swiotlb_map
 */
export function swiotlbMap(dev: Device, phys: number, size: number, dir: number, attrs: number): number {
  const system = devDmaState(dev).system;
  const tracer = system.tracer;
  if (tracer?.enabled)
    tracer.emit(SWIOTLB_BOUNCED, { dev: dev.name, dmaAddr: physToDma(dev, phys), size }, dev.name);
  const tlbAddr = swiotlbTblMapSingle(dev, phys, size, 0, dir, attrs);
  if (tlbAddr === DMA_MAPPING_ERROR) return DMA_MAPPING_ERROR;
  const dmaAddr = physToDma(dev, tlbAddr);
  if (!dmaCapable(dev, dmaAddr, size, true)) {
    swiotlbTblUnmapSingle(dev, tlbAddr, size, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC);
    devWarnOnce(
      dev,
      true,
      "swiotlb_map:overflow",
      `swiotlb addr ${hex16(dmaAddr)}+${size} overflow (mask ${llx(dev.dmaMask ?? 0)}, bus limit ${llx(dev.busDmaLimit)}).`,
    );
    return DMA_MAPPING_ERROR;
  }
  if (!dev.dmaCoherent && (attrs & DMA_ATTR_SKIP_CPU_SYNC) === 0) {
    archSyncDmaForDevice(dev, tlbAddr, size, dir as DmaDataDirection);
  }
  return dmaAddr;
}
