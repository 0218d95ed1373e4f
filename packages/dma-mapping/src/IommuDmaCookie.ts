import { type Device, devIsPci, ffs, hex, KernelError } from "@dmakit/core";
import {
  devIommuGet,
  FlushQueue,
  IOMMU_CAP_DEFERRED_FLUSH,
  IOMMU_DMA_OPTS_PER_CPU_QUEUE,
  IOMMU_DMA_OPTS_SINGLE_QUEUE,
  IOMMU_DOMAIN_DMA,
  IOMMU_DOMAIN_DMA_FQ,
  IOMMU_RESV_MSI,
  IOMMU_RESV_SW_MSI,
  type IommuDomain,
  type IommuPagesList,
  type IommuResvRegion,
  IovaDomain,
  iommuFlushIotlbAll,
  iommuGetResvRegions,
  iommuIsDmaDomain,
  pciHostBridgeResvRegions,
} from "@dmakit/iommu";
import type { DmaSystem } from "./DmaSystem.js";
import { type DmaDeviceState, devDmaState } from "./dmaDevice.js";

/**
 * A hardware MSI doorbell window (`IOMMU_RESV_MSI`) the cookie keeps out of the IOVA space.
 * @see drivers/iommu/dma-iommu.c iova_reserve_iommu_regions
 */
export interface IommuDmaMsiRegion {
  start: number;
  /** Exclusive end. */
  end: number;
}

/**
 * `struct iommu_dma_cookie` for an `IOMMU_COOKIE_DMA_IOVA` domain: the domain's IOVA allocator
 * and, for DMA_FQ domains, its flush queue. Lives in `domain.iovaCookie`. Made by
 * {@link iommuDmaInitDomain}; {@link iommuDmaCookie} finds (or makes) it for a device's domain.
 *
 * Model differences: MSI cookies (`IOMMU_COOKIE_DMA_MSI`, unmanaged domains) and the software MSI
 * doorbell page list (`iommu_dma_get_msi_page`) are not modelled; hardware MSI regions are reserved
 * and listed in {@link msiRegions}. The flush queue carries a page-table freelist as one
 * cookie-local token (see {@link queueFreelist}) because `FlushQueue` takes plain numbers.
 * @see drivers/iommu/dma-iommu.c struct iommu_dma_cookie
 */
export class IommuDmaCookie {
  readonly domain: IommuDomain;
  /** `cookie->iovad`. */
  readonly iovad: IovaDomain;
  /** The machine whose clock runs the flush-queue timer. */
  readonly system: DmaSystem;
  /** `cookie->fq_domain`'s queue: set when the domain is DMA_FQ (lazy invalidation). */
  fq: FlushQueue | null = null;
  /** Hardware MSI windows reserved at init (`cookie_init_hw_msi_region`). */
  readonly msiRegions: IommuDmaMsiRegion[] = [];
  /** Reserved IOVA regions as reserved in `iovad` (host-bridge windows, resv regions), for reports. */
  readonly reserved: Array<{ start: number; end: number; why: string }> = [];
  private readonly freelists = new Map<number, IommuPagesList>();
  private nextFreelist = 1;

  constructor(domain: IommuDomain, iovad: IovaDomain, system: DmaSystem) {
    this.domain = domain;
    this.iovad = iovad;
    this.system = system;
  }

  /** `cookie->fq_domain != NULL`: unmaps are invalidated lazily through {@link fq}. */
  get fqDomain(): boolean {
    return this.fq !== null;
  }

  /**
   * Hands a gather's page-table freelist to the flush queue: returns the `freelist` argument for
   * `FlushQueue.queueIova` (null when empty). The pages are freed when the queue's flush covers
   * the entry (`freePgtablePages` with the token).
   */
  queueFreelist(list: IommuPagesList): number[] | null {
    if (list.isEmpty()) return null;
    const token = this.nextFreelist++;
    this.freelists.set(token, list);
    return [token];
  }

  /** @internal The flush queue's `freePgtablePages` callback. */
  putFreelists(tokens: readonly number[]): void {
    for (const t of tokens) {
      const l = this.freelists.get(t);
      if (l === undefined) continue;
      this.freelists.delete(t);
      l.put();
    }
  }

  /** Page-table freelists waiting in the flush queue. */
  get queuedFreelists(): number {
    return this.freelists.size;
  }
}

/** `dev_iommu_capable`-style query through the device's IOMMU driver (`iommu_ops.capable`). */
function deviceIommuCapable(dev: Device, cap: typeof IOMMU_CAP_DEFERRED_FLUSH): boolean {
  return devIommuGet(dev)?.iommuDev?.ops.capable?.(dev, cap) === true;
}

/**
 * `iommu_dma_init_fq(domain)` with `iommu_dma_init_options`: a per-CPU flush queue (256 entries,
 * 10 ms), or one shared queue (32768 entries, 1 s) when the device's IOTLB shadows flushes
 * (`dev->iommu->shadow_on_flush`), wired to the domain: `flush_iotlb_all`, `free_iova_fast`, and
 * the freeing of page-table pages after the flush.
 */
function iommuDmaInitFq(cookie: IommuDmaCookie, dev: Device): FlushQueue {
  const shadow = devIommuGet(dev)?.shadowOnFlush === true;
  const { domain, iovad, system } = cookie;
  return new FlushQueue({
    clock: system.clock,
    numCpus: system.numCpus,
    queueType: shadow ? IOMMU_DMA_OPTS_SINGLE_QUEUE : IOMMU_DMA_OPTS_PER_CPU_QUEUE,
    flushIotlbAll: () => iommuFlushIotlbAll(domain),
    freeIova: (pfn, pages) => iovad.freeIovaFast(pfn, pages),
    freePgtablePages: (tokens) => cookie.putFreelists(tokens),
  });
}

function reserveRange(cookie: IommuDmaCookie, start: number, end: number, why: string): void {
  const iovad = cookie.iovad;
  const lo = iovad.iovaPfn(start);
  const hi = iovad.iovaPfn(end);
  // Ranges above the model's 2^53 address space cannot be handed out anyway.
  if (lo > Number.MAX_SAFE_INTEGER / iovad.granule) return;
  iovad.reserveIova(lo, Math.min(hi, Math.floor(Number.MAX_SAFE_INTEGER / iovad.granule)));
  cookie.reserved.push({ start, end, why });
}

/**
 * `iova_reserve_iommu_regions(dev, domain)`: reserves, in the IOVA space, the PCI host bridge's
 * windows (`iova_reserve_pci_windows`: those bus addresses route to peer BARs, not the IOMMU) and
 * every reserved region the IOMMU driver reports for the device except `IOMMU_RESV_SW_MSI` ("We
 * ARE the software that manages these!"); `IOMMU_RESV_MSI` windows are also recorded as hardware
 * MSI regions. The gaps between `dma-ranges` inbound windows are not modelled.
 * @see drivers/iommu/dma-iommu.c iova_reserve_iommu_regions, iova_reserve_pci_windows
 */
function iovaReserveIommuRegions(cookie: IommuDmaCookie, dev: Device): void {
  if (devIsPci(dev))
    for (const w of pciHostBridgeResvRegions(dev))
      reserveRange(cookie, w.start, w.start + w.length - 1, "pci-window");
  const regions: IommuResvRegion[] = iommuGetResvRegions(dev);
  for (const r of regions) {
    if (r.type === IOMMU_RESV_SW_MSI) continue;
    reserveRange(cookie, r.start, r.start + r.length - 1, `resv-type-${r.type}`);
    if (r.type === IOMMU_RESV_MSI) cookie.msiRegions.push({ start: r.start, end: r.start + r.length });
  }
}

/**
 * `iommu_dma_init_domain(domain, dev)` (with `iommu_get_dma_cookie`): gives a DMA API domain its
 * IOVA allocator — granule = the smallest page size of `pgsize_bitmap`, first pfn = max(1,
 * aperture_start >> shift) so IOVA 0 is never handed out, per-CPU rcaches — then a flush queue
 * when the domain is DMA_FQ and the IOMMU has `IOMMU_CAP_DEFERRED_FLUSH` (otherwise the domain
 * silently becomes strict `IOMMU_DOMAIN_DMA`), then reserves the device's reserved regions.
 * Stores the cookie in `domain.iovaCookie` and returns it.
 *
 * Called again for another device of the same domain, it only reserves that device's regions; an
 * incompatible granule or start (a different aperture) is `EFAULT` after the kernel's
 * "Incompatible range for DMA domain" warning. `EINVAL` for a domain that is not a DMA API domain or
 * has no page sizes, `ENODEV` when `dev` was never given to `dmaConfigure`.
 *
 * Model placement: `dmaConfigure` (the kernel's `iommu_setup_dma_ops`) does not call this; the
 * iommu-dma entry points call it through {@link iommuDmaCookie} on first use.
 * @see drivers/iommu/dma-iommu.c iommu_dma_init_domain
 */
export function iommuDmaInitDomain(domain: IommuDomain, dev: Device): IommuDmaCookie {
  if (!iommuIsDmaDomain(domain.type))
    throw new KernelError(
      "EINVAL",
      `iommu-dma: ${dev.name}: domain ${domain.name} (type ${domain.type}) is not a DMA API domain`,
    );
  if (domain.pgsizeBitmap === 0)
    throw new KernelError("EINVAL", `iommu-dma: ${dev.name}: domain ${domain.name} has no page sizes`);
  const system = devDmaState(dev).system;
  const order = ffs(domain.pgsizeBitmap);
  const granule = 2 ** order;
  const basePfn = Math.max(1, Math.floor(domain.geometry.apertureStart / granule));
  const existing = domain.iovaCookie;
  if (existing instanceof IommuDmaCookie) {
    if (existing.iovad.granule !== granule || existing.iovad.startPfn !== basePfn) {
      system.log.warning("iommu-dma", "Incompatible range for DMA domain");
      throw new KernelError(
        "EFAULT",
        `iommu-dma: ${dev.name}: domain ${domain.name}: granule ${hex(granule)} start_pfn ${hex(basePfn)} ` +
          `incompatible with the cookie's ${hex(existing.iovad.granule)}/${hex(existing.iovad.startPfn)}`,
      );
    }
    iovaReserveIommuRegions(existing, dev);
    return existing;
  }
  if (existing !== null && existing !== undefined)
    throw new KernelError("EBUSY", `iommu-dma: domain ${domain.name} already has another cookie`);
  const iovad = new IovaDomain(granule, basePfn, {
    numCpus: system.numCpus,
    clock: system.clock,
    log: system.log,
    name: `iova:${domain.name}`,
  });
  const cookie = new IommuDmaCookie(domain, iovad, system);
  // If the FQ fails we can simply fall back to strict mode.
  if (domain.type === IOMMU_DOMAIN_DMA_FQ) {
    if (deviceIommuCapable(dev, IOMMU_CAP_DEFERRED_FLUSH)) cookie.fq = iommuDmaInitFq(cookie, dev);
    else domain.type = IOMMU_DOMAIN_DMA;
  }
  iovaReserveIommuRegions(cookie, dev);
  domain.iovaCookie = cookie;
  return cookie;
}

/**
 * The cookie of the domain `dev` maps through (`iommu_get_dma_domain(dev)->iova_cookie`), made by
 * {@link iommuDmaInitDomain} on first use. `ENODEV` when the device does not map through
 * iommu-dma (`!use_dma_iommu(dev)`).
 * Model-only accessor of @see drivers/iommu/dma-iommu.c struct iommu_dma_cookie
 */
export function iommuDmaCookie(dev: Device): IommuDmaCookie {
  return iommuDmaCookieOf(devDmaState(dev), dev);
}

/** @internal {@link iommuDmaCookie} with the device's DMA state already looked up (hot paths). */
export function iommuDmaCookieOf(s: DmaDeviceState, dev: Device): IommuDmaCookie {
  const domain = s.domain;
  if (!s.dmaIommu || domain === null)
    throw new KernelError("ENODEV", `iommu-dma: ${dev.name}: device does not map through iommu-dma`);
  const c = domain.iovaCookie;
  if (c instanceof IommuDmaCookie) return c;
  return iommuDmaInitDomain(domain, dev);
}

/**
 * `iommu_put_dma_cookie(domain)`: tears down the flush queue (freeing queued page-table pages) and
 * the IOVA space (`put_iova_domain`), and clears `domain.iovaCookie`. Queued IOVAs are dropped
 * with the IOVA space, as in the kernel.
 * @see drivers/iommu/dma-iommu.c iommu_put_dma_cookie
 */
export function iommuPutDmaCookie(domain: IommuDomain): void {
  const c = domain.iovaCookie;
  if (!(c instanceof IommuDmaCookie)) return;
  c.fq?.destroy();
  c.fq = null;
  c.iovad.putIovaDomain();
  domain.iovaCookie = null;
}
