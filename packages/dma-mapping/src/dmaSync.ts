import type { Device } from "@dmakit/core";
import { forEachSg, type Sg, type SgTable, sgDmaAddress, sgDmaLen } from "@dmakit/scatterlist";
import { devDmaState, dmaDevNeedSync } from "./dmaDevice.js";
import { checkDmaDirection, type DmaDataDirection } from "./dmaDirection.js";
import {
  dmaDirectNeedSync,
  dmaDirectSyncSgForCpu,
  dmaDirectSyncSgForDevice,
  dmaDirectSyncSingleForCpu,
  dmaDirectSyncSingleForDevice,
} from "./dmaDirectSync.js";
import {
  type DmaSyncSgFields,
  TRACE_DMA_SYNC_SG_FOR_CPU,
  TRACE_DMA_SYNC_SG_FOR_DEVICE,
  TRACE_DMA_SYNC_SINGLE_FOR_CPU,
  TRACE_DMA_SYNC_SINGLE_FOR_DEVICE,
  tracePrintArray,
} from "./dmaTrace.js";
import {
  iommuDmaSyncSgForCpu,
  iommuDmaSyncSgForDevice,
  iommuDmaSyncSingleForCpu,
  iommuDmaSyncSingleForDevice,
} from "./iommuDma.js";

/**
 * `__dma_sync_single_for_cpu(dev, addr, size, dir)`: the sync without the `dma_dev_need_sync`
 * shortcut (what {@link dmaSyncSingleForCpu} calls when syncing is needed).
 * @see kernel/dma/mapping.c __dma_sync_single_for_cpu
 */
export function __dmaSyncSingleForCpu(dev: Device, addr: number, size: number, dir: DmaDataDirection): void {
  checkDmaDirection(dir, "dma_sync_single_for_cpu");
  const s = devDmaState(dev);
  if (!s.dmaIommu) dmaDirectSyncSingleForCpu(dev, addr, size, dir);
  else iommuDmaSyncSingleForCpu(dev, addr, size, dir);
  s.system.stats.syncs++;
  const tracer = s.system.tracer;
  if (tracer?.enabled)
    tracer.emit(TRACE_DMA_SYNC_SINGLE_FOR_CPU, { device: dev.name, dmaAddr: addr, size, dir }, dev.name);
  s.system.debug?.debugDmaSyncSingleForCpu(dev, addr, size, dir);
}

/**
 * `__dma_sync_single_for_device(dev, addr, size, dir)`.
 * @see kernel/dma/mapping.c __dma_sync_single_for_device
 */
export function __dmaSyncSingleForDevice(
  dev: Device,
  addr: number,
  size: number,
  dir: DmaDataDirection,
): void {
  checkDmaDirection(dir, "dma_sync_single_for_device");
  const s = devDmaState(dev);
  if (!s.dmaIommu) dmaDirectSyncSingleForDevice(dev, addr, size, dir);
  else iommuDmaSyncSingleForDevice(dev, addr, size, dir);
  s.system.stats.syncs++;
  const tracer = s.system.tracer;
  if (tracer?.enabled)
    tracer.emit(TRACE_DMA_SYNC_SINGLE_FOR_DEVICE, { device: dev.name, dmaAddr: addr, size, dir }, dev.name);
  s.system.debug?.debugDmaSyncSingleForDevice(dev, addr, size, dir);
}

function sgFields(dev: Device, sg: Sg, nelems: number, dir: number): DmaSyncSgFields {
  const dma: number[] = [];
  const lens: number[] = [];
  for (const s of forEachSg(sg, nelems)) {
    dma.push(sgDmaAddress(s));
    lens.push(sgDmaLen(s));
  }
  return {
    device: dev.name,
    nents: nelems,
    dmaAddrs: tracePrintArray(dma),
    lengths: tracePrintArray(lens),
    dir,
  };
}

/** `__dma_sync_sg_for_cpu(dev, sg, nelems, dir)`. @see kernel/dma/mapping.c __dma_sync_sg_for_cpu */
export function __dmaSyncSgForCpu(dev: Device, sg: Sg, nelems: number, dir: DmaDataDirection): void {
  checkDmaDirection(dir, "dma_sync_sg_for_cpu");
  const s = devDmaState(dev);
  if (!s.dmaIommu) dmaDirectSyncSgForCpu(dev, sg, nelems, dir);
  else iommuDmaSyncSgForCpu(dev, sg, nelems, dir);
  s.system.stats.syncs++;
  const tracer = s.system.tracer;
  if (tracer?.enabled) tracer.emit(TRACE_DMA_SYNC_SG_FOR_CPU, sgFields(dev, sg, nelems, dir), dev.name);
  s.system.debug?.debugDmaSyncSgForCpu(dev, sg, nelems, dir);
}

/** `__dma_sync_sg_for_device(dev, sg, nelems, dir)`. @see kernel/dma/mapping.c __dma_sync_sg_for_device */
export function __dmaSyncSgForDevice(dev: Device, sg: Sg, nelems: number, dir: DmaDataDirection): void {
  checkDmaDirection(dir, "dma_sync_sg_for_device");
  const s = devDmaState(dev);
  if (!s.dmaIommu) dmaDirectSyncSgForDevice(dev, sg, nelems, dir);
  else iommuDmaSyncSgForDevice(dev, sg, nelems, dir);
  s.system.stats.syncs++;
  const tracer = s.system.tracer;
  if (tracer?.enabled) tracer.emit(TRACE_DMA_SYNC_SG_FOR_DEVICE, sgFields(dev, sg, nelems, dir), dev.name);
  s.system.debug?.debugDmaSyncSgForDevice(dev, sg, nelems, dir);
}

/**
 * `dma_sync_single_for_cpu(dev, addr, size, dir)`: gives a streaming mapping back to the CPU
 * (invalidate for FROM_DEVICE/BIDIRECTIONAL on a non-coherent device, bounce-buffer copy back).
 * A no-op when `dma_dev_need_sync` is false (coherent device that never bounced, dma-debug off);
 * then not even the direction is checked, as in the kernel.
 * @see include/linux/dma-mapping.h dma_sync_single_for_cpu
 */
export function dmaSyncSingleForCpu(dev: Device, addr: number, size: number, dir: DmaDataDirection): void {
  if (dmaDevNeedSync(dev)) __dmaSyncSingleForCpu(dev, addr, size, dir);
}

/**
 * `dma_sync_single_for_device(dev, addr, size, dir)`: gives the buffer back to the device (clean on
 * a non-coherent device, copy into the bounce buffer). Skipped like {@link dmaSyncSingleForCpu}.
 * @see include/linux/dma-mapping.h dma_sync_single_for_device
 */
export function dmaSyncSingleForDevice(dev: Device, addr: number, size: number, dir: DmaDataDirection): void {
  if (dmaDevNeedSync(dev)) __dmaSyncSingleForDevice(dev, addr, size, dir);
}

/** `dma_sync_single_range_for_cpu(dev, addr, offset, size, dir)` = sync of `addr + offset`. @see include/linux/dma-mapping.h */
export function dmaSyncSingleRangeForCpu(
  dev: Device,
  addr: number,
  offset: number,
  size: number,
  dir: DmaDataDirection,
): void {
  dmaSyncSingleForCpu(dev, addr + offset, size, dir);
}

/** `dma_sync_single_range_for_device(dev, addr, offset, size, dir)` = sync of `addr + offset`. @see include/linux/dma-mapping.h */
export function dmaSyncSingleRangeForDevice(
  dev: Device,
  addr: number,
  offset: number,
  size: number,
  dir: DmaDataDirection,
): void {
  dmaSyncSingleForDevice(dev, addr + offset, size, dir);
}

/**
 * `dma_sync_sg_for_cpu(dev, sg, nelems, dir)`: `nelems` is the ORIGINAL entry count given to the
 * map, not the count it returned. Skipped when `dma_dev_need_sync` is false.
 * @see include/linux/dma-mapping.h dma_sync_sg_for_cpu
 */
export function dmaSyncSgForCpu(dev: Device, sg: Sg, nelems: number, dir: DmaDataDirection): void {
  if (dmaDevNeedSync(dev)) __dmaSyncSgForCpu(dev, sg, nelems, dir);
}

/** `dma_sync_sg_for_device(dev, sg, nelems, dir)` (original `nelems`). @see include/linux/dma-mapping.h */
export function dmaSyncSgForDevice(dev: Device, sg: Sg, nelems: number, dir: DmaDataDirection): void {
  if (dmaDevNeedSync(dev)) __dmaSyncSgForDevice(dev, sg, nelems, dir);
}

/** `dma_sync_sgtable_for_cpu(dev, sgt, dir)`: {@link dmaSyncSgForCpu} of `orig_nents`. @see include/linux/dma-mapping.h */
export function dmaSyncSgtableForCpu(dev: Device, sgt: SgTable, dir: DmaDataDirection): void {
  dmaSyncSgForCpu(dev, sgt.checkLive("dma_sync_sgtable_for_cpu"), sgt.origNents, dir);
}

/** `dma_sync_sgtable_for_device(dev, sgt, dir)`: {@link dmaSyncSgForDevice} of `orig_nents`. @see include/linux/dma-mapping.h */
export function dmaSyncSgtableForDevice(dev: Device, sgt: SgTable, dir: DmaDataDirection): void {
  dmaSyncSgForDevice(dev, sgt.checkLive("dma_sync_sgtable_for_device"), sgt.origNents, dir);
}

/**
 * `dma_need_sync(dev, dma_addr)`: whether syncs of this mapping do anything: false when
 * `dma_dev_need_sync` is false; under dma-direct, true for a non-coherent device or a bounce-buffer
 * address (`dma_direct_need_sync`); under iommu-dma always true.
 * @see include/linux/dma-mapping.h dma_need_sync, kernel/dma/mapping.c __dma_need_sync
 */
export function dmaNeedSync(dev: Device, dmaAddr: number): boolean {
  if (!dmaDevNeedSync(dev)) return false;
  if (!devDmaState(dev).dmaIommu) return dmaDirectNeedSync(dev, dmaAddr);
  return true;
}

/**
 * `dma_need_unmap(dev)` (6.16): whether the driver must keep DMA addresses to unmap them. False only
 * for dma-direct with `dma_skip_sync` set and dma-debug off (the unmap would do nothing).
 * @see kernel/dma/mapping.c dma_need_unmap
 */
export function dmaNeedUnmap(dev: Device): boolean {
  const s = devDmaState(dev);
  if (s.dmaIommu) return true;
  if (!s.dmaSkipSync) return true;
  return s.system.debug !== null;
}
