import { type Device, KernelLog } from "@dmakit/core";
import type { IommuDomainOps } from "./IommuDomainOps.js";
import type { IommuOps } from "./IommuOps.js";

/**
 * `struct iommu_domain_geometry`: the IOVA window the domain can translate. With `forceAperture`,
 * DMA outside `[apertureStart, apertureEnd]` is impossible and dma-iommu never allocates there.
 * @see include/linux/iommu.h struct iommu_domain_geometry
 */
export interface IommuDomainGeometry {
  apertureStart: number;
  /** Last IOVA (inclusive). */
  apertureEnd: number;
  forceAperture: boolean;
}

/**
 * `iommu_fault_handler_t`: called by `report_iommu_fault`; returns 0 when the fault was handled or
 * `-ENOSYS` to let the IOMMU driver print its default message (any other value is passed back).
 * `flags` holds `IOMMU_FAULT_READ`/`IOMMU_FAULT_WRITE`.
 * @see include/linux/iommu.h iommu_fault_handler_t
 */
export type IommuFaultHandler = (
  domain: IommuDomain,
  dev: Device,
  iova: number,
  flags: number,
  token: unknown,
) => number;

/**
 * How an implementation constructs a domain.
 * Model-only: the kernel's drivers fill `struct iommu_domain` fields after allocating it.
 */
export interface IommuDomainInit {
  /** An `IOMMU_DOMAIN_*` type. */
  type: number;
  ops: IommuDomainOps;
  /** The `iommu_ops` that allocated it (`domain->owner`); null for core-made domains. */
  owner?: IommuOps | null;
  /** Page sizes this domain maps with; 0 for non-paging domains. */
  pgsizeBitmap?: number;
  geometry?: IommuDomainGeometry;
  /** Name for messages and reports, e.g. `"smmu0/s1-asid3"`. */
  name?: string;
  /** The machine's kernel log, where core messages about this domain go (default: a private log). */
  log?: KernelLog;
}

/**
 * `struct iommu_domain`: one translation context (a page table, an identity map, or "block all")
 * that devices are attached to. Implementations construct it (or a subclass carrying their private
 * state, the model's `container_of`) in `domainAllocPaging` / `domainAlloc`; the core sets `type`
 * refinements (DMA → DMA_FQ), the fault handler and the IOVA cookie.
 * @see include/linux/iommu.h struct iommu_domain
 */
export class IommuDomain {
  /** `IOMMU_DOMAIN_*`; dma-iommu may upgrade DMA to DMA_FQ and back. */
  type: number;
  readonly ops: IommuDomainOps;
  /** `domain->owner`: the `iommu_ops` that made it. */
  owner: IommuOps | null;
  /** `domain->pgsize_bitmap`. */
  pgsizeBitmap: number;
  /** `domain->geometry`. */
  geometry: IommuDomainGeometry;
  /** `domain->handler` (see `iommuSetFaultHandler`). */
  handler: IommuFaultHandler | null = null;
  /** `domain->handler_token`. */
  handlerToken: unknown = null;
  /** `domain->iova_cookie`: dma-iommu's per-domain state (its IOVA allocator, flush queue). */
  iovaCookie: unknown = null;
  /** For messages and reports. */
  name: string;
  /** Where `pr_err`/WARN lines about this domain go; the core points it at the machine's log. */
  log: KernelLog;

  constructor(init: IommuDomainInit) {
    this.type = init.type;
    this.ops = init.ops;
    this.owner = init.owner ?? null;
    this.pgsizeBitmap = init.pgsizeBitmap ?? 0;
    this.geometry = init.geometry ?? { apertureStart: 0, apertureEnd: 0, forceAperture: false };
    this.name = init.name ?? "domain";
    this.log = init.log ?? new KernelLog();
  }

  toString(): string {
    return this.name;
  }
}
