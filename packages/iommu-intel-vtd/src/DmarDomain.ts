import { type Device, hex, KernelError, type KernelLog } from "@dmakit/core";
import {
  devIommuPrivGet,
  IOMMU_DOMAIN_UNMANAGED,
  IOMMU_READ,
  IOMMU_WRITE,
  IommuDomain,
  type IommuDomainGeometry,
  type IommuDomainOps,
  type IommuIotlbGather,
  type IommuOps,
  IommuPagesList,
  iommuIotlbGatherAddPage,
  iommuIotlbGatherQueued,
} from "@dmakit/iommu";
import type { DeviceDomainInfo, IntelIommu } from "./IntelIommu.js";
import { VtdPgtable } from "./VtdPgtable.js";
import { DMA_PTE_READ, DMA_PTE_SNP, DMA_PTE_WRITE, VTD_PAGE_SIZE } from "./vtdConstants.js";

/**
 * What {@link DmarDomain} needs from the unit that allocates it (`paging_domain_alloc`).
 * Model-only: the unit state the kernel reaches through globals and `domain->iommu`.
 */
export interface DmarDomainInit {
  iommu: IntelIommu;
  owner: IommuOps;
  log: KernelLog;
  name: string;
}

/**
 * One unit a domain is attached to: `struct iommu_domain_info`.
 * @see drivers/iommu/intel/iommu.h struct iommu_domain_info
 */
export interface IommuDomainInfo {
  iommu: IntelIommu;
  /** Domain id on that unit. */
  did: number;
  /** Devices of the unit attached. */
  refcnt: number;
}

/**
 * `struct dmar_domain`: a paging domain with a second-level table, its address width, the units it
 * is attached to (with the domain id each gave it) and its devices. Allocate it with the unit's
 * `ops.domainAllocPaging(dev)`; map and unmap through the core (`iommuMap`/`iommuUnmap`) or the
 * domain's `ops`, which are {@link intelIommuDomainOps}.
 * @see drivers/iommu/intel/iommu.h struct dmar_domain; iommu.c paging_domain_alloc
 */
export class DmarDomain extends IommuDomain {
  /** The second-level table (`domain->pgd` and the code that edits it). */
  readonly pgtable: VtdPgtable;
  readonly agaw: number;
  /** `gaw`: address width in bits. */
  readonly gaw: number;
  /** `iommu_superpage`: 0, 1 (2 MiB) or 2 (2 MiB and 1 GiB). */
  readonly iommuSuperpage: number;
  /** `max_addr`: end of the highest mapping made so far. */
  maxAddr = 0;
  /** `iommu_array`: units attached, with domain ids. */
  readonly iommus = new Map<IntelIommu, IommuDomainInfo>();
  /** `devices`: attached devices' driver info. */
  readonly devices: DeviceDomainInfo[] = [];
  setPteSnp = false;
  forceSnooping = false;
  hasMappings = false;

  constructor(init: DmarDomainInit) {
    const iommu = init.iommu;
    const gaw = Math.min(iommu.agawWidth, iommu.hw.mgaw);
    const superpage = iommu.superpageLevel;
    const geometry: IommuDomainGeometry = {
      apertureStart: 0,
      // The model's addresses are numbers: a 57-bit aperture is clamped to 2^53 - 1.
      apertureEnd: Math.min(2 ** gaw - 1, Number.MAX_SAFE_INTEGER),
      forceAperture: true,
    };
    super({
      type: IOMMU_DOMAIN_UNMANAGED,
      ops: intelIommuDomainOps,
      owner: init.owner,
      pgsizeBitmap: VTD_PAGE_SIZE | (superpage >= 1 ? 0x20_0000 : 0) | (superpage >= 2 ? 0x4000_0000 : 0),
      geometry,
      name: init.name,
      log: init.log,
    });
    this.agaw = iommu.agaw;
    this.gaw = gaw;
    this.iommuSuperpage = superpage;
    this.pgtable = new VtdPgtable({
      mem: iommu.mem,
      agaw: this.agaw,
      gaw,
      superpage,
      log: init.log,
      name: init.name,
      flushRange: (start, end) => cacheTagFlushRange(this, start, end, false),
    });
  }
}

const POW2 = Float64Array.from({ length: 64 }, (_, n) => 2 ** n);

function asDmar(domain: IommuDomain): DmarDomain {
  if (!(domain instanceof DmarDomain))
    throw new KernelError("EINVAL", `intel-iommu: ${domain.name} is not a VT-d paging domain`);
  return domain;
}

/**
 * `cache_tag_flush_range(domain, start, end, ih)` for legacy second-level domains: on each unit the
 * domain is attached to, a page-selective IOTLB invalidation of the smallest aligned power-of-two
 * block covering `[start, end]` (`calculate_psi_aligned_address`), or domain-selective when the
 * unit lacks PSI or the mask exceeds `cap.MAMV`. `ih` sets the invalidation hint (leaf-only).
 * @see drivers/iommu/intel/cache.c cache_tag_flush_range
 */
export function cacheTagFlushRange(domain: DmarDomain, start: number, end: number, ih: boolean): void {
  const mask = psiMask(start, end);
  const addr = psiAddr(start, mask);
  for (const info of domain.iommus.values()) {
    const iommu = info.iommu;
    if (!iommu.hw.psi || mask > iommu.hw.mamv) iommu.flushIotlb(info.did, 0, 0, "dsi");
    else iommu.flushIotlb(info.did, addr, mask, "psi", ih);
  }
}

/**
 * `cache_tag_flush_all(domain)`: domain-selective IOTLB invalidation on every unit.
 * @see drivers/iommu/intel/cache.c cache_tag_flush_all
 */
export function cacheTagFlushAll(domain: DmarDomain): void {
  for (const info of domain.iommus.values()) info.iommu.flushIotlb(info.did, 0, 0, "dsi");
}

/** The address mask (log2 pages) of `calculate_psi_aligned_address(start, end)`. */
function psiMask(start: number, end: number): number {
  const pfn = Math.floor(start / VTD_PAGE_SIZE);
  const pages = Math.ceil((start - pfn * VTD_PAGE_SIZE + (end - start + 1)) / VTD_PAGE_SIZE);
  let mask: number;
  let aligned: boolean;
  if (pages >= 1 && pages <= 0x4000_0000) {
    // Integer log2 while pages fits in 31 bits (the common case: one page, mask 0).
    mask = pages === 1 ? 0 : 32 - Math.clz32(pages - 1);
    aligned = (pfn & ((1 << mask) - 1)) === 0;
  } else {
    mask = Math.ceil(Math.log2(pages));
    if (2 ** mask < pages) mask++;
    aligned = pfn % 2 ** mask === 0;
  }
  if (!aligned) {
    const endPfn = pfn + pages - 1;
    let k = mask;
    // The lowest bit at or above the mask where pfn and end_pfn agree (MAX_AGAW_PFN_WIDTH if none).
    while (k < 52 && Math.floor(pfn / 2 ** k) % 2 !== Math.floor(endPfn / 2 ** k) % 2) k++;
    mask = k;
  }
  return mask;
}

/** `ALIGN_DOWN(start, VTD_PAGE_SIZE << mask)`. */
function psiAddr(start: number, mask: number): number {
  if (mask === 0) return Math.floor(start / VTD_PAGE_SIZE) * VTD_PAGE_SIZE;
  const block = VTD_PAGE_SIZE * 2 ** mask;
  return start - (start % block);
}

/**
 * `calculate_psi_aligned_address(start, end, &pages, &mask)`: the base address and address mask
 * (log2 pages) of the naturally aligned block a page-selective invalidation must cover.
 * @see drivers/iommu/intel/cache.c calculate_psi_aligned_address
 */
export function calculatePsiAlignedAddress(
  start: number,
  end: number,
): { addr: number; mask: number; pages: number } {
  const mask = psiMask(start, end);
  return { addr: psiAddr(start, mask), mask, pages: 2 ** mask };
}

/**
 * The VT-d driver's `iommu_domain_ops` for paging domains (`intel_iommu_ops.default_domain_ops`):
 * attach via a legacy context entry, map/unmap on the second-level table, IOTLB sync by
 * page-selective (or domain-selective) invalidation, software `iova_to_phys`.
 *
 * Contracts: `mapPages` accepts only 4 KiB / 2 MiB / 1 GiB `pgsize` with `iova | paddr` aligned to
 * it (`EINVAL`), throws `EFAULT` beyond the domain's address width ("iommu width (%d) is not
 * sufficient for the mapped address"), `EINVAL` for a prot without read or write, `EEXIST` over a
 * present entry and `ENOMEM` for a table page, the last two as `MapPagesError` with the bytes
 * installed. It may map superpages where the range allows, whatever `pgsize` says, as
 * `__domain_mapping` does. `unmapPages` returns bytes (see `VtdPgtable.unmap`) and gathers the
 * range (unless a flush queue owns the gather); table pages travel on `gather.freelist` until
 * `iotlbSync` has invalidated.
 * @see drivers/iommu/intel/iommu.c intel_iommu_map_pages, intel_iommu_unmap_pages,
 * intel_iommu_tlb_sync, intel_iommu_iova_to_phys, intel_iommu_domain_free
 */
export const intelIommuDomainOps: IommuDomainOps = {
  attachDev(domain: IommuDomain, dev: Device): void {
    const d = asDmar(domain);
    const info = deviceInfo(dev);
    info.iommu.attachPagingDomain(d, info);
  },

  mapPages(domain, iova, paddr, pgsize, pgcount, prot, gfp): number {
    const d = asDmar(domain);
    if (pgsize !== 0x1000 && pgsize !== 0x20_0000 && pgsize !== 0x4000_0000)
      throw new KernelError("EINVAL", `intel-iommu: ${d.name}: page size ${hex(pgsize)} is not 4K, 2M or 1G`);
    // pgsize is at most 2^30 here: alignment on the low word, fractions never aligned.
    const m = pgsize - 1;
    if (
      (iova & m) !== 0 ||
      (paddr & m) !== 0 ||
      iova - Math.trunc(iova) !== 0 ||
      paddr - Math.trunc(paddr) !== 0
    )
      throw new KernelError(
        "EINVAL",
        `intel-iommu: ${d.name}: iova ${hex(iova)} / pa ${hex(paddr)} not aligned to ${hex(pgsize)}`,
      );
    const size = pgsize * pgcount;
    let p = 0;
    if ((prot & IOMMU_READ) !== 0) p |= DMA_PTE_READ;
    if ((prot & IOMMU_WRITE) !== 0) p |= DMA_PTE_WRITE;
    if (d.setPteSnp) p |= DMA_PTE_SNP;
    const maxAddr = iova + size;
    if (d.maxAddr < maxAddr) {
      // A table lookup: `2 ** n` with a variable n is a slow Math.pow call in V8.
      const end = POW2[d.gaw] as number;
      if (end < maxAddr) {
        d.log.err(
          "DMAR",
          `intel_iommu_map: iommu width (${d.gaw}) is not sufficient for the mapped address (${maxAddr.toString(16)})`,
        );
        throw new KernelError(
          "EFAULT",
          `intel-iommu: ${d.name}: iova ${hex(iova)}+${hex(size)} beyond the ${d.gaw}-bit width`,
        );
      }
    }
    d.pgtable.map(iova / VTD_PAGE_SIZE, paddr / VTD_PAGE_SIZE, size / VTD_PAGE_SIZE, p, gfp);
    d.hasMappings = true;
    if (d.maxAddr < maxAddr) d.maxAddr = maxAddr;
    return size;
  },

  unmapPages(domain, iova, pgsize, pgcount, gather: IommuIotlbGather): number {
    const d = asDmar(domain);
    const pages = d.pgtable.unmap(
      Math.floor(iova / VTD_PAGE_SIZE),
      (pgsize * pgcount) / VTD_PAGE_SIZE,
      gather.freelist,
    );
    if (pages === 0) return 0;
    const size = pages * VTD_PAGE_SIZE;
    if (d.maxAddr === iova + size) d.maxAddr = iova;
    // The kernel gathers nothing for a flush queue: it flushes the whole domain later.
    if (!iommuIotlbGatherQueued(gather)) iommuIotlbGatherAddPage(d, gather, iova, size);
    return size;
  },

  iotlbSync(domain, gather): void {
    const d = asDmar(domain);
    if (gather.start <= gather.end)
      cacheTagFlushRange(d, gather.start, gather.end, gather.freelist.isEmpty());
    gather.freelist.put();
  },

  flushIotlbAll(domain): void {
    cacheTagFlushAll(asDmar(domain));
  },

  iovaToPhys(domain, iova): number {
    return asDmar(domain).pgtable.iovaToPhys(iova);
  },

  enforceCacheCoherency(domain): boolean {
    const d = asDmar(domain);
    if (d.forceSnooping) return true;
    for (const info of d.devices) if (!info.iommu.hw.ecapSnoopControl) return false;
    if (d.hasMappings) return false;
    d.setPteSnp = true;
    d.forceSnooping = true;
    return true;
  },

  free(domain): void {
    const d = asDmar(domain);
    if (
      d.log.warn(
        d.devices.length > 0,
        "DMAR",
        `WARNING: intel_iommu_domain_free: ${d.name} still has ${d.devices.length} device(s)`,
      )
    )
      return;
    const freelist = new IommuPagesList();
    d.pgtable.freeAll(freelist);
    freelist.put();
  },
};

function deviceInfo(dev: Device): DeviceDomainInfo {
  const info = devIommuPrivGet<DeviceDomainInfo>(dev);
  if (info === null)
    throw new KernelError("ENODEV", `intel-iommu: ${dev.name} was not probed by a VT-d unit`);
  return info;
}
