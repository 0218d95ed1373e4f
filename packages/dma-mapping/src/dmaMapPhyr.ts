import {
  type Device,
  DMA_MAPPING_ERROR,
  hex,
  KernelError,
  PAGE_SIZE,
  PCI_P2PDMA_MAP_BUS_ADDR,
  PCI_P2PDMA_MAP_NONE,
  PCI_P2PDMA_MAP_THRU_HOST_BRIDGE,
  pciP2pdmaMapTypeName,
} from "@dmakit/core";
import { DmaRangeList, PHYR_F_BUS_ADDR, PHYR_F_MMIO, type PhysRangeList } from "@dmakit/phyr";
import { archSyncDmaForCpu } from "./archSync.js";
import { DmaSystemKey } from "./DmaSystem.js";
import { DMA_ATTR_MMIO, DMA_ATTR_SKIP_CPU_SYNC } from "./dmaAttrs.js";
import { devDmaState } from "./dmaDevice.js";
import { checkDmaDirection, type DmaDataDirection } from "./dmaDirection.js";
import {
  DmaIovaState,
  dmaIovaDestroy,
  dmaIovaLinkIn,
  dmaIovaSize,
  dmaIovaSync,
  dmaIovaTryAlloc,
} from "./dmaIova.js";
import { iommuDmaCookie } from "./IommuDmaCookie.js";
import { dmaMapPhys, dmaUnmapPhys } from "./mapping.js";
import { PciP2pdmaMapState, pciP2pdmaBusAddrMap, pciP2pdmaStateIn } from "./p2pdma.js";

/** How one {@link dmaMapPhyr} result was made, so {@link dmaUnmapPhyr} can undo it. */
interface PhyrMapping {
  /** "iova": one two-step IOVA holds every non-bus range; "phys": one `dma_map_phys` per range. */
  readonly kind: "iova" | "phys";
  readonly state: DmaIovaState | null;
  /** Bytes linked into `state` (from offset 0). */
  readonly linked: number;
  /** The CPU ranges, for the per-range cache maintenance of mixed RAM/MMIO lists. */
  readonly phyr: PhysRangeList;
  /** Per input range: the P2P map type / MMIO decision made at map time. */
  readonly how: Uint8Array;
}

/** How each range was mapped (`PhyrMapping.how`), so the unmap undoes exactly that. */
const HOW_RAM = 0;
const HOW_MMIO = 1;
const HOW_BUS = 2;

/** Machine slot: the bookkeeping of live {@link dmaMapPhyr} results (one record per list, none per range). */
const PHYR_MAPPINGS = new DmaSystemKey<WeakMap<DmaRangeList, PhyrMapping>>("dma-map-phyr");

function mappingsOf(dev: Device): WeakMap<DmaRangeList, PhyrMapping> {
  const system = devDmaState(dev).system;
  let m = system.get(PHYR_MAPPINGS);
  if (m === undefined) {
    m = new WeakMap();
    system.set(PHYR_MAPPINGS, m);
  }
  return m;
}

/** Classifies every range: RAM, MMIO (`PHYR_F_MMIO` or P2P through the host bridge), or P2P bus address. */
function classify(dev: Device, phyr: PhysRangeList): { how: Uint8Array; busAddr: Float64Array } {
  const system = devDmaState(dev).system;
  const n = phyr.count;
  const how = new Uint8Array(n);
  const busAddr = new Float64Array(n);
  const p2p = new PciP2pdmaMapState();
  for (let i = 0; i < n; i++) {
    const addr = phyr.addr(i);
    const map = pciP2pdmaStateIn(system.phys, system, p2p, dev, Math.floor(addr / PAGE_SIZE));
    if (map === PCI_P2PDMA_MAP_BUS_ADDR) {
      how[i] = HOW_BUS;
      busAddr[i] = pciP2pdmaBusAddrMap(p2p, addr);
    } else if (map === PCI_P2PDMA_MAP_THRU_HOST_BRIDGE) {
      how[i] = HOW_MMIO;
    } else if (map === PCI_P2PDMA_MAP_NONE) {
      how[i] = (phyr.flags(i) & PHYR_F_MMIO) !== 0 ? HOW_MMIO : HOW_RAM;
    } else {
      throw new KernelError(
        "EREMOTEIO",
        `dma-map-phyr: ${dev.name}: range ${i} ${hex(addr)}+${hex(phyr.len(i))} is P2P memory of "${
          p2p.pgmap?.owner ?? "?"
        }" the device cannot reach (${pciP2pdmaMapTypeName(map)})`,
      );
    }
  }
  return { how, busAddr };
}

/**
 * Whether the non-bus ranges can share one IOVA range laid end to end: only the first may start
 * inside a granule and only the last may end inside one (what `dma_iova_link` accepts).
 */
function linkable(phyr: PhysRangeList, how: Uint8Array, granule: number): boolean {
  let first = -1;
  let last = -1;
  for (let i = 0; i < how.length; i++)
    if (how[i] !== HOW_BUS) {
      if (first < 0) first = i;
      last = i;
    }
  for (let i = first; i >= 0 && i <= last; i++) {
    if (how[i] === HOW_BUS) continue;
    if (i !== first && modGranule(phyr.addr(i), granule) !== 0) return false;
    if (i !== last && modGranule(phyr.addr(i) + phyr.len(i), granule) !== 0) return false;
  }
  return true;
}

/** `x % granule` for a power-of-two granule, on the low word for positive integers (no fmod call). */
function modGranule(x: number, granule: number): number {
  if (x > 0 && granule <= 0x4000_0000 && Number.isInteger(x)) return x & (granule - 1);
  return x % granule;
}

/**
 * Maps a physical range list for `dev` and returns the DMA ranges the device must use — the
 * model's `dma_map_phyr`, as proposed in the "Phyr Starter" thread and as `dma_buf_phys_vec_to_sgt`
 * (6.19) and `blk_rq_dma_map_iter_start` do with the two-step API:
 *
 * - Through a DMA API IOMMU domain: ONE IOVA range for all ranges — `dma_iova_try_alloc`, one
 *   `dma_iova_link` per range at consecutive offsets, one `dma_iova_sync` — so the result is a
 *   single DMA range (split only around P2P bus-address ranges). When an interior range boundary
 *   is not IOVA-granule aligned (the IOVA could not be contiguous), each range is mapped on its
 *   own with `dma_map_phys` instead, as also when `dma_iova_try_alloc` finds no IOVA space
 *   (the fallback of `blk_rq_dma_map_iter_start`).
 * - dma-direct (no IOMMU, identity domain): one `dma_map_phys` per input range, one output range
 *   each (bounced through swiotlb when the device needs it).
 * - P2P memory (ranges in a `MEMORY_DEVICE_PCI_P2PDMA` pgmap): through a switch
 *   (`PCI_P2PDMA_MAP_BUS_ADDR`) the PCI bus address, flagged `PHYR_F_BUS_ADDR` and never through
 *   the IOMMU; through an allowlisted host bridge mapped with `DMA_ATTR_MMIO` and flagged
 *   `PHYR_F_MMIO`; otherwise `EREMOTEIO`. Ranges flagged `PHYR_F_MMIO` map with `DMA_ATTR_MMIO`.
 *
 * The output is not split at the device's `max_segment_size`/segment boundary (use
 * `DmaRangeList.splitSegments`). Failure unwinds everything mapped so far and THROWS
 * `KernelError`: `EREMOTEIO` (P2P unreachable), `ENOMEM` (IOVA/swiotlb space, or a failed
 * `dma_map_phys`), or the two-step API's error. Undo with {@link dmaUnmapPhyr} and the same list.
 * @example
 * const dma = dmaMapPhyr(dev, PhysRangeList.fromPfns(pfns, 0, pfns.length * 4096), DMA_TO_DEVICE, 0);
 * // ... device DMA from dma.addr(0) for dma.len(0) bytes ...
 * dmaUnmapPhyr(dev, dma, DMA_TO_DEVICE, 0);
 * Model-only: no mainline function (built on @see drivers/iommu/dma-iommu.c dma_iova_link).
 */
export function dmaMapPhyr(
  dev: Device,
  phyr: PhysRangeList,
  dir: DmaDataDirection,
  attrs: number,
): DmaRangeList {
  checkDmaDirection(dir, "dma_map_phyr");
  const ds = devDmaState(dev);
  const { how, busAddr } = classify(dev, phyr);
  const n = phyr.count;
  const out = new DmaRangeList();
  const cookie = ds.dmaIommu ? iommuDmaCookie(dev) : null;
  const granule = cookie !== null ? cookie.iovad.granule : PAGE_SIZE;
  if (n > 0 && cookie !== null && linkable(phyr, how, granule)) {
    let total = 0;
    let first = -1;
    for (let i = 0; i < n; i++)
      if (how[i] !== HOW_BUS) {
        total += phyr.len(i);
        if (first < 0) first = i;
      }
    const state = new DmaIovaState();
    if (total === 0 || dmaIovaTryAlloc(dev, state, phyr.addr(first), total)) {
      let offset = 0;
      try {
        let runAddr = 0;
        let runLen = 0;
        let runFlags = 0;
        for (let i = 0; i < n; i++) {
          if (how[i] === HOW_BUS) {
            if (runLen !== 0) out.push(runAddr, runLen, runFlags);
            runLen = 0;
            out.push(busAddr[i] as number, phyr.len(i), PHYR_F_BUS_ADDR);
            continue;
          }
          const mmio = how[i] === HOW_MMIO;
          const len = phyr.len(i);
          dmaIovaLinkIn(
            dev,
            cookie,
            state,
            phyr.addr(i),
            offset,
            len,
            dir,
            mmio ? attrs | DMA_ATTR_MMIO : attrs,
          );
          const flags = mmio ? PHYR_F_MMIO : 0;
          const a = state.addr + offset;
          if (runLen !== 0 && runFlags === flags && runAddr + runLen === a) {
            runLen += len;
          } else {
            if (runLen !== 0) out.push(runAddr, runLen, runFlags);
            runAddr = a;
            runLen = len;
            runFlags = flags;
          }
          offset += len;
        }
        if (runLen !== 0) out.push(runAddr, runLen, runFlags);
        if (offset !== 0) dmaIovaSync(dev, state, 0, offset);
      } catch (e) {
        if (dmaIovaSize(state) !== 0) dmaIovaDestroy(dev, state, offset, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC);
        ds.system.stats.mapErrors++;
        throw e;
      }
      mappingsOf(dev).set(out, {
        kind: "iova",
        state: total === 0 ? null : state,
        linked: offset,
        phyr,
        how,
      });
      ds.system.stats.mappings++;
      return out;
    }
    // No IOVA space: fall back to one mapping per range, as blk_rq_dma_map_iter_start does.
  }
  // One dma_map_phys per range: dma-direct, or ranges an IOVA cannot lay out contiguously.
  for (let i = 0; i < n; i++) {
    const len = phyr.len(i);
    if (how[i] === HOW_BUS) {
      out.push(busAddr[i] as number, len, PHYR_F_BUS_ADDR);
      continue;
    }
    const mmio = how[i] === HOW_MMIO;
    const a = dmaMapPhys(dev, phyr.addr(i), len, dir, mmio ? attrs | DMA_ATTR_MMIO : attrs);
    if (a === DMA_MAPPING_ERROR) {
      unmapPerRange(dev, out, how, i, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC);
      throw new KernelError(
        "ENOMEM",
        `dma-map-phyr: ${dev.name}: dma_map_phys of range ${i} ${hex(phyr.addr(i))}+${hex(len)} failed`,
      );
    }
    out.push(a, len, mmio ? PHYR_F_MMIO : 0);
  }
  mappingsOf(dev).set(out, { kind: "phys", state: null, linked: 0, phyr, how });
  return out;
}

/** Unmaps the first `count` input ranges of a per-range mapping (output entry i = input range i). */
function unmapPerRange(
  dev: Device,
  out: DmaRangeList,
  how: Uint8Array,
  count: number,
  dir: DmaDataDirection,
  attrs: number,
): void {
  for (let i = 0; i < count; i++) {
    if (how[i] === HOW_BUS) continue;
    dmaUnmapPhys(dev, out.addr(i), out.len(i), dir, how[i] === HOW_MMIO ? attrs | DMA_ATTR_MMIO : attrs);
  }
}

/**
 * Undoes {@link dmaMapPhyr}: `ranges` must be the list it returned (same device; `EINVAL`
 * otherwise, or when already unmapped). The single-IOVA form is torn down with one
 * `dma_iova_destroy` (through the flush queue on a DMA_FQ domain), with CPU cache maintenance for
 * non-coherent devices and swiotlb copy-back; the per-range form with one `dma_unmap_phys` per
 * range. Bus-address ranges need nothing.
 * Model-only (built on @see drivers/iommu/dma-iommu.c dma_iova_destroy).
 */
export function dmaUnmapPhyr(dev: Device, ranges: DmaRangeList, dir: DmaDataDirection, attrs: number): void {
  checkDmaDirection(dir, "dma_unmap_phyr");
  const maps = mappingsOf(dev);
  const rec = maps.get(ranges);
  if (rec === undefined)
    throw new KernelError(
      "EINVAL",
      `dma-map-phyr: ${dev.name}: range list of ${ranges.count} entries was not mapped by dmaMapPhyr for this device (or is already unmapped)`,
    );
  maps.delete(ranges);
  if (rec.kind === "phys") {
    unmapPerRange(dev, ranges, rec.how, rec.how.length, dir, attrs);
    return;
  }
  const system = devDmaState(dev).system;
  if (rec.state !== null) {
    let unlinkAttrs = attrs;
    let anyMmio = false;
    for (let i = 0; i < rec.how.length; i++) if (rec.how[i] === HOW_MMIO) anyMmio = true;
    if (anyMmio && !dev.dmaCoherent) {
      // One unlink covers RAM and MMIO alike: maintain the RAM ranges here, none of the MMIO ones.
      if (!(attrs & DMA_ATTR_SKIP_CPU_SYNC))
        for (let i = 0; i < rec.how.length; i++)
          if (rec.how[i] === HOW_RAM) archSyncDmaForCpu(dev, rec.phyr.addr(i), rec.phyr.len(i), dir);
      unlinkAttrs |= DMA_ATTR_MMIO;
    }
    dmaIovaDestroy(dev, rec.state, rec.linked, dir, unlinkAttrs);
  }
  system.stats.unmappings++;
}
