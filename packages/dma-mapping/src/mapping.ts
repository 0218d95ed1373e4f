import { type Device, DMA_MAPPING_ERROR, ERRNO, errnoName, KernelError, PAGE_SIZE } from "@dmakit/core";
import {
  forEachSg,
  type Sg,
  type SgTable,
  sgDmaAddress,
  sgDmaLen,
  sgLength,
  sgPage,
  sgPhys,
} from "@dmakit/scatterlist";
import { DMA_ATTR_MMIO, DMA_ATTR_REQUIRE_COHERENT } from "./dmaAttrs.js";
import { devDmaState } from "./dmaDevice.js";
import { dmaDirectMapPhys, dmaDirectMapSg, dmaDirectUnmapPhys, dmaDirectUnmapSg } from "./dmaDirect.js";
import { checkDmaDirection, type DmaDataDirection } from "./dmaDirection.js";
import {
  TRACE_DMA_MAP_PHYS,
  TRACE_DMA_MAP_SG,
  TRACE_DMA_MAP_SG_ERR,
  TRACE_DMA_UNMAP_PHYS,
  TRACE_DMA_UNMAP_SG,
  tracePrintArray,
} from "./dmaTrace.js";
import { devWarnOnce, warnOnOnce } from "./internal/devWarn.js";
import { iommuDmaMapPhys, iommuDmaMapSg, iommuDmaUnmapPhys, iommuDmaUnmapSg } from "./iommuDma.js";

/**
 * `dma_map_direct(dev, ops)`: the streaming calls go to dma-direct. The model has no legacy
 * `dma_map_ops` (and so no `dma_ops_bypass`): a device maps directly unless its default domain is a
 * DMA API domain (`dev->dma_iommu`); identity (passthrough) domains and no IOMMU map directly.
 * @see kernel/dma/mapping.c dma_go_direct, dma_map_direct
 */
export function dmaMapDirect(dev: Device): boolean {
  return !devDmaState(dev).dmaIommu;
}

/**
 * `dma_map_phys(dev, phys, size, dir, attrs)` (6.18): the primary streaming map. `phys` is RAM, or
 * MMIO with `DMA_ATTR_MMIO`. Dispatches to dma-direct or iommu-dma, emits `dma:dma_map_phys` and
 * calls dma-debug. Returns the DMA address, or `DMA_MAPPING_ERROR` when: the device has no
 * `dma_mask` (WARN_ON_ONCE), REQUIRE_COHERENT on a non-coherent device, or the path fails (check
 * with {@link dmaMappingError}). An invalid direction throws `EINVAL` (the kernel's BUG_ON).
 * @see kernel/dma/mapping.c dma_map_phys
 */
export function dmaMapPhys(
  dev: Device,
  phys: number,
  size: number,
  dir: DmaDataDirection,
  attrs = 0,
): number {
  checkDmaDirection(dir, "dma_map_phys");
  const st = devDmaState(dev);
  const system = st.system;
  if (warnOnOnce(dev, dev.dmaMask === null, "dma_map_phys", "!dev->dma_mask")) {
    system.stats.mapErrors++;
    return DMA_MAPPING_ERROR;
  }
  if (!dev.dmaCoherent && (attrs & DMA_ATTR_REQUIRE_COHERENT) !== 0) {
    system.stats.mapErrors++;
    return DMA_MAPPING_ERROR;
  }
  // dma_map_direct(dev), with the state looked up once.
  const addr = !st.dmaIommu
    ? dmaDirectMapPhys(dev, phys, size, dir, attrs)
    : iommuDmaMapPhys(dev, phys, size, dir, attrs);
  if (addr === DMA_MAPPING_ERROR) system.stats.mapErrors++;
  else system.stats.mappings++;
  const tracer = system.tracer;
  if (tracer?.enabled)
    tracer.emit(
      TRACE_DMA_MAP_PHYS,
      { device: dev.name, physAddr: phys, dmaAddr: addr, size, dir, attrs },
      dev.name,
    );
  system.debug?.debugDmaMapPhys(dev, phys, size, dir, addr, attrs);
  return addr;
}

/**
 * `dma_unmap_phys(dev, addr, size, dir, attrs)` (6.18): undoes {@link dmaMapPhys}; pass the same
 * size, direction and attributes (`DMA_ATTR_MMIO` for MMIO). For a non-coherent device this is where
 * the CPU caches are invalidated (FROM_DEVICE/BIDIRECTIONAL) and bounce buffers copied back.
 * @see kernel/dma/mapping.c dma_unmap_phys
 */
export function dmaUnmapPhys(
  dev: Device,
  addr: number,
  size: number,
  dir: DmaDataDirection,
  attrs = 0,
): void {
  checkDmaDirection(dir, "dma_unmap_phys");
  const st = devDmaState(dev);
  const system = st.system;
  if (!st.dmaIommu) dmaDirectUnmapPhys(dev, addr, size, dir, attrs);
  else iommuDmaUnmapPhys(dev, addr, size, dir, attrs);
  system.stats.unmappings++;
  const tracer = system.tracer;
  if (tracer?.enabled)
    tracer.emit(TRACE_DMA_UNMAP_PHYS, { device: dev.name, addr, size, dir, attrs }, dev.name);
  system.debug?.debugDmaUnmapPhys(dev, addr, size, dir);
}

/**
 * `dma_map_page_attrs(dev, page, offset, size, dir, attrs)` = {@link dmaMapPhys} of
 * `page_to_phys(page) + offset`. `page` is a pfn. Returns DMA_MAPPING_ERROR for `DMA_ATTR_MMIO`
 * (pages are not MMIO), and with dma-debug enabled for a ZONE_DEVICE page (WARN_ON_ONCE).
 * @see kernel/dma/mapping.c dma_map_page_attrs
 */
export function dmaMapPageAttrs(
  dev: Device,
  page: number,
  offset: number,
  size: number,
  dir: DmaDataDirection,
  attrs = 0,
): number {
  const system = devDmaState(dev).system;
  if (
    (attrs & DMA_ATTR_MMIO) !== 0 ||
    (system.debug !== null &&
      warnOnOnce(dev, system.phys.isZoneDevicePage(page), "dma_map_page_attrs", "is_zone_device_page(page)"))
  ) {
    system.stats.mapErrors++;
    return DMA_MAPPING_ERROR;
  }
  return dmaMapPhys(dev, page * PAGE_SIZE + offset, size, dir, attrs);
}

/**
 * `dma_unmap_page_attrs(dev, addr, size, dir, attrs)`: {@link dmaUnmapPhys}; ignored with
 * `DMA_ATTR_MMIO`. @see kernel/dma/mapping.c dma_unmap_page_attrs
 */
export function dmaUnmapPageAttrs(
  dev: Device,
  addr: number,
  size: number,
  dir: DmaDataDirection,
  attrs = 0,
): void {
  if ((attrs & DMA_ATTR_MMIO) !== 0) return;
  dmaUnmapPhys(dev, addr, size, dir, attrs);
}

/**
 * `dma_map_single_attrs(dev, ptr, size, dir, attrs)`: maps a linear-map (kmalloc/page_address)
 * buffer given by its kernel virtual address. A vmalloc address is rejected with
 * `dev_WARN_ONCE("rejecting DMA map of vmalloc memory")` and DMA_MAPPING_ERROR (vmalloc memory is
 * not physically contiguous and may be remapped). Calls dma-debug's `debug_dma_map_single`, then
 * {@link dmaMapPageAttrs} of `virt_to_page(ptr)`, `offset_in_page(ptr)`.
 * @see include/linux/dma-mapping.h dma_map_single_attrs
 */
export function dmaMapSingleAttrs(
  dev: Device,
  cpuAddr: number,
  size: number,
  dir: DmaDataDirection,
  attrs = 0,
): number {
  const system = devDmaState(dev).system;
  if (
    devWarnOnce(
      dev,
      system.vm.isVmallocAddr(cpuAddr),
      "dma_map_single_attrs:vmalloc",
      "rejecting DMA map of vmalloc memory",
    )
  ) {
    system.stats.mapErrors++;
    return DMA_MAPPING_ERROR;
  }
  system.debug?.debugDmaMapSingle(dev, cpuAddr, size);
  const phys = system.vm.virtToPhys(cpuAddr);
  return dmaMapPageAttrs(dev, Math.floor(phys / PAGE_SIZE), phys % PAGE_SIZE, size, dir, attrs);
}

/** `dma_unmap_single_attrs(dev, addr, size, dir, attrs)` = {@link dmaUnmapPageAttrs}. @see include/linux/dma-mapping.h */
export function dmaUnmapSingleAttrs(
  dev: Device,
  addr: number,
  size: number,
  dir: DmaDataDirection,
  attrs = 0,
): void {
  dmaUnmapPageAttrs(dev, addr, size, dir, attrs);
}

/**
 * `dma_map_resource(dev, phys, size, dir, attrs)`: maps MMIO (a peer's BAR, a FIFO register) that
 * has no struct page: {@link dmaMapPhys} with `DMA_ATTR_MMIO` (no cache maintenance, no bouncing,
 * no `dma-ranges` translation under dma-direct). With dma-debug enabled, RAM is refused:
 * WARN_ON_ONCE(pfn_valid) and DMA_MAPPING_ERROR.
 * @see kernel/dma/mapping.c dma_map_resource
 */
export function dmaMapResource(
  dev: Device,
  phys: number,
  size: number,
  dir: DmaDataDirection,
  attrs = 0,
): number {
  const system = devDmaState(dev).system;
  if (
    system.debug !== null &&
    warnOnOnce(
      dev,
      system.phys.pfnValid(Math.floor(phys / PAGE_SIZE)),
      "dma_map_resource",
      "pfn_valid(PHYS_PFN(phys_addr))",
    )
  ) {
    system.stats.mapErrors++;
    return DMA_MAPPING_ERROR;
  }
  return dmaMapPhys(dev, phys, size, dir, attrs | DMA_ATTR_MMIO);
}

/** `dma_unmap_resource(dev, addr, size, dir, attrs)` = {@link dmaUnmapPhys} with `DMA_ATTR_MMIO`. @see kernel/dma/mapping.c */
export function dmaUnmapResource(
  dev: Device,
  addr: number,
  size: number,
  dir: DmaDataDirection,
  attrs = 0,
): void {
  dmaUnmapPhys(dev, addr, size, dir, attrs | DMA_ATTR_MMIO);
}

/**
 * `dma_mapping_error(dev, addr)`: `-ENOMEM` (the number -12) for DMA_MAPPING_ERROR, else 0. Tells
 * dma-debug the driver checked the handle.
 * @see include/linux/dma-mapping.h dma_mapping_error
 */
export function dmaMappingError(dev: Device, addr: number): number {
  devDmaState(dev).system.debug?.debugDmaMappingError(dev, addr);
  return addr === DMA_MAPPING_ERROR ? -ERRNO.ENOMEM : 0;
}

const SG_ERRNOS: readonly number[] = [-ERRNO.EINVAL, -ERRNO.ENOMEM, -ERRNO.EIO, -ERRNO.EREMOTEIO];

/**
 * `__dma_map_sg_attrs`: the count of DMA segments, or a negative errno. REQUIRE_COHERENT on a
 * non-coherent device → `-EOPNOTSUPP`; no `dma_mask` → WARN_ON_ONCE and 0 (sic: `dma_map_sgtable`
 * then reports success with `nents` 0, as the kernel does); an implementation error other than
 * EINVAL/ENOMEM/EIO/EREMOTEIO → WARN_ON_ONCE and `-EIO`.
 */
function mapSg(dev: Device, sg: Sg, nents: number, dir: DmaDataDirection, attrs: number): number {
  checkDmaDirection(dir, "__dma_map_sg_attrs");
  const system = devDmaState(dev).system;
  if (!dev.dmaCoherent && (attrs & DMA_ATTR_REQUIRE_COHERENT) !== 0) {
    system.stats.mapErrors++;
    return -ERRNO.EOPNOTSUPP;
  }
  if (warnOnOnce(dev, dev.dmaMask === null, "__dma_map_sg_attrs", "!dev->dma_mask")) {
    system.stats.mapErrors++;
    return 0;
  }
  const ents = dmaMapDirect(dev)
    ? dmaDirectMapSg(dev, sg, nents, dir, attrs)
    : iommuDmaMapSg(dev, sg, nents, dir, attrs);
  const tracer = system.tracer;
  if (ents > 0) {
    system.stats.mappings++;
    if (tracer?.enabled) traceMapSg(dev, sg, nents, ents, dir, attrs);
    system.debug?.debugDmaMapSg(dev, sg, nents, ents, dir, attrs);
    return ents;
  }
  system.stats.mapErrors++;
  if (tracer?.enabled)
    tracer.emit(
      TRACE_DMA_MAP_SG_ERR,
      { device: dev.name, nents, err: ents, physAddrs: physArray(sg, nents), dir, attrs },
      dev.name,
    );
  if (
    warnOnOnce(
      dev,
      !SG_ERRNOS.includes(ents),
      "__dma_map_sg_attrs",
      `ents != -EINVAL && ents != -ENOMEM && ents != -EIO && ents != -EREMOTEIO (ents ${ents})`,
    )
  )
    return -ERRNO.EIO;
  return ents;
}

function physArray(sg: Sg, nents: number): string {
  const out: number[] = [];
  for (const s of forEachSg(sg, nents)) out.push(sgPage(s) < 0 ? 0 : sgPhys(s));
  return tracePrintArray(out);
}

function traceMapSg(dev: Device, sg: Sg, nents: number, ents: number, dir: number, attrs: number): void {
  const dma: number[] = [];
  const lens: number[] = [];
  for (const s of forEachSg(sg, ents)) {
    dma.push(sgDmaAddress(s));
    lens.push(sgDmaLen(s));
  }
  devDmaState(dev).system.tracer?.emit(
    TRACE_DMA_MAP_SG,
    {
      device: dev.name,
      nents,
      ents,
      dmaAddrs: tracePrintArray(dma),
      lengths: tracePrintArray(lens),
      physAddrs: physArray(sg, nents),
      dir,
      attrs,
    },
    dev.name,
  );
}

/**
 * `dma_map_sg_attrs(dev, sg, nents, dir, attrs)`: maps `nents` CPU entries; returns the number of
 * DMA segments (dma-direct: `nents`; iommu-dma may merge into fewer), **0 on any error** (no
 * throw). Unmap with the ORIGINAL `nents`, not the returned count.
 * @see kernel/dma/mapping.c dma_map_sg_attrs
 */
export function dmaMapSgAttrs(dev: Device, sg: Sg, nents: number, dir: DmaDataDirection, attrs = 0): number {
  const ret = mapSg(dev, sg, nents, dir, attrs);
  return Math.max(ret, 0);
}

/**
 * `dma_map_sgtable(dev, sgt, dir, attrs)`: maps the table's `orig_nents` entries and stores the
 * DMA segment count in `sgt.nents`. Returns 0; throws `KernelError` with `EINVAL` (bad arguments,
 * do not retry), `ENOMEM` (out of IOVA/bounce space, retry later), `EIO` (unknown, e.g. an address
 * the device cannot reach without swiotlb), `EREMOTEIO` (P2PDMA memory the device cannot reach) or,
 * for REQUIRE_COHERENT on a non-coherent device, `EOPNOTSUPP`; `sgt` is then unchanged.
 * @see kernel/dma/mapping.c dma_map_sgtable
 */
export function dmaMapSgtable(dev: Device, sgt: SgTable, dir: DmaDataDirection, attrs = 0): 0 {
  const sgl = sgt.checkLive("dma_map_sgtable");
  const nents = mapSg(dev, sgl, sgt.origNents, dir, attrs);
  if (nents < 0) {
    const errno = errnoName(nents) ?? "EIO";
    throw new KernelError(
      errno,
      `dma-mapping: ${dev.name}: dma_map_sgtable of ${sgt.origNents} entries (${sgTableBytes(sgt)} bytes) failed`,
    );
  }
  sgt.nents = nents;
  return 0;
}

function sgTableBytes(sgt: SgTable): number {
  let n = 0;
  for (const s of forEachSg(sgt.sgl, sgt.origNents)) n += sgLength(s);
  return n;
}

/**
 * `dma_unmap_sg_attrs(dev, sg, nents, dir, attrs)`: `nents` must be the count passed to the map,
 * not the count it returned. Emits `dma:dma_unmap_sg` and calls dma-debug before unmapping.
 * @see kernel/dma/mapping.c dma_unmap_sg_attrs
 */
export function dmaUnmapSgAttrs(dev: Device, sg: Sg, nents: number, dir: DmaDataDirection, attrs = 0): void {
  checkDmaDirection(dir, "dma_unmap_sg_attrs");
  const system = devDmaState(dev).system;
  const tracer = system.tracer;
  if (tracer?.enabled)
    tracer.emit(
      TRACE_DMA_UNMAP_SG,
      { device: dev.name, nents, addrs: physArray(sg, nents), dir, attrs },
      dev.name,
    );
  system.debug?.debugDmaUnmapSg(dev, sg, nents, dir);
  if (dmaMapDirect(dev)) dmaDirectUnmapSg(dev, sg, nents, dir, attrs);
  else iommuDmaUnmapSg(dev, sg, nents, dir, attrs);
  system.stats.unmappings++;
}

/** `dma_unmap_sgtable(dev, sgt, dir, attrs)`: {@link dmaUnmapSgAttrs} of `orig_nents`. @see include/linux/dma-mapping.h */
export function dmaUnmapSgtable(dev: Device, sgt: SgTable, dir: DmaDataDirection, attrs = 0): void {
  dmaUnmapSgAttrs(dev, sgt.checkLive("dma_unmap_sgtable"), sgt.origNents, dir, attrs);
}

/**
 * `dma_map_single(dev, ptr, size, dir)` = {@link dmaMapSingleAttrs} with attrs 0.
 * @see include/linux/dma-mapping.h dma_map_single
 */
export function dmaMapSingle(dev: Device, cpuAddr: number, size: number, dir: DmaDataDirection): number {
  return dmaMapSingleAttrs(dev, cpuAddr, size, dir, 0);
}

/** `dma_unmap_single(dev, addr, size, dir)`. @see include/linux/dma-mapping.h dma_unmap_single */
export function dmaUnmapSingle(dev: Device, addr: number, size: number, dir: DmaDataDirection): void {
  dmaUnmapSingleAttrs(dev, addr, size, dir, 0);
}

/**
 * `dma_map_page(dev, page, offset, size, dir)` = {@link dmaMapPageAttrs} with attrs 0.
 * @see include/linux/dma-mapping.h dma_map_page
 */
export function dmaMapPage(
  dev: Device,
  page: number,
  offset: number,
  size: number,
  dir: DmaDataDirection,
): number {
  return dmaMapPageAttrs(dev, page, offset, size, dir, 0);
}

/** `dma_unmap_page(dev, addr, size, dir)`. @see include/linux/dma-mapping.h dma_unmap_page */
export function dmaUnmapPage(dev: Device, addr: number, size: number, dir: DmaDataDirection): void {
  dmaUnmapPageAttrs(dev, addr, size, dir, 0);
}

/**
 * `dma_map_sg(dev, sg, nents, dir)` = {@link dmaMapSgAttrs} with attrs 0.
 * @see include/linux/dma-mapping.h dma_map_sg
 */
export function dmaMapSg(dev: Device, sg: Sg, nents: number, dir: DmaDataDirection): number {
  return dmaMapSgAttrs(dev, sg, nents, dir, 0);
}

/** `dma_unmap_sg(dev, sg, nents, dir)`. @see include/linux/dma-mapping.h dma_unmap_sg */
export function dmaUnmapSg(dev: Device, sg: Sg, nents: number, dir: DmaDataDirection): void {
  dmaUnmapSgAttrs(dev, sg, nents, dir, 0);
}
