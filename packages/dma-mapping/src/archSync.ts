import type { Device } from "@dmakit/core";
import { devDmaState } from "./dmaDevice.js";
import { DMA_TO_DEVICE, type DmaDataDirection } from "./dmaDirection.js";

/**
 * `arch_sync_dma_for_device(paddr, size, dir)` as arm64 does it: clean `[paddr, paddr+size)` to the
 * point of coherency for every direction (`dcache_clean_poc`), so dirty CPU lines reach RAM before
 * the device reads it and cannot be evicted over what the device writes later.
 * Only called for non-coherent devices. The model maintains the machine's {@link CpuCache} by
 * physical address and takes `dev` to find the machine (the kernel's hook has no device).
 * @see arch/arm64/mm/dma-mapping.c arch_sync_dma_for_device
 */
export function archSyncDmaForDevice(dev: Device, paddr: number, size: number, _dir: DmaDataDirection): void {
  devDmaState(dev).system.cache.cleanRange(paddr, size);
}

/**
 * `arch_sync_dma_for_cpu(paddr, size, dir)` as arm64 does it: nothing for `DMA_TO_DEVICE` (the
 * device only read), else invalidate to the point of coherency (`dcache_inval_poc`: partial lines at
 * either end are cleaned and invalidated, whole lines dropped), so the CPU next reads what the
 * device wrote. Only called for non-coherent devices.
 * @see arch/arm64/mm/dma-mapping.c arch_sync_dma_for_cpu
 */
export function archSyncDmaForCpu(dev: Device, paddr: number, size: number, dir: DmaDataDirection): void {
  if (dir === DMA_TO_DEVICE) return;
  devDmaState(dev).system.cache.invalidateRange(paddr, size);
}
