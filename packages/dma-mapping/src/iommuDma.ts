import {
  type Device,
  DMA_MAPPING_ERROR,
  dmaGetMask,
  dmaGetMaxSegSize,
  dmaGetMinAlignMask,
  dmaGetSegBoundary,
  ERRNO,
  ffs,
  hex,
  isKernelError,
  KernelError,
  minNotZero,
  PCI_P2PDMA_MAP_BUS_ADDR,
  PCI_P2PDMA_MAP_NONE,
  PCI_P2PDMA_MAP_THRU_HOST_BRIDGE,
  U32_MAX,
  ULONG_MAX,
} from "@dmakit/core";
import {
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  type IommuDomain,
  IommuIotlbGather,
  IommuPagesList,
  type IommuSgSource,
  type IovaDomain,
  iommuIotlbSync,
  iommuIovaToPhys,
  iommuMap,
  iommuMapSg,
  iommuUnmapFast,
  iovaRcacheRange,
} from "@dmakit/iommu";
import { GFP_ATOMIC } from "@dmakit/mm-pages";
import {
  forEachSg,
  invalidateSg,
  SG_DMA_BUS_ADDRESS,
  type Sg,
  SgSlots,
  sgDmaIsBusAddress,
  sgDmaIsSwiotlb,
  sgDmaMarkSwiotlb,
  sgDmaSetAddress,
  sgDmaSetLen,
  sgDmaUnmarkBusAddress,
} from "@dmakit/scatterlist";
import { and64 } from "./and64.js";
import { archSyncDmaForCpu, archSyncDmaForDevice } from "./archSync.js";
import {
  DMA_ATTR_MMIO,
  DMA_ATTR_PRIVILEGED,
  DMA_ATTR_REQUIRE_COHERENT,
  DMA_ATTR_SKIP_CPU_SYNC,
} from "./dmaAttrs.js";
import { type DmaDeviceState, devDmaState } from "./dmaDevice.js";
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE, type DmaDataDirection } from "./dmaDirection.js";
import { IommuDmaCookie, iommuDmaCookie, iommuDmaCookieOf, iommuDmaInitDomain } from "./IommuDmaCookie.js";
import { bitsPer, devIsUntrusted, padToBoundary } from "./internal/iommuDmaUtil.js";
import { sgListEnded } from "./internal/sgListEnded.js";
import { PciP2pdmaMapState, pciP2pdmaBusAddrMap, pciP2pdmaStateIn } from "./p2pdma.js";
import {
  isSwiotlbActive,
  isSwiotlbBuffer,
  swiotlbMaxMappingSize,
  swiotlbSyncSingleForCpu,
  swiotlbSyncSingleForDevice,
  swiotlbTblMapSingle,
  swiotlbTblUnmapSingle,
} from "./swiotlb.js";

export { iommuDmaInitDomain };

/**
 * `dma_info_to_prot(dir, coherent, attrs)`: the IOMMU prot of a mapping: `IOMMU_READ` for
 * TO_DEVICE, `IOMMU_WRITE` for FROM_DEVICE, both for BIDIRECTIONAL (0 for anything else), plus
 * `IOMMU_CACHE` for a coherent device, `IOMMU_PRIV` for `DMA_ATTR_PRIVILEGED` and `IOMMU_MMIO`
 * for `DMA_ATTR_MMIO`.
 * @see drivers/iommu/dma-iommu.c dma_info_to_prot
 */
export function dmaInfoToProt(dir: number, coherent: boolean, attrs: number): number {
  let prot = coherent ? IOMMU_CACHE : 0;
  if (attrs & DMA_ATTR_PRIVILEGED) prot |= IOMMU_PRIV;
  if (attrs & DMA_ATTR_MMIO) prot |= IOMMU_MMIO;
  switch (dir) {
    case DMA_BIDIRECTIONAL:
      return prot | IOMMU_READ | IOMMU_WRITE;
    case DMA_TO_DEVICE:
      return prot | IOMMU_READ;
    case DMA_FROM_DEVICE:
      return prot | IOMMU_WRITE;
    default:
      return 0;
  }
}

/**
 * `dev_use_swiotlb(dev, size, dir)`: untrusted devices bounce sub-granule buffers so they never
 * see the rest of a page. Model difference: `dma_kmalloc_needs_bounce` (non-coherent arm64 with
 * small kmalloc buffers) is not part of the decision.
 */
function devUseSwiotlb(dev: Device): boolean {
  return devIsUntrusted(dev);
}

/** @internal The cookie of a domain, initialising it for `dev` on first use. */
export function domainCookie(domain: IommuDomain, dev: Device): IommuDmaCookie {
  const c = domain.iovaCookie;
  return c instanceof IommuDmaCookie ? c : iommuDmaInitDomain(domain, dev);
}

// ---------------------------------------------------------------------------------------------
// IOVA allocation

/**
 * `iommu_dma_alloc_iova(domain, size, dma_limit, dev)`: allocates `size` bytes (a multiple of the
 * IOVA granule) of IOVA space below `min_not_zero(dmaLimit, dev.busDmaLimit)`, clipped to the
 * aperture when the domain forces it. While the device has the PCI 32-bit workaround flag
 * (`devDmaState(dev).pci32bitWorkaround`, set for PCI devices by `dmaConfigure`), a limit above
 * 4 GiB first tries below 4 GiB without flushing the rcaches; if that fails the flag is cleared for
 * good and `"Using %d-bit DMA addresses"` noticed, then the full range is tried with the rcache
 * flush-and-retry. Returns the IOVA, or 0 when the space is exhausted (the kernel's contract).
 *
 * Model differences: `iommu.forcedac=1` is not modelled; IOVAs stay below 2^53 (the limit is
 * clamped to `Number.MAX_SAFE_INTEGER`).
 * @see drivers/iommu/dma-iommu.c iommu_dma_alloc_iova
 */
export function iommuDmaAllocIova(domain: IommuDomain, size: number, dmaLimit: number, dev: Device): number {
  const cookie = domainCookie(domain, dev);
  return allocIova(cookie.iovad, devDmaState(dev), domain, size, dmaLimit, dev);
}

/** {@link iommuDmaAllocIova} with the cookie's allocator and the device's DMA state at hand. */
function allocIova(
  iovad: IovaDomain,
  st: DmaDeviceState,
  domain: IommuDomain,
  size: number,
  dmaLimit: number,
  dev: Device,
): number {
  const granule = iovad.granule;
  const iovaLen = Math.floor(size / granule);
  dmaLimit = minNotZero(dmaLimit, dev.busDmaLimit);
  if (domain.geometry.forceAperture) dmaLimit = Math.min(dmaLimit, domain.geometry.apertureEnd);
  if (dmaLimit > U32_MAX && st.pci32bitWorkaround) {
    const pfn = iovad.allocIovaFast(iovaLen, Math.floor(U32_MAX / granule), false);
    if (pfn !== 0) return pfn * granule;
    st.pci32bitWorkaround = false;
    dev.log.notice(dev.name, `Using ${bitsPer(dmaLimit)}-bit DMA addresses`);
  }
  const limitPfn = Math.floor(Math.min(dmaLimit, Number.MAX_SAFE_INTEGER) / granule);
  return iovad.allocIovaFast(iovaLen, limitPfn, true) * granule;
}

/**
 * `iommu_dma_free_iova(domain, iova, size, gather)`: gives the IOVA range back — through the flush
 * queue when `gather.queued` (lazy invalidation; the gather's page-table freelist goes with it and
 * the gather gets an empty one), else at once to the rcaches (`free_iova_fast`).
 * @see drivers/iommu/dma-iommu.c iommu_dma_free_iova
 */
export function iommuDmaFreeIova(
  domain: IommuDomain,
  iova: number,
  size: number,
  gather: IommuIotlbGather | null,
): void {
  const cookie = domain.iovaCookie;
  if (!(cookie instanceof IommuDmaCookie))
    throw new KernelError(
      "EINVAL",
      `iommu-dma: free_iova ${hex(iova)}: domain ${domain.name} has no IOVA cookie`,
    );
  const iovad = cookie.iovad;
  const pfn = iovad.iovaPfn(iova);
  const pages = Math.floor(size / iovad.granule);
  if (gather?.queued === true && cookie.fq !== null) {
    const fl = cookie.queueFreelist(gather.freelist);
    if (fl !== null) gather.freelist = new IommuPagesList();
    cookie.fq.queueIova(pfn, pages, fl);
  } else {
    iovad.freeIovaFast(pfn, pages);
  }
}

// ---------------------------------------------------------------------------------------------
// single mappings

/**
 * `iommu_dma_map_swiotlb(dev, phys, size, dir, attrs)`: bounces a buffer an untrusted device must
 * not see the rest of, into a swiotlb slot aligned to the IOVA granule (`alloc_align_mask =
 * granule - 1`), and zeroes the slot's pre- and post-padding up to granule boundaries so the
 * device cannot read leftover kernel data. Returns the bounce buffer's physical address, or
 * DMA_MAPPING_ERROR (with "DMA bounce buffers are inactive, unable to map unaligned transaction."
 * once, when the machine has no swiotlb). Internal: shared with the two-step IOVA API.
 * @see drivers/iommu/dma-iommu.c iommu_dma_map_swiotlb
 */
export function iommuDmaMapSwiotlb(
  dev: Device,
  cookie: IommuDmaCookie,
  phys: number,
  size: number,
  dir: DmaDataDirection,
  attrs: number,
): number {
  const iovad = cookie.iovad;
  if (!isSwiotlbActive(dev)) {
    dev.log.warnOnce(
      true,
      `iommu-dma:swiotlb-inactive:${dev.name}`,
      dev.name,
      "DMA bounce buffers are inactive, unable to map unaligned transaction.",
    );
    return DMA_MAPPING_ERROR;
  }
  const tlb = swiotlbTblMapSingle(dev, phys, size, iovad.iovaMask(), dir, attrs);
  if (tlb !== DMA_MAPPING_ERROR && devIsUntrusted(dev)) {
    const cache = cookie.system.cache;
    const pre = iovad.iovaAlignDown(tlb);
    if (tlb > pre) cache.cpuFill(pre, tlb - pre, 0);
    const end = tlb + size;
    const post = iovad.iovaAlign(end);
    if (post > end) cache.cpuFill(end, post - end, 0);
  }
  return tlb;
}

/**
 * `__iommu_dma_map(dev, phys, size, prot, dma_mask)`: allocates IOVA for the granules covering
 * `[phys, phys+size)` and maps them with `iommu_map` (which syncs the new mapping). Returns the
 * IOVA plus `phys`'s offset in its granule, or DMA_MAPPING_ERROR when the device's
 * `min_align_mask` exceeds the granule mask (dev_WARN_ONCE "Unsupported alignment constraint"),
 * the IOVA space is exhausted or the IOMMU driver fails (the IOVA is then freed again).
 * For iommu-dma's own coherent allocator (engineer C's iommuDmaAlloc.ts) as well.
 * @see drivers/iommu/dma-iommu.c __iommu_dma_map
 */
export function __iommuDmaMap(
  dev: Device,
  phys: number,
  size: number,
  prot: number,
  dmaMask: number,
): number {
  const st = devDmaState(dev);
  return iommuDmaMapIn(st, iommuDmaCookieOf(st, dev), dev, phys, size, prot, dmaMask);
}

/** {@link __iommuDmaMap} with the device's DMA state and cookie already looked up. */
function iommuDmaMapIn(
  st: DmaDeviceState,
  cookie: IommuDmaCookie,
  dev: Device,
  phys: number,
  size: number,
  prot: number,
  dmaMask: number,
): number {
  const domain = cookie.domain;
  const iovad = cookie.iovad;
  const iovaOff = iovad.iovaOffset(phys);
  if (
    dmaGetMinAlignMask(dev) > iovad.iovaMask() &&
    dev.log.warnOnce(true, `iommu-dma:min-align:${dev.name}`, dev.name, "Unsupported alignment constraint")
  )
    return DMA_MAPPING_ERROR;
  size = iovad.iovaAlign(size + iovaOff);
  const iova = allocIova(iovad, st, domain, size, dmaMask, dev);
  if (iova === 0) return DMA_MAPPING_ERROR;
  try {
    iommuMap(domain, iova, phys - iovaOff, size, prot, GFP_ATOMIC);
  } catch (e) {
    if (!isKernelError(e)) throw e;
    iommuDmaFreeIova(domain, iova, size, null);
    return DMA_MAPPING_ERROR;
  }
  return iova + iovaOff;
}

/**
 * `__iommu_dma_unmap(dev, dma_addr, size)`: unmaps the granules covering `[dmaAddr, dmaAddr+size)`
 * with `iommu_unmap_fast`; WARNs unless exactly that many bytes were mapped. A strict domain syncs
 * the IOTLB at once and frees the IOVA; a DMA_FQ domain queues the IOVA (and the freed page-table
 * pages) on the flush queue, so the device may still reach the memory through stale IOTLB entries
 * until the queue's flush (ring full, or the 10 ms timer on the machine's clock).
 * @see drivers/iommu/dma-iommu.c __iommu_dma_unmap
 */
export function __iommuDmaUnmap(dev: Device, dmaAddr: number, size: number): void {
  iommuDmaUnmapIn(iommuDmaCookie(dev), dev, dmaAddr, size);
}

/** {@link __iommuDmaUnmap} with the cookie already looked up. */
function iommuDmaUnmapIn(cookie: IommuDmaCookie, dev: Device, dmaAddr: number, size: number): void {
  const domain = cookie.domain;
  const iovad = cookie.iovad;
  const iovaOff = iovad.iovaOffset(dmaAddr);
  dmaAddr -= iovaOff;
  size = iovad.iovaAlign(size + iovaOff);
  const gather = new IommuIotlbGather();
  gather.queued = cookie.fqDomain;
  const unmapped = iommuUnmapFast(domain, dmaAddr, size, gather);
  if (unmapped !== size)
    cookie.system.log.warn(
      true,
      "iommu-dma",
      `WARN: __iommu_dma_unmap: ${dev.name}: unmapped ${hex(unmapped)} of ${hex(size)} bytes at ${hex(dmaAddr)}`,
    );
  if (!gather.queued) iommuIotlbSync(domain, gather);
  iommuDmaFreeIova(domain, dmaAddr, size, gather);
}

/**
 * `iommu_dma_map_phys(dev, phys, size, dir, attrs)` (6.18): the iommu-dma `map_phys`. An untrusted
 * device's buffer whose start or size is not granule-aligned is first bounced through swiotlb
 * (not for `DMA_ATTR_MMIO`/`DMA_ATTR_REQUIRE_COHERENT`: DMA_MAPPING_ERROR); a non-coherent device
 * gets `arch_sync_dma_for_device` unless `DMA_ATTR_SKIP_CPU_SYNC`/`DMA_ATTR_MMIO`; then
 * {@link __iommuDmaMap} with `dma_get_mask(dev)`. Returns the DMA address (IOVA + offset in the
 * granule) or DMA_MAPPING_ERROR (a bounce slot taken is released again).
 * `DMA_ATTR_REQUIRE_COHERENT` on a non-coherent device is DMA_MAPPING_ERROR (recent kernels).
 * The direction is not checked here (the dispatcher's BUG_ON does).
 * @see drivers/iommu/dma-iommu.c iommu_dma_map_phys
 */
export function iommuDmaMapPhys(
  dev: Device,
  phys: number,
  size: number,
  dir: DmaDataDirection,
  attrs: number,
): number {
  const coherent = dev.dmaCoherent;
  const prot = dmaInfoToProt(dir, coherent, attrs);
  const st = devDmaState(dev);
  const cookie = iommuDmaCookieOf(st, dev);
  const iovad = cookie.iovad;
  if (attrs & DMA_ATTR_REQUIRE_COHERENT && !coherent) return DMA_MAPPING_ERROR;
  if (devUseSwiotlb(dev) && iovad.iovaOffset(phys) + iovad.iovaOffset(size) !== 0) {
    if (attrs & (DMA_ATTR_MMIO | DMA_ATTR_REQUIRE_COHERENT)) return DMA_MAPPING_ERROR;
    phys = iommuDmaMapSwiotlb(dev, cookie, phys, size, dir, attrs);
    if (phys === DMA_MAPPING_ERROR) return DMA_MAPPING_ERROR;
  }
  if (!coherent && !(attrs & (DMA_ATTR_SKIP_CPU_SYNC | DMA_ATTR_MMIO)))
    archSyncDmaForDevice(dev, phys, size, dir);
  const iova = iommuDmaMapIn(st, cookie, dev, phys, size, prot, dmaGetMask(dev));
  if (iova === DMA_MAPPING_ERROR && !(attrs & DMA_ATTR_MMIO) && isSwiotlbBuffer(dev, phys))
    swiotlbTblUnmapSingle(dev, phys, size, dir, attrs);
  return iova;
}

/**
 * `iommu_dma_unmap_phys(dev, dma_handle, size, dir, attrs)`: for `DMA_ATTR_MMIO` only
 * {@link __iommuDmaUnmap}; otherwise looks up the physical address (WARN and nothing more when the
 * handle is not mapped), `arch_sync_dma_for_cpu` for a non-coherent device unless
 * `DMA_ATTR_SKIP_CPU_SYNC`, unmaps, and releases a swiotlb bounce slot (copying back per `dir`).
 * @see drivers/iommu/dma-iommu.c iommu_dma_unmap_phys
 */
export function iommuDmaUnmapPhys(
  dev: Device,
  handle: number,
  size: number,
  dir: DmaDataDirection,
  attrs: number,
): void {
  if (attrs & DMA_ATTR_MMIO) {
    __iommuDmaUnmap(dev, handle, size);
    return;
  }
  const cookie = iommuDmaCookie(dev);
  const phys = iommuIovaToPhys(cookie.domain, handle);
  if (
    phys === 0 &&
    cookie.system.log.warn(
      true,
      "iommu-dma",
      `WARN: iommu_dma_unmap_phys: ${dev.name}: DMA address ${hex(handle)} is not mapped`,
    )
  )
    return;
  if (!(attrs & DMA_ATTR_SKIP_CPU_SYNC) && !dev.dmaCoherent) archSyncDmaForCpu(dev, phys, size, dir);
  iommuDmaUnmapIn(cookie, dev, handle, size);
  if (isSwiotlbBuffer(dev, phys)) swiotlbTblUnmapSingle(dev, phys, size, dir, attrs);
}

/**
 * `iommu_dma_sync_single_for_cpu(dev, dma_handle, size, dir)`: nothing for a coherent device that
 * never bounces; else finds the physical address through the domain, `arch_sync_dma_for_cpu` if
 * non-coherent, then copies a swiotlb bounce buffer back to the original.
 * @see drivers/iommu/dma-iommu.c iommu_dma_sync_single_for_cpu
 */
export function iommuDmaSyncSingleForCpu(
  dev: Device,
  handle: number,
  size: number,
  dir: DmaDataDirection,
): void {
  const coherent = dev.dmaCoherent;
  if (coherent && !devUseSwiotlb(dev)) return;
  const phys = iommuIovaToPhys(iommuDmaCookie(dev).domain, handle);
  if (!coherent) archSyncDmaForCpu(dev, phys, size, dir);
  if (isSwiotlbBuffer(dev, phys)) swiotlbSyncSingleForCpu(dev, phys, size, dir);
}

/**
 * `iommu_dma_sync_single_for_device(dev, dma_handle, size, dir)`: the mirror of
 * {@link iommuDmaSyncSingleForCpu}: copies the original into a swiotlb bounce buffer first, then
 * `arch_sync_dma_for_device` if non-coherent.
 * @see drivers/iommu/dma-iommu.c iommu_dma_sync_single_for_device
 */
export function iommuDmaSyncSingleForDevice(
  dev: Device,
  handle: number,
  size: number,
  dir: DmaDataDirection,
): void {
  const coherent = dev.dmaCoherent;
  if (coherent && !devUseSwiotlb(dev)) return;
  const phys = iommuIovaToPhys(iommuDmaCookie(dev).domain, handle);
  if (isSwiotlbBuffer(dev, phys)) swiotlbSyncSingleForDevice(dev, phys, size, dir);
  if (!coherent) archSyncDmaForDevice(dev, phys, size, dir);
}

/**
 * `iommu_dma_sync_sg_for_cpu(dev, sgl, nelems, dir)`: a list mapped through swiotlb
 * (`sg_dma_is_swiotlb` on the first entry) syncs entry by entry at its DMA address; otherwise a
 * non-coherent device gets `arch_sync_dma_for_cpu` on each entry's CPU range.
 * @see drivers/iommu/dma-iommu.c iommu_dma_sync_sg_for_cpu
 */
export function iommuDmaSyncSgForCpu(dev: Device, sgl: Sg, nelems: number, dir: DmaDataDirection): void {
  const bounced = sgDmaIsSwiotlb(sgl);
  if (!bounced && dev.dmaCoherent) return;
  const sl = new SgSlots();
  let s = nelems > 0 ? sl.first(sgl, "for_each_sg") : -1;
  for (let k = 0; k < nelems; k++) {
    if (s < 0) sgListEnded(k, nelems);
    if (bounced) iommuDmaSyncSingleForCpu(dev, sl.dmaAddress(s), sl.length(s), dir);
    else archSyncDmaForCpu(dev, sl.phys(s), sl.length(s), dir);
    if (k + 1 < nelems) s = sl.next(s);
  }
}

/**
 * `iommu_dma_sync_sg_for_device(dev, sgl, nelems, dir)`: the mirror of {@link iommuDmaSyncSgForCpu}.
 * @see drivers/iommu/dma-iommu.c iommu_dma_sync_sg_for_device
 */
export function iommuDmaSyncSgForDevice(dev: Device, sgl: Sg, nelems: number, dir: DmaDataDirection): void {
  const bounced = sgDmaIsSwiotlb(sgl);
  if (!bounced && dev.dmaCoherent) return;
  const sl = new SgSlots();
  let s = nelems > 0 ? sl.first(sgl, "for_each_sg") : -1;
  for (let k = 0; k < nelems; k++) {
    if (s < 0) sgListEnded(k, nelems);
    if (bounced) iommuDmaSyncSingleForDevice(dev, sl.dmaAddress(s), sl.length(s), dir);
    else archSyncDmaForDevice(dev, sl.phys(s), sl.length(s), dir);
    if (k + 1 < nelems) s = sl.next(s);
  }
}

// ---------------------------------------------------------------------------------------------
// scatterlists

/** `iommu_map_sg`'s view of the laid-out list: granule-aligned CPU ranges in typed arrays. */
class LaidOutSg implements IommuSgSource {
  readonly phys: (i: number) => number;
  readonly length: (i: number) => number;
  readonly isBusAddress: (i: number) => boolean;
  constructor(
    readonly nents: number,
    readonly segPhys: Float64Array,
    readonly segLen: Float64Array,
    readonly bus: Uint8Array,
  ) {
    this.phys = (i) => segPhys[i] as number;
    this.length = (i) => segLen[i] as number;
    this.isBusAddress = (i) => bus[i] === 1;
  }
}

/**
 * `__finalise_sg(dev, sg, nents, dma_addr)`: restores each entry's offset and length from the DMA
 * fields where the layout stashed them, and writes the DMA segments: an entry joins the previous
 * output segment when there is one, it starts on a granule boundary (offset 0 in its granule), its
 * IOVA is not on a segment boundary (`dma_addr & seg_mask`), and the joined length stays within
 * `max_segment_size`; a previous entry that did not run to the end of its granules ends the
 * segment. Bus-address (P2P) entries become segments of their own. Returns the segment count.
 * @see drivers/iommu/dma-iommu.c __finalise_sg
 */
function finaliseSg(dev: Device, sgl: Sg, nents: number, dmaAddr: number): number {
  const segMask = dmaGetSegBoundary(dev);
  const maxLen = dmaGetMaxSegSize(dev);
  let curLen = 0;
  let count = 0;
  if (nents <= 0) return 0;
  // for_each_sg by slot index (no handle per entry); `cur` trails `s` on the same list.
  const sl = new SgSlots();
  let s = sl.first(sgl, "for_each_sg");
  let cur = s;
  for (let i = 0; i < nents; i++) {
    if (s < 0) sgListEnded(i, nents);
    const sDmaAddr = sl.dmaAddress(s);
    // The kernel reads the stashed offset into an `unsigned int s_iova_off`: keep its 32-bit truncation.
    const sIovaOff = sDmaAddr < TWO32 ? sDmaAddr : sDmaAddr % TWO32;
    const sLength = sl.dmaLen(s);
    const sIovaLen = sl.length(s);
    sl.setDmaAddress(s, DMA_MAPPING_ERROR);
    sl.setDmaLen(s, 0);
    const flags = sl.dmaFlags(s);
    if ((flags & SG_DMA_BUS_ADDRESS) !== 0) {
      if (i > 0) cur = nextOut(sl, cur);
      sl.setDmaFlags(s, flags & ~SG_DMA_BUS_ADDRESS);
      sl.setDmaAddress(cur, sDmaAddr);
      sl.setDmaLen(cur, sLength);
      sl.setDmaFlags(cur, sl.dmaFlags(cur) | SG_DMA_BUS_ADDRESS);
      count++;
      curLen = 0;
    } else {
      sl.setOffset(s, sl.offset(s) + sIovaOff);
      sl.setLength(s, sLength);
      if (curLen !== 0 && sIovaOff === 0 && and64(dmaAddr, segMask) !== 0 && maxLen - curLen >= sLength) {
        curLen += sLength;
      } else {
        if (i > 0) cur = nextOut(sl, cur);
        curLen = sLength;
        count++;
        sl.setDmaAddress(cur, dmaAddr + sIovaOff);
      }
      sl.setDmaLen(cur, curLen);
      dmaAddr += sIovaLen;
      if (sLength + sIovaOff < sIovaLen) curLen = 0;
    }
    if (i + 1 < nents) s = sl.next(s);
  }
  return count;
}

const TWO32 = 4294967296;

/** `sg_next(cur)` for an output entry; a NULL result fails as the next access through it would. */
function nextOut(sl: SgSlots, cur: number): number {
  const n = sl.next(cur);
  if (n < 0) throw new KernelError("EFAULT", "scatterlist: sg_dma_address: NULL scatterlist pointer");
  return n;
}

/**
 * `__invalidate_sg(sg, nents)` (6.16 form): bus-address entries are unmarked; the others get their
 * stashed offset and length back; all DMA fields become DMA_MAPPING_ERROR / 0.
 * @see drivers/iommu/dma-iommu.c __invalidate_sg
 */
function invalidateSgP2p(sgl: Sg, nents: number): void {
  for (const s of forEachSg(sgl, nents)) {
    if (sgDmaIsBusAddress(s)) {
      sgDmaUnmarkBusAddress(s);
      sgDmaSetAddress(s, DMA_MAPPING_ERROR);
      sgDmaSetLen(s, 0);
    }
  }
  invalidateSg(sgl, nents);
}

/** `iommu_dma_unmap_sg_swiotlb`: unmaps entry by entry. */
function iommuDmaUnmapSgSwiotlb(
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
    iommuDmaUnmapPhys(dev, sl.dmaAddress(s), sl.dmaLen(s), dir, attrs);
    if (k + 1 < nents) s = sl.next(s);
  }
}

/**
 * `iommu_dma_map_sg_swiotlb`: marks the list `SG_DMA_SWIOTLB` and maps each entry on its own with
 * {@link iommuDmaMapPhys} (bouncing what is unaligned); on a failure unmaps what was mapped and
 * returns `-EIO`. Returns `nents` (no merging).
 */
function iommuDmaMapSgSwiotlb(
  dev: Device,
  sgl: Sg,
  nents: number,
  dir: DmaDataDirection,
  attrs: number,
): number {
  sgDmaMarkSwiotlb(sgl);
  const sl = new SgSlots();
  let s = nents > 0 ? sl.first(sgl, "for_each_sg") : -1;
  for (let k = 0; k < nents; k++) {
    if (s < 0) sgListEnded(k, nents);
    const len = sl.length(s);
    const addr = iommuDmaMapPhys(dev, sl.phys(s), len, dir, attrs);
    sl.setDmaAddress(s, addr);
    if (addr === DMA_MAPPING_ERROR) {
      iommuDmaUnmapSgSwiotlb(dev, sgl, k, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC);
      return -ERRNO.EIO;
    }
    sl.setDmaLen(s, len);
    if (k + 1 < nents) s = sl.next(s);
  }
  return nents;
}

/**
 * The first loop of `iommu_dma_map_sg`: stashes each segment's offset in its DMA fields, pads it
 * to the IOVA granule (and to the segment boundary), records the physical runs to map, and marks
 * P2P bus-address segments. Returns the IOVA length to allocate, or -EREMOTEIO for an unreachable
 * P2P segment. A function of its own so that the JIT's on-stack replacement of this long loop does
 * not take the caller's cold tail with it (which deoptimised on every large map).
 */
function layOutSg(
  dev: Device,
  cookie: IommuDmaCookie,
  sgl: Sg,
  nents: number,
  segPhys: Float64Array,
  segLen: Float64Array,
  bus: Uint8Array,
): number {
  const { iovad, system } = cookie;
  const mask = dmaGetSegBoundary(dev);
  const phys = system.phys;
  const p2p = new PciP2pdmaMapState();
  const granule = iovad.granule;
  let iovaLen = 0;
  let prev = -1;
  let prevIdx = -1;
  // for_each_sg by slot index (no handle per entry): same entries, same checks, same errors.
  const sl = new SgSlots();
  let s = nents > 0 ? sl.first(sgl, "for_each_sg") : -1;
  for (let i = 0; i < nents; i++) {
    if (s < 0) sgListEnded(i, nents);
    const off = sl.offset(s);
    const sIovaOff = iovad.iovaOffset(off);
    let sLength = sl.length(s);
    const padLen = padToBoundary(iovaLen, mask);
    const map = pciP2pdmaStateIn(phys, system, p2p, dev, sl.page(s));
    if (map === PCI_P2PDMA_MAP_BUS_ADDR) {
      const p = sl.phys(s);
      sl.setDmaAddress(s, pciP2pdmaBusAddrMap(p2p, p));
      sl.setDmaLen(s, sLength);
      sl.setDmaFlags(s, sl.dmaFlags(s) | SG_DMA_BUS_ADDRESS);
      segPhys[i] = p;
      segLen[i] = sLength;
      bus[i] = 1;
    } else {
      if (map !== PCI_P2PDMA_MAP_NONE && map !== PCI_P2PDMA_MAP_THRU_HOST_BRIDGE) {
        return -ERRNO.EREMOTEIO;
      }
      sl.setDmaAddress(s, sIovaOff);
      sl.setDmaLen(s, sLength);
      sl.setOffset(s, off - sIovaOff);
      // iova_align(iovad, s_length + s_iova_off), inlined: the cookie helper would be called per entry.
      sLength = Math.ceil((sLength + sIovaOff) / granule) * granule;
      sl.setLength(s, sLength);
      if (padLen !== 0 && padLen < sLength - 1 && prev >= 0) {
        sl.setLength(prev, sl.length(prev) + padLen);
        segLen[prevIdx] = (segLen[prevIdx] as number) + padLen;
        iovaLen += padLen;
      }
      iovaLen += sLength;
      segPhys[i] = sl.phys(s);
      segLen[i] = sLength;
      prev = s;
      prevIdx = i;
    }
    if (i + 1 < nents) s = sl.next(s);
  }
  return iovaLen;
}

/**
 * `iommu_dma_map_sg(dev, sg, nents, dir, attrs)`: maps a whole scatterlist into ONE contiguous IOVA
 * range. Each entry is widened to whole granules (its offset in the granule and its length are
 * stashed in the DMA fields meanwhile), with padding inserted before an entry that would cross the
 * device's segment boundary; one IOVA allocation of the total, one `iommu_map_sg`, then
 * `__finalise_sg` writes the DMA segments, merging entries that meet on granule boundaries — so
 * the count returned can be less than `nents`.
 *
 * P2PDMA: entries of P2P memory reached through a switch (`PCI_P2PDMA_MAP_BUS_ADDR`) get the PCI
 * bus address, are marked and skipped by `iommu_map_sg`; through an allowlisted host bridge they
 * map like RAM; otherwise `-EREMOTEIO`. Untrusted devices take the per-entry swiotlb path.
 *
 * Returns the DMA segment count, or a NEGATIVE errno (the caller's dispatcher turns it into the
 * public contract): `-ENOMEM` (IOVA space), `-EREMOTEIO` (P2P unreachable), `-EIO` (swiotlb path),
 * `-EINVAL` for every other failure; the list is restored (`__invalidate_sg`).
 * @see drivers/iommu/dma-iommu.c iommu_dma_map_sg
 */
export function iommuDmaMapSg(
  dev: Device,
  sgl: Sg,
  nents: number,
  dir: DmaDataDirection,
  attrs: number,
): number {
  const cookie = iommuDmaCookie(dev);
  const { domain } = cookie;
  if (devUseSwiotlb(dev)) return iommuDmaMapSgSwiotlb(dev, sgl, nents, dir, attrs);
  const prot = dmaInfoToProt(dir, dev.dmaCoherent, attrs);
  if (!(attrs & DMA_ATTR_SKIP_CPU_SYNC)) iommuDmaSyncSgForDevice(dev, sgl, nents, dir);
  const segPhys = new Float64Array(nents);
  const segLen = new Float64Array(nents);
  const bus = new Uint8Array(nents);
  const laid = layOutSg(dev, cookie, sgl, nents, segPhys, segLen, bus);
  // layOutSg returns the IOVA length, or a negative errno.
  let ret = Math.min(laid, 0);
  const iovaLen = Math.max(laid, 0);
  if (ret === 0) {
    if (iovaLen === 0) return finaliseSg(dev, sgl, nents, 0);
    const iova = iommuDmaAllocIova(domain, iovaLen, dmaGetMask(dev), dev);
    if (iova === 0) {
      ret = -ERRNO.ENOMEM;
    } else {
      const mapped = iommuMapSg(domain, iova, new LaidOutSg(nents, segPhys, segLen, bus), prot, GFP_ATOMIC);
      if (mapped >= iovaLen) return finaliseSg(dev, sgl, nents, iova);
      ret = mapped < 0 ? mapped : -ERRNO.EINVAL;
      iommuDmaFreeIova(domain, iova, iovaLen, null);
    }
  }
  invalidateSgP2p(sgl, nents);
  return ret === -ERRNO.ENOMEM || ret === -ERRNO.EREMOTEIO ? ret : -ERRNO.EINVAL;
}

/**
 * `iommu_dma_unmap_sg(dev, sg, nents, dir, attrs)` with the ORIGINAL `nents`: a swiotlb-mapped list
 * unmaps entry by entry; otherwise syncs for the CPU (unless `DMA_ATTR_SKIP_CPU_SYNC`), finds the
 * IOVA range from the first to the last DMA segment (bus-address segments are only unmarked; a
 * zero `dma_length` ends the list) and unmaps it in one `__iommu_dma_unmap`.
 * @see drivers/iommu/dma-iommu.c iommu_dma_unmap_sg
 */
export function iommuDmaUnmapSg(
  dev: Device,
  sgl: Sg,
  nents: number,
  dir: DmaDataDirection,
  attrs: number,
): void {
  if (sgDmaIsSwiotlb(sgl)) {
    iommuDmaUnmapSgSwiotlb(dev, sgl, nents, dir, attrs);
    return;
  }
  if (!(attrs & DMA_ATTR_SKIP_CPU_SYNC)) iommuDmaSyncSgForCpu(dev, sgl, nents, dir);
  let start = 0;
  let end = 0;
  let first = -1;
  let i = 0;
  // for_each_sg by slot index (no handle per entry).
  const sl = new SgSlots();
  let t = nents > 0 ? sl.first(sgl, "for_each_sg") : -1;
  for (let k = 0; k < nents; k++) {
    if (t < 0) sgListEnded(k, nents);
    const flags = sl.dmaFlags(t);
    if ((flags & SG_DMA_BUS_ADDRESS) !== 0) {
      sl.setDmaFlags(t, flags & ~SG_DMA_BUS_ADDRESS);
      i++;
      if (k + 1 < nents) t = sl.next(t);
      continue;
    }
    if (sl.dmaLen(t) !== 0) {
      start = sl.dmaAddress(t);
      first = t;
    }
    break;
  }
  if (first >= 0) {
    const rest = nents - i;
    t = first;
    for (let k = 0; k < rest; k++) {
      if (t < 0) sgListEnded(k, rest);
      const flags = sl.dmaFlags(t);
      if ((flags & SG_DMA_BUS_ADDRESS) !== 0) {
        sl.setDmaFlags(t, flags & ~SG_DMA_BUS_ADDRESS);
      } else {
        const len = sl.dmaLen(t);
        if (len === 0) break;
        end = sl.dmaAddress(t) + len;
      }
      if (k + 1 < rest) t = sl.next(t);
    }
  }
  if (end !== 0) __iommuDmaUnmap(dev, start, end - start);
}

// ---------------------------------------------------------------------------------------------
// limits

/**
 * `iommu_dma_max_mapping_size(dev)`: the swiotlb limit for untrusted devices (they may bounce),
 * else `SIZE_MAX` ({@link ULONG_MAX}).
 * @see drivers/iommu/dma-iommu.c iommu_dma_max_mapping_size
 */
export function iommuDmaMaxMappingSize(dev: Device): number {
  return devIsUntrusted(dev) ? swiotlbMaxMappingSize(dev) : ULONG_MAX;
}

/**
 * `iommu_dma_opt_mapping_size()`: `iova_rcache_range()`, the largest IOVA size the per-CPU caches
 * serve (128 KiB): bigger mappings go to the rbtree and are slower.
 * @see drivers/iommu/dma-iommu.c iommu_dma_opt_mapping_size
 */
export function iommuDmaOptMappingSize(): number {
  return iovaRcacheRange();
}

/**
 * `iommu_dma_get_merge_boundary(dev)`: the smallest IOMMU page size minus one: segments meeting on
 * such a boundary can be merged into one DMA segment. 0 when the device has no DMA domain.
 * @see drivers/iommu/dma-iommu.c iommu_dma_get_merge_boundary
 */
export function iommuDmaGetMergeBoundary(dev: Device): number {
  const domain = devDmaState(dev).domain;
  if (domain === null || domain.pgsizeBitmap === 0) return 0;
  return 2 ** ffs(domain.pgsizeBitmap) - 1;
}
