import { bitMask, type Device, dmaGetMask, hex, KernelError, minNotZero, ULONG_MAX } from "@dmakit/core";
import { ARCH_DMA_MINALIGN } from "@dmakit/mm-pages";
import { DmaSystem } from "./DmaSystem.js";
import { devDmaState } from "./dmaDevice.js";
import {
  dmaDirectAllRamMapped,
  dmaDirectGetRequiredMask,
  dmaDirectMaxMappingSize,
  dmaDirectSupported,
} from "./dmaDirectLimits.js";
import { iommuDmaGetMergeBoundary, iommuDmaMaxMappingSize, iommuDmaOptMappingSize } from "./iommuDma.js";

// The dma_parms and mask accessors live with struct device in core; the DMA API exports them too.
export {
  dmaGetMask,
  dmaGetMaxSegSize,
  dmaGetMinAlignMask,
  dmaGetSegBoundary,
  dmaGetSegBoundaryNrPages,
  dmaSetMaxSegSize,
  dmaSetMinAlignMask,
  dmaSetSegBoundary,
} from "@dmakit/core";

/**
 * `dma_supported(dev, mask)`: iommu-dma accepts every mask (the IOVA allocator honours it);
 * dma-direct asks {@link dmaDirectSupported}. The model has no legacy `dma_map_ops`.
 * @see kernel/dma/mapping.c dma_supported
 */
export function dmaSupported(dev: Device, mask: number): boolean {
  if (devDmaState(dev).dmaIommu) return true;
  return dmaDirectSupported(dev, mask);
}

/**
 * `dma_setup_need_sync(dev)`: for dma-direct and iommu-dma, `dma_skip_sync` = the device is
 * coherent (the first swiotlb mapping clears it again).
 * @see kernel/dma/mapping.c dma_setup_need_sync
 */
export function dmaSetupNeedSync(dev: Device): void {
  devDmaState(dev).dmaSkipSync = dev.dmaCoherent;
}

/**
 * `dma_set_mask(dev, mask)`: sets the streaming mask and re-runs `dma_setup_need_sync`. Returns 0;
 * throws `EIO` when the device has no `dma_mask` pointer or the mask is not supported (state
 * unchanged). Masks are 64-bit in the model, so the `(dma_addr_t)` truncation never changes one.
 * @see kernel/dma/mapping.c dma_set_mask
 */
export function dmaSetMask(dev: Device, mask: number): 0 {
  if (dev.dmaMask === null)
    throw new KernelError(
      "EIO",
      `dma-mapping: ${dev.name}: dma_set_mask(${hex(mask)}): device has no dma_mask`,
    );
  if (!dmaSupported(dev, mask))
    throw new KernelError(
      "EIO",
      `dma-mapping: ${dev.name}: dma_set_mask: mask ${hex(mask)} not supported (required ${hex(dmaGetRequiredMask(dev))})`,
    );
  dev.dmaMask = mask;
  dmaSetupNeedSync(dev);
  return 0;
}

/**
 * `dma_set_coherent_mask(dev, mask)`: sets the allocation mask. Returns 0; throws `EIO` when the
 * mask is not supported (state unchanged).
 * @see kernel/dma/mapping.c dma_set_coherent_mask
 */
export function dmaSetCoherentMask(dev: Device, mask: number): 0 {
  if (!dmaSupported(dev, mask))
    throw new KernelError(
      "EIO",
      `dma-mapping: ${dev.name}: dma_set_coherent_mask: mask ${hex(mask)} not supported`,
    );
  dev.coherentDmaMask = mask;
  return 0;
}

/**
 * `dma_set_mask_and_coherent(dev, mask)`: {@link dmaSetMask}, then on success
 * {@link dmaSetCoherentMask} whose failure is ignored, as in the kernel. Throws what `dmaSetMask` throws.
 * @see include/linux/dma-mapping.h dma_set_mask_and_coherent
 */
export function dmaSetMaskAndCoherent(dev: Device, mask: number): 0 {
  dmaSetMask(dev, mask);
  if (dmaSupported(dev, mask)) dev.coherentDmaMask = mask;
  return 0;
}

/**
 * `dma_coerce_mask_and_coherent(dev, mask)`: for buses that never set up `dev->dma_mask`: points it
 * at `coherent_dma_mask`, then {@link dmaSetMaskAndCoherent}. The model's mask is a value, not a
 * pointer, so it copies `coherentDmaMask` into `dmaMask` (no aliasing afterwards).
 * @see include/linux/dma-mapping.h dma_coerce_mask_and_coherent
 */
export function dmaCoerceMaskAndCoherent(dev: Device, mask: number): 0 {
  dev.dmaMask = dev.coherentDmaMask;
  return dmaSetMaskAndCoherent(dev, mask);
}

/**
 * `dma_get_required_mask(dev)`: dma-direct: the mask covering all RAM
 * ({@link dmaDirectGetRequiredMask}); iommu-dma: DMA_BIT_MASK(32) (any IOVA space will do).
 * @see kernel/dma/mapping.c dma_get_required_mask
 */
export function dmaGetRequiredMask(dev: Device): number {
  if (!devDmaState(dev).dmaIommu) return dmaDirectGetRequiredMask(dev);
  return bitMask(32);
}

/**
 * `dma_addressing_limited(dev)`: the device cannot reach all RAM directly: `min_not_zero(mask,
 * bus_dma_limit)` is below the required mask, or (dma-direct only) some RAM lies outside its
 * `dma-ranges`. Logs `dev_dbg` "device is DMA addressing limited" when true.
 * @see kernel/dma/mapping.c dma_addressing_limited
 */
export function dmaAddressingLimited(dev: Device): boolean {
  if (!addressingLimited(dev)) return false;
  dev.log.debug(dev.name, "device is DMA addressing limited");
  return true;
}

function addressingLimited(dev: Device): boolean {
  if (minNotZero(dmaGetMask(dev), dev.busDmaLimit) < dmaGetRequiredMask(dev)) return true;
  if (devDmaState(dev).dmaIommu) return false;
  return !dmaDirectAllRamMapped(dev);
}

/**
 * `dma_max_mapping_size(dev)`: the largest single streaming mapping: dma-direct
 * ({@link dmaDirectMaxMappingSize}: the swiotlb slot limit when bouncing may happen) or iommu-dma
 * (`iommu_dma_max_mapping_size`); `SIZE_MAX` ({@link ULONG_MAX}) when unlimited.
 * @see kernel/dma/mapping.c dma_max_mapping_size
 */
export function dmaMaxMappingSize(dev: Device): number {
  if (!devDmaState(dev).dmaIommu) return dmaDirectMaxMappingSize(dev);
  return iommuDmaMaxMappingSize(dev);
}

/**
 * `dma_opt_mapping_size(dev)`: the largest mapping that stays fast: `min(dma_max_mapping_size,
 * iova_rcache_range())` under iommu-dma (128 KiB), else `dma_max_mapping_size`.
 * @see kernel/dma/mapping.c dma_opt_mapping_size
 */
export function dmaOptMappingSize(dev: Device): number {
  const size = devDmaState(dev).dmaIommu ? iommuDmaOptMappingSize() : ULONG_MAX;
  return Math.min(dmaMaxMappingSize(dev), size);
}

/**
 * `dma_get_merge_boundary(dev)`: iommu-dma's IOVA granule minus one (segments meeting on it can be
 * merged into one DMA segment); 0 for dma-direct ("can't merge").
 * @see kernel/dma/mapping.c dma_get_merge_boundary
 */
export function dmaGetMergeBoundary(dev: Device): number {
  if (devDmaState(dev).dmaIommu) return iommuDmaGetMergeBoundary(dev);
  return 0;
}

/**
 * `dma_get_cache_alignment()`: `ARCH_DMA_MINALIGN` (128, from @dmakit/mm-pages) on a non-coherent
 * arm64-like machine, 1 on a coherent one (x86 defines no `ARCH_DMA_MINALIGN`). The kernel takes
 * no argument; the model needs the machine, given as its {@link DmaSystem} or any device of it,
 * and reads the architecture from the CPU cache's platform coherence.
 * @see include/linux/dma-mapping.h dma_get_cache_alignment
 */
export function dmaGetCacheAlignment(machine: DmaSystem | Device): number {
  const system = machine instanceof DmaSystem ? machine : devDmaState(machine).system;
  return system.cache.coherent ? 1 : ARCH_DMA_MINALIGN;
}

/**
 * `dma_pci_p2pdma_supported(dev)`: true iff the device has no legacy `dma_map_ops`; dma-direct and
 * iommu-dma both handle P2PDMA pages, and the model has no legacy ops, so it is always true for a
 * configured device (ENODEV from `devDmaState` otherwise).
 * @see kernel/dma/mapping.c dma_pci_p2pdma_supported
 */
export function dmaPciP2pdmaSupported(dev: Device): boolean {
  devDmaState(dev);
  return true;
}
