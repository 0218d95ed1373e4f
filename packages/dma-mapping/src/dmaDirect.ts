import {
  type Device,
  DMA_MAPPING_ERROR,
  dmaToPhys,
  ERRNO,
  hex16,
  minNotZero,
  PCI_P2PDMA_MAP_BUS_ADDR,
  PCI_P2PDMA_MAP_NONE,
  PCI_P2PDMA_MAP_THRU_HOST_BRIDGE,
  physToDma,
} from "@dmakit/core";
import { SG_DMA_BUS_ADDRESS, type Sg, SgSlots } from "@dmakit/scatterlist";
import { archSyncDmaForDevice } from "./archSync.js";
import { DMA_ATTR_MMIO, DMA_ATTR_REQUIRE_COHERENT, DMA_ATTR_SKIP_CPU_SYNC } from "./dmaAttrs.js";
import type { DmaDataDirection } from "./dmaDirection.js";
import { dmaDirectSyncSingleForCpu } from "./dmaDirectSync.js";
import { devWarnOnce } from "./internal/devWarn.js";
import { llx } from "./internal/llx.js";
import { sgListEnded } from "./internal/sgListEnded.js";
import { PciP2pdmaMapState, pciP2pdmaBusAddrMap, pciP2pdmaState } from "./p2pdma.js";
import {
  isSwiotlbActive,
  isSwiotlbBuffer,
  isSwiotlbForceBounce,
  swiotlbMap,
  swiotlbTblUnmapSingle,
} from "./swiotlb.js";

/**
 * `dma_capable(dev, addr, size, is_ram)`: false for `DMA_MAPPING_ERROR` (what `phys_to_dma` gives
 * outside every `dma-ranges` window); otherwise true iff the last byte `addr + size - 1` is at or
 * below `min_not_zero(*dev->dma_mask, dev->bus_dma_limit)`. A NULL `dma_mask` reads as 0.
 * @see include/linux/dma-direct.h dma_capable. The model has a 64-bit `dma_addr_t`, so the
 * `min_low_pfn` check of 32-bit configurations never applies and `isRam` is unused.
 */
export function dmaCapable(dev: Device, addr: number, size: number, _isRam: boolean): boolean {
  if (addr === DMA_MAPPING_ERROR) return false;
  const end = addr + size - 1;
  return end <= minNotZero(dev.dmaMask ?? 0, dev.busDmaLimit);
}

/**
 * `dma_direct_map_phys(dev, phys, size, dir, attrs)`: the streaming map of dma-direct.
 * - `is_swiotlb_force_bounce` → `swiotlb_map` (DMA_MAPPING_ERROR for MMIO or REQUIRE_COHERENT,
 *   which cannot bounce);
 * - MMIO (`DMA_ATTR_MMIO`): the DMA address is `phys` itself (no `dma-ranges` translation, as the
 *   kernel does), checked by `dma_capable`; never bounced, never cache-maintained;
 * - RAM: `phys_to_dma` through the device's `dma_range_map`; if not `dma_capable`, bounce through
 *   swiotlb when a pool is active (and REQUIRE_COHERENT is not set), else the once-per-site
 *   warning `"DMA addr %pad+%zu overflow (mask %llx, bus limit %llx)."` and DMA_MAPPING_ERROR;
 * - then `arch_sync_dma_for_device` unless the device is coherent or SKIP_CPU_SYNC / MMIO.
 * Returns the DMA address or DMA_MAPPING_ERROR.
 * @see kernel/dma/direct.h dma_direct_map_phys (6.18, with the 2026 REQUIRE_COHERENT checks).
 * The model has no kmalloc, so `dma_kmalloc_needs_bounce` (bouncing small unaligned kmalloc
 * buffers on non-coherent arm64) never fires.
 */
export function dmaDirectMapPhys(
  dev: Device,
  phys: number,
  size: number,
  dir: DmaDataDirection,
  attrs: number,
): number {
  if (isSwiotlbForceBounce(dev)) {
    if ((attrs & (DMA_ATTR_MMIO | DMA_ATTR_REQUIRE_COHERENT)) !== 0) return DMA_MAPPING_ERROR;
    return swiotlbMap(dev, phys, size, dir, attrs);
  }

  let dmaAddr: number;
  if ((attrs & DMA_ATTR_MMIO) !== 0) {
    dmaAddr = phys;
    if (!dmaCapable(dev, dmaAddr, size, false)) return overflow(dev, dmaAddr, size);
  } else {
    dmaAddr = physToDma(dev, phys);
    if (!dmaCapable(dev, dmaAddr, size, true)) {
      if (isSwiotlbActive(dev) && (attrs & DMA_ATTR_REQUIRE_COHERENT) === 0)
        return swiotlbMap(dev, phys, size, dir, attrs);
      return overflow(dev, dmaAddr, size);
    }
  }

  if (!dev.dmaCoherent && (attrs & (DMA_ATTR_SKIP_CPU_SYNC | DMA_ATTR_MMIO)) === 0)
    archSyncDmaForDevice(dev, phys, size, dir);
  return dmaAddr;
}

function overflow(dev: Device, dmaAddr: number, size: number): number {
  devWarnOnce(
    dev,
    true,
    "dma_direct_map_phys:overflow",
    `DMA addr ${hex16(dmaAddr)}+${size} overflow (mask ${llx(dev.dmaMask ?? 0)}, bus limit ${llx(dev.busDmaLimit)}).`,
  );
  return DMA_MAPPING_ERROR;
}

/**
 * `dma_direct_unmap_phys(dev, addr, size, dir, attrs)`: nothing for MMIO / REQUIRE_COHERENT
 * mappings; else `dma_direct_sync_single_for_cpu` (non-coherent device, no SKIP_CPU_SYNC), then
 * releases the swiotlb slot when `addr` lies in a bounce buffer (`swiotlb_tbl_unmap_single` with
 * SKIP_CPU_SYNC: the copy back already happened in the sync).
 * @see kernel/dma/direct.h dma_direct_unmap_phys
 */
export function dmaDirectUnmapPhys(
  dev: Device,
  addr: number,
  size: number,
  dir: DmaDataDirection,
  attrs: number,
): void {
  if ((attrs & (DMA_ATTR_MMIO | DMA_ATTR_REQUIRE_COHERENT)) !== 0) return;
  const phys = dmaToPhys(dev, addr);
  if (!dev.dmaCoherent && (attrs & DMA_ATTR_SKIP_CPU_SYNC) === 0)
    dmaDirectSyncSingleForCpu(dev, addr, size, dir);
  if (isSwiotlbBuffer(dev, phys)) swiotlbTblUnmapSingle(dev, phys, size, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC);
}

/**
 * `dma_direct_map_sg(dev, sgl, nents, dir, attrs)`: maps entry by entry and never merges, so it
 * returns `nents`. Per entry, by `pci_p2pdma_state`:
 * - `PCI_P2PDMA_MAP_BUS_ADDR`: `dma_address` = the PCI bus address (`pci_p2pdma_bus_addr_map`),
 *   `dma_length` = length, entry marked `SG_DMA_BUS_ADDRESS`; no cache maintenance, no swiotlb;
 * - `PCI_P2PDMA_MAP_NONE` / `THRU_HOST_BRIDGE`: {@link dmaDirectMapPhys} of `sg_phys(sg)`;
 *   DMA_MAPPING_ERROR → unmap the entries mapped so far (SKIP_CPU_SYNC) and return `-EIO`;
 * - anything else (NOT_SUPPORTED): unmap what was mapped and return `-EREMOTEIO`.
 * Returns the count or a NEGATIVE errno number (the dispatcher turns it into 0 or a throw).
 * @see kernel/dma/direct.c dma_direct_map_sg
 */
export function dmaDirectMapSg(
  dev: Device,
  sgl: Sg,
  nents: number,
  dir: DmaDataDirection,
  attrs: number,
): number {
  const p2pdmaState = new PciP2pdmaMapState();
  let i = 0;
  let ret = 0;
  // for_each_sg by slot index: no handle per entry on the streaming path.
  const sl = new SgSlots();
  let s = nents > 0 ? sl.first(sgl, "for_each_sg") : -1;
  for (let k = 0; k < nents; k++) {
    if (s < 0) sgListEnded(k, nents);
    const map = pciP2pdmaState(p2pdmaState, dev, sl.page(s));
    if (map === PCI_P2PDMA_MAP_BUS_ADDR) {
      sl.setDmaAddress(s, pciP2pdmaBusAddrMap(p2pdmaState, sl.phys(s)));
      sl.setDmaLen(s, sl.length(s));
      sl.setDmaFlags(s, sl.dmaFlags(s) | SG_DMA_BUS_ADDRESS);
      i++;
    } else {
      if (map !== PCI_P2PDMA_MAP_NONE && map !== PCI_P2PDMA_MAP_THRU_HOST_BRIDGE) {
        ret = -ERRNO.EREMOTEIO;
        break;
      }
      const len = sl.length(s);
      const addr = dmaDirectMapPhys(dev, sl.phys(s), len, dir, attrs);
      sl.setDmaAddress(s, addr);
      if (addr === DMA_MAPPING_ERROR) {
        ret = -ERRNO.EIO;
        break;
      }
      sl.setDmaLen(s, len);
      i++;
    }
    if (k + 1 < nents) s = sl.next(s);
  }
  if (ret === 0) return nents;
  dmaDirectUnmapSg(dev, sgl, i, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC);
  return ret;
}

/**
 * `dma_direct_unmap_sg(dev, sgl, nents, dir, attrs)`: per entry, bus-address entries are only
 * unmarked; the others go through {@link dmaDirectUnmapPhys} with their `dma_address`/`dma_length`.
 * @see kernel/dma/direct.c dma_direct_unmap_sg
 */
export function dmaDirectUnmapSg(
  dev: Device,
  sgl: Sg,
  nents: number,
  dir: DmaDataDirection,
  attrs: number,
): void {
  const sl = new SgSlots();
  let s = nents > 0 ? sl.first(sgl, "for_each_sg") : -1;
  for (let k = 0; k < nents; k++) {
    if (s < 0) sgListEnded(k, nents);
    const flags = sl.dmaFlags(s);
    if ((flags & SG_DMA_BUS_ADDRESS) !== 0) sl.setDmaFlags(s, flags & ~SG_DMA_BUS_ADDRESS);
    else dmaDirectUnmapPhys(dev, sl.dmaAddress(s), sl.dmaLen(s), dir, attrs);
    if (k + 1 < nents) s = sl.next(s);
  }
}
