import { type Device, dmaToPhys } from "@dmakit/core";
import { SG_DMA_BUS_ADDRESS, type Sg, SgSlots } from "@dmakit/scatterlist";
import { archSyncDmaForCpu, archSyncDmaForDevice } from "./archSync.js";
import type { DmaDataDirection } from "./dmaDirection.js";
import { sgListEnded } from "./internal/sgListEnded.js";
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
  const sl = new SgSlots();
  let s = nents > 0 ? sl.first(sgl, "for_each_sg") : -1;
  for (let k = 0; k < nents; k++) {
    if (s < 0) sgListEnded(k, nents);
    if ((sl.dmaFlags(s) & SG_DMA_BUS_ADDRESS) === 0)
      dmaDirectSyncSingleForDevice(dev, sl.dmaAddress(s), sl.length(s), dir);
    if (k + 1 < nents) s = sl.next(s);
  }
}

/**
 * `dma_direct_sync_sg_for_cpu(dev, sgl, nents, dir)`: {@link dmaDirectSyncSingleForCpu} per entry.
 * @see kernel/dma/direct.c dma_direct_sync_sg_for_cpu (bus-address entries skipped as in
 * {@link dmaDirectSyncSgForDevice})
 */
export function dmaDirectSyncSgForCpu(dev: Device, sgl: Sg, nents: number, dir: DmaDataDirection): void {
  const sl = new SgSlots();
  let s = nents > 0 ? sl.first(sgl, "for_each_sg") : -1;
  for (let k = 0; k < nents; k++) {
    if (s < 0) sgListEnded(k, nents);
    if ((sl.dmaFlags(s) & SG_DMA_BUS_ADDRESS) === 0)
      dmaDirectSyncSingleForCpu(dev, sl.dmaAddress(s), sl.length(s), dir);
    if (k + 1 < nents) s = sl.next(s);
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
