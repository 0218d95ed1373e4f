import { type Device, getOrder, PAGE_SIZE } from "@dmakit/core";
import {
  __GFP_NOWARN,
  type CmaArea,
  CONFIG_CMA_ALIGNMENT,
  cmaAlloc,
  cmaRelease,
  gfpflagsAllowBlocking,
} from "@dmakit/mm-pages";
import type { DmaSystem } from "./DmaSystem.js";
import { devDmaState } from "./dmaDevice.js";

/**
 * `dma_contiguous_default_area`: the machine's default CMA area (`cma=` / the `linux,cma-default`
 * reserved-memory node): the area named `reserved` if there is one, else the first area, else null.
 * @see kernel/dma/contiguous.c dma_contiguous_default_area
 */
export function dmaContiguousDefaultArea(system: DmaSystem): CmaArea | null {
  return system.cma.find((a) => a.name === "reserved") ?? system.cma[0] ?? null;
}

/**
 * `dev_get_cma_area(dev)`: the device's own CMA area (`dev->cma_area`, see `dmaConfigure`), else
 * the default area; `dev` null (the atomic pools) gives the default area.
 * @see include/linux/dma-map-ops.h dev_get_cma_area
 */
export function devGetCmaArea(system: DmaSystem, dev: Device | null): CmaArea | null {
  if (dev !== null) {
    const area = devDmaState(dev).cmaArea;
    if (area !== null) return area;
  }
  return dmaContiguousDefaultArea(system);
}

/**
 * `dma_alloc_from_contiguous(dev, count, align, no_warn)`: `count` pages aligned to
 * `2^min(align, CONFIG_CMA_ALIGNMENT)` pages from the device's CMA area (or the default one).
 * Returns the first pfn or null (no area, or the area is full).
 * @see kernel/dma/contiguous.c dma_alloc_from_contiguous
 */
export function dmaAllocFromContiguous(
  system: DmaSystem,
  dev: Device | null,
  count: number,
  align: number,
  noWarn: boolean,
): number | null {
  const cma = devGetCmaArea(system, dev);
  if (cma === null) return null;
  return cmaAlloc(cma, count, Math.min(align, CONFIG_CMA_ALIGNMENT), noWarn);
}

/**
 * `dma_release_from_contiguous(dev, pages, count)`: false (nothing freed) unless the range belongs
 * to the device's CMA area (or the default one). @see kernel/dma/contiguous.c
 */
export function dmaReleaseFromContiguous(
  system: DmaSystem,
  dev: Device | null,
  pfn: number,
  count: number,
): boolean {
  const cma = devGetCmaArea(system, dev);
  return cma !== null && cmaRelease(cma, pfn, count);
}

/** `cma_alloc_aligned(cma, size, gfp)`: CMA alignment = `min(get_order(size), CONFIG_CMA_ALIGNMENT)`. */
function cmaAllocAligned(cma: CmaArea, size: number, gfp: number): number | null {
  const align = Math.min(getOrder(size), CONFIG_CMA_ALIGNMENT);
  return cmaAlloc(cma, Math.floor(size / PAGE_SIZE), align, (gfp & __GFP_NOWARN) !== 0);
}

/**
 * `dma_alloc_contiguous(dev, size, gfp)`: `size` bytes (page-aligned) from CMA, or null so the
 * caller falls back to the page allocator. CMA is used only when `gfp` may block; a device with
 * its own area always uses it, the default area only serves allocations larger than a page.
 * @see kernel/dma/contiguous.c dma_alloc_contiguous. No per-NUMA areas (`cma_pernuma`) in the model.
 */
export function dmaAllocContiguous(dev: Device, size: number, gfp: number): number | null {
  const s = devDmaState(dev);
  if (!gfpflagsAllowBlocking(gfp)) return null;
  if (s.cmaArea !== null) return cmaAllocAligned(s.cmaArea, size, gfp);
  if (size <= PAGE_SIZE) return null;
  const area = dmaContiguousDefaultArea(s.system);
  if (area === null) return null;
  return cmaAllocAligned(area, size, gfp);
}

/**
 * `dma_free_contiguous(dev, page, size)`: returns the pages to the device's CMA area or the default
 * one when they belong there, else frees them to the page allocator at `get_order(size)` (the
 * allocator throws EINVAL, nothing freed, when that is not how they were allocated).
 * @see kernel/dma/contiguous.c dma_free_contiguous
 */
export function dmaFreeContiguous(dev: Device, pfn: number, size: number): void {
  const s = devDmaState(dev);
  const count = Math.ceil(size / PAGE_SIZE);
  const area = s.cmaArea ?? dmaContiguousDefaultArea(s.system);
  // cma_release returns false, without a WARN, for a range outside the area.
  if (area !== null && cmaRelease(area, pfn, count)) return;
  s.system.pages.freePages(pfn, getOrder(size));
}
