import { type Device, devIsPci, hex, KernelError, type KernelLog } from "@dmakit/core";
import {
  devIommuPrivGet,
  devIommuPrivSet,
  IOMMU_CAP_CACHE_COHERENCY,
  IOMMU_CAP_DEFERRED_FLUSH,
  IOMMU_CAP_ENFORCE_CACHE_COHERENCY,
  IOMMU_DOMAIN_BLOCKED,
  IOMMU_DOMAIN_IDENTITY,
  type IommuCap,
  type IommuDevice,
  IommuDomain,
  type IommuGroup,
  type IommuOps,
  type IommuSubsystem,
  type PgtableMemory,
  pciDeviceGroup,
} from "@dmakit/iommu";
import { DmarDomain, intelIommuDomainOps } from "./DmarDomain.js";
import type { DmarHardware } from "./DmarHardware.js";
import { descPfn, tableViewsFor } from "./internal/TableViews.js";
import {
  agawToWidth,
  CONTEXT_TT_MULTI_LEVEL,
  CONTEXT_TT_PASS_THROUGH,
  DMA_CCMD_DEVICE_INVL_HI,
  DMA_CCMD_DOMAIN_INVL_HI,
  DMA_CCMD_GLOBAL_INVL_HI,
  DMA_CCMD_ICC_HI,
  DMA_FRCD_F,
  DMA_FSTS_PFO,
  DMA_FSTS_PPF,
  DMA_FSTS_PRO,
  DMA_GCMD_SRTP,
  DMA_GCMD_TE,
  DMA_GSTS_RTPS,
  DMA_TLB_DSI_FLUSH_HI,
  DMA_TLB_GLOBAL_FLUSH_HI,
  DMA_TLB_IH_NONLEAF,
  DMA_TLB_IVT_HI,
  DMA_TLB_PSI_FLUSH_HI,
  DMAR_CCMD_REG,
  DMAR_FSTS_REG,
  DMAR_GCMD_REG,
  DMAR_GSTS_REG,
  DMAR_RTADDR_REG,
  dmaFrcdFaultReason,
  dmaFrcdSourceId,
  dmaFrcdType,
  dmaFstsFaultRecordIndex,
  dmarGetFaultReason,
  FLPT_DEFAULT_DID,
  IDA_START_DID,
  PRIMARY_FAULT_REG_LEN,
  widthToAgaw,
} from "./vtdConstants.js";

/**
 * `struct device_domain_info`: the driver's per-device state (`dev_iommu_priv_get(dev)`).
 * @see drivers/iommu/intel/iommu.h struct device_domain_info
 */
export interface DeviceDomainInfo {
  readonly dev: Device;
  readonly bus: number;
  readonly devfn: number;
  readonly iommu: IntelIommu;
  /** The paging domain attached, or null (identity, blocked, none). */
  domain: DmarDomain | null;
  /** `domain_attached`: a context entry is programmed for the device. */
  domainAttached: boolean;
}

/**
 * How an {@link IntelIommu} driver instance is created.
 * Model-only: what the driver instance is built from (the kernel parses the DMAR table).
 */
export interface IntelIommuOptions {
  /** The unit it drives. */
  hardware: DmarHardware;
  /** Where root, context and second-level table pages come from (in the unit's `phys`). */
  mem: PgtableMemory;
  /** The machine's kernel log ("DMAR: ..." lines). */
  log: KernelLog;
  /** `intel_iommu=sp_off`: no superpages even if the unit has them. Default false. */
  superpageOff?: boolean;
  /** DRHD device scope: which devices this unit translates; default all PCI devices (INCLUDE_ALL). */
  scope?: (dev: Device) => boolean;
}

/**
 * IOTLB invalidation granularity for {@link IntelIommu.flushIotlb}.
 * The model names the `DMA_TLB_*_FLUSH` granularities by strings.
 * @see drivers/iommu/intel/iommu.h DMA_TLB_GLOBAL_FLUSH, DMA_TLB_DSI_FLUSH, DMA_TLB_PSI_FLUSH
 */
export type VtdFlushType = "global" | "dsi" | "psi";

const TWO32 = 4294967296;

/**
 * `struct intel_iommu` plus its `iommu_ops`: the kernel driver for one {@link DmarHardware} unit in
 * legacy mode. Construction does what `init_dmars` and `intel_iommu_init` do for the unit: decode
 * `cap`/`ecap` (`agaw` from SAGAW, superpage level from SLLPS, number of domain ids), allocate the
 * root table, program it (`RTADDR`, `GCMD.SRTP`), globally invalidate the context cache and IOTLB
 * with register-based invalidation, install the fault handler and enable translation.
 *
 * Register it with the IOMMU core as {@link IntelIommu.iommuDevice}; its `ops` are `intel_iommu_ops`.
 * Model differences: legacy mode only (no scalable mode, PASID tables or first-level tables), no
 * queued invalidation, no RMRRs, no ATS.
 * @see drivers/iommu/intel/iommu.c init_dmars, intel_iommu_ops
 */
export class IntelIommu {
  readonly name: string;
  readonly hw: DmarHardware;
  readonly mem: PgtableMemory;
  readonly log: KernelLog;
  /** `iommu->agaw` (`iommu_calculate_agaw`: the widest SAGAW ≤ 57 bits). */
  readonly agaw: number;
  /** `iommu->msagaw` (`iommu_calculate_max_sagaw`). */
  readonly msagaw: number;
  /** `iommu_superpage_capability(iommu, false)`. */
  readonly superpageLevel: number;
  readonly ops: IommuOps;
  readonly iommuDevice: IommuDevice;
  /** `identity_domain`: legacy pass-through contexts (TT = 2, DID = FLPT_DEFAULT_DID). */
  readonly identityDomain: IommuDomain;
  /** `blocking_domain`: clears the device's context entry. */
  readonly blockedDomain: IommuDomain;
  private readonly scope: (dev: Device) => boolean;
  private readonly rootPfn: number;
  private readonly contextPfn = new Float64Array(256).fill(-1);
  private readonly didUsed: Uint8Array;
  private domainSeq = 0;

  constructor(options: IntelIommuOptions) {
    const hw = options.hardware;
    this.hw = hw;
    this.name = hw.name;
    this.mem = options.mem;
    this.log = options.log;
    this.scope = options.scope ?? (() => true);
    if (options.mem.phys !== hw.phys)
      throw new KernelError("EINVAL", `intel-iommu: ${this.name}: table memory is not the unit's memory`);
    this.agaw = calculateAgaw(hw.sagaw, 57);
    this.msagaw = calculateAgaw(hw.sagaw, 64);
    if (this.agaw < 0) throw new KernelError("ENODEV", `intel-iommu: ${this.name}: no supported SAGAW`);
    this.superpageLevel = options.superpageOff === true ? 0 : hw.superpages;
    this.didUsed = new Uint8Array(hw.ndoms);
    this.didUsed[0] = 1;
    this.didUsed[FLPT_DEFAULT_DID] = 1;

    const root = this.mem.allocTablePage(0);
    if (root === null) {
      this.log.err("DMAR", `Allocating root entry for ${this.name} failed`);
      throw new KernelError("ENOMEM", `intel-iommu: ${this.name}: no page for the root table`);
    }
    this.rootPfn = root;
    this.setRootEntry();
    hw.onFaultEvent = () => this.dmarFault();
    this.writel(DMAR_GCMD_REG, DMA_GCMD_TE);
    this.ops = {
      name: "intel-iommu",
      pgsizeBitmap:
        0x1000 | (this.superpageLevel >= 1 ? 0x20_0000 : 0) | (this.superpageLevel >= 2 ? 0x4000_0000 : 0),
      capable: (dev: Device, cap: IommuCap) => this.capable(dev, cap),
      probeDevice: (dev: Device) => this.probeDevice(dev),
      releaseDevice: (dev: Device) => this.releaseDevice(dev),
      deviceGroup: (dev: Device, iommu: IommuSubsystem): IommuGroup => pciDeviceGroup(dev, iommu),
      defDomainType: () => 0,
      domainAllocPaging: (dev: Device) => this.domainAllocPaging(dev),
      defaultDomainOps: intelIommuDomainOps,
    };
    this.identityDomain = new IommuDomain({
      type: IOMMU_DOMAIN_IDENTITY,
      ops: { attachDev: (_d, dev) => this.identityAttach(dev) },
      owner: this.ops,
      name: `${this.name}/identity`,
      log: this.log,
    });
    this.blockedDomain = new IommuDomain({
      type: IOMMU_DOMAIN_BLOCKED,
      ops: { attachDev: (_d, dev) => this.deviceBlockTranslation(dev) },
      owner: this.ops,
      name: `${this.name}/blocked`,
      log: this.log,
    });
    this.ops.identityDomain = this.identityDomain;
    this.ops.blockedDomain = this.blockedDomain;
    this.iommuDevice = { name: this.name, ops: this.ops, hardware: hw, maxPasids: 0, dev: null };
  }

  /** Width in bits of {@link agaw}. */
  get agawWidth(): number {
    return agawToWidth(this.agaw);
  }

  /** Domain ids in use (including the reserved 0 and FLPT_DEFAULT_DID). */
  get domainIdsInUse(): number {
    let n = 0;
    for (let i = 0; i < this.didUsed.length; i++) n += this.didUsed[i] as number;
    return n;
  }

  /** Root and context table pages held by the unit's driver (not the domains' tables). */
  get tablePages(): number {
    let n = 1;
    for (let b = 0; b < 256; b++) if ((this.contextPfn[b] as number) >= 0) n++;
    return n;
  }

  private writel(off: number, v: number): void {
    this.hw.writel(off, v);
  }

  private writeq(off: number, lo: number, hi: number): void {
    this.hw.writel(off, lo);
    this.hw.writel(off + 4, hi);
  }

  /** `IOMMU_WAIT_OP`: polls until `(readl(off) & bit) === want`; the unit completes on the poll. */
  private waitOp(off: number, bit: number, set: boolean): number {
    for (let spins = 0; spins < 1000; spins++) {
      const v = this.hw.readl(off);
      if (((v & bit) !== 0) === set) return v;
    }
    throw new KernelError("EIO", `intel-iommu: ${this.name}: DMAR hardware is malfunctioning`);
  }

  /** `iommu_set_root_entry`: RTADDR + SRTP, then global context-cache and IOTLB invalidation. */
  private setRootEntry(): void {
    const addr = this.rootPfn * 4096;
    this.writeq(DMAR_RTADDR_REG, addr % TWO32, Math.floor(addr / TWO32));
    this.writel(DMAR_GCMD_REG, this.hw.readl(DMAR_GCMD_REG) | DMA_GCMD_SRTP);
    this.waitOp(DMAR_GSTS_REG, DMA_GSTS_RTPS, true);
    this.flushContext(0, 0, 0, "global");
    this.flushIotlb(0, 0, 0, "global");
  }

  /**
   * `__iommu_flush_context(iommu, did, source_id, function_mask, type)`: register-based
   * context-cache invalidation; waits for `CCMD.ICC` to clear.
   */
  flushContext(did: number, sid: number, fm: number, type: "global" | "domain" | "device"): void {
    const gran =
      type === "global"
        ? DMA_CCMD_GLOBAL_INVL_HI
        : type === "domain"
          ? DMA_CCMD_DOMAIN_INVL_HI
          : DMA_CCMD_DEVICE_INVL_HI;
    const lo =
      type === "global" ? 0 : type === "domain" ? did & 0xffff : ((sid & 0xffff) << 16) | (did & 0xffff);
    const hi = gran | DMA_CCMD_ICC_HI | (type === "device" ? fm & 3 : 0);
    this.writeq(DMAR_CCMD_REG, lo >>> 0, hi >>> 0);
    this.waitOp(DMAR_CCMD_REG + 4, DMA_CCMD_ICC_HI, false);
  }

  /**
   * `__iommu_flush_iotlb(iommu, did, addr, size_order, type)`: register-based IOTLB invalidation
   * (global, domain-selective, or page-selective over `2^sizeOrder` pages at `addr`, with the
   * invalidation hint `ih`); waits for `IOTLB.IVT` to clear and logs "Flush IOTLB failed" when the
   * unit reports no granularity.
   */
  flushIotlb(did: number, addr: number, sizeOrder: number, type: VtdFlushType, ih = false): void {
    const off = this.hw.iotlbRegOffset;
    let hi = DMA_TLB_IVT_HI;
    if (type === "global") hi |= DMA_TLB_GLOBAL_FLUSH_HI;
    else if (type === "dsi") hi |= DMA_TLB_DSI_FLUSH_HI | (did & 0xffff);
    else {
      hi |= DMA_TLB_PSI_FLUSH_HI | (did & 0xffff);
      const lo = ((addr % TWO32) + (sizeOrder & 0x3f) + (ih ? DMA_TLB_IH_NONLEAF : 0)) >>> 0;
      this.writeq(off, lo, Math.floor(addr / TWO32));
    }
    this.writeq(off + 8, 0, hi >>> 0);
    const v = this.waitOp(off + 12, DMA_TLB_IVT_HI, false);
    if (((v >>> 25) & 3) === 0) this.log.err("DMAR", "Flush IOTLB failed");
  }

  // ------------------------------------------------------------------ iommu_ops

  /** `intel_iommu_capable(dev, cap)`. */
  capable(_dev: Device, cap: IommuCap): boolean {
    if (cap === IOMMU_CAP_CACHE_COHERENCY || cap === IOMMU_CAP_DEFERRED_FLUSH) return true;
    if (cap === IOMMU_CAP_ENFORCE_CACHE_COHERENCY) return this.hw.ecapSnoopControl;
    return false;
  }

  /**
   * `intel_iommu_probe_device(dev)`: PCI devices in the unit's scope get a `device_domain_info`
   * with their bus/devfn (the requester id the hardware sees). `ENODEV` otherwise.
   */
  probeDevice(dev: Device): IommuDevice {
    if (!devIsPci(dev) || !this.scope(dev))
      throw new KernelError("ENODEV", `intel-iommu: ${dev.name} is not a PCI device behind ${this.name}`);
    const info: DeviceDomainInfo = {
      dev,
      bus: dev.busNr,
      devfn: dev.devfn,
      iommu: this,
      domain: null,
      domainAttached: false,
    };
    devIommuPrivSet(dev, info);
    return this.iommuDevice;
  }

  /** `intel_iommu_release_device(dev)`: blocks the device's DMA and drops its info. */
  releaseDevice(dev: Device): void {
    this.deviceBlockTranslation(dev);
    devIommuPrivSet(dev, null);
  }

  /**
   * `intel_iommu_domain_alloc_paging_flags(dev, 0, NULL)` in legacy mode: a second-level paging
   * domain with the unit's agaw, `gaw = min(agaw width, MGAW)`, 4K (+2M, +1G) page sizes and an
   * aperture of `[0, 2^gaw - 1]`. `ENODEV` for a device not probed by this unit.
   */
  domainAllocPaging(dev: Device): DmarDomain {
    const info = this.info(dev);
    return new DmarDomain({
      iommu: info.iommu,
      owner: this.ops,
      log: this.log,
      name: `${this.name}/sl${this.domainSeq++}`,
    });
  }

  private info(dev: Device): DeviceDomainInfo {
    const info = devIommuPrivGet<DeviceDomainInfo>(dev);
    if (info === null)
      throw new KernelError("ENODEV", `intel-iommu: ${dev.name} was not probed by ${this.name}`);
    return info;
  }

  /** `domain_attach_iommu(domain, iommu)`: a domain id for `domain` on this unit (refcounted). */
  private domainAttachIommu(domain: DmarDomain): void {
    const cur = domain.iommus.get(this);
    if (cur !== undefined) {
      cur.refcnt++;
      return;
    }
    let did = -1;
    for (let i = IDA_START_DID; i < this.didUsed.length; i++)
      if (this.didUsed[i] === 0) {
        did = i;
        break;
      }
    if (did < 0) {
      this.log.err("DMAR", `${this.name}: No free domain ids`);
      throw new KernelError(
        "ENOSPC",
        `intel-iommu: ${this.name}: all ${this.didUsed.length} domain ids in use`,
      );
    }
    this.didUsed[did] = 1;
    domain.iommus.set(this, { iommu: this, did, refcnt: 1 });
  }

  /** `domain_detach_iommu(domain, iommu)`. */
  private domainDetachIommu(domain: DmarDomain): void {
    const cur = domain.iommus.get(this);
    if (cur === undefined) return;
    if (--cur.refcnt === 0) {
      this.didUsed[cur.did] = 0;
      domain.iommus.delete(this);
    }
  }

  /** The domain id `domain` has on this unit, or -1. */
  domainId(domain: DmarDomain): number {
    return domain.iommus.get(this)?.did ?? -1;
  }

  /** `iommu_context_addr(iommu, bus, devfn, alloc)`: the context table page for `bus`, or -1. */
  private contextTable(bus: number, alloc: boolean): number {
    let pfn = this.contextPfn[bus] as number;
    if (pfn >= 0 || !alloc) return pfn;
    const page = this.mem.allocTablePage(0);
    if (page === null) return -1;
    pfn = page;
    this.contextPfn[bus] = pfn;
    const rv = tableViewsFor(this.hw.phys).get(this.rootPfn);
    rv[bus * 4 + 1] = (pfn / 1048576) | 0;
    rv[bus * 4] = ((pfn % 1048576) * 4096 + 1) >>> 0;
    return pfn;
  }

  private writeContext(
    bus: number,
    devfn: number,
    did: number,
    pgdPfn: number,
    aw: number,
    tt: number,
  ): void {
    const ctp = this.contextTable(bus, true);
    if (ctp < 0)
      throw new KernelError(
        "ENOMEM",
        `intel-iommu: ${this.name}: no page for bus ${hex(bus)}'s context table`,
      );
    const cv = tableViewsFor(this.hw.phys).get(ctp);
    const w = devfn * 4;
    // context_clear_entry, then hi (AW, DID) before lo (address, TT, present).
    cv[w + 2] = ((did & 0xffff) << 8) | (aw & 7);
    cv[w + 3] = 0;
    cv[w + 1] = pgdPfn >= 0 ? (pgdPfn / 1048576) | 0 : 0;
    cv[w] = ((pgdPfn >= 0 ? (pgdPfn % 1048576) * 4096 : 0) + (tt << 2) + 1) >>> 0;
  }

  /**
   * `dmar_domain_attach_device(domain, dev)` after `device_block_translation`: checks
   * `paging_domain_compatible` (`EINVAL`), takes a domain id (`ENOSPC`), and programs the legacy
   * context entry: DID, second-level pointer, AW = agaw, TT = multi-level, fault reporting on,
   * present. A not-present → present change needs no cache flush (the unit does not cache
   * non-present entries).
   */
  attachPagingDomain(domain: DmarDomain, info: DeviceDomainInfo): void {
    if (
      domain.iommuSuperpage !== this.superpageLevel ||
      domain.agaw > this.agaw ||
      domain.gaw > Math.min(this.agawWidth, this.hw.mgaw)
    )
      throw new KernelError(
        "EINVAL",
        `intel-iommu: ${domain.name} (agaw ${domain.agaw}, superpage ${domain.iommuSuperpage}) is incompatible with ${this.name} (agaw ${this.agaw}, superpage ${this.superpageLevel})`,
      );
    this.deviceBlockTranslation(info.dev);
    this.domainAttachIommu(domain);
    const did = this.domainId(domain);
    try {
      this.writeContext(
        info.bus,
        info.devfn,
        did,
        domain.pgtable.pgdPfn,
        domain.agaw,
        CONTEXT_TT_MULTI_LEVEL,
      );
    } catch (e) {
      this.domainDetachIommu(domain);
      throw e;
    }
    info.domain = domain;
    info.domainAttached = true;
    domain.devices.push(info);
  }

  /** `identity_domain_attach_dev` in legacy mode: a pass-through context entry. */
  identityAttach(dev: Device): void {
    const info = this.info(dev);
    this.deviceBlockTranslation(dev);
    this.writeContext(info.bus, info.devfn, FLPT_DEFAULT_DID, -1, this.msagaw, CONTEXT_TT_PASS_THROUGH);
    info.domainAttached = true;
  }

  /**
   * `device_block_translation(dev)`: clears the context entry, then device-selective context-cache
   * and domain-selective IOTLB invalidation (`intel_context_flush_no_pasid`), and releases the
   * domain id reference. From now on the device's DMA faults with reason 0x2.
   */
  deviceBlockTranslation(dev: Device): void {
    const info = this.info(dev);
    if (!info.domainAttached) return;
    const ctp = this.contextTable(info.bus, false);
    if (ctp >= 0) {
      const cv = tableViewsFor(this.hw.phys).get(ctp);
      const w = info.devfn * 4;
      const did = ((cv[w + 2] as number) >>> 8) & 0xffff;
      cv[w] = 0;
      cv[w + 1] = 0;
      cv[w + 2] = 0;
      cv[w + 3] = 0;
      this.flushContext(did, (info.bus << 8) | info.devfn, 0, "device");
      this.flushIotlb(did, 0, 0, "dsi");
    }
    info.domainAttached = false;
    const domain = info.domain;
    if (domain === null) return;
    const i = domain.devices.indexOf(info);
    if (i >= 0) domain.devices.splice(i, 1);
    this.domainDetachIommu(domain);
    info.domain = null;
  }

  /**
   * `dmar_fault(irq, iommu)`: the fault interrupt handler. Reads `FSTS`, walks the FRCD registers
   * from `FSTS.FRI` while F is set, logs each record as the kernel does
   * (`[DMA Read] Request device [bb:dd.f] PASID ffffffff fault addr ... [fault reason 06] ...`),
   * clears F, and finally writes PFO|PPF|PRO to FSTS. Returns the number of records handled.
   * Runs from the unit's fault event when the unit has a clock; call it directly otherwise.
   * @see drivers/iommu/intel/dmar.c dmar_fault, dmar_fault_do_one
   */
  dmarFault(): number {
    const fsts = this.hw.readl(DMAR_FSTS_REG);
    if (fsts !== 0) this.log.err("DMAR", `DRHD: handling fault status reg ${fsts.toString(16)}`);
    if ((fsts & DMA_FSTS_PPF) === 0) return 0;
    let index = dmaFstsFaultRecordIndex(fsts);
    const reg = this.hw.faultRegOffset;
    let n = 0;
    for (;;) {
      const at = reg + index * PRIMARY_FAULT_REG_LEN;
      const data = this.hw.readl(at + 12);
      if ((data & DMA_FRCD_F) === 0) break;
      const reason = dmaFrcdFaultReason(data);
      const type = dmaFrcdType(data);
      const sid = dmaFrcdSourceId(this.hw.readl(at + 8));
      const addr = descPfn(this.hw.readl(at), this.hw.readl(at + 4)) * 4096;
      this.hw.writel(at + 12, DMA_FRCD_F);
      this.log.err(
        "DMAR",
        `[${type ? "DMA Read" : "DMA Write"}] Request device [${(sid >>> 8).toString(16).padStart(2, "0")}:${((sid >>> 3) & 0x1f).toString(16).padStart(2, "0")}.${sid & 7}] PASID ffffffff fault addr ${addr.toString(16)} [fault reason ${reason.toString().padStart(2, "0")}] ${dmarGetFaultReason(reason)}`,
      );
      n++;
      index++;
      if (index >= this.hw.nfr) index = 0;
    }
    this.hw.writel(DMAR_FSTS_REG, DMA_FSTS_PFO | DMA_FSTS_PPF | DMA_FSTS_PRO);
    return n;
  }
}

/** `__iommu_calculate_agaw(iommu, max_gaw)`: the largest supported agaw not above `maxGaw` bits. */
function calculateAgaw(sagaw: number, maxGaw: number): number {
  for (let agaw = widthToAgaw(maxGaw); agaw >= 0; agaw--) if ((sagaw & (1 << agaw)) !== 0) return agaw;
  return -1;
}
