import { type Device, dmaToPhys, KernelError, PAGE_SIZE } from "@dmakit/core";
import type { PgprotKind, VmAreaStruct } from "@dmakit/mm-pages";
import { DMA_ATTR_WRITE_COMBINE } from "./dmaAttrs.js";
import { useDmaIommu } from "./dmaDevice.js";
import { iommuDmaMmap, vmaMm } from "./iommuDmaAlloc.js";

/**
 * `dma_pgprot(dev, prot, attrs)`: the memory type to map DMA memory with, in the kernel (remaps)
 * or to user space: unchanged for a coherent device; `writecombine` for `DMA_ATTR_WRITE_COMBINE`
 * (arm64 has CONFIG_ARCH_HAS_DMA_WRITE_COMBINE); else `noncached` (`pgprot_dmacoherent`).
 * @see kernel/dma/mapping.c dma_pgprot (no memory encryption in the model)
 */
export function dmaPgprot(dev: Device, prot: PgprotKind, attrs: number): PgprotKind {
  if (dev.dmaCoherent) return prot;
  if ((attrs & DMA_ATTR_WRITE_COMBINE) !== 0) return "writecombine";
  return "noncached";
}

/**
 * `dma_can_mmap(dev)`: true: dma-direct maps coherent devices, and non-coherent ones too with
 * CONFIG_DMA_NONCOHERENT_MMAP (selected by DMA_DIRECT_REMAP, as on arm64); iommu-dma has `mmap`.
 * @see kernel/dma/mapping.c dma_can_mmap, kernel/dma/direct.c dma_direct_can_mmap
 */
export function dmaCanMmap(_dev: Device): boolean {
  return true;
}

function enxio(dev: Device, vma: VmAreaStruct, count: number): KernelError {
  const userCount = (vma.end - vma.start) / PAGE_SIZE;
  return new KernelError(
    "ENXIO",
    `dma-mapping: ${dev.name}: mmap of ${userCount} pages at vm_pgoff ${vma.pgoff} exceeds the ${count}-page buffer`,
  );
}

/**
 * `dma_direct_mmap(dev, vma, cpu_addr, dma_addr, size, attrs)`: `remap_pfn_range` of the buffer's
 * pages from `vm_pgoff`, found through `dma_addr`, with `vm_page_prot` from {@link dmaPgprot}.
 * @see kernel/dma/direct.c dma_direct_mmap
 */
function dmaDirectMmap(dev: Device, vma: VmAreaStruct, dmaAddr: number, size: number, attrs: number): 0 {
  const userCount = (vma.end - vma.start) / PAGE_SIZE;
  const count = Math.ceil(size / PAGE_SIZE);
  const pfn = Math.floor(dmaToPhys(dev, dmaAddr) / PAGE_SIZE);
  const mm = vmaMm(vma);
  vma.pageProt = dmaPgprot(dev, vma.pageProt ?? "cached", attrs);
  if (vma.pgoff >= count || userCount > count - vma.pgoff) throw enxio(dev, vma, count);
  mm.remapPfnRange(vma, vma.start, pfn + vma.pgoff, userCount * PAGE_SIZE, vma.pageProt);
  return 0;
}

/**
 * `dma_mmap_attrs(dev, vma, cpu_addr, dma_addr, size, attrs)`: maps a {@link dmaAllocAttrs} buffer
 * into a user VMA, called from a driver's mmap handler ({@link MmStruct.mmapDevice}): `vm_pgoff`
 * selects the first page. Returns 0; throws ENXIO when `vm_pgoff` is at or past the buffer's
 * pages or the VMA is larger than the pages that remain (nothing mapped). dma-direct and a
 * contiguous iommu-dma buffer are `remap_pfn_range`d (VM_PFNMAP, no page references); a remapped
 * iommu-dma page array is inserted with `vm_map_pages` (page references held until munmap).
 * `vm_page_prot` becomes {@link dmaPgprot}'s memory type. The buffer must outlive the mapping.
 * @example
 * const va = mm.mmapDevice(len, PROT_READ | PROT_WRITE, 0, (vma) => dmaMmapAttrs(dev, vma, buf.cpuAddr, buf.dmaHandle, len, 0));
 * @see kernel/dma/mapping.c dma_mmap_attrs. Not modelled: per-device coherent pools
 * (`dma_mmap_from_dev_coherent`).
 */
export function dmaMmapAttrs(
  dev: Device,
  vma: VmAreaStruct,
  cpuAddr: number,
  dmaAddr: number,
  size: number,
  attrs = 0,
): 0 {
  if (useDmaIommu(dev)) return iommuDmaMmap(dev, vma, cpuAddr, dmaAddr, size, attrs);
  return dmaDirectMmap(dev, vma, dmaAddr, size, attrs);
}

/**
 * `dma_mmap_coherent(dev, vma, cpu_addr, dma_addr, size)` = {@link dmaMmapAttrs} with attrs 0.
 * @see include/linux/dma-mapping.h dma_mmap_coherent
 */
export function dmaMmapCoherent(
  dev: Device,
  vma: VmAreaStruct,
  cpuAddr: number,
  dmaAddr: number,
  size: number,
): 0 {
  return dmaMmapAttrs(dev, vma, cpuAddr, dmaAddr, size, 0);
}

/**
 * `dma_mmap_wc(dev, vma, cpu_addr, dma_addr, size)` = {@link dmaMmapAttrs} with `DMA_ATTR_WRITE_COMBINE`.
 * @see include/linux/dma-mapping.h dma_mmap_wc
 */
export function dmaMmapWc(dev: Device, vma: VmAreaStruct, cpuAddr: number, dmaAddr: number, size: number): 0 {
  return dmaMmapAttrs(dev, vma, cpuAddr, dmaAddr, size, DMA_ATTR_WRITE_COMBINE);
}

/**
 * `dma_mmap_pages(dev, vma, size, page)`: maps a {@link dmaAllocPages} allocation with
 * `remap_pfn_range` (its `vm_page_prot` left as it is: the memory is cacheable). Returns 0;
 * ENXIO as {@link dmaMmapAttrs}. @see kernel/dma/mapping.c dma_mmap_pages
 */
export function dmaMmapPages(dev: Device, vma: VmAreaStruct, size: number, page: number): 0 {
  const count = Math.ceil(size / PAGE_SIZE);
  const userCount = (vma.end - vma.start) / PAGE_SIZE;
  if (vma.pgoff >= count || userCount > count - vma.pgoff) throw enxio(dev, vma, count);
  vmaMm(vma).remapPfnRange(vma, vma.start, page + vma.pgoff, userCount * PAGE_SIZE, vma.pageProt);
  return 0;
}
