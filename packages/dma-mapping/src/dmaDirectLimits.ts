import { bitMask, type Device, fls, PAGE_SIZE, physToDma, ULONG_MAX } from "@dmakit/core";
import { devDmaState } from "./dmaDevice.js";
import { dmaAddressingLimited } from "./dmaLimits.js";
import { isSwiotlbActive, isSwiotlbForceBounce, swiotlbMaxMappingSize } from "./swiotlb.js";

/**
 * `dma_direct_get_required_mask(dev)`: the smallest all-ones mask covering the DMA address of the
 * last page of RAM (`max_pfn - 1`) through the device's `dma-ranges`:
 * `(1ULL << (fls64(max_dma) - 1)) * 2 - 1`. RAM outside every window gives the 64-bit mask.
 * @see kernel/dma/direct.c dma_direct_get_required_mask
 */
export function dmaDirectGetRequiredMask(dev: Device): number {
  const phys = devDmaState(dev).system.phys;
  const maxDma = physToDma(dev, (phys.maxPfn - 1) * PAGE_SIZE);
  return bitMask(fls(maxDma) + 1);
}

/**
 * `dma_direct_supported(dev, mask)`: every mask of 32 bits or more is accepted (the architecture
 * must manage them with ZONE_DMA32 or bouncing); a smaller one must reach the DMA address of the
 * lower of the last RAM page and the top of ZONE_DMA (`zone_dma_limit`, when the machine has a
 * ZONE_DMA).
 * @see kernel/dma/direct.c dma_direct_supported
 */
export function dmaDirectSupported(dev: Device, mask: number): boolean {
  const phys = devDmaState(dev).system.phys;
  let minMask = (phys.maxPfn - 1) * PAGE_SIZE;
  if (mask >= bitMask(32)) return true;
  const zoneDmaEnd = phys.zoneLimits.dma;
  if (zoneDmaEnd > 0) minMask = Math.min(minMask, zoneDmaEnd - 1);
  return mask >= physToDma(dev, minMask);
}

/**
 * `dma_direct_all_ram_mapped(dev)`: true without a `dma_range_map`; else every RAM page must lie in
 * some window of the map (`walk_system_ram_range` + `check_ram_in_range_map`).
 * @see kernel/dma/direct.c dma_direct_all_ram_mapped
 */
export function dmaDirectAllRamMapped(dev: Device): boolean {
  const map = dev.dmaRangeMap;
  if (map === null) return true;
  for (const bank of devDmaState(dev).system.phys.banks) {
    let start = Math.floor(bank.start / PAGE_SIZE);
    const end = start + bank.size / PAGE_SIZE;
    while (start < end) {
      let next = -1;
      for (const r of map) {
        if (r.size === 0) break;
        const lo = Math.floor(r.cpuStart / PAGE_SIZE);
        const hi = Math.floor((r.cpuStart + r.size) / PAGE_SIZE);
        if (start >= lo && start < hi) {
          next = hi;
          break;
        }
      }
      if (next < 0) return false;
      start = next;
    }
  }
  return true;
}

/**
 * `dma_direct_max_mapping_size(dev)`: the swiotlb limit (`swiotlb_max_mapping_size`, 256 KiB minus
 * the min-align padding) when a pool is active and a mapping may bounce (the device is addressing
 * limited or bouncing is forced); else `SIZE_MAX` (the model's {@link ULONG_MAX}).
 * @see kernel/dma/direct.c dma_direct_max_mapping_size
 */
export function dmaDirectMaxMappingSize(dev: Device): number {
  if (isSwiotlbActive(dev) && (dmaAddressingLimited(dev) || isSwiotlbForceBounce(dev)))
    return swiotlbMaxMappingSize(dev);
  return ULONG_MAX;
}
