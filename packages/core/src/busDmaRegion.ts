import type { Device } from "./Device.js";
import { ULONG_MAX } from "./units.js";

/**
 * `DMA_MAPPING_ERROR` = `~(dma_addr_t)0`, represented as {@link ULONG_MAX} (2^64 as a number, which
 * no representable address reaches). dma-mapping re-exports it.
 * @see include/linux/dma-mapping.h DMA_MAPPING_ERROR
 */
export const DMA_MAPPING_ERROR = ULONG_MAX;

/**
 * One DMA translation window of a device: CPU physical `[cpuStart, cpuStart + size)` appears to the
 * device at `[dmaStart, dmaStart + size)` (a devicetree `dma-ranges` entry, or an ACPI `_DMA` window).
 * @see include/linux/dma-direct.h struct bus_dma_region. The kernel's array ends with a zero-size
 * sentinel; the model's array has no sentinel (a zero-size entry still ends the walk, as in the kernel).
 */
export interface BusDmaRegion {
  readonly cpuStart: number;
  readonly dmaStart: number;
  readonly size: number;
}

/**
 * `translate_phys_to_dma(dev, paddr)`: the DMA address of `paddr` through `dev.dmaRangeMap`, or
 * {@link DMA_MAPPING_ERROR} when no region covers it ("make sure dma_capable fails when no
 * translation is available"). Only meaningful when the device has a range map.
 * @see include/linux/dma-direct.h translate_phys_to_dma
 */
export function translatePhysToDma(dev: Device, paddr: number): number {
  for (const m of dev.dmaRangeMap ?? []) {
    if (m.size === 0) break;
    const offset = paddr - m.cpuStart;
    if (paddr >= m.cpuStart && offset < m.size) return m.dmaStart + offset;
  }
  return DMA_MAPPING_ERROR;
}

/**
 * `translate_dma_to_phys(dev, dma_addr)`: the CPU physical address behind `dmaAddr`, or
 * `(phys_addr_t)-1` (= {@link ULONG_MAX}, the same number as {@link DMA_MAPPING_ERROR}) when no
 * region covers it.
 * @see include/linux/dma-direct.h translate_dma_to_phys
 */
export function translateDmaToPhys(dev: Device, dmaAddr: number): number {
  for (const m of dev.dmaRangeMap ?? []) {
    if (m.size === 0) break;
    const offset = dmaAddr - m.dmaStart;
    if (dmaAddr >= m.dmaStart && offset < m.size) return m.cpuStart + offset;
  }
  return ULONG_MAX;
}

/**
 * `phys_to_dma(dev, paddr)`: identity without a range map, else {@link translatePhysToDma}.
 * @see include/linux/dma-direct.h phys_to_dma, phys_to_dma_unencrypted. The model has no memory
 * encryption bit (`__sme_set`) and no `CONFIG_ARCH_HAS_PHYS_TO_DMA` override.
 */
export function physToDma(dev: Device, paddr: number): number {
  return dev.dmaRangeMap ? translatePhysToDma(dev, paddr) : paddr;
}

/**
 * `dma_to_phys(dev, dma_addr)`: identity without a range map, else {@link translateDmaToPhys}.
 * @see include/linux/dma-direct.h dma_to_phys (no `__sme_clr` in the model)
 */
export function dmaToPhys(dev: Device, dmaAddr: number): number {
  return dev.dmaRangeMap ? translateDmaToPhys(dev, dmaAddr) : dmaAddr;
}

/**
 * `dma_range_map_min(map)`: the lowest DMA address of any region ({@link ULONG_MAX} for an empty map).
 * @see include/linux/dma-direct.h dma_range_map_min
 */
export function dmaRangeMapMin(map: readonly BusDmaRegion[]): number {
  let ret = ULONG_MAX;
  for (const m of map) {
    if (m.size === 0) break;
    ret = Math.min(ret, m.dmaStart);
  }
  return ret;
}

/**
 * `dma_range_map_max(map)`: the highest DMA address (inclusive) of any region (0 for an empty map).
 * @see include/linux/dma-direct.h dma_range_map_max
 */
export function dmaRangeMapMax(map: readonly BusDmaRegion[]): number {
  let ret = 0;
  for (const m of map) {
    if (m.size === 0) break;
    ret = Math.max(ret, m.dmaStart + m.size - 1);
  }
  return ret;
}
