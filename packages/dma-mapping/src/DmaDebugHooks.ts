import type { Device } from "@dmakit/core";
import type { Sg } from "@dmakit/scatterlist";

/**
 * The calls every DMA API entry point makes into dma-debug (`kernel/dma/debug.h`), with the
 * kernel's argument order. The mapping code calls them unconditionally through
 * `system.debug?.…`; `DmaDebug` implements them. Addresses are numbers; `cpuAddr` is a kernel
 * virtual address; `phys` a physical address.
 *
 * @see kernel/dma/debug.h
 */
export interface DmaDebugHooks {
  /** `debug_dma_map_phys(dev, phys, size, dir, dma_addr, attrs)` (6.18; was `debug_dma_map_page`). */
  debugDmaMapPhys(dev: Device, phys: number, size: number, dir: number, dmaAddr: number, attrs: number): void;
  /** `debug_dma_unmap_phys(dev, dma_addr, size, dir)`. */
  debugDmaUnmapPhys(dev: Device, dmaAddr: number, size: number, dir: number): void;
  /** `debug_dma_map_single(dev, addr, len)`: checks of the CPU address of `dma_map_single`. */
  debugDmaMapSingle(dev: Device, cpuAddr: number, len: number): void;
  /** `debug_dma_mapping_error(dev, dma_addr)`: marks the entry as checked. */
  debugDmaMappingError(dev: Device, dmaAddr: number): void;
  /** `debug_dma_map_sg(dev, sg, nents, mapped_ents, dir, attrs)`. */
  debugDmaMapSg(dev: Device, sg: Sg, nents: number, mappedEnts: number, dir: number, attrs: number): void;
  /** `debug_dma_unmap_sg(dev, sglist, nelems, dir)`. */
  debugDmaUnmapSg(dev: Device, sglist: Sg, nelems: number, dir: number): void;
  /** `debug_dma_alloc_coherent(dev, size, dma_addr, virt, attrs)`. */
  debugDmaAllocCoherent(dev: Device, size: number, dmaAddr: number, cpuAddr: number, attrs: number): void;
  /** `debug_dma_free_coherent(dev, size, virt, addr)`. */
  debugDmaFreeCoherent(dev: Device, size: number, cpuAddr: number, dmaAddr: number): void;
  /** `debug_dma_alloc_pages(dev, page, size, direction, dma_addr, attrs)`. */
  debugDmaAllocPages(
    dev: Device,
    pfn: number,
    size: number,
    dir: number,
    dmaAddr: number,
    attrs: number,
  ): void;
  /** `debug_dma_free_pages(dev, page, size, direction, dma_addr)`. */
  debugDmaFreePages(dev: Device, pfn: number, size: number, dir: number, dmaAddr: number): void;
  /** `debug_dma_sync_single_for_cpu(dev, dma_handle, size, direction)`. */
  debugDmaSyncSingleForCpu(dev: Device, dmaHandle: number, size: number, dir: number): void;
  /** `debug_dma_sync_single_for_device(dev, dma_handle, size, direction)`. */
  debugDmaSyncSingleForDevice(dev: Device, dmaHandle: number, size: number, dir: number): void;
  /** `debug_dma_sync_sg_for_cpu(dev, sg, nelems, direction)`. */
  debugDmaSyncSgForCpu(dev: Device, sg: Sg, nelems: number, dir: number): void;
  /** `debug_dma_sync_sg_for_device(dev, sg, nelems, direction)`. */
  debugDmaSyncSgForDevice(dev: Device, sg: Sg, nelems: number, dir: number): void;
  /**
   * Runs `fn`, a CPU access the DMA layer makes on the kernel's behalf (swiotlb bounce copies),
   * without counting it as the driver touching a device-owned buffer. No kernel counterpart: the
   * kernel's dma-debug cannot see CPU accesses at all.
   */
  kernelAccess<T>(fn: () => T): T;
}
