import { hex16, isKernelError, KernelError } from "@dmakit/core";
import { __GFP_COMP, __GFP_DMA, __GFP_DMA32, __GFP_HIGHMEM, GFP_KERNEL } from "@dmakit/mm-pages";
import { __IOMMU_DOMAIN_PAGING, IOMMU_DOMAIN_BLOCKED, IOMMU_DOMAIN_IDENTITY } from "./domainTypes.js";
import type { IommuDomain } from "./IommuDomain.js";
import { IommuIotlbGather, iommuIotlbSync } from "./IommuIotlbGather.js";
import { alignedTo, lowestBit, POW2, pgsizeCount, pgsizeIdx } from "./internal/pgsizeBits.js";
import { iommuPgsize } from "./iommuPgsize.js";
import { mappedBeforeError } from "./MapPagesError.js";

const h = (x: number): string => `0x${x.toString(16)}`;

/**
 * `iommu_map_nosync(domain, iova, paddr, size, prot, gfp)`: maps `[iova, iova+size)` to
 * `[paddr, paddr+size)` with the largest page sizes alignment allows (see {@link iommuPgsize}),
 * without `iotlb_sync_map`; call {@link iommuSyncMap} once after a batch.
 *
 * Throws `EINVAL` for a non-paging domain; `ENODEV` (with a WARN) when the domain has no
 * `mapPages` or an empty `pgsizeBitmap`; `EINVAL` when `iova`, `paddr` or `size` is not a multiple
 * of the smallest page size, after logging the kernel's
 * `unaligned: iova 0x%lx pa %pa size 0x%zx min_pagesz 0x%x`; and the driver's error (`EEXIST`,
 * `ENOMEM`, ...) after unmapping everything this call mapped, so a failed call leaves the table
 * as it was. A `size` of 0 maps nothing.
 *
 * gfp with `__GFP_COMP`, `__GFP_DMA`, `__GFP_DMA32` or `__GFP_HIGHMEM`: WARN_ON_ONCE and `EINVAL`.
 * @see drivers/iommu/iommu.c iommu_map_nosync
 */
export function iommuMapNosync(
  domain: IommuDomain,
  iova: number,
  paddr: number,
  size: number,
  prot: number,
  gfp: number = GFP_KERNEL,
): void {
  const ops = domain.ops;
  if ((domain.type & __IOMMU_DOMAIN_PAGING) === 0)
    throw new KernelError(
      "EINVAL",
      `iommu: map on ${domain.name}: domain type ${domain.type} is not a paging domain`,
    );
  const bitmap = domain.pgsizeBitmap;
  const mapPages = ops.mapPages;
  // WARN texts are built only when they fire: this runs once per mapped range.
  if (mapPages === undefined || bitmap === 0) {
    domain.log.warn(
      true,
      "iommu",
      `WARN: iommu_map on ${domain.name}: no map_pages or pgsize_bitmap 0x${bitmap.toString(16)}`,
    );
    throw new KernelError("ENODEV", `iommu: map on ${domain.name}: domain cannot map pages`);
  }
  // Page-table allocations must not be steered to low zones or be compound pages.
  if ((gfp & (__GFP_COMP | __GFP_DMA | __GFP_DMA32 | __GFP_HIGHMEM)) !== 0) {
    domain.log.warnOnce(
      true,
      "iommu:map:gfp",
      "iommu",
      `WARN: iommu_map on ${domain.name}: strange gfp flags 0x${gfp.toString(16)}`,
    );
    throw new KernelError(
      "EINVAL",
      `iommu: map on ${domain.name}: gfp 0x${gfp.toString(16)} has zone or compound flags`,
    );
  }
  const minShift = lowestBit(bitmap);
  const minMask = (POW2[minShift] as number) - 1;
  if (
    !alignedTo(iova, minShift, minMask) ||
    !alignedTo(paddr, minShift, minMask) ||
    !alignedTo(size, minShift, minMask)
  ) {
    const minPagesz = 2 ** minShift;
    const msg = `unaligned: iova ${h(iova)} pa ${hex16(paddr)} size ${h(size)} min_pagesz ${h(minPagesz)}`;
    domain.log.err("iommu", msg);
    throw new KernelError("EINVAL", `iommu: ${msg}`);
  }
  const origIova = iova;
  const origSize = size;
  let failure: unknown = null;
  while (size > 0) {
    // iommu_pgsize without its result object; one smallest page is always (that size, 1).
    const idx = size === minMask + 1 ? minShift : pgsizeIdx(bitmap, iova, paddr, size);
    if (idx < 0) {
      // Cannot happen after the alignment check (the kernel's BUG_ON); iommuPgsize says why.
      iommuPgsize(bitmap, iova, paddr, size);
    }
    const pgsize = POW2[idx] as number;
    const count = idx === minShift && size === minMask + 1 ? 1 : pgsizeCount(bitmap, idx, iova, paddr, size);
    let mapped: number;
    try {
      mapped = mapPages(domain, iova, paddr, pgsize, count, prot, gfp);
    } catch (e) {
      // Pages mapped before the failure still count, so the unwind below removes them.
      size -= mappedBeforeError(e);
      failure = e;
      break;
    }
    size -= mapped;
    if (mapped === 0) {
      // A driver that maps nothing without failing would loop forever in the kernel; stop here.
      failure = new KernelError(
        "EINVAL",
        `iommu: map on ${domain.name}: map_pages mapped nothing at iova ${h(iova)} (prot ${prot})`,
      );
      break;
    }
    iova += mapped;
    paddr += mapped;
  }
  if (failure !== null) {
    iommuUnmap(domain, origIova, origSize - size);
    throw failure;
  }
}

/**
 * `iommu_sync_map(domain, iova, size)`: the driver's `iotlb_sync_map` for a range mapped with
 * {@link iommuMapNosync}; nothing when the driver has none. Errors from the driver are thrown.
 * @see drivers/iommu/iommu.c iommu_sync_map
 */
export function iommuSyncMap(domain: IommuDomain, iova: number, size: number): void {
  domain.ops.iotlbSyncMap?.(domain, iova, size);
}

/**
 * `iommu_map(domain, iova, paddr, size, prot, gfp)`: {@link iommuMapNosync} then
 * {@link iommuSyncMap}; if the sync fails, the range is unmapped again and the error thrown.
 * Returns nothing on success (the kernel's 0); failures throw as described for
 * {@link iommuMapNosync}, leaving no mapping behind.
 *
 * @example
 * iommuMap(domain, 0x10000000, 0x80000000, SZ_2M, IOMMU_READ | IOMMU_WRITE); // one 2 MiB block
 * @see drivers/iommu/iommu.c iommu_map
 */
export function iommuMap(
  domain: IommuDomain,
  iova: number,
  paddr: number,
  size: number,
  prot: number,
  gfp: number = GFP_KERNEL,
): void {
  iommuMapNosync(domain, iova, paddr, size, prot, gfp);
  try {
    iommuSyncMap(domain, iova, size);
  } catch (e) {
    iommuUnmap(domain, iova, size);
    throw e;
  }
}

/**
 * The segments {@link iommuMapSg} maps, read by index so a scatterlist or range list stored in
 * typed arrays needs no object per entry. `phys(i)` is the CPU physical address (`sg_phys`),
 * `length(i)` the byte length, `isBusAddress(i)` true for P2P segments already carrying a PCI
 * bus address (`sg_dma_is_bus_address`), which are skipped.
 *
 * A minimal interface rather than `@dmakit/scatterlist`'s `SgTable`, so the IOMMU core does not
 * depend on the scatterlist package; the DMA layer adapts its lists.
 * Model-only: an indexed view of a scatterlist or range list (the kernel walks `struct scatterlist`).
 */
export interface IommuSgSource {
  readonly nents: number;
  phys(i: number): number;
  length(i: number): number;
  isBusAddress?(i: number): boolean;
}

/**
 * `iommu_map_sg(domain, iova, sg, nents, prot, gfp)`: maps the segments back to back from `iova`,
 * merging physically contiguous neighbours into one `iommu_map_nosync` call and skipping
 * bus-address segments, then one `iommu_sync_map` over the whole range.
 *
 * Returns the bytes mapped, or a negative errno (the kernel's `ssize_t` contract) after
 * unmapping everything it mapped: e.g. `-22` (-EINVAL) for an unaligned segment.
 * @see drivers/iommu/iommu.c iommu_map_sg
 */
export function iommuMapSg(
  domain: IommuDomain,
  iova: number,
  sg: IommuSgSource,
  prot: number,
  gfp: number = GFP_KERNEL,
): number {
  const nents = sg.nents;
  let len = 0;
  let mapped = 0;
  let start = 0;
  if (nents === 0) return 0;
  try {
    // The kernel loops to i <= nents, re-reading the last entry once so the final run is flushed.
    let idx = 0;
    for (let i = 0; i <= nents; ) {
      const sPhys = sg.phys(idx);
      if (len !== 0 && sPhys !== start + len) {
        iommuMapNosync(domain, iova + mapped, start, len, prot, gfp);
        mapped += len;
        len = 0;
      }
      if (sg.isBusAddress?.(idx) !== true) {
        if (len !== 0) {
          len += sg.length(idx);
        } else {
          len = sg.length(idx);
          start = sPhys;
        }
      }
      if (++i < nents) idx++;
    }
    iommuSyncMap(domain, iova, mapped);
    return mapped;
  } catch (e) {
    iommuUnmap(domain, iova, mapped);
    if (isKernelError(e)) return e.ret;
    throw e;
  }
}

/** `__iommu_unmap`: the byte-count core shared by {@link iommuUnmap} and {@link iommuUnmapFast}. */
function unmapRange(domain: IommuDomain, iova: number, size: number, gather: IommuIotlbGather): number {
  const ops = domain.ops;
  const bitmap = domain.pgsizeBitmap;
  const unmapPages = ops.unmapPages;
  // WARN texts are built only when they fire: this runs once per unmapped range.
  if (unmapPages === undefined || bitmap === 0) {
    domain.log.warn(
      true,
      "iommu",
      `WARN: iommu_unmap on ${domain.name}: no unmap_pages or pgsize_bitmap 0x${bitmap.toString(16)}`,
    );
    return 0;
  }
  if ((domain.type & __IOMMU_DOMAIN_PAGING) === 0) {
    domain.log.warn(
      true,
      "iommu",
      `WARN: iommu_unmap on ${domain.name}: domain type ${domain.type} is not a paging domain`,
    );
    return 0;
  }
  const minShift = lowestBit(bitmap);
  const minMask = (POW2[minShift] as number) - 1;
  if (!alignedTo(iova, minShift, minMask) || !alignedTo(size, minShift, minMask)) {
    const minPagesz = 2 ** minShift;
    domain.log.err("iommu", `unaligned: iova ${h(iova)} size ${h(size)} min_pagesz ${h(minPagesz)}`);
    return 0;
  }
  let unmapped = 0;
  // Keep going until size bytes (or more: a larger block) are unmapped, or a hole is reached.
  while (unmapped < size) {
    const left = size - unmapped;
    // iommu_pgsize without its result object (it throws, as iommuPgsize does, if no size fits).
    const idx = pgsizeIdx(bitmap, iova, iova, left);
    if (idx < 0) iommuPgsize(bitmap, iova, iova, left);
    const n = unmapPages(
      domain,
      iova,
      POW2[idx] as number,
      pgsizeCount(bitmap, idx, iova, iova, left),
      gather,
    );
    if (n === 0) break;
    iova += n;
    unmapped += n;
  }
  return unmapped;
}

/**
 * `iommu_unmap(domain, iova, size)`: unmaps from `iova` until `size` bytes are gone or an unmapped
 * IOVA is reached, then syncs the IOTLB. Returns the bytes unmapped (the kernel's `size_t`
 * contract, never throws): may exceed `size` when a larger block covered the range, is less at a
 * hole, and is 0 with `unaligned: iova 0x%lx size 0x%zx min_pagesz 0x%x` logged when `iova` or
 * `size` is not a multiple of the smallest page size (0 with a WARN for a non-paging domain).
 * @see drivers/iommu/iommu.c iommu_unmap
 */
export function iommuUnmap(domain: IommuDomain, iova: number, size: number): number {
  const gather = new IommuIotlbGather();
  const ret = unmapRange(domain, iova, size, gather);
  iommuIotlbSync(domain, gather);
  return ret;
}

/**
 * `iommu_unmap_fast(domain, iova, size, gather)`: like {@link iommuUnmap} but leaves the
 * invalidation in `gather` for the caller's `iommuIotlbSync` (or a flush queue). Until then the
 * IOTLB may still translate the unmapped range, and freed table pages wait on `gather.freelist`.
 * @see drivers/iommu/iommu.c iommu_unmap_fast
 */
export function iommuUnmapFast(
  domain: IommuDomain,
  iova: number,
  size: number,
  gather: IommuIotlbGather,
): number {
  return unmapRange(domain, iova, size, gather);
}

/**
 * `iommu_iova_to_phys(domain, iova)`: identity domains return `iova`, blocked domains 0, others ask
 * the driver's software walk (0 when unmapped or when the driver has no `iovaToPhys`).
 * @see drivers/iommu/iommu.c iommu_iova_to_phys
 */
export function iommuIovaToPhys(domain: IommuDomain, iova: number): number {
  if (domain.type === IOMMU_DOMAIN_IDENTITY) return iova;
  if (domain.type === IOMMU_DOMAIN_BLOCKED) return 0;
  return domain.ops.iovaToPhys?.(domain, iova) ?? 0;
}

/**
 * `iommu_flush_iotlb_all(domain)`: the driver's `flush_iotlb_all`, if any.
 * @see include/linux/iommu.h iommu_flush_iotlb_all
 */
export function iommuFlushIotlbAll(domain: IommuDomain): void {
  domain.ops.flushIotlbAll?.(domain);
}
