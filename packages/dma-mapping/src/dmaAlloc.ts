import type { Device } from "@dmakit/core";
import { pageAlign } from "@dmakit/core";
import { __GFP_COMP, __GFP_DMA, __GFP_DMA32, __GFP_HIGHMEM, __GFP_NOWARN } from "@dmakit/mm-pages";
import {
  TRACE_DMA_ALLOC,
  TRACE_DMA_ALLOC_PAGES,
  TRACE_DMA_FREE,
  TRACE_DMA_FREE_PAGES,
} from "./dmaAllocTrace.js";
import { DMA_ATTR_NO_WARN, DMA_ATTR_WRITE_COMBINE } from "./dmaAttrs.js";
import { devDmaState, useDmaIommu } from "./dmaDevice.js";
import { dmaDirectAlloc, dmaDirectAllocPages, dmaDirectFree, dmaDirectFreePages } from "./dmaDirectAlloc.js";
import { DMA_BIDIRECTIONAL, type DmaDataDirection } from "./dmaDirection.js";
import { warnOnOnce } from "./internal/devWarn.js";
import { dmaCommonAllocPages, dmaCommonFreePages, iommuDmaAlloc, iommuDmaFree } from "./iommuDmaAlloc.js";

/**
 * What `dma_alloc_attrs` hands back: the CPU address (its return value) and `*dma_handle`.
 * @see kernel/dma/mapping.c dma_alloc_attrs
 */
export interface DmaAlloc {
  readonly cpuAddr: number;
  readonly dmaHandle: number;
}

/**
 * What `dma_alloc_pages` hands back: the first page's pfn (its return value) and `*dma_handle`.
 * @see kernel/dma/mapping.c dma_alloc_pages
 */
export interface DmaPageAlloc {
  readonly page: number;
  readonly dmaHandle: number;
}

const ZONE_GFP = __GFP_DMA | __GFP_DMA32 | __GFP_HIGHMEM;

/**
 * `dma_alloc_attrs(dev, size, &dma_handle, gfp, attrs)`: a coherent buffer: memory both the CPU
 * and the device see without cache maintenance, zeroed. `WARN_ON_ONCE` when the device has no
 * coherent mask (it carries on); `__GFP_COMP` is refused (WARN_ON_ONCE, null); zone modifiers in
 * `gfp` are dropped (the implementation picks the zone from the coherent mask). Dispatches to
 * dma-direct ({@link dmaDirectAlloc}) or iommu-dma ({@link iommuDmaAlloc}), counts
 * `system.stats.allocations`, emits `dma:dma_alloc` and calls dma-debug.
 *
 * Returns `{ cpuAddr, dmaHandle }` or null (the kernel's NULL). `cpuAddr` is a kernel virtual
 * address: the linear map for a coherent device, a vmalloc-space remap (or atomic-pool address)
 * for a non-coherent one, or, with `DMA_ATTR_NO_KERNEL_MAPPING` on dma-direct, the first pfn as an
 * opaque cookie. Free with {@link dmaFreeAttrs} and the same size and attrs.
 *
 * @example
 * const buf = dmaAllocCoherent(dev, SZ_64K, GFP_KERNEL);
 * if (buf === null) throw new KernelError("ENOMEM", "ring");
 * dmaFreeCoherent(dev, SZ_64K, buf.cpuAddr, buf.dmaHandle);
 * @see kernel/dma/mapping.c dma_alloc_attrs. Not modelled: per-device coherent pools
 * (`dma_alloc_from_dev_coherent`, `shared-dma-pool` no-map regions) and the global coherent pool.
 */
export function dmaAllocAttrs(dev: Device, size: number, gfp0: number, attrs = 0): DmaAlloc | null {
  const system = devDmaState(dev).system;
  warnOnOnce(dev, dev.coherentDmaMask === 0, "dma_alloc_attrs", "!dev->coherent_dma_mask");
  if (warnOnOnce(dev, (gfp0 & __GFP_COMP) !== 0, "dma_alloc_attrs", "flag & __GFP_COMP")) return null;
  const gfp = gfp0 & ~ZONE_GFP;
  const r = useDmaIommu(dev) ? iommuDmaAlloc(dev, size, gfp, attrs) : dmaDirectAlloc(dev, size, gfp, attrs);
  const tracer = system.tracer;
  if (tracer?.enabled)
    tracer.emit(
      TRACE_DMA_ALLOC,
      {
        device: dev.name,
        virtAddr: r?.cpuAddr ?? 0,
        dmaAddr: r?.dmaHandle ?? 0,
        size,
        dir: DMA_BIDIRECTIONAL,
        flags: gfp,
        attrs,
      },
      dev.name,
    );
  if (r === null) return null;
  system.stats.allocations++;
  system.debug?.debugDmaAllocCoherent(dev, size, r.dmaHandle, r.cpuAddr, attrs);
  return r;
}

/**
 * `dma_free_attrs(dev, size, cpu_addr, dma_handle, attrs)`: frees a {@link dmaAllocAttrs} buffer
 * (pass the allocation's size and attrs). A null (or 0) `cpuAddr` is a no-op, after the trace
 * event, as in the kernel. Counts `system.stats.frees` and calls dma-debug first.
 * @see kernel/dma/mapping.c dma_free_attrs. Not modelled: `WARN_ON(irqs_disabled())`.
 */
export function dmaFreeAttrs(
  dev: Device,
  size: number,
  cpuAddr: number | null,
  dmaHandle: number,
  attrs = 0,
): void {
  const system = devDmaState(dev).system;
  const tracer = system.tracer;
  if (tracer?.enabled)
    tracer.emit(
      TRACE_DMA_FREE,
      { device: dev.name, virtAddr: cpuAddr ?? 0, dmaAddr: dmaHandle, size, dir: DMA_BIDIRECTIONAL, attrs },
      dev.name,
    );
  if (cpuAddr === null || cpuAddr === 0) return;
  system.debug?.debugDmaFreeCoherent(dev, size, cpuAddr, dmaHandle);
  if (useDmaIommu(dev)) iommuDmaFree(dev, size, cpuAddr, dmaHandle, attrs);
  else dmaDirectFree(dev, size, cpuAddr, dmaHandle, attrs);
  system.stats.frees++;
}

/**
 * `dma_alloc_coherent(dev, size, &dma_handle, gfp)` = {@link dmaAllocAttrs} with
 * `DMA_ATTR_NO_WARN` when `gfp` has `__GFP_NOWARN`. @see include/linux/dma-mapping.h
 */
export function dmaAllocCoherent(dev: Device, size: number, gfp: number): DmaAlloc | null {
  return dmaAllocAttrs(dev, size, gfp, (gfp & __GFP_NOWARN) !== 0 ? DMA_ATTR_NO_WARN : 0);
}

/**
 * `dma_free_coherent(dev, size, cpu_addr, dma_handle)` = {@link dmaFreeAttrs} with attrs 0.
 * @see include/linux/dma-mapping.h dma_free_coherent
 */
export function dmaFreeCoherent(dev: Device, size: number, cpuAddr: number | null, dmaHandle: number): void {
  dmaFreeAttrs(dev, size, cpuAddr, dmaHandle, 0);
}

/**
 * `dma_alloc_wc(dev, size, &dma_addr, gfp)`: {@link dmaAllocAttrs} with `DMA_ATTR_WRITE_COMBINE`
 * (plus `DMA_ATTR_NO_WARN` for `__GFP_NOWARN`). @see include/linux/dma-mapping.h
 */
export function dmaAllocWc(dev: Device, size: number, gfp: number): DmaAlloc | null {
  let attrs = DMA_ATTR_WRITE_COMBINE;
  if ((gfp & __GFP_NOWARN) !== 0) attrs |= DMA_ATTR_NO_WARN;
  return dmaAllocAttrs(dev, size, gfp, attrs);
}

/**
 * `dma_free_wc(dev, size, cpu_addr, dma_addr)` = {@link dmaFreeAttrs} with `DMA_ATTR_WRITE_COMBINE`.
 * @see include/linux/dma-mapping.h dma_free_wc
 */
export function dmaFreeWc(dev: Device, size: number, cpuAddr: number | null, dmaAddr: number): void {
  dmaFreeAttrs(dev, size, cpuAddr, dmaAddr, DMA_ATTR_WRITE_COMBINE);
}

/**
 * `__dma_alloc_pages`: the checks shared by `dma_alloc_pages` and `dma_alloc_noncontiguous`'s
 * single-allocation path. @internal
 * @see kernel/dma/mapping.c __dma_alloc_pages
 */
export function __dmaAllocPages(
  dev: Device,
  size0: number,
  dir: DmaDataDirection,
  gfp: number,
): DmaPageAlloc | null {
  if (warnOnOnce(dev, dev.coherentDmaMask === 0, "__dma_alloc_pages", "!dev->coherent_dma_mask")) return null;
  if (
    warnOnOnce(
      dev,
      (gfp & ZONE_GFP) !== 0,
      "__dma_alloc_pages",
      "gfp & (__GFP_DMA | __GFP_DMA32 | __GFP_HIGHMEM)",
    )
  )
    return null;
  if (warnOnOnce(dev, (gfp & __GFP_COMP) !== 0, "__dma_alloc_pages", "gfp & __GFP_COMP")) return null;
  const size = pageAlign(size0);
  return useDmaIommu(dev)
    ? dmaCommonAllocPages(dev, size, dir, gfp)
    : dmaDirectAllocPages(dev, size, dir, gfp);
}

/** `__dma_free_pages`. @internal @see kernel/dma/mapping.c __dma_free_pages */
export function __dmaFreePages(
  dev: Device,
  size: number,
  page: number,
  dmaHandle: number,
  dir: DmaDataDirection,
): void {
  const s = pageAlign(size);
  if (useDmaIommu(dev)) dmaCommonFreePages(dev, s, page, dmaHandle, dir);
  else dmaDirectFreePages(dev, s, page, dmaHandle, dir);
}

/**
 * `dma_alloc_pages(dev, size, &dma_handle, dir, gfp)`: `PAGE_ALIGN(size)` bytes of ordinary
 * (cacheable) memory the device can reach, zeroed, for the non-coherent API: the caller syncs
 * (`dma_sync_single_for_device/for_cpu`) around device access. WARN_ON_ONCE and null when the
 * device has no coherent mask, `gfp` names a zone, or has `__GFP_COMP`. Counts
 * `system.stats.allocations`, emits `dma:dma_alloc_pages`, calls dma-debug.
 * Returns `{ page, dmaHandle }` (page = first pfn) or null.
 * @see kernel/dma/mapping.c dma_alloc_pages; iommu-dma: kernel/dma/ops_helpers.c dma_common_alloc_pages
 */
export function dmaAllocPages(
  dev: Device,
  size: number,
  dir: DmaDataDirection,
  gfp: number,
): DmaPageAlloc | null {
  const system = devDmaState(dev).system;
  const r = __dmaAllocPages(dev, size, dir, gfp);
  const tracer = system.tracer;
  if (tracer?.enabled)
    tracer.emit(
      TRACE_DMA_ALLOC_PAGES,
      {
        device: dev.name,
        virtAddr: r === null ? 0 : system.vm.pageAddress(r.page),
        dmaAddr: r?.dmaHandle ?? 0,
        size,
        dir,
        flags: gfp,
        attrs: 0,
      },
      dev.name,
    );
  if (r === null) return null;
  system.stats.allocations++;
  system.debug?.debugDmaAllocPages(dev, r.page, size, dir, r.dmaHandle, 0);
  return r;
}

/**
 * `dma_free_pages(dev, size, page, dma_handle, dir)`: frees a {@link dmaAllocPages} allocation
 * (dma-debug is told first). @see kernel/dma/mapping.c dma_free_pages
 */
export function dmaFreePages(
  dev: Device,
  size: number,
  page: number,
  dmaHandle: number,
  dir: DmaDataDirection,
): void {
  const system = devDmaState(dev).system;
  const tracer = system.tracer;
  if (tracer?.enabled)
    tracer.emit(
      TRACE_DMA_FREE_PAGES,
      { device: dev.name, virtAddr: system.vm.pageAddress(page), dmaAddr: dmaHandle, size, dir, attrs: 0 },
      dev.name,
    );
  system.debug?.debugDmaFreePages(dev, page, size, dir, dmaHandle);
  __dmaFreePages(dev, size, page, dmaHandle, dir);
  system.stats.frees++;
}

/**
 * `dma_alloc_noncoherent(dev, size, &dma_handle, dir, gfp)` = `page_address(dma_alloc_pages(...))`:
 * the same memory as {@link dmaAllocPages}, as a linear-map CPU address. @see include/linux/dma-mapping.h
 */
export function dmaAllocNoncoherent(
  dev: Device,
  size: number,
  dir: DmaDataDirection,
  gfp: number,
): DmaAlloc | null {
  const r = dmaAllocPages(dev, size, dir, gfp);
  if (r === null) return null;
  return { cpuAddr: devDmaState(dev).system.vm.pageAddress(r.page), dmaHandle: r.dmaHandle };
}

/**
 * `dma_free_noncoherent(dev, size, vaddr, dma_handle, dir)` =
 * `dma_free_pages(dev, size, virt_to_page(vaddr), dma_handle, dir)`. @see include/linux/dma-mapping.h
 */
export function dmaFreeNoncoherent(
  dev: Device,
  size: number,
  vaddr: number,
  dmaHandle: number,
  dir: DmaDataDirection,
): void {
  dmaFreePages(dev, size, devDmaState(dev).system.vm.virtToPage(vaddr), dmaHandle, dir);
}
