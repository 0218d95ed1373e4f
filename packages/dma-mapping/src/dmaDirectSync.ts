import { type Device, dmaToPhys } from "@dmakit/core";
import { forEachSg, type Sg, sgDmaAddress, sgDmaIsBusAddress, sgLength } from "@dmakit/scatterlist";
import { archSyncDmaForCpu, archSyncDmaForDevice } from "./archSync.js";
import type { DmaDataDirection } from "./dmaDirection.js";
import { isSwiotlbBuffer, swiotlbSyncSingleForCpu, swiotlbSyncSingleForDevice } from "./swiotlb.js";

/**
 * `dma_direct_sync_single_for_device(dev, addr, size, dir)`: copies the original into the bounce
 * buffer when `addr` is a swiotlb slot, then `arch_sync_dma_for_device` on the (bounce) physical
 * address for a non-coherent device.
 * @see kernel/dma/direct.h dma_direct_sync_single_for_device
 */
export function dmaDirectSyncSingleForDevice(
  dev: Device,
  addr: number,
  size: number,
  dir: DmaDataDirection,
): void {
  const paddr = dmaToPhys(dev, addr);
  if (isSwiotlbBuffer(dev, paddr)) swiotlbSyncSingleForDevice(dev, paddr, size, dir);
  if (!dev.dmaCoherent) archSyncDmaForDevice(dev, paddr, size, dir);
}

/**
 * `dma_direct_sync_single_for_cpu(dev, addr, size, dir)`: `arch_sync_dma_for_cpu` for a
 * non-coherent device (invalidate unless TO_DEVICE), then copies the bounce buffer back to the
 * original when `addr` is a swiotlb slot.
 * @see kernel/dma/direct.h dma_direct_sync_single_for_cpu (`arch_sync_dma_for_cpu_all` and
 * `arch_dma_mark_clean` are no-ops on arm64 and in the model)
 */
export function dmaDirectSyncSingleForCpu(
  dev: Device,
  addr: number,
  size: number,
  dir: DmaDataDirection,
): void {
  const paddr = dmaToPhys(dev, addr);
  if (!dev.dmaCoherent) archSyncDmaForCpu(dev, paddr, size, dir);
  if (isSwiotlbBuffer(dev, paddr)) swiotlbSyncSingleForCpu(dev, paddr, size, dir);
}

/**
 * `dma_direct_sync_sg_for_device(dev, sgl, nents, dir)`: {@link dmaDirectSyncSingleForDevice} per
 * entry, with the entry's `sg->length` at its `dma_address`.
 * @see kernel/dma/direct.c dma_direct_sync_sg_for_device. The model skips P2P bus-address entries:
 * the kernel converts their bus address with `dma_to_phys` and maintains whatever CPU address that
 * gives, which in the model could be unrelated RAM; P2P BAR memory is uncached either way.
 */
export function dmaDirectSyncSgForDevice(dev: Device, sgl: Sg, nents: number, dir: DmaDataDirection): void {
  for (const sg of forEachSg(sgl, nents)) {
    if (sgDmaIsBusAddress(sg)) continue;
    dmaDirectSyncSingleForDevice(dev, sgDmaAddress(sg), sgLength(sg), dir);
  }
}

/**
 * `dma_direct_sync_sg_for_cpu(dev, sgl, nents, dir)`: {@link dmaDirectSyncSingleForCpu} per entry.
 * @see kernel/dma/direct.c dma_direct_sync_sg_for_cpu (bus-address entries skipped as in
 * {@link dmaDirectSyncSgForDevice})
 */
export function dmaDirectSyncSgForCpu(dev: Device, sgl: Sg, nents: number, dir: DmaDataDirection): void {
  for (const sg of forEachSg(sgl, nents)) {
    if (sgDmaIsBusAddress(sg)) continue;
    dmaDirectSyncSingleForCpu(dev, sgDmaAddress(sg), sgLength(sg), dir);
  }
}

/**
 * `dma_direct_need_sync(dev, dma_addr)`: a non-coherent device, or an address inside a swiotlb
 * pool (bounce buffers need copying even for coherent devices).
 * @see kernel/dma/direct.c dma_direct_need_sync
 */
export function dmaDirectNeedSync(dev: Device, dmaAddr: number): boolean {
  return !dev.dmaCoherent || isSwiotlbBuffer(dev, dmaToPhys(dev, dmaAddr));
}
