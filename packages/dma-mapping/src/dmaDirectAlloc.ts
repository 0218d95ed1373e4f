import {
  type Device,
  DMA_MAPPING_ERROR,
  dmaToPhys,
  getOrder,
  minNotZero,
  PAGE_SIZE,
  pageAlign,
  physToDma,
  ULONG_MAX,
} from "@dmakit/core";
import { __GFP_NOWARN, __GFP_ZERO, GFP_DMA, GFP_DMA32, gfpflagsAllowBlocking } from "@dmakit/mm-pages";
import type { DmaAlloc, DmaPageAlloc } from "./dmaAlloc.js";
import { DMA_ATTR_NO_KERNEL_MAPPING, DMA_ATTR_NO_WARN } from "./dmaAttrs.js";
import { dmaAllocContiguous, dmaFreeContiguous } from "./dmaContiguous.js";
import { devDmaState } from "./dmaDevice.js";
import { dmaPgprot } from "./dmaMmap.js";
import { dmaAllocFromPool, dmaFreeFromPool } from "./dmaPool.js";
import { warnOnOnce } from "./internal/devWarn.js";
import {
  archDmaPrepCoherent,
  dmaCommonContiguousRemap,
  dmaCommonFreeRemap,
  zeroDmaBuffer,
} from "./internal/dmaRemap.js";
import { hasZoneDma, hasZoneDma32, zoneDmaLimit } from "./internal/zoneDmaLimit.js";

/**
 * `dma_coherent_ok(dev, phys, size)`: the device reaches `[phys, phys + size)` within
 * `min_not_zero(coherent_dma_mask, bus_dma_limit)` (false when the range map has no translation).
 * @see kernel/dma/direct.c dma_coherent_ok
 */
export function dmaCoherentOk(dev: Device, phys: number, size: number): boolean {
  const addr = physToDma(dev, phys);
  if (addr === DMA_MAPPING_ERROR) return false;
  return addr + size - 1 <= minNotZero(dev.coherentDmaMask, dev.busDmaLimit);
}

/**
 * `dma_direct_optimal_gfp_mask(dev, &phys_limit)`: the zone to try first for the device's
 * coherent mask (and bus limit) as a physical limit: `GFP_DMA` when the limit is inside ZONE_DMA
 * (`zone_dma_limit`), `GFP_DMA32` below 4 GiB, else 0.
 * @see kernel/dma/direct.c dma_direct_optimal_gfp_mask
 */
export function dmaDirectOptimalGfpMask(dev: Device): { gfp: number; physLimit: number } {
  const system = devDmaState(dev).system;
  const physLimit = dmaToPhys(dev, minNotZero(dev.coherentDmaMask, dev.busDmaLimit));
  if (physLimit <= zoneDmaLimit(system)) return { gfp: GFP_DMA, physLimit };
  if (physLimit <= 2 ** 32 - 1) return { gfp: GFP_DMA32, physLimit };
  return { gfp: 0, physLimit };
}

/**
 * `__dma_direct_alloc_pages(dev, size, gfp, allow_highmem)`: CMA first (blocking `gfp` only),
 * else the page allocator at `get_order(size)` from the zone the coherent mask suggests; memory
 * the device cannot reach is freed and the allocation retried with GFP_DMA32, then GFP_DMA.
 * Returns the first pfn or null.
 */
function dmaDirectAllocPagesRaw(dev: Device, size: number, gfp0: number): number | null {
  const system = devDmaState(dev).system;
  warnOnOnce(dev, size % PAGE_SIZE !== 0, "__dma_direct_alloc_pages", "!PAGE_ALIGNED(size)");
  const { gfp: zone, physLimit } = dmaDirectOptimalGfpMask(dev);
  let gfp = gfp0 | zone;
  let pfn = dmaAllocContiguous(dev, size, gfp);
  if (pfn !== null && !dmaCoherentOk(dev, pfn * PAGE_SIZE, size)) {
    dmaFreeContiguous(dev, pfn, size);
    pfn = null;
  }
  const order = getOrder(size);
  for (;;) {
    pfn ??= system.pages.allocPages(gfp, order);
    if (pfn === null || dmaCoherentOk(dev, pfn * PAGE_SIZE, size)) return pfn;
    system.pages.freePages(pfn, order);
    pfn = null;
    if (hasZoneDma32(system) && physLimit < ULONG_MAX && (gfp & (GFP_DMA32 | GFP_DMA)) === 0) {
      gfp |= GFP_DMA32;
      continue;
    }
    if (hasZoneDma(system) && (gfp & GFP_DMA) === 0) {
      gfp = (gfp & ~GFP_DMA32) | GFP_DMA;
      continue;
    }
    return null;
  }
}

/** `dma_direct_alloc_from_pool`: an atomic-pool buffer the coherent mask reaches. */
function dmaDirectAllocFromPool(dev: Device, size: number, gfp: number): DmaAlloc | null {
  const r = dmaAllocFromPool(dev, size, gfp | dmaDirectOptimalGfpMask(dev).gfp, dmaCoherentOk);
  if (r === null) return null;
  return { cpuAddr: r.cpuAddr, dmaHandle: physToDma(dev, r.pfn * PAGE_SIZE) };
}

/**
 * `dma_direct_alloc(dev, size, &dma_handle, gfp, attrs)`: a coherent buffer of `PAGE_ALIGN(size)`
 * bytes for a device mapped directly.
 * - `DMA_ATTR_NO_KERNEL_MAPPING`: pages only (cleaned from the cache, not zeroed); the "CPU
 *   address" is the first pfn, the kernel's `struct page *` cookie.
 * - Coherent device: pages from CMA or the page allocator (zone by coherent mask), zeroed through
 *   their linear-map address.
 * - Non-coherent device (CONFIG_DMA_DIRECT_REMAP, as arm64): a `gfp` that may not block takes an
 *   atomic-pool buffer; otherwise the pages are cleaned and invalidated from the cache
 *   (`arch_dma_prep_coherent`), vmapped (`dma_common_contiguous_remap`, a vmalloc-space address)
 *   and zeroed through that uncached mapping, i.e. in RAM.
 * `DMA_ATTR_NO_WARN` adds `__GFP_NOWARN`. Returns the CPU address and DMA handle, or null.
 * @see kernel/dma/direct.c dma_direct_alloc. Not modelled: memory encryption
 * (`force_dma_unencrypted`), restricted swiotlb pools for allocations (`is_swiotlb_for_alloc`),
 * highmem, arch_dma_alloc / global pools / `arch_dma_set_uncached` platforms.
 */
export function dmaDirectAlloc(dev: Device, size0: number, gfp0: number, attrs: number): DmaAlloc | null {
  const system = devDmaState(dev).system;
  const size = pageAlign(size0);
  let gfp = gfp0;
  if ((attrs & DMA_ATTR_NO_WARN) !== 0) gfp |= __GFP_NOWARN;
  if ((attrs & DMA_ATTR_NO_KERNEL_MAPPING) !== 0) {
    const pfn = dmaDirectAllocPagesRaw(dev, size, gfp & ~__GFP_ZERO);
    if (pfn === null) return null;
    archDmaPrepCoherent(system, pfn, size);
    return { cpuAddr: pfn, dmaHandle: physToDma(dev, pfn * PAGE_SIZE) };
  }
  const remap = !dev.dmaCoherent;
  if (remap && !gfpflagsAllowBlocking(gfp)) return dmaDirectAllocFromPool(dev, size, gfp);
  const pfn = dmaDirectAllocPagesRaw(dev, size, gfp & ~__GFP_ZERO);
  if (pfn === null) return null;
  let cpuAddr: number;
  if (remap) {
    archDmaPrepCoherent(system, pfn, size);
    const va = dmaCommonContiguousRemap(system, pfn, size, dmaPgprot(dev, "cached", attrs));
    if (va === null) {
      dmaFreeContiguous(dev, pfn, size);
      return null;
    }
    cpuAddr = va;
  } else {
    cpuAddr = system.vm.pageAddress(pfn);
  }
  zeroDmaBuffer(system, pfn, size, !remap);
  return { cpuAddr, dmaHandle: physToDma(dev, pfn * PAGE_SIZE) };
}

/**
 * `dma_direct_free(dev, size, cpu_addr, dma_addr, attrs)`: undoes {@link dmaDirectAlloc}: a page
 * cookie (`DMA_ATTR_NO_KERNEL_MAPPING`) goes straight back; an atomic-pool address returns to its
 * pool; a remapped address is vunmapped; then the pages found from `dma_addr` return to CMA or the
 * page allocator. The size must be the allocation's (the allocator throws EINVAL otherwise).
 * @see kernel/dma/direct.c dma_direct_free
 */
export function dmaDirectFree(
  dev: Device,
  size: number,
  cpuAddr: number,
  dmaAddr: number,
  attrs: number,
): void {
  const system = devDmaState(dev).system;
  if ((attrs & DMA_ATTR_NO_KERNEL_MAPPING) !== 0) {
    dmaFreeContiguous(dev, cpuAddr, size);
    return;
  }
  if (dmaFreeFromPool(dev, cpuAddr, pageAlign(size))) return;
  if (system.vm.isVmallocAddr(cpuAddr)) dmaCommonFreeRemap(system, cpuAddr);
  dmaFreeContiguous(dev, Math.floor(dmaToPhys(dev, dmaAddr) / PAGE_SIZE), size);
}

/**
 * `dma_direct_alloc_pages(dev, size, &dma_handle, dir, gfp)`: pages for the non-coherent API
 * (`dma_alloc_pages`): CMA or the page allocator by coherent mask, zeroed through the (cached)
 * linear map; the caller owns cache maintenance (`dma_sync_*`). Returns the first pfn and the DMA
 * handle, or null. @see kernel/dma/direct.c dma_direct_alloc_pages
 */
export function dmaDirectAllocPages(
  dev: Device,
  size: number,
  _dir: number,
  gfp: number,
): DmaPageAlloc | null {
  const system = devDmaState(dev).system;
  const pfn = dmaDirectAllocPagesRaw(dev, size, gfp);
  if (pfn === null) return null;
  zeroDmaBuffer(system, pfn, size, true);
  return { page: pfn, dmaHandle: physToDma(dev, pfn * PAGE_SIZE) };
}

/**
 * `dma_direct_free_pages(dev, size, page, dma_addr, dir)`: returns {@link dmaDirectAllocPages}
 * memory to CMA or the page allocator. @see kernel/dma/direct.c dma_direct_free_pages
 */
export function dmaDirectFreePages(
  dev: Device,
  size: number,
  page: number,
  _dmaAddr: number,
  _dir: number,
): void {
  const system = devDmaState(dev).system;
  if (dmaFreeFromPool(dev, system.vm.pageAddress(page), size)) return;
  dmaFreeContiguous(dev, page, size);
}
