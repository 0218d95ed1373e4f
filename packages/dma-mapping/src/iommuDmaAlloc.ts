import {
  type Device,
  DMA_MAPPING_ERROR,
  ffs,
  getOrder,
  KernelError,
  PAGE_SIZE,
  pageAlign,
} from "@dmakit/core";
import { IOMMU_CACHE, iommuMapSg } from "@dmakit/iommu";
import {
  __GFP_COMP,
  __GFP_DMA,
  __GFP_DMA32,
  __GFP_HIGHMEM,
  __GFP_NORETRY,
  __GFP_NOWARN,
  __GFP_ZERO,
  gfpflagsAllowBlocking,
  MAX_PAGE_ORDER,
  type MmStruct,
  type VmAreaStruct,
} from "@dmakit/mm-pages";
import {
  forEachSg,
  type Sg,
  SgTable,
  sgAllocTable,
  sgAllocTableFromPages,
  sgDmaAddress,
  sgDmaSetAddress,
  sgDmaSetLen,
  sgFreeTable,
  sgLength,
  sgPage,
  sgPhys,
  sgSetPage,
} from "@dmakit/scatterlist";
import { type DmaSystem, DmaSystemKey } from "./DmaSystem.js";
import type { DmaAlloc, DmaPageAlloc } from "./dmaAlloc.js";
import {
  DMA_ATTR_ALLOC_SINGLE_PAGES,
  DMA_ATTR_FORCE_CONTIGUOUS,
  DMA_ATTR_SKIP_CPU_SYNC,
} from "./dmaAttrs.js";
import { dmaAllocContiguous, dmaFreeContiguous } from "./dmaContiguous.js";
import { devDmaState } from "./dmaDevice.js";
import { DMA_BIDIRECTIONAL, type DmaDataDirection } from "./dmaDirection.js";
import { dmaPgprot } from "./dmaMmap.js";
import { dmaAllocFromPool, dmaFreeFromPool } from "./dmaPool.js";
import { dmaSgPool } from "./dmaSgPool.js";
import { iommuDmaCookie } from "./IommuDmaCookie.js";
import {
  archDmaPrepCoherent,
  dmaCommonContiguousRemap,
  dmaCommonFindPages,
  dmaCommonFreeRemap,
  dmaCommonPagesRemap,
  zeroDmaBuffer,
} from "./internal/dmaRemap.js";
import {
  __iommuDmaMap,
  __iommuDmaUnmap,
  dmaInfoToProt,
  iommuDmaAllocIova,
  iommuDmaFreeIova,
  iommuDmaMapPhys,
  iommuDmaUnmapPhys,
} from "./iommuDma.js";

/**
 * `struct dma_sgt_handle`: the page array iommu-dma keeps beside each `dma_alloc_noncontiguous`
 * table (for vmap, mmap and free), by table.
 */
const SGT_HANDLES = new DmaSystemKey<Map<SgTable, Float64Array>>("iommu-dma-sgt-handles");

function sgtHandles(system: DmaSystem): Map<SgTable, Float64Array> {
  let m = system.get(SGT_HANDLES);
  if (m === undefined) {
    m = new Map();
    system.set(SGT_HANDLES, m);
  }
  return m;
}

/**
 * The page array of an iommu-dma noncontiguous table (`sgt_handle(sgt)->pages`), or undefined.
 * @see drivers/iommu/dma-iommu.c sgt_handle
 */
export function iommuDmaSgtPages(system: DmaSystem, sgt: SgTable): Float64Array | undefined {
  return system.get(SGT_HANDLES)?.get(sgt);
}

/** Live iommu-dma noncontiguous tables (leak checks). Model-only. */
export function iommuDmaSgtCount(system: DmaSystem): number {
  return system.get(SGT_HANDLES)?.size ?? 0;
}

/** `__fls(x)`: index of the highest set bit (x > 0, below 2^31). */
function fls0(x: number): number {
  return 31 - Math.clz32(x);
}

/** `__iommu_dma_free_pages(pages, count)`: drops each page of the array. */
function iommuDmaFreePages(system: DmaSystem, pages: ArrayLike<number>, count: number): void {
  for (let i = count - 1; i >= 0; i--) system.pages.freePage(pages[i] as number);
}

/**
 * `__iommu_dma_alloc_pages(dev, count, order_mask, gfp)`: `count` order-0 pages, taken as the
 * largest blocks `order_mask` (capped at MAX_PAGE_ORDER and at the pages still needed) allows and
 * `split_page`d; orders that fail are not tried again, and every order but the smallest left is
 * asked for with `__GFP_NORETRY`. `__GFP_NOWARN | __GFP_HIGHMEM` are added (the IOMMU maps any
 * page). Returns the pfn array or null (everything taken is freed again).
 */
function __iommuDmaAllocPages(
  system: DmaSystem,
  count0: number,
  orderMask0: number,
  gfp0: number,
): Float64Array | null {
  let orderMask = orderMask0 % 2 ** (MAX_PAGE_ORDER + 1);
  if (orderMask === 0) return null;
  const pages = new Float64Array(count0);
  const gfp = gfp0 | __GFP_NOWARN | __GFP_HIGHMEM;
  let count = count0;
  let i = 0;
  while (count > 0) {
    let pfn: number | null = null;
    let orderSize = 0;
    for (orderMask &= 2 ** (fls0(count) + 1) - 1; orderMask !== 0; orderMask &= ~orderSize) {
      const order = fls0(orderMask);
      orderSize = 1 << order;
      const flags = orderMask > orderSize ? gfp | __GFP_NORETRY : gfp;
      pfn = system.pages.allocPages(flags, order);
      if (pfn === null) continue;
      if (order > 0) system.pages.splitPage(pfn, order);
      break;
    }
    if (pfn === null) {
      iommuDmaFreePages(system, pages, i);
      return null;
    }
    count -= orderSize;
    for (let k = 0; k < orderSize; k++) pages[i++] = pfn + k;
  }
  return pages;
}

/** A scatterlist seen by index, for `iommu_map_sg`. */
function sgSource(sgl: Sg, nents: number) {
  const phys = new Float64Array(nents);
  const len = new Float64Array(nents);
  let i = 0;
  for (const sg of forEachSg(sgl, nents)) {
    phys[i] = sgPhys(sg);
    len[i++] = sgLength(sg);
  }
  return { nents, phys: (k: number) => phys[k] as number, length: (k: number) => len[k] as number };
}

/**
 * `__iommu_dma_alloc_noncontiguous(dev, size, sgt, gfp, attrs)`: pages in the largest sizes the
 * domain's `pgsize_bitmap` maps at once (only the smallest with `DMA_ATTR_ALLOC_SINGLE_PAGES`),
 * one IOVA range from the coherent mask, an sg_table over the pages, cleaned from the cache for
 * a non-coherent device, and `iommu_map_sg` of the whole table into the IOVA. The first entry's
 * DMA address and length describe the whole buffer. Returns the page array or null (all undone).
 */
function __iommuDmaAllocNoncontiguous(
  dev: Device,
  size0: number,
  sgt: SgTable,
  gfp0: number,
  attrs: number,
): Float64Array | null {
  const cookie = iommuDmaCookie(dev);
  const { domain, iovad, system } = cookie;
  const ioprot = dmaInfoToProt(DMA_BIDIRECTIONAL, dev.dmaCoherent, attrs);
  let allocSizes = domain.pgsizeBitmap;
  let minSize = 2 ** ffs(allocSizes);
  let size = size0;
  if (minSize < PAGE_SIZE) {
    minSize = PAGE_SIZE;
    allocSizes += allocSizes % (2 * PAGE_SIZE) >= PAGE_SIZE ? 0 : PAGE_SIZE;
  } else {
    size = Math.ceil(size / minSize) * minSize;
  }
  if ((attrs & DMA_ATTR_ALLOC_SINGLE_PAGES) !== 0) allocSizes = minSize;
  const count = Math.ceil(size / PAGE_SIZE);
  const pages = __iommuDmaAllocPages(system, count, Math.floor(allocSizes / PAGE_SIZE), gfp0);
  if (pages === null) return null;
  size = iovad.iovaAlign(size);
  const iova = iommuDmaAllocIova(domain, size, dev.coherentDmaMask, dev);
  if (iova === 0) {
    iommuDmaFreePages(system, pages, count);
    return null;
  }
  const gfp = gfp0 & ~(__GFP_DMA | __GFP_DMA32 | __GFP_HIGHMEM | __GFP_COMP);
  try {
    sgAllocTableFromPages(sgt, pages, count, 0, size, gfp);
  } catch (e) {
    iommuDmaFreeIova(domain, iova, size, null);
    iommuDmaFreePages(system, pages, count);
    if (e instanceof KernelError) return null;
    throw e;
  }
  const sgl = sgt.sgl as Sg;
  if ((ioprot & IOMMU_CACHE) === 0)
    for (const sg of forEachSg(sgl, sgt.origNents)) archDmaPrepCoherent(system, sgPage(sg), sgLength(sg));
  const ret = iommuMapSg(domain, iova, sgSource(sgl, sgt.origNents), ioprot, gfp);
  if (ret < 0 || ret < size) {
    sgFreeTable(sgt);
    iommuDmaFreeIova(domain, iova, size, null);
    iommuDmaFreePages(system, pages, count);
    return null;
  }
  sgDmaSetAddress(sgl, iova);
  sgDmaSetLen(sgl, size);
  return pages;
}

/**
 * `iommu_dma_alloc_remap(dev, size, &dma_handle, gfp, attrs)`: a coherent buffer from scattered
 * pages mapped at one IOVA and vmapped for the CPU (`dma_common_pages_remap`, which keeps the page
 * array for get_sgtable and mmap).
 */
function iommuDmaAllocRemap(dev: Device, size: number, gfp: number, attrs: number): DmaAlloc | null {
  const system = devDmaState(dev).system;
  const sgt = new SgTable(dmaSgPool(system));
  const pages = __iommuDmaAllocNoncontiguous(dev, size, sgt, gfp, attrs);
  if (pages === null) return null;
  const dmaHandle = sgDmaAddress(sgt.sgl as Sg);
  sgFreeTable(sgt);
  const vaddr = dmaCommonPagesRemap(system, pages, size, dmaPgprot(dev, "cached", attrs));
  if (vaddr === null) {
    __iommuDmaUnmap(dev, dmaHandle, size);
    iommuDmaFreePages(system, pages, Math.ceil(size / PAGE_SIZE));
    return null;
  }
  // No memset, as in the kernel: the pages came zeroed (__GFP_ZERO is a CPU store through the cache)
  // and, for a non-coherent device, were cleaned to RAM by arch_dma_prep_coherent before mapping.
  return { cpuAddr: vaddr, dmaHandle };
}

/**
 * `iommu_dma_alloc_pages(dev, size, &page, gfp, attrs)`: one physically contiguous block (CMA,
 * else the page allocator), vmapped for a non-coherent device (then cleaned from the cache) or
 * used through the linear map, and zeroed through that mapping.
 */
function iommuDmaAllocPages(
  dev: Device,
  size: number,
  gfp: number,
  attrs: number,
): { pfn: number; cpuAddr: number } | null {
  const system = devDmaState(dev).system;
  const allocSize = pageAlign(size);
  const pfn = dmaAllocContiguous(dev, allocSize, gfp) ?? system.pages.allocPages(gfp, getOrder(allocSize));
  if (pfn === null) return null;
  let cpuAddr: number;
  if (!dev.dmaCoherent) {
    const va = dmaCommonContiguousRemap(system, pfn, allocSize, dmaPgprot(dev, "cached", attrs));
    if (va === null) {
      dmaFreeContiguous(dev, pfn, allocSize);
      return null;
    }
    cpuAddr = va;
    archDmaPrepCoherent(system, pfn, size);
  } else {
    cpuAddr = system.vm.pageAddress(pfn);
  }
  zeroDmaBuffer(system, pfn, allocSize, dev.dmaCoherent);
  return { pfn, cpuAddr };
}

/**
 * `__iommu_dma_free(dev, size, cpu_addr)`: returns a buffer's memory: to the atomic pool, or (a
 * remap) vunmaps it and frees the page array or the contiguous block behind it, or frees the
 * linear-map block.
 */
function __iommuDmaFree(dev: Device, size: number, cpuAddr: number): void {
  const system = devDmaState(dev).system;
  const allocSize = pageAlign(size);
  if (dmaFreeFromPool(dev, cpuAddr, allocSize)) return;
  let pages: Float64Array | null = null;
  let page: number | null = null;
  if (system.vm.isVmallocAddr(cpuAddr)) {
    pages = dmaCommonFindPages(system, cpuAddr);
    if (pages === null) page = system.vm.vmallocToPage(cpuAddr);
    dmaCommonFreeRemap(system, cpuAddr);
  } else {
    page = system.vm.virtToPage(cpuAddr);
  }
  if (pages !== null) iommuDmaFreePages(system, pages, allocSize / PAGE_SIZE);
  if (page !== null) dmaFreeContiguous(dev, page, allocSize);
}

/**
 * `iommu_dma_alloc(dev, size, &handle, gfp, attrs)`: the iommu-dma coherent allocator. A `gfp`
 * that may block (without `DMA_ATTR_FORCE_CONTIGUOUS`) gets scattered pages mapped at one IOVA and
 * vmapped (`iommu_dma_alloc_remap`); otherwise a non-coherent device takes an atomic-pool buffer
 * and a coherent one a contiguous block (CMA or the page allocator), which is then mapped with
 * `__iommu_dma_map` below the coherent mask. Memory is zeroed. Returns `{ cpuAddr, dmaHandle }`
 * or null (everything undone). `DMA_ATTR_NO_KERNEL_MAPPING` is ignored, as in the kernel.
 * @see drivers/iommu/dma-iommu.c iommu_dma_alloc
 */
export function iommuDmaAlloc(dev: Device, size: number, gfp0: number, attrs: number): DmaAlloc | null {
  const coherent = dev.dmaCoherent;
  const ioprot = dmaInfoToProt(DMA_BIDIRECTIONAL, coherent, attrs);
  const gfp = gfp0 | __GFP_ZERO;
  const blocking = gfpflagsAllowBlocking(gfp);
  if (blocking && (attrs & DMA_ATTR_FORCE_CONTIGUOUS) === 0) return iommuDmaAllocRemap(dev, size, gfp, attrs);
  let r: { pfn: number; cpuAddr: number } | null;
  if (!blocking && !coherent) r = dmaAllocFromPool(dev, pageAlign(size), gfp, null);
  else r = iommuDmaAllocPages(dev, size, gfp, attrs);
  if (r === null) return null;
  const dmaHandle = __iommuDmaMap(dev, r.pfn * PAGE_SIZE, size, ioprot, dev.coherentDmaMask);
  if (dmaHandle === DMA_MAPPING_ERROR) {
    __iommuDmaFree(dev, size, r.cpuAddr);
    return null;
  }
  return { cpuAddr: r.cpuAddr, dmaHandle };
}

/**
 * `iommu_dma_free(dev, size, cpu_addr, handle, attrs)`: unmaps the IOVA (`__iommu_dma_unmap`:
 * strict or through the flush queue) and frees the memory.
 * @see drivers/iommu/dma-iommu.c iommu_dma_free
 */
export function iommuDmaFree(
  dev: Device,
  size: number,
  cpuAddr: number,
  handle: number,
  _attrs: number,
): void {
  __iommuDmaUnmap(dev, handle, size);
  __iommuDmaFree(dev, size, cpuAddr);
}

/**
 * `iommu_dma_alloc_noncontiguous(dev, size, dir, gfp, attrs)`: an sg_table over scattered pages
 * mapped at one IOVA (the first entry's DMA address and length), its page array kept for
 * vmap/mmap/free. Returns the table or null. @see drivers/iommu/dma-iommu.c
 */
export function iommuDmaAllocNoncontiguous(
  dev: Device,
  size: number,
  _dir: DmaDataDirection,
  gfp: number,
  attrs: number,
): SgTable | null {
  const system = devDmaState(dev).system;
  const sgt = new SgTable(dmaSgPool(system));
  const pages = __iommuDmaAllocNoncontiguous(dev, size, sgt, gfp, attrs);
  if (pages === null) return null;
  sgtHandles(system).set(sgt, pages);
  return sgt;
}

/**
 * `iommu_dma_free_noncontiguous(dev, size, sgt, dir)`: unmaps the IOVA, frees the pages and the
 * table. EINVAL (nothing done) for a table this device's iommu-dma did not allocate.
 * @see drivers/iommu/dma-iommu.c iommu_dma_free_noncontiguous
 */
export function iommuDmaFreeNoncontiguous(
  dev: Device,
  size: number,
  sgt: SgTable,
  _dir: DmaDataDirection,
): void {
  const system = devDmaState(dev).system;
  const pages = iommuDmaSgtPages(system, sgt);
  if (pages === undefined)
    throw new KernelError(
      "EINVAL",
      `iommu-dma: ${dev.name}: free_noncontiguous of a table it did not allocate`,
    );
  __iommuDmaUnmap(dev, sgDmaAddress(sgt.checkLive("dma_free_noncontiguous")), size);
  iommuDmaFreePages(system, pages, Math.ceil(size / PAGE_SIZE));
  sgFreeTable(sgt);
  sgtHandles(system).delete(sgt);
}

/**
 * `iommu_dma_vmap_noncontiguous(dev, size, sgt)`: a cached (`PAGE_KERNEL`) vmap of the page
 * array; null when vmap fails. @see drivers/iommu/dma-iommu.c
 */
export function iommuDmaVmapNoncontiguous(dev: Device, size: number, sgt: SgTable): number | null {
  const system = devDmaState(dev).system;
  const pages = iommuDmaSgtPages(system, sgt);
  if (pages === undefined)
    throw new KernelError(
      "EINVAL",
      `iommu-dma: ${dev.name}: vmap_noncontiguous of a table it did not allocate`,
    );
  return system.vm.vmap(pages, Math.ceil(size / PAGE_SIZE));
}

/** The address space a VMA belongs to; EINVAL when the model does not know it. @internal */
export function vmaMm(vma: VmAreaStruct): MmStruct {
  if (vma.mm === undefined)
    throw new KernelError(
      "EINVAL",
      "dma-mapping: mmap: the vma has no vm_mm (not made by MmStruct.mmapDevice)",
    );
  return vma.mm;
}

/**
 * `iommu_dma_mmap_noncontiguous(dev, vma, size, sgt)`: `vm_map_pages` of the page array (ENXIO
 * when `vm_pgoff` or the VMA size exceed it). @see drivers/iommu/dma-iommu.c
 */
export function iommuDmaMmapNoncontiguous(dev: Device, vma: VmAreaStruct, size: number, sgt: SgTable): 0 {
  const pages = iommuDmaSgtPages(devDmaState(dev).system, sgt);
  if (pages === undefined)
    throw new KernelError(
      "EINVAL",
      `iommu-dma: ${dev.name}: mmap_noncontiguous of a table it did not allocate`,
    );
  vmaMm(vma).vmMapPages(vma, pages, Math.ceil(size / PAGE_SIZE));
  return 0;
}

/**
 * `iommu_dma_mmap(dev, vma, cpu_addr, dma_addr, size, attrs)`: sets `vm_page_prot` by
 * {@link dmaPgprot}; ENXIO when `vm_pgoff` is past the buffer or the VMA larger than what remains;
 * a remapped page array is inserted page by page (`vm_map_pages`), anything else is
 * `remap_pfn_range`d from its first pfn. Returns 0. @see drivers/iommu/dma-iommu.c iommu_dma_mmap
 */
export function iommuDmaMmap(
  dev: Device,
  vma: VmAreaStruct,
  cpuAddr: number,
  _dmaAddr: number,
  size: number,
  attrs: number,
): 0 {
  const system = devDmaState(dev).system;
  const nrPages = Math.ceil(size / PAGE_SIZE);
  const off = vma.pgoff;
  const mm = vmaMm(vma);
  vma.pageProt = dmaPgprot(dev, vma.pageProt ?? "cached", attrs);
  const userPages = (vma.end - vma.start) / PAGE_SIZE;
  if (off >= nrPages || userPages > nrPages - off)
    throw new KernelError(
      "ENXIO",
      `dma-mapping: ${dev.name}: mmap of ${userPages} pages at vm_pgoff ${off} exceeds the ${nrPages}-page buffer`,
    );
  let pfn: number;
  if (system.vm.isVmallocAddr(cpuAddr)) {
    const pages = dmaCommonFindPages(system, cpuAddr);
    if (pages !== null) {
      mm.vmMapPages(vma, pages, nrPages);
      return 0;
    }
    pfn = system.vm.vmallocToPfn(cpuAddr);
  } else {
    pfn = system.vm.virtToPage(cpuAddr);
  }
  mm.remapPfnRange(vma, vma.start, pfn + off, vma.end - vma.start, vma.pageProt);
  return 0;
}

/**
 * `iommu_dma_get_sgtable(dev, sgt, cpu_addr, dma_addr, size, attrs)`: a remapped page array
 * becomes a table over those pages (`sg_alloc_table_from_pages`, merging neighbours); anything
 * else one entry of `PAGE_ALIGN(size)` from its first page. Returns 0; scatterlist errors throw.
 * @see drivers/iommu/dma-iommu.c iommu_dma_get_sgtable
 */
export function iommuDmaGetSgtable(
  dev: Device,
  sgt: SgTable,
  cpuAddr: number,
  _dmaAddr: number,
  size: number,
  _attrs: number,
): 0 {
  const system = devDmaState(dev).system;
  let page: number;
  if (system.vm.isVmallocAddr(cpuAddr)) {
    const pages = dmaCommonFindPages(system, cpuAddr);
    if (pages !== null) {
      sgAllocTableFromPages(sgt, pages, Math.ceil(size / PAGE_SIZE), 0, size);
      return 0;
    }
    page = system.vm.vmallocToPfn(cpuAddr);
  } else {
    page = system.vm.virtToPage(cpuAddr);
  }
  sgAllocTable(sgt, 1);
  sgSetPage(sgt.sgl as Sg, page, pageAlign(size), 0);
  return 0;
}

/**
 * `dma_common_alloc_pages(dev, size, &dma_handle, dir, gfp)`: `dma_alloc_pages` on iommu-dma: a
 * contiguous block (CMA, else the page allocator) mapped with `iommu_dma_map_phys(...,
 * DMA_ATTR_SKIP_CPU_SYNC)` and zeroed through the linear map. @see kernel/dma/ops_helpers.c
 */
export function dmaCommonAllocPages(
  dev: Device,
  size: number,
  dir: DmaDataDirection,
  gfp: number,
): DmaPageAlloc | null {
  const system = devDmaState(dev).system;
  const pfn = dmaAllocContiguous(dev, size, gfp) ?? system.pages.allocPages(gfp, getOrder(size));
  if (pfn === null) return null;
  const dmaHandle = iommuDmaMapPhys(dev, pfn * PAGE_SIZE, size, dir, DMA_ATTR_SKIP_CPU_SYNC);
  if (dmaHandle === DMA_MAPPING_ERROR) {
    dmaFreeContiguous(dev, pfn, size);
    return null;
  }
  zeroDmaBuffer(system, pfn, size, true);
  return { page: pfn, dmaHandle };
}

/**
 * `dma_common_free_pages(dev, size, page, dma_handle, dir)`: unmaps (`DMA_ATTR_SKIP_CPU_SYNC`) and
 * frees a {@link dmaCommonAllocPages} block. @see kernel/dma/ops_helpers.c
 */
export function dmaCommonFreePages(
  dev: Device,
  size: number,
  page: number,
  dmaHandle: number,
  dir: DmaDataDirection,
): void {
  iommuDmaUnmapPhys(dev, dmaHandle, size, dir, DMA_ATTR_SKIP_CPU_SYNC);
  dmaFreeContiguous(dev, page, size);
}
