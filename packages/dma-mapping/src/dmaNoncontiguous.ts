import { type Device, isKernelError, pageAlign } from "@dmakit/core";
import { __GFP_COMP, type VmAreaStruct } from "@dmakit/mm-pages";
import {
  forEachSgtableSg,
  type Sg,
  SgTable,
  sgAllocTable,
  sgDmaAddress,
  sgDmaSetAddress,
  sgDmaSetLen,
  sgFreeTable,
  sgPage,
  sgSetPage,
} from "@dmakit/scatterlist";
import { __dmaAllocPages, __dmaFreePages } from "./dmaAlloc.js";
import { TRACE_DMA_ALLOC_SGT, TRACE_DMA_ALLOC_SGT_ERR, TRACE_DMA_FREE_SGT } from "./dmaAllocTrace.js";
import { DMA_ATTR_ALLOC_SINGLE_PAGES } from "./dmaAttrs.js";
import { devDmaState, useDmaIommu } from "./dmaDevice.js";
import type { DmaDataDirection } from "./dmaDirection.js";
import { dmaMmapPages } from "./dmaMmap.js";
import { dmaSgPool } from "./dmaSgPool.js";
import { tracePrintArray } from "./dmaTrace.js";
import { warnOnOnce } from "./internal/devWarn.js";
import {
  iommuDmaAllocNoncontiguous,
  iommuDmaFreeNoncontiguous,
  iommuDmaMmapNoncontiguous,
  iommuDmaVmapNoncontiguous,
} from "./iommuDmaAlloc.js";

/** The first page of each CPU segment, as `dma_alloc_sgt` prints its `pages` array (as pfns). */
function tracePrintPages(sgt: SgTable): string {
  const pfns: number[] = [];
  for (const sg of forEachSgtableSg(sgt)) pfns.push(sgPage(sg));
  return tracePrintArray(pfns);
}

/** `alloc_single_sgt`: one `__dma_alloc_pages` block in a one-entry table. */
function allocSingleSgt(dev: Device, size: number, dir: DmaDataDirection, gfp: number): SgTable | null {
  const sgt = new SgTable(dmaSgPool(devDmaState(dev).system));
  try {
    sgAllocTable(sgt, 1, gfp);
  } catch (e) {
    if (isKernelError(e)) return null;
    throw e;
  }
  const sgl = sgt.sgl as Sg;
  const r = __dmaAllocPages(dev, size, dir, gfp);
  if (r === null) {
    sgFreeTable(sgt);
    return null;
  }
  sgSetPage(sgl, r.page, pageAlign(size), 0);
  sgDmaSetAddress(sgl, r.dmaHandle);
  sgDmaSetLen(sgl, pageAlign(size));
  return sgt;
}

/**
 * `dma_alloc_noncontiguous(dev, size, dir, gfp, attrs)`: memory the device sees as one contiguous
 * DMA range, returned as an sg_table already "mapped": `nents = 1`, the first entry's DMA address
 * and length cover the whole buffer. With iommu-dma the pages are scattered (largest blocks the
 * IOMMU page sizes allow, or single pages with `DMA_ATTR_ALLOC_SINGLE_PAGES`) and `orig_nents`
 * counts the CPU segments; otherwise it is one contiguous `dma_alloc_pages` block. The memory is
 * cacheable: sync with `dma_sync_sgtable_for_device/for_cpu`. Attributes other than
 * `DMA_ATTR_ALLOC_SINGLE_PAGES`, or `__GFP_COMP`, WARN_ON_ONCE and give null; so does running out
 * of memory or IOVA space. Counts `system.stats.allocations`, emits `dma:dma_alloc_sgt(_err)` and
 * calls dma-debug's `debug_dma_map_sg`.
 * @see kernel/dma/mapping.c dma_alloc_noncontiguous, drivers/iommu/dma-iommu.c iommu_dma_alloc_noncontiguous
 */
export function dmaAllocNoncontiguous(
  dev: Device,
  size: number,
  dir: DmaDataDirection,
  gfp: number,
  attrs = 0,
): SgTable | null {
  const system = devDmaState(dev).system;
  const fn = "dma_alloc_noncontiguous";
  if (
    warnOnOnce(dev, (attrs & ~DMA_ATTR_ALLOC_SINGLE_PAGES) !== 0, fn, "attrs & ~DMA_ATTR_ALLOC_SINGLE_PAGES")
  )
    return null;
  if (warnOnOnce(dev, (gfp & __GFP_COMP) !== 0, fn, "gfp & __GFP_COMP")) return null;
  const sgt = useDmaIommu(dev)
    ? iommuDmaAllocNoncontiguous(dev, size, dir, gfp, attrs)
    : allocSingleSgt(dev, size, dir, gfp);
  const tracer = system.tracer;
  if (sgt === null) {
    if (tracer?.enabled)
      tracer.emit(
        TRACE_DMA_ALLOC_SGT_ERR,
        { device: dev.name, virtAddr: 0, dmaAddr: 0, size, dir, flags: gfp, attrs },
        dev.name,
      );
    return null;
  }
  sgt.nents = 1;
  const sgl = sgt.sgl as Sg;
  if (tracer?.enabled)
    tracer.emit(
      TRACE_DMA_ALLOC_SGT,
      {
        device: dev.name,
        dmaAddr: sgDmaAddress(sgl),
        pages: tracePrintPages(sgt),
        size,
        dir,
        flags: gfp,
        attrs,
      },
      dev.name,
    );
  system.stats.allocations++;
  system.debug?.debugDmaMapSg(dev, sgl, sgt.origNents, 1, dir, attrs);
  return sgt;
}

/**
 * `dma_free_noncontiguous(dev, size, sgt, dir)`: unmaps and frees a {@link dmaAllocNoncontiguous}
 * table and its memory (dma-debug's `debug_dma_unmap_sg` first). EFAULT for a table already freed.
 * @see kernel/dma/mapping.c dma_free_noncontiguous
 */
export function dmaFreeNoncontiguous(dev: Device, size: number, sgt: SgTable, dir: DmaDataDirection): void {
  const system = devDmaState(dev).system;
  const sgl = sgt.checkLive("dma_free_noncontiguous");
  const tracer = system.tracer;
  if (tracer?.enabled)
    tracer.emit(
      TRACE_DMA_FREE_SGT,
      {
        device: dev.name,
        dmaAddr: sgDmaAddress(sgl),
        pages: tracePrintPages(sgt),
        size,
        dir,
        flags: 0,
        attrs: 0,
      },
      dev.name,
    );
  system.debug?.debugDmaUnmapSg(dev, sgl, sgt.origNents, dir);
  if (useDmaIommu(dev)) {
    iommuDmaFreeNoncontiguous(dev, size, sgt, dir);
  } else {
    __dmaFreePages(dev, size, sgPage(sgl), sgDmaAddress(sgl), dir);
    sgFreeTable(sgt);
  }
  system.stats.frees++;
}

/**
 * `dma_vmap_noncontiguous(dev, size, sgt)`: a CPU address for the whole buffer: a cached vmap of
 * the page array (iommu-dma; null if vmap fails) or the linear-map address of the single block.
 * @see kernel/dma/mapping.c dma_vmap_noncontiguous
 */
export function dmaVmapNoncontiguous(dev: Device, size: number, sgt: SgTable): number | null {
  if (useDmaIommu(dev)) return iommuDmaVmapNoncontiguous(dev, size, sgt);
  return devDmaState(dev).system.vm.pageAddress(sgPage(sgt.checkLive("dma_vmap_noncontiguous")));
}

/**
 * `dma_vunmap_noncontiguous(dev, vaddr)`: undoes an iommu-dma vmap (nothing for dma-direct).
 * @see kernel/dma/mapping.c dma_vunmap_noncontiguous
 */
export function dmaVunmapNoncontiguous(dev: Device, vaddr: number): void {
  if (useDmaIommu(dev)) devDmaState(dev).system.vm.vunmap(vaddr);
}

/**
 * `dma_mmap_noncontiguous(dev, vma, size, sgt)`: maps the buffer into a user VMA from `vm_pgoff`:
 * the iommu-dma page array with `vm_map_pages`, the single block with `dma_mmap_pages`. Returns 0;
 * ENXIO when `vm_pgoff` or the VMA size exceed the buffer. @see kernel/dma/mapping.c
 */
export function dmaMmapNoncontiguous(dev: Device, vma: VmAreaStruct, size: number, sgt: SgTable): 0 {
  if (useDmaIommu(dev)) return iommuDmaMmapNoncontiguous(dev, vma, size, sgt);
  return dmaMmapPages(dev, vma, size, sgPage(sgt.checkLive("dma_mmap_noncontiguous")));
}
