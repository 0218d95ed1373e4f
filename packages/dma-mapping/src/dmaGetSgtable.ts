import { type Device, dmaToPhys, PAGE_SIZE, pageAlign } from "@dmakit/core";
import { type Sg, type SgTable, sgAllocTable, sgSetPage } from "@dmakit/scatterlist";
import { useDmaIommu } from "./dmaDevice.js";
import { iommuDmaGetSgtable } from "./iommuDmaAlloc.js";

/**
 * `dma_get_sgtable_attrs(dev, sgt, cpu_addr, dma_addr, size, attrs)`: fills `sgt` (a table
 * without a list) with the pages of a {@link dmaAllocAttrs} buffer, so it can be exported (dma-buf):
 * one entry of `PAGE_ALIGN(size)` from the first page for contiguous memory (dma-direct finds it
 * through `dma_addr`), or the remapped page array of an iommu-dma buffer (neighbouring pages
 * merged). Returns 0; a scatterlist allocation failure throws its errno (ENOMEM).
 *
 * The kernel returns `-ENXIO` for `dma_map_ops` without `get_sgtable`; the model has no such
 * ops, so dma-direct and iommu-dma always answer. The kernel calls the idea "fundamentally
 * unsafe": not every coherent buffer has struct pages, and mapping the pages again with the
 * streaming API flushes through a different alias.
 * @see kernel/dma/mapping.c dma_get_sgtable_attrs, kernel/dma/direct.c dma_direct_get_sgtable
 */
export function dmaGetSgtableAttrs(
  dev: Device,
  sgt: SgTable,
  cpuAddr: number,
  dmaAddr: number,
  size: number,
  attrs = 0,
): 0 {
  if (useDmaIommu(dev)) return iommuDmaGetSgtable(dev, sgt, cpuAddr, dmaAddr, size, attrs);
  const page = Math.floor(dmaToPhys(dev, dmaAddr) / PAGE_SIZE);
  sgAllocTable(sgt, 1);
  sgSetPage(sgt.sgl as Sg, page, pageAlign(size), 0);
  return 0;
}

/**
 * `dma_get_sgtable(dev, sgt, cpu_addr, dma_addr, size)` = {@link dmaGetSgtableAttrs} with attrs 0.
 * @see include/linux/dma-mapping.h dma_get_sgtable
 */
export function dmaGetSgtable(dev: Device, sgt: SgTable, cpuAddr: number, dmaAddr: number, size: number): 0 {
  return dmaGetSgtableAttrs(dev, sgt, cpuAddr, dmaAddr, size, 0);
}
