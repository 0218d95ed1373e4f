import type { DmaSystem } from "../DmaSystem.js";

/**
 * `zone_dma_limit`: the last physical address of ZONE_DMA on this machine, or `DMA_BIT_MASK(24)`
 * (the kernel default, `zone_dma_bits = 24`) on a machine without ZONE_DMA.
 * @see kernel/dma/direct.c zone_dma_limit
 */
export function zoneDmaLimit(system: DmaSystem): number {
  const end = system.phys.zoneLimits.dma;
  return end > 0 ? end - 1 : 2 ** 24 - 1;
}

/** `IS_ENABLED(CONFIG_ZONE_DMA)` for this machine: it has a ZONE_DMA. */
export function hasZoneDma(system: DmaSystem): boolean {
  return system.phys.zoneLimits.dma > 0;
}

/** `IS_ENABLED(CONFIG_ZONE_DMA32)` for this machine: it has a ZONE_DMA32. */
export function hasZoneDma32(system: DmaSystem): boolean {
  return system.phys.zoneLimits.dma32 > 0;
}
