import type { Device } from "@dmakit/core";
import type { IommuDomain } from "./IommuDomain.js";
import type { IommuIotlbGather } from "./IommuIotlbGather.js";

/**
 * `struct iommu_domain_ops`: what an IOMMU implementation does for one kind of domain. The ops
 * object is shared by all domains of that kind, so each call takes the domain first, in the
 * kernel's argument order. Errors are thrown as `KernelError` (the kernel's negative returns);
 * byte-count contracts are kept as return values.
 * @see include/linux/iommu.h struct iommu_domain_ops
 */
export interface IommuDomainOps {
  /**
   * `attach_dev(domain, dev)`: points the device's translation context (STE/context entry) at this
   * domain; from now on the hardware translates the device's DMA through it. Throws `EINVAL` when
   * the domain is incompatible with the device (the core then leaves the old domain in place),
   * `ENOMEM`/`ENOSPC` for exhausted resources. Also used for identity and blocked domains.
   */
  attachDev(domain: IommuDomain, dev: Device): void;
  /**
   * `map_pages(domain, iova, paddr, pgsize, pgcount, prot, gfp, &mapped)`: maps `pgcount` pages of
   * `pgsize` and returns the bytes mapped (the kernel's `*mapped`); may map fewer than asked, the
   * core loops. Throws on failure; a {@link MapPagesError} carries bytes mapped before the failure.
   * Mapping over a valid entry throws `EEXIST`. Required for paging domains.
   */
  mapPages?(
    domain: IommuDomain,
    iova: number,
    paddr: number,
    pgsize: number,
    pgcount: number,
    prot: number,
    gfp: number,
  ): number;
  /**
   * `unmap_pages(domain, iova, pgsize, pgcount, gather)`: returns the bytes unmapped (0 at a hole);
   * adds the invalidation to `gather` (a flushed later by `iotlb_sync`).
   */
  unmapPages?(
    domain: IommuDomain,
    iova: number,
    pgsize: number,
    pgcount: number,
    gather: IommuIotlbGather,
  ): number;
  /** `iotlb_sync_map(domain, iova, size)`: makes new mappings visible (e.g. flush a caching-mode IOTLB). */
  iotlbSyncMap?(domain: IommuDomain, iova: number, size: number): void;
  /** `iotlb_sync(domain, gather)`: invalidates the gathered range and waits for completion. */
  iotlbSync?(domain: IommuDomain, gather: IommuIotlbGather): void;
  /** `flush_iotlb_all(domain)`: invalidates every IOTLB entry of the domain. */
  flushIotlbAll?(domain: IommuDomain): void;
  /** `iova_to_phys(domain, iova)`: software table walk; 0 when unmapped. */
  iovaToPhys?(domain: IommuDomain, iova: number): number;
  /** `enforce_cache_coherency(domain)`: make all DMA snoop; true on success. */
  enforceCacheCoherency?(domain: IommuDomain): boolean;
  /** `free(domain)`: releases the domain and its page tables (after the driver's invalidation). */
  free?(domain: IommuDomain): void;
}
