import { type Device, DMA_MAPPING_ERROR, dmaGetMask, hex, KernelError } from "@dmakit/core";
import {
  IommuIotlbGather,
  iommuIotlbSync,
  iommuIovaToPhys,
  iommuMapNosync,
  iommuSyncMap,
  iommuUnmapFast,
} from "@dmakit/iommu";
import { GFP_ATOMIC } from "@dmakit/mm-pages";
import { archSyncDmaForCpu, archSyncDmaForDevice } from "./archSync.js";
import { DMA_ATTR_MMIO, DMA_ATTR_REQUIRE_COHERENT, DMA_ATTR_SKIP_CPU_SYNC } from "./dmaAttrs.js";
import { devDmaState } from "./dmaDevice.js";
import type { DmaDataDirection } from "./dmaDirection.js";
import type { IommuDmaCookie } from "./IommuDmaCookie.js";
import { iommuDmaCookie } from "./IommuDmaCookie.js";
import { devIsUntrusted } from "./internal/iommuDmaUtil.js";
import { dmaInfoToProt, iommuDmaAllocIova, iommuDmaFreeIova, iommuDmaMapSwiotlb } from "./iommuDma.js";
import { isSwiotlbBuffer, swiotlbTblUnmapSingle } from "./swiotlb.js";

/**
 * `DMA_IOVA_USE_SWIOTLB` (`1ULL << 63`): the kernel's flag inside `dma_iova_state.__size`. A JS
 * number cannot carry bit 63 beside a size, so the model keeps the flag in
 * {@link DmaIovaState.useSwiotlb}; this constant (2^63) is what {@link dmaIovaTryAlloc} refuses as
 * a size ("size with bit 63", WARN).
 * @see include/linux/dma-mapping.h DMA_IOVA_USE_SWIOTLB
 */
export const DMA_IOVA_USE_SWIOTLB = 2 ** 63;

/**
 * `struct dma_iova_state` (6.16): one IOVA range allocated up front by {@link dmaIovaTryAlloc},
 * into which a caller links physical ranges at offsets of its choice. `addr` is the IOVA of
 * offset 0 (plus the sub-granule offset of the `phys` given at allocation), `__size` the size
 * asked for; the kernel's `DMA_IOVA_USE_SWIOTLB` bit of `__size` is {@link useSwiotlb} here.
 * Create one with `new DmaIovaState()` (zeroed, as on the kernel stack after `dma_iova_try_alloc`).
 * @see include/linux/dma-mapping.h struct dma_iova_state
 */
export class DmaIovaState {
  /** `addr`. */
  addr = 0;
  /** `__size` without the flag bit; 0 = no IOVA (the direct path). */
  __size = 0;
  /** `__size & DMA_IOVA_USE_SWIOTLB`: some link bounced through swiotlb; unlink takes the slow path. */
  useSwiotlb = false;
}

/**
 * `dma_use_iova(state)`: true when {@link dmaIovaTryAlloc} allocated an IOVA (`__size != 0`).
 * @see include/linux/dma-mapping.h dma_use_iova
 */
export function dmaUseIova(state: DmaIovaState): boolean {
  return state.__size !== 0;
}

/**
 * `dma_iova_size(state)`: the size the IOVA was allocated for (the flag masked out).
 * @see include/linux/dma-mapping.h dma_iova_size
 */
export function dmaIovaSize(state: DmaIovaState): number {
  return state.__size;
}

/** A device's DMA domain cookie, initialising the cookie on first use. */
function cookieOf(dev: Device): IommuDmaCookie {
  return iommuDmaCookie(dev);
}

/**
 * `dma_iova_try_alloc(dev, state, phys, size)`: zeroes `state`, then allocates IOVA space for
 * `size` bytes starting at `phys`'s offset within an IOVA granule (`iova_align(size +
 * iova_offset(phys))`; only that offset of `phys` matters). Returns false — and the caller falls
 * back to `dma_map_phys` per range — when the device does not map through iommu-dma (dma-direct,
 * identity domain), when `size` is 0 or has bit 63 set (WARN_ON_ONCE), or when no IOVA space is
 * left. On success `state.addr` = IOVA + offset and `dmaIovaSize(state)` = `size`.
 * @see drivers/iommu/dma-iommu.c dma_iova_try_alloc
 */
export function dmaIovaTryAlloc(dev: Device, state: DmaIovaState, phys: number, size: number): boolean {
  state.addr = 0;
  state.__size = 0;
  state.useSwiotlb = false;
  const ds = devDmaState(dev);
  if (!ds.dmaIommu || ds.domain === null) return false;
  const cookie = cookieOf(dev);
  const log = ds.system.log;
  if (
    size === 0 &&
    log.warnOnce(
      true,
      `dma_iova_try_alloc:size0:${dev.name}`,
      dev.name,
      "WARN: dma_iova_try_alloc: WARN_ON_ONCE(!size)",
    )
  )
    return false;
  if (
    size >= DMA_IOVA_USE_SWIOTLB &&
    log.warnOnce(
      true,
      `dma_iova_try_alloc:bit63:${dev.name}`,
      dev.name,
      `WARN: dma_iova_try_alloc: WARN_ON_ONCE(size ${hex(size)} & DMA_IOVA_USE_SWIOTLB)`,
    )
  )
    return false;
  const iovad = cookie.iovad;
  const iovaOff = iovad.iovaOffset(phys);
  const addr = iommuDmaAllocIova(cookie.domain, iovad.iovaAlign(size + iovaOff), dmaGetMask(dev), dev);
  if (addr === 0) return false;
  state.addr = addr + iovaOff;
  state.__size = size;
  return true;
}

/**
 * `dma_iova_free(dev, state)`: gives the whole IOVA range back (at once, never through the flush
 * queue). Every link must already be undone.
 * @see drivers/iommu/dma-iommu.c dma_iova_free
 */
export function dmaIovaFree(dev: Device, state: DmaIovaState): void {
  const cookie = cookieOf(dev);
  const iovad = cookie.iovad;
  const pad = iovad.iovaOffset(state.addr);
  iommuDmaFreeIova(cookie.domain, state.addr - pad, iovad.iovaAlign(dmaIovaSize(state) + pad), null);
}

/** `__dma_iova_link`: cache maintenance for a non-coherent device, then `iommu_map_nosync`. Throws. */
function __dmaIovaLink(
  dev: Device,
  cookie: IommuDmaCookie,
  addr: number,
  phys: number,
  size: number,
  dir: DmaDataDirection,
  attrs: number,
): void {
  const coherent = dev.dmaCoherent;
  const prot = dmaInfoToProt(dir, coherent, attrs);
  if (!coherent && !(attrs & (DMA_ATTR_SKIP_CPU_SYNC | DMA_ATTR_MMIO)))
    archSyncDmaForDevice(dev, phys, size, dir);
  iommuMapNosync(cookie.domain, addr, phys, size, prot, GFP_ATOMIC);
}

/**
 * `iommu_dma_iova_bounce_and_link`: bounces a partial granule through swiotlb and links the
 * granule holding the bounce slot. Throws ENOMEM when no slot is free.
 */
function iommuDmaIovaBounceAndLink(
  dev: Device,
  cookie: IommuDmaCookie,
  addr: number,
  phys: number,
  bounceLen: number,
  dir: DmaDataDirection,
  attrs: number,
  iovaStartPad: number,
): void {
  const iovad = cookie.iovad;
  const bouncePhys = iommuDmaMapSwiotlb(dev, cookie, phys, bounceLen, dir, attrs);
  if (bouncePhys === DMA_MAPPING_ERROR)
    throw new KernelError(
      "ENOMEM",
      `dma-iova: ${dev.name}: no swiotlb slot to bounce ${hex(bounceLen)} bytes at ${hex(phys)}`,
    );
  try {
    __dmaIovaLink(
      dev,
      cookie,
      addr - iovaStartPad,
      bouncePhys - iovaStartPad,
      iovad.iovaAlign(bounceLen + iovaStartPad),
      dir,
      attrs,
    );
  } catch (e) {
    swiotlbTblUnmapSingle(dev, bouncePhys, bounceLen, dir, attrs);
    throw e;
  }
}

/**
 * `iommu_dma_iova_link_swiotlb`: links an unaligned range for a device that must not see whole
 * granules: the partial head and tail granules are bounced through swiotlb (setting the state's
 * swiotlb flag), the aligned middle is linked directly. On failure, unlinks what it linked.
 */
function iommuDmaIovaLinkSwiotlb(
  dev: Device,
  cookie: IommuDmaCookie,
  state: DmaIovaState,
  phys: number,
  offset: number,
  size: number,
  dir: DmaDataDirection,
  attrs: number,
): void {
  const iovad = cookie.iovad;
  const iovaStartPad = iovad.iovaOffset(phys);
  const iovaEndPad = iovad.iovaOffset(phys + size);
  const addr = state.addr + offset;
  let mapped = 0;
  if (iovaStartPad !== 0) {
    const bounceLen = Math.min(size, iovad.granule - iovaStartPad);
    iommuDmaIovaBounceAndLink(dev, cookie, addr, phys, bounceLen, dir, attrs, iovaStartPad);
    state.useSwiotlb = true;
    mapped += bounceLen;
    size -= bounceLen;
    if (size === 0) return;
  }
  try {
    size -= iovaEndPad;
    __dmaIovaLink(dev, cookie, addr + mapped, phys + mapped, size, dir, attrs);
    mapped += size;
    if (iovaEndPad !== 0) {
      iommuDmaIovaBounceAndLink(dev, cookie, addr + mapped, phys + mapped, iovaEndPad, dir, attrs, 0);
      state.useSwiotlb = true;
    }
  } catch (e) {
    dmaIovaUnlink(dev, state, offset, mapped, dir, attrs);
    throw e;
  }
}

/**
 * `dma_iova_link(dev, state, phys, offset, size, dir, attrs)`: maps `[phys, phys+size)` at
 * `state.addr + offset` with `iommu_map_nosync` — NO IOTLB sync: call {@link dmaIovaSync} once
 * after the last link. Non-coherent devices get `arch_sync_dma_for_device` unless
 * `DMA_ATTR_SKIP_CPU_SYNC`/`DMA_ATTR_MMIO`. For an untrusted device and an unaligned range, the
 * partial head/tail granules are bounced through swiotlb. As in the kernel, the head's bounce slot
 * is linked at `bounce_phys - iova_start_pad`, so it only works when swiotlb keeps the offset in
 * the granule, i.e. the device's `min_align_mask` covers it (NVMe sets `NVME_CTRL_PAGE_SIZE - 1`);
 * otherwise the IOMMU rejects the unaligned link with `EINVAL`.
 *
 * Returns 0; failures THROW `KernelError` (the kernel's negative return): `EIO` (WARN_ON_ONCE)
 * when `phys` is not granule-aligned but `offset > 0` (only the first link may start mid-granule);
 * `EOPNOTSUPP` for `DMA_ATTR_REQUIRE_COHERENT` on a non-coherent device; `EPERM` when a bounce
 * would be needed for `DMA_ATTR_MMIO` or `DMA_ATTR_REQUIRE_COHERENT`; `ENOMEM` when swiotlb is
 * full; the IOMMU's error (`EEXIST` when the IOVA is already linked, `EINVAL`, `ENOMEM`).
 * @see drivers/iommu/dma-iommu.c dma_iova_link
 */
export function dmaIovaLink(
  dev: Device,
  state: DmaIovaState,
  phys: number,
  offset: number,
  size: number,
  dir: DmaDataDirection,
  attrs: number,
): 0 {
  return dmaIovaLinkIn(dev, cookieOf(dev), state, phys, offset, size, dir, attrs);
}

/**
 * @internal {@link dmaIovaLink} with the device's cookie already looked up (`dmaMapPhyr` links
 * every range of a list with one lookup).
 */
export function dmaIovaLinkIn(
  dev: Device,
  cookie: IommuDmaCookie,
  state: DmaIovaState,
  phys: number,
  offset: number,
  size: number,
  dir: DmaDataDirection,
  attrs: number,
): 0 {
  const iovad = cookie.iovad;
  const iovaStartPad = iovad.iovaOffset(phys);
  if (
    iovaStartPad !== 0 &&
    offset > 0 &&
    cookie.system.log.warnOnce(
      true,
      `dma_iova_link:unaligned:${dev.name}`,
      dev.name,
      "WARN: dma_iova_link: WARN_ON_ONCE(iova_start_pad && offset > 0)",
    )
  )
    throw new KernelError(
      "EIO",
      `dma-iova: ${dev.name}: phys ${hex(phys)} is not ${hex(iovad.granule)}-aligned at offset ${hex(offset)} > 0`,
    );
  if (attrs & DMA_ATTR_REQUIRE_COHERENT && !dev.dmaCoherent)
    throw new KernelError(
      "EOPNOTSUPP",
      `dma-iova: ${dev.name}: DMA_ATTR_REQUIRE_COHERENT on a non-coherent device`,
    );
  if (devIsUntrusted(dev) && iovad.iovaOffset(phys) + iovad.iovaOffset(size) !== 0) {
    if (attrs & (DMA_ATTR_MMIO | DMA_ATTR_REQUIRE_COHERENT))
      throw new KernelError(
        "EPERM",
        `dma-iova: ${dev.name}: ${hex(phys)}+${hex(size)} needs a swiotlb bounce, not allowed with ${
          attrs & DMA_ATTR_MMIO ? "DMA_ATTR_MMIO" : "DMA_ATTR_REQUIRE_COHERENT"
        }`,
      );
    iommuDmaIovaLinkSwiotlb(dev, cookie, state, phys, offset, size, dir, attrs);
    return 0;
  }
  __dmaIovaLink(
    dev,
    cookie,
    state.addr + offset - iovaStartPad,
    phys - iovaStartPad,
    iovad.iovaAlign(size + iovaStartPad),
    dir,
    attrs,
  );
  return 0;
}

/**
 * `dma_iova_sync(dev, state, offset, size)`: one `iommu_sync_map` over the granules of
 * `[state.addr + offset, +size)`, making every link in it visible to the device. Returns 0 or
 * throws the IOMMU driver's error.
 * @see drivers/iommu/dma-iommu.c dma_iova_sync
 */
export function dmaIovaSync(dev: Device, state: DmaIovaState, offset: number, size: number): 0 {
  const cookie = cookieOf(dev);
  const iovad = cookie.iovad;
  const addr = state.addr + offset;
  const pad = iovad.iovaOffset(addr);
  iommuSyncMap(cookie.domain, addr - pad, iovad.iovaAlign(size + pad));
  return 0;
}

/**
 * `iommu_dma_iova_unlink_range_slow`: per granule, `arch_sync_dma_for_cpu` (non-coherent) and the
 * release of a swiotlb bounce slot (copying back per `dir`).
 */
function iommuDmaIovaUnlinkRangeSlow(
  dev: Device,
  cookie: IommuDmaCookie,
  addr: number,
  size: number,
  dir: DmaDataDirection,
  attrs: number,
): void {
  const iovad = cookie.iovad;
  let pad = iovad.iovaOffset(addr);
  const end = addr + size;
  do {
    const phys = iommuIovaToPhys(cookie.domain, addr);
    if (
      phys === 0 &&
      cookie.system.log.warn(
        true,
        "dma-iova",
        `WARN: iommu_dma_iova_unlink_range_slow: ${dev.name}: ${hex(addr)} is not linked`,
      )
    )
      return;
    const len = Math.min(end - addr, iovad.granule - pad);
    if (!dev.dmaCoherent && !(attrs & (DMA_ATTR_SKIP_CPU_SYNC | DMA_ATTR_MMIO)))
      archSyncDmaForCpu(dev, phys, len, dir);
    if (isSwiotlbBuffer(dev, phys)) swiotlbTblUnmapSingle(dev, phys, len, dir, attrs);
    addr += len;
    pad = 0;
  } while (addr < end);
}

/** `__iommu_dma_iova_unlink`: unlinks, syncs the IOTLB (or queues on the FQ when freeing), frees. */
function __iommuDmaIovaUnlink(
  dev: Device,
  state: DmaIovaState,
  offset: number,
  size: number,
  dir: DmaDataDirection,
  attrs: number,
  freeIova: boolean,
): void {
  const cookie = cookieOf(dev);
  const { domain, iovad } = cookie;
  let addr = state.addr + offset;
  const pad = iovad.iovaOffset(addr);
  if (state.useSwiotlb || (!dev.dmaCoherent && !(attrs & (DMA_ATTR_SKIP_CPU_SYNC | DMA_ATTR_MMIO))))
    iommuDmaIovaUnlinkRangeSlow(dev, cookie, addr, size, dir, attrs);
  const gather = new IommuIotlbGather();
  gather.queued = freeIova && cookie.fqDomain;
  size = iovad.iovaAlign(size + pad);
  addr -= pad;
  const unmapped = iommuUnmapFast(domain, addr, size, gather);
  if (unmapped !== size)
    cookie.system.log.warn(
      true,
      "dma-iova",
      `WARN: __iommu_dma_iova_unlink: ${dev.name}: unmapped ${hex(unmapped)} of ${hex(size)} bytes at ${hex(addr)}`,
    );
  if (!gather.queued) iommuIotlbSync(domain, gather);
  if (freeIova) iommuDmaFreeIova(domain, addr, size, gather);
}

/**
 * `dma_iova_unlink(dev, state, offset, size, dir, attrs)`: undoes links in `[offset, offset+size)`:
 * CPU cache / swiotlb slow path when needed, `iommu_unmap_fast`, then an immediate IOTLB sync
 * (never the flush queue). The IOVA stays allocated for new links.
 * @see drivers/iommu/dma-iommu.c dma_iova_unlink
 */
export function dmaIovaUnlink(
  dev: Device,
  state: DmaIovaState,
  offset: number,
  size: number,
  dir: DmaDataDirection,
  attrs: number,
): void {
  __iommuDmaIovaUnlink(dev, state, offset, size, dir, attrs, false);
}

/**
 * `dma_iova_destroy(dev, state, mapped_len, dir, attrs)`: unlinks `[0, mappedLen)` and frees the
 * IOVA in one go — on a DMA_FQ domain the invalidation and the IOVA go to the flush queue.
 * `mappedLen` 0 only frees (nothing was linked). The range must be the only linked part.
 * @see drivers/iommu/dma-iommu.c dma_iova_destroy
 */
export function dmaIovaDestroy(
  dev: Device,
  state: DmaIovaState,
  mappedLen: number,
  dir: DmaDataDirection,
  attrs: number,
): void {
  if (mappedLen !== 0) __iommuDmaIovaUnlink(dev, state, 0, mappedLen, dir, attrs, true);
  else dmaIovaFree(dev, state);
}
