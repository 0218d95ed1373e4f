import {
  type Device,
  devIsPci,
  KernelError,
  type KernelLog,
  PlatformDevice,
  type SimClock,
} from "@dmakit/core";
import {
  ARM_64_LPAE_S1,
  ARM_64_LPAE_S2,
  allocIoPgtableOps,
  devIommuFwspecGet,
  devIommuPrivGet,
  devIommuPrivSet,
  freeIoPgtableOps,
  genericDeviceGroup,
  IOMMU_CAP_CACHE_COHERENCY,
  IOMMU_CAP_DEFERRED_FLUSH,
  IOMMU_CAP_NOEXEC,
  IOMMU_DOMAIN_BLOCKED,
  IOMMU_DOMAIN_IDENTITY,
  IOMMU_DOMAIN_NESTED,
  IOMMU_DOMAIN_UNMANAGED,
  IOMMU_FAULT_READ,
  IOMMU_FAULT_WRITE,
  type IommuCap,
  type IommuDevice,
  type IommuDomain,
  type IommuDomainOps,
  type IommuFlushOps,
  type IommuGroup,
  type IommuIotlbGather,
  type IommuOps,
  type IommuSubsystem,
  type IoPgtableCfg,
  type IoPgtableRegistry,
  iommuIotlbGatherAddPage,
  type PgtableMemory,
  pciDeviceGroup,
  reportIommuFault,
} from "@dmakit/iommu";
import type { ArmLpaeIoPgtable, ArmLpaeS1Cfg, ArmLpaeS2Cfg } from "./ArmLpaeIoPgtable.js";
import { ArmSmmuDomain } from "./ArmSmmuDomain.js";
import { ArmSmmuV3Hw, CR0_CMDQEN, CR0_EVTQEN, CR0_SMMUEN } from "./ArmSmmuV3Hw.js";
import {
  CMDQ_OP_CFGI_ALL,
  CMDQ_OP_CFGI_CD,
  CMDQ_OP_CFGI_STE,
  CMDQ_OP_CMD_SYNC,
  CMDQ_OP_TLBI_NH_ALL,
  CMDQ_OP_TLBI_NH_ASID,
  CMDQ_OP_TLBI_NH_VA,
  CMDQ_OP_TLBI_NSNH_ALL,
  CMDQ_OP_TLBI_S2_IPA,
  CMDQ_OP_TLBI_S12_VMALL,
  CMDQ_TLBI_RANGE_NUM_MAX,
  CTXDESC_CD_0_A_HI,
  CTXDESC_CD_0_AA64_HI,
  CTXDESC_CD_0_ASET_HI,
  CTXDESC_CD_0_R_HI,
  CTXDESC_CD_0_TCR_EPD1,
  CTXDESC_CD_0_V,
  EVT_ID_ACCESS_FAULT,
  EVT_ID_ADDR_SIZE_FAULT,
  EVT_ID_PERMISSION_FAULT,
  EVT_ID_TRANSLATION_FAULT,
  Q_OVERFLOW_FLAG,
  STRTAB_STE_0_CFG_ABORT,
  STRTAB_STE_0_CFG_BYPASS,
  STRTAB_STE_0_CFG_NESTED,
  STRTAB_STE_0_CFG_S1_TRANS,
  STRTAB_STE_0_CFG_S2_TRANS,
  STRTAB_STE_0_V,
  STRTAB_STE_2_S2AA64_HI,
  STRTAB_STE_2_S2PTW_HI,
  STRTAB_STE_2_S2R_HI,
} from "./armSmmuV3Defs.js";

const TWO32 = 0x100000000;
const PAGE = 4096;

/**
 * `IOMMU_HWPT_ALLOC_NEST_PARENT`: allocate a stage-2 domain that nested domains can sit on.
 * @see include/uapi/linux/iommufd.h enum iommufd_hwpt_alloc_flags
 */
export const IOMMU_HWPT_ALLOC_NEST_PARENT = 1 << 0;
/**
 * `CMDQ_MAX_TLBI_OPS`: without range invalidation, larger ranges flush the whole context.
 * @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h
 */
export const CMDQ_MAX_TLBI_OPS = 1 << (12 - 3);

/**
 * Options of {@link ArmSmmuV3}: the probed `SMMU_IDR*` features and the machine's memory.
 * Model-only: stands for the `SMMU_IDR*` registers the driver probes (arm_smmu_device_hw_probe).
 */
export interface ArmSmmuV3Options {
  /** Instance name, e.g. `"smmu0"`. */
  name: string;
  /** Where stream table, CDs, queues and page tables are allocated. */
  mem: PgtableMemory;
  log: KernelLog;
  clock?: SimClock;
  /** `SMMU_IDR1.SIDSIZE`: StreamID bits (linear stream table of 2^sidBits STEs); default 8. */
  sidBits?: number;
  /** Command queue LOG2SIZE (default 8). */
  cmdqLog2Size?: number;
  /** Event queue LOG2SIZE (default 7). */
  evtqLog2Size?: number;
  /** `smmu->ias` (default 48). */
  ias?: number;
  /** `smmu->oas` (default 48). */
  oas?: number;
  /** `smmu->pgsize_bitmap` (default 4K | 2M | 1G). */
  pgsizeBitmap?: number;
  /** ARM_SMMU_FEAT_TRANS_S1 (default true). */
  stage1?: boolean;
  /** ARM_SMMU_FEAT_TRANS_S2 (default true). */
  stage2?: boolean;
  /** ARM_SMMU_FEAT_RANGE_INV (default true): range TLBI commands. */
  rangeInv?: boolean;
  /** IOTLB entries (default 256). */
  iotlbCapacity?: number;
  /** Registry the page-table formats are taken from (default: the core's default). */
  registry?: IoPgtableRegistry;
}

/**
 * `struct arm_smmu_master`: per-device driver state.
 * @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h struct arm_smmu_master
 */
export interface ArmSmmuMaster {
  readonly dev: Device;
  /** StreamIDs of the device. */
  readonly sids: readonly number[];
  /** The page holding this master's CD table (one CD, S1CDMAX = 0); -1 until stage 1 is used. */
  cdPfn: number;
  domain: ArmSmmuDomain | null;
}

/**
 * `struct arm_smmu_device` with the driver's `iommu_ops`, `iommu_domain_ops` and
 * `iommu_flush_ops`: the kernel half of the SMMUv3 model. It builds the stream table, context
 * descriptors and queues in simulated RAM, programs the {@link ArmSmmuV3Hw} registers, writes STEs
 * and CDs on attach, and invalidates through the command queue (`CMD_TLBI_*`, `CMD_CFGI_*`,
 * `CMD_SYNC`) exactly when the kernel driver does; faults come back through the event queue
 * ({@link ArmSmmuV3.evtqThread}).
 *
 * Model differences: linear stream table only; one CD per master (no PASID/SVA, no ATS/PRI); STE
 * updates are written V-last rather than with the kernel's hitless update sequence; the event
 * thread passes translation-class events to `report_iommu_fault` (the kernel's SMMUv3 only logs
 * non-stall events; SMMUv2 reports them) so domain fault handlers see them.
 * @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c
 */
export class ArmSmmuV3 {
  readonly name: string;
  readonly hw: ArmSmmuV3Hw;
  readonly log: KernelLog;
  readonly mem: PgtableMemory;
  readonly ias: number;
  readonly oas: number;
  readonly pgsizeBitmap: number;
  readonly features: { readonly stage1: boolean; readonly stage2: boolean; readonly rangeInv: boolean };
  /** `struct iommu_device` for the core. */
  readonly iommu: IommuDevice;
  /** `arm_smmu_ops`. */
  readonly ops: IommuOps;
  /** `arm_smmu_domain_ops` (paging, identity, blocked and nested domains share it). */
  readonly domainOps: IommuDomainOps;
  /** `arm_smmu_flush_ops`, the io-pgtable TLB callbacks (cookie: the domain). */
  readonly flushOps: IommuFlushOps;
  readonly identityDomain: ArmSmmuDomain;
  readonly blockedDomain: ArmSmmuDomain;

  private readonly registry: IoPgtableRegistry | undefined;
  private readonly sidBits: number;
  private readonly asids = new Set<number>();
  private readonly vmids = new Set<number>();
  private readonly masters = new Map<number, ArmSmmuMaster>();
  private readonly strtabPfn: number;
  private readonly strtabOrder: number;
  private readonly cmdqPfn: number;
  private readonly evtqPfn: number;

  constructor(options: ArmSmmuV3Options) {
    this.name = options.name;
    this.log = options.log;
    this.mem = options.mem;
    this.ias = options.ias ?? 48;
    this.oas = options.oas ?? 48;
    this.pgsizeBitmap = options.pgsizeBitmap ?? 0x1000 + 0x200000 + 0x40000000;
    this.features = {
      stage1: options.stage1 ?? true,
      stage2: options.stage2 ?? true,
      rangeInv: options.rangeInv ?? true,
    };
    this.registry = options.registry;
    this.sidBits = options.sidBits ?? 8;
    const hwOpts: ConstructorParameters<typeof ArmSmmuV3Hw>[0] = {
      name: options.name,
      phys: options.mem.phys,
      log: options.log,
      oas: this.oas,
    };
    if (options.clock !== undefined) hwOpts.clock = options.clock;
    if (options.iotlbCapacity !== undefined) hwOpts.iotlbCapacity = options.iotlbCapacity;
    this.hw = new ArmSmmuV3Hw(hwOpts);

    // arm_smmu_init_structures: queues and the linear stream table.
    const cmdqLog2 = options.cmdqLog2Size ?? 8;
    const evtqLog2 = options.evtqLog2Size ?? 7;
    this.strtabOrder = orderFor(2 ** this.sidBits * 64);
    this.strtabPfn = this.allocOrThrow(this.strtabOrder, "stream table");
    this.cmdqPfn = this.allocOrThrow(orderFor(2 ** cmdqLog2 * 16), "command queue");
    this.evtqPfn = this.allocOrThrow(orderFor(2 ** evtqLog2 * 32), "event queue");
    // arm_smmu_init_initial_stes: every stream aborts until a domain is attached (disable_bypass).
    for (let sid = 0; sid < 2 ** this.sidBits; sid++)
      this.mem.phys.writeU32(
        this.strtabPfn * PAGE + sid * 64,
        STRTAB_STE_0_V | (STRTAB_STE_0_CFG_ABORT << 1),
      );

    // arm_smmu_device_reset
    const hw = this.hw;
    hw.cr0 = 0;
    hw.strtabBase = this.strtabPfn * PAGE;
    hw.strtabLog2Size = this.sidBits;
    hw.cmdqBase = this.cmdqPfn * PAGE;
    hw.cmdqLog2Size = cmdqLog2;
    hw.cmdqProd = 0;
    hw.cmdqCons = 0;
    hw.evtqBase = this.evtqPfn * PAGE;
    hw.evtqLog2Size = evtqLog2;
    hw.evtqProd = 0;
    hw.evtqCons = 0;
    hw.resetEvtq();
    hw.cr0 = CR0_CMDQEN;
    this.cmdqIssue(CMDQ_OP_CFGI_ALL, 0, 31, 0);
    this.cmdqIssue(CMDQ_OP_TLBI_NSNH_ALL, 0, 0, 0);
    this.cmdqSync();
    hw.cr0 = CR0_CMDQEN | CR0_EVTQEN | CR0_SMMUEN;
    this.log.info(
      this.name,
      `ias ${this.ias}-bit, oas ${this.oas}-bit (features 0x${(
        (this.features.stage1 ? 2 : 0) | (this.features.stage2 ? 4 : 0)
      ).toString(16)})`,
    );
    this.flushOps = {
      tlbFlushAll: (cookie) => this.tlbInvContext(cookie as ArmSmmuDomain),
      tlbFlushWalk: (iova, size, granule, cookie) =>
        this.tlbInvRangeDomain(iova, size, granule, false, cookie as ArmSmmuDomain),
      tlbAddPage: (gather, iova, granule, cookie) =>
        iommuIotlbGatherAddPage(cookie as ArmSmmuDomain, gather, iova, granule),
    };
    this.domainOps = {
      attachDev: (domain, dev) => this.attachDev(domain as ArmSmmuDomain, dev),
      mapPages: (domain, iova, paddr, pgsize, pgcount, prot, gfp) =>
        pgtblOf(domain).mapPages(iova, paddr, pgsize, pgcount, prot, gfp),
      unmapPages: (domain, iova, pgsize, pgcount, gather) =>
        pgtblOf(domain).unmapPages(iova, pgsize, pgcount, gather),
      iovaToPhys: (domain, iova) => {
        const d = domain as ArmSmmuDomain;
        if (d.stage === "bypass") return iova;
        return d.pgtblOps === null ? 0 : d.pgtblOps.iovaToPhys(iova);
      },
      iotlbSync: (domain, gather) => this.iotlbSync(domain as ArmSmmuDomain, gather),
      flushIotlbAll: (domain) => this.tlbInvContext(domain as ArmSmmuDomain),
      free: (domain) => this.domainFree(domain as ArmSmmuDomain),
    };
    this.identityDomain = new ArmSmmuDomain({
      type: IOMMU_DOMAIN_IDENTITY,
      ops: this.domainOps,
      stage: "bypass",
      name: `${this.name}/identity`,
      log: this.log,
    });
    this.blockedDomain = new ArmSmmuDomain({
      type: IOMMU_DOMAIN_BLOCKED,
      ops: this.domainOps,
      stage: "abort",
      name: `${this.name}/blocked`,
      log: this.log,
    });
    this.ops = {
      name: "arm-smmu-v3",
      pgsizeBitmap: this.pgsizeBitmap,
      probeDevice: (dev) => this.probeDevice(dev),
      releaseDevice: (dev) => this.releaseDevice(dev),
      deviceGroup: (dev, iommu) => this.deviceGroup(dev, iommu),
      capable: (dev, cap) => this.capable(dev, cap),
      domainAllocPaging: (dev) => this.domainAllocPagingFlags(dev, 0),
      identityDomain: this.identityDomain,
      blockedDomain: this.blockedDomain,
      defaultDomainOps: this.domainOps,
    };
    this.iommu = { name: this.name, ops: this.ops, hardware: this.hw, maxPasids: 0, dev: null };
    this.identityDomain.owner = this.ops;
    this.blockedDomain.owner = this.ops;
  }

  // ------------------------------------------------------------------ iommu_ops

  /**
   * `arm_smmu_capable(dev, cap)`: cache coherency follows the coherent table walk (the model's
   * `ARM_SMMU_FEAT_COHERENCY`), NOEXEC and DEFERRED_FLUSH are always supported (so DMA_FQ domains
   * get a flush queue), and the model has no ENFORCE_CACHE_COHERENCY (canwbs) or dirty tracking.
   * @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c arm_smmu_capable
   */
  capable(_dev: Device, cap: IommuCap): boolean {
    return cap === IOMMU_CAP_CACHE_COHERENCY || cap === IOMMU_CAP_NOEXEC || cap === IOMMU_CAP_DEFERRED_FLUSH;
  }

  /**
   * `arm_smmu_probe_device`: the device's StreamIDs come from its fwspec (or a
   * {@link PlatformDevice}'s `streamIds`). `ENODEV` with none, `ERANGE` for a StreamID beyond the
   * stream table (`arm_smmu_sid_in_range`), `EBUSY` for a StreamID another master already has.
   */
  probeDevice(dev: Device): IommuDevice {
    const fw = devIommuFwspecGet(dev);
    const sids =
      fw !== null && fw.ids.length > 0
        ? [...fw.ids]
        : dev instanceof PlatformDevice
          ? [...dev.streamIds]
          : [];
    if (sids.length === 0) throw new KernelError("ENODEV", `${this.name}: ${dev.name} has no StreamID`);
    for (const sid of sids) {
      if (!(Number.isInteger(sid) && sid >= 0 && sid < 2 ** this.sidBits))
        throw new KernelError(
          "ERANGE",
          `${this.name}: ${dev.name}: StreamID 0x${sid.toString(16)} beyond the ${this.sidBits}-bit stream table`,
        );
      const other = this.masters.get(sid);
      if (other !== undefined && other.dev !== dev)
        throw new KernelError(
          "EBUSY",
          `${this.name}: StreamID 0x${sid.toString(16)} already used by ${other.dev.name}`,
        );
    }
    const master: ArmSmmuMaster = { dev, sids, cdPfn: -1, domain: null };
    for (const sid of sids) this.masters.set(sid, master);
    devIommuPrivSet(dev, master);
    return this.iommu;
  }

  /** `arm_smmu_release_device`: the streams abort again; the CD table is freed. */
  releaseDevice(dev: Device): void {
    const master = devIommuPrivGet<ArmSmmuMaster>(dev);
    if (master === null) return;
    this.attachDev(this.blockedDomain, dev);
    if (master.cdPfn >= 0) this.mem.freeTablePage(master.cdPfn, 0);
    master.cdPfn = -1;
    for (const sid of master.sids) this.masters.delete(sid);
    devIommuPrivSet(dev, null);
  }

  /**
   * `arm_smmu_device_group`: `pci_device_group` for PCI devices (aliases, ACS), else
   * `generic_device_group` (a group of its own).
   */
  deviceGroup(dev: Device, iommu: IommuSubsystem): IommuGroup {
    return devIsPci(dev) ? pciDeviceGroup(dev, iommu) : genericDeviceGroup(dev, iommu);
  }

  /**
   * `arm_smmu_domain_alloc_paging_flags(dev, flags, user_data)` + `arm_smmu_domain_finalise`: a
   * stage-1 domain (ASID, `ARM_64_LPAE_S1`), or stage 2 (VMID, `ARM_64_LPAE_S2`) when the SMMU has
   * no stage 1 or `flags` has {@link IOMMU_HWPT_ALLOC_NEST_PARENT}. `EOPNOTSUPP` for a stage the
   * SMMU lacks, `ENOSPC` when ASIDs/VMIDs run out, `ENOMEM` when the table cannot be allocated.
   */
  domainAllocPagingFlags(_dev: Device | null, flags: number): ArmSmmuDomain {
    const nestParent = (flags & IOMMU_HWPT_ALLOC_NEST_PARENT) !== 0;
    const s2 = nestParent || !this.features.stage1;
    if (s2 ? !this.features.stage2 : !this.features.stage1)
      throw new KernelError("EOPNOTSUPP", `${this.name}: stage ${s2 ? 2 : 1} translation not supported`);
    const domain = new ArmSmmuDomain({
      type: IOMMU_DOMAIN_UNMANAGED,
      ops: this.domainOps,
      owner: this.ops,
      stage: s2 ? "s2" : "s1",
      name: `${this.name}/${s2 ? "s2" : "s1"}`,
      log: this.log,
    });
    domain.nestParent = nestParent;
    const ids = s2 ? this.vmids : this.asids;
    let id = 1;
    while (ids.has(id) && id < 0x10000) id++;
    if (id >= 0x10000) throw new KernelError("ENOSPC", `${this.name}: no free ${s2 ? "VMID" : "ASID"}`);
    const cfg: IoPgtableCfg = {
      quirks: 0,
      pgsizeBitmap: this.pgsizeBitmap,
      ias: s2 ? this.ias : Math.min(48, this.ias),
      oas: s2 ? this.oas : this.ias,
      coherentWalk: true,
      tlb: this.flushOps,
      iommuDev: null,
      mem: this.mem,
    };
    if (s2) domain.vmid = id;
    else domain.asid = id;
    const ops = allocIoPgtableOps(s2 ? ARM_64_LPAE_S2 : ARM_64_LPAE_S1, cfg, domain, this.registry);
    if (ops === null)
      throw new KernelError(
        "ENOMEM",
        `${this.name}: cannot allocate a ${s2 ? "stage-2" : "stage-1"} page table`,
      );
    ids.add(id);
    domain.pgtblOps = ops;
    domain.pgtbl = ops as unknown as ArmLpaeIoPgtable;
    domain.name = `${this.name}/${s2 ? `s2-vmid${id}` : `s1-asid${id}`}`;
    domain.pgsizeBitmap = cfg.pgsizeBitmap;
    domain.geometry = { apertureStart: 0, apertureEnd: 2 ** cfg.ias - 1, forceAperture: true };
    return domain;
  }

  /**
   * `arm_smmu_domain_alloc_nested`: a nested domain running `s1`'s stage-1 context (its TTB0,
   * TCR, MAIR and ASID, as a guest would program them; its table addresses are IPAs) on top of
   * the stage-2 `parent`. The nested CD is placed in a fresh page whose address the SMMU reads as
   * an IPA, so `parent` must map it (like a VMM placing the guest's CD table in guest memory):
   * see {@link ArmSmmuDomain.cdTablePfn}. `EINVAL` for a parent that is not a nesting parent of
   * this SMMU or a child that is not stage 1.
   */
  domainAllocNested(parent: ArmSmmuDomain, s1: ArmSmmuDomain): ArmSmmuDomain {
    if (parent.owner !== this.ops || !parent.nestParent || parent.stage !== "s2")
      throw new KernelError("EINVAL", `${this.name}: ${parent.name} is not a nesting parent of this SMMU`);
    if (s1.owner !== this.ops || s1.stage !== "s1" || s1.pgtbl === null)
      throw new KernelError("EINVAL", `${this.name}: ${s1.name} is not a stage-1 domain of this SMMU`);
    const pfn = this.allocOrThrow(0, "nested CD");
    const d = new ArmSmmuDomain({
      type: IOMMU_DOMAIN_NESTED,
      ops: this.domainOps,
      owner: this.ops,
      stage: "nested",
      name: `${this.name}/nested-vmid${parent.vmid}-asid${s1.asid}`,
      log: this.log,
    });
    d.s2Parent = parent;
    d.s1Child = s1;
    d.asid = s1.asid;
    d.vmid = parent.vmid;
    // The guest's invalidations carry the VMID of the stage 2 they run on.
    s1.vmid = parent.vmid;
    d.cdTablePfn = pfn;
    this.writeCd(pfn * PAGE, s1);
    return d;
  }

  // ------------------------------------------------------------------ iommu_domain_ops

  /**
   * `arm_smmu_attach_dev` (and the identity/blocked/nested attach ops): writes the master's CD (stage
   * 1) and STEs, each followed by `CMD_CFGI_*` and a `CMD_SYNC`. `EINVAL` for a domain of another
   * IOMMU or a device this SMMU did not probe.
   */
  attachDev(domain: ArmSmmuDomain, dev: Device): void {
    const master = devIommuPrivGet<ArmSmmuMaster>(dev);
    if (master === null)
      throw new KernelError("EINVAL", `${this.name}: ${dev.name} was not probed by this SMMU`);
    if (domain.owner !== this.ops)
      throw new KernelError("EINVAL", `${this.name}: ${domain.name} belongs to another IOMMU`);
    const ste = new Uint32Array(16);
    switch (domain.stage) {
      case "abort":
        ste[0] = STRTAB_STE_0_V | (STRTAB_STE_0_CFG_ABORT << 1);
        break;
      case "bypass":
        ste[0] = STRTAB_STE_0_V | (STRTAB_STE_0_CFG_BYPASS << 1);
        // STRTAB_STE_1_SHCFG_INCOMING
        ste[3] = 1 << (44 - 32);
        break;
      case "s1": {
        if (master.cdPfn < 0) master.cdPfn = this.allocOrThrow(0, "CD table");
        this.writeCd(master.cdPfn * PAGE, domain);
        for (const sid of master.sids) this.cmdqIssue(CMDQ_OP_CFGI_CD, sid, 1, 0);
        this.cmdqSync();
        this.makeS1Ste(ste, master.cdPfn * PAGE, STRTAB_STE_0_CFG_S1_TRANS);
        break;
      }
      case "s2":
        ste[0] = STRTAB_STE_0_V | (STRTAB_STE_0_CFG_S2_TRANS << 1);
        this.makeS2Ste(ste, domain);
        break;
      case "nested": {
        const parent = domain.s2Parent as ArmSmmuDomain;
        this.makeS1Ste(ste, domain.cdTablePfn * PAGE, STRTAB_STE_0_CFG_NESTED);
        this.makeS2Ste(ste, parent);
        break;
      }
    }
    for (const sid of master.sids) this.writeSte(sid, ste);
    master.domain = domain;
  }

  private makeS1Ste(ste: Uint32Array, cdtab: number, cfg: number): void {
    ste[0] = (STRTAB_STE_0_V | (cfg << 1) | ((cdtab >>> 0) & 0xffffffc0)) >>> 0;
    ste[1] = Math.floor(cdtab / TWO32) & 0xffff;
    // S1DSS bypass=0, S1CIR/S1COR write-back (1), S1CSH inner shareable (3), S1STALLD off.
    ste[2] = (1 << 2) | (1 << 4) | (3 << 6);
    // STRW = EL1 (0)
    ste[3] = 0;
  }

  private makeS2Ste(ste: Uint32Array, s2: ArmSmmuDomain): void {
    const c = (s2.pgtbl as ArmLpaeIoPgtable).cfg.fmtCfg as ArmLpaeS2Cfg;
    const v = c.vtcr;
    ste[4] = s2.vmid & 0xffff;
    ste[5] =
      (v.tsz |
        (v.sl << 6) |
        (v.irgn << 8) |
        (v.orgn << 10) |
        (v.sh << 12) |
        (v.tg << 14) |
        (v.ps << 16) |
        STRTAB_STE_2_S2AA64_HI |
        STRTAB_STE_2_S2PTW_HI |
        STRTAB_STE_2_S2R_HI) >>>
      0;
    ste[6] = (c.vttbr >>> 0) & 0xfffffff0;
    ste[7] = Math.floor(c.vttbr / TWO32) & 0xffff;
  }

  /** `arm_smmu_make_s1_cd` + `arm_smmu_write_cd_entry`: the CD for `domain`'s stage-1 table at `at`. */
  private writeCd(at: number, domain: ArmSmmuDomain): void {
    const c = (domain.pgtbl as ArmLpaeIoPgtable).cfg.fmtCfg as ArmLpaeS1Cfg;
    const t = c.tcr;
    const phys = this.mem.phys;
    phys.writeU32(at + 8, (c.ttbr >>> 0) & 0xfffffff0);
    phys.writeU32(at + 12, Math.floor(c.ttbr / TWO32) & 0xffff);
    phys.writeU32(at + 24, c.mair >>> 0);
    phys.writeU32(at + 28, Math.floor(c.mair / TWO32) >>> 0);
    phys.writeU32(
      at + 4,
      ((t.ips & 7) |
        CTXDESC_CD_0_AA64_HI |
        CTXDESC_CD_0_R_HI |
        CTXDESC_CD_0_A_HI |
        CTXDESC_CD_0_ASET_HI |
        ((domain.asid & 0xffff) << 16)) >>>
        0,
    );
    phys.writeU32(
      at,
      (t.tsz |
        (t.tg << 6) |
        (t.irgn << 8) |
        (t.orgn << 10) |
        (t.sh << 12) |
        CTXDESC_CD_0_TCR_EPD1 |
        CTXDESC_CD_0_V) >>>
        0,
    );
  }

  /** Writes an STE (dword 0, holding V, last), then `CMD_CFGI_STE` + `CMD_SYNC`. */
  private writeSte(sid: number, ste: Uint32Array): void {
    const at = this.strtabPfn * PAGE + sid * 64;
    const phys = this.mem.phys;
    for (let i = 15; i >= 0; i--) phys.writeU32(at + i * 4, ste[i] as number);
    this.cmdqIssue(CMDQ_OP_CFGI_STE, sid, 1, 0);
    this.cmdqSync();
  }

  /** `arm_smmu_iotlb_sync`: invalidates the gathered leaf range. */
  iotlbSync(domain: ArmSmmuDomain, gather: IommuIotlbGather): void {
    if (gather.pgsize === 0 || gather.end === 0) return;
    this.tlbInvRangeDomain(gather.start, gather.end - gather.start + 1, gather.pgsize, true, domain);
  }

  /**
   * `arm_smmu_tlb_inv_context`: `CMD_TLBI_NH_ASID` (stage 1) or `CMD_TLBI_S12_VMALL` (stage 2),
   * then `CMD_SYNC`.
   */
  tlbInvContext(domain: ArmSmmuDomain): void {
    if (domain.stage === "s1") this.cmdqIssue(CMDQ_OP_TLBI_NH_ASID, domain.vmid | (domain.asid << 16), 0, 0);
    else if (domain.stage === "s2" || domain.stage === "nested")
      this.cmdqIssue(CMDQ_OP_TLBI_S12_VMALL, domain.vmid, 0, 0);
    else return;
    this.cmdqSync();
  }

  /**
   * `arm_smmu_tlb_inv_range_domain` / `__arm_smmu_tlb_inv_range`: `CMD_TLBI_NH_VA` (stage 1) or
   * `CMD_TLBI_S2_IPA` (stage 2) over `[iova, iova+size)`, as range commands (NUM/SCALE/TG/TTL)
   * with ARM_SMMU_FEAT_RANGE_INV or one per `granule` without; then `CMD_SYNC`. A nesting parent
   * also flushes the nested stage-1 entries (`CMD_TLBI_NH_ALL`).
   */
  tlbInvRangeDomain(iova: number, size: number, granule: number, leaf: boolean, domain: ArmSmmuDomain): void {
    if (size === 0) return;
    const s1 = domain.stage === "s1";
    if (!s1 && domain.stage !== "s2") return;
    const op = s1 ? CMDQ_OP_TLBI_NH_VA : CMDQ_OP_TLBI_S2_IPA;
    const w1 = (domain.vmid | (s1 ? domain.asid << 16 : 0)) >>> 0;
    if (!this.features.rangeInv && size >= CMDQ_MAX_TLBI_OPS * PAGE) {
      this.tlbInvContext(domain);
      return;
    }
    const end = iova + size;
    let tg = 0;
    let ttl = 0;
    let tgEnc = 0;
    let numPages = 0;
    if (this.features.rangeInv) {
      tg = ffs(domain.pgsizeBitmap);
      numPages = size / pow2(tg);
      tgEnc = (tg - 10) / 2;
      if (leaf) ttl = 4 - (Math.log2(granule) - 3) / (tg - 3);
      else if ((numPages & CMDQ_TLBI_RANGE_NUM_MAX) === 1) numPages++;
      if (!Number.isInteger(ttl)) ttl = 0;
    }
    let a = iova;
    while (a < end) {
      let w0 = op;
      let inv = granule;
      if (this.features.rangeInv) {
        const scale = ffs(numPages);
        const num = Math.floor(numPages / pow2(scale)) % (CMDQ_TLBI_RANGE_NUM_MAX + 1);
        w0 |= ((num - 1) << 12) | (scale << 20);
        inv = num * pow2(scale + tg);
        numPages -= num * pow2(scale);
      }
      const w2 = ((leaf ? 1 : 0) | ((ttl & 3) << 8) | ((tgEnc & 3) << 10) | ((a >>> 0) & 0xfffff000)) >>> 0;
      this.cmdqIssue(w0, w1, w2, Math.floor(a / TWO32));
      a += inv;
    }
    if (domain.nestParent) this.cmdqIssue(CMDQ_OP_TLBI_NH_ALL, domain.vmid, 0, 0);
    this.cmdqSync();
  }

  /** `arm_smmu_domain_free_paging`: frees the table (after `tlb_flush_all`) and the ASID/VMID. */
  domainFree(domain: ArmSmmuDomain): void {
    if (domain.stage === "nested") {
      if (domain.cdTablePfn >= 0) this.mem.freeTablePage(domain.cdTablePfn, 0);
      domain.cdTablePfn = -1;
      return;
    }
    if (domain.pgtblOps === null) return;
    freeIoPgtableOps(domain.pgtblOps, this.registry);
    domain.pgtblOps = null;
    domain.pgtbl = null;
    if (domain.stage === "s1") this.asids.delete(domain.asid);
    else this.vmids.delete(domain.vmid);
  }

  // ------------------------------------------------------------------ queues

  /** Writes one command at `CMDQ_PROD`; when the queue is full, waits for the SMMU to consume. */
  private cmdqIssue(w0lo: number, w0hi: number, w1lo: number, w1hi: number): void {
    const hw = this.hw;
    const size = pow2(hw.cmdqLog2Size);
    const mask = 2 * size - 1;
    let p = hw.cmdqProd & mask;
    if ((p & (size - 1)) === (hw.cmdqCons & (size - 1)) && p !== (hw.cmdqCons & mask)) hw.processCmdq();
    const at = hw.cmdqBase + (p & (size - 1)) * 16;
    const phys = this.mem.phys;
    phys.writeU32(at, w0lo >>> 0);
    phys.writeU32(at + 4, w0hi >>> 0);
    phys.writeU32(at + 8, w1lo >>> 0);
    phys.writeU32(at + 12, w1hi >>> 0);
    p = (p + 1) & mask;
    hw.cmdqProd = p;
  }

  /** Issues `CMD_SYNC` and waits for it: the SMMU consumes every command before it. */
  private cmdqSync(): void {
    this.cmdqIssue(CMDQ_OP_CMD_SYNC, 0, 0, 0);
    this.hw.processCmdq();
  }

  /**
   * `arm_smmu_evtq_thread`: drains the event queue. Translation, permission, access and address-size
   * events of a known master go to `report_iommu_fault` on its domain; events nobody handles are
   * logged as the driver dumps them. An overflow is reported ("EVTQ overflow detected -- events
   * lost") and acknowledged. Returns the number of events read.
   * @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c arm_smmu_evtq_thread
   */
  evtqThread(): number {
    const hw = this.hw;
    const size = 2 ** hw.evtqLog2Size;
    const mask = 2 * size - 1;
    let c = hw.evtqCons & mask;
    const p = hw.evtqProd & mask;
    const phys = this.mem.phys;
    let n = 0;
    while (c !== p) {
      const idx = c & (size - 1);
      const at = hw.evtqBase + idx * 32;
      const id = phys.readU32(at) & 0xff;
      const sid = phys.readU32(at + 4);
      const rnwRead = (phys.readU32(at + 12) & (1 << 3)) !== 0;
      const iova = phys.readU32(at + 20) * TWO32 + phys.readU32(at + 16);
      const rec = hw.eventRecordAt(idx);
      let handled = false;
      if (
        id === EVT_ID_TRANSLATION_FAULT ||
        id === EVT_ID_ADDR_SIZE_FAULT ||
        id === EVT_ID_ACCESS_FAULT ||
        id === EVT_ID_PERMISSION_FAULT
      ) {
        const master = this.masters.get(sid);
        const domain = master?.domain;
        if (master !== undefined && domain != null)
          handled =
            reportIommuFault(domain, master.dev, iova, rnwRead ? IOMMU_FAULT_READ : IOMMU_FAULT_WRITE) === 0;
      }
      if (!handled) {
        const dev = this.masters.get(sid)?.dev.name ?? "(unknown)";
        this.log.info(this.name, `event 0x${id.toString(16).padStart(2, "0")} received: client: ${dev}`);
        if (rec !== undefined) this.log.info(this.name, rec.message);
      }
      c = (c + 1) & mask;
      hw.evtqCons = (c | (hw.evtqCons & Q_OVERFLOW_FLAG)) >>> 0;
      n++;
    }
    if (hw.evtqOverflowed()) {
      this.log.err(this.name, "EVTQ overflow detected -- events lost");
      hw.evtqCons = ((hw.evtqCons & ~Q_OVERFLOW_FLAG) | (hw.evtqProd & Q_OVERFLOW_FLAG)) >>> 0;
    }
    return n;
  }

  /** The master for `dev`, or null. */
  master(dev: Device): ArmSmmuMaster | null {
    return devIommuPrivGet<ArmSmmuMaster>(dev);
  }

  /** Pages this driver holds for its own structures (stream table, queues, CD tables). */
  get structurePages(): number {
    let n = 2 ** this.strtabOrder + 2;
    const seen = new Set<ArmSmmuMaster>(this.masters.values());
    for (const m of seen) if (m.cdPfn >= 0) n++;
    return n;
  }

  private allocOrThrow(order: number, what: string): number {
    const pfn = this.mem.allocTablePage(order, 0);
    if (pfn === null)
      throw new KernelError("ENOMEM", `${this.name}: no memory for the ${what} (order ${order})`);
    return pfn;
  }
}

function pgtblOf(domain: IommuDomain) {
  const ops = (domain as ArmSmmuDomain).pgtblOps;
  if (ops === null) throw new KernelError("EINVAL", `arm-smmu-v3: ${domain.name} has no page table`);
  return ops;
}

function orderFor(bytes: number): number {
  return Math.max(0, Math.ceil(Math.log2(bytes / PAGE)));
}

/** Lowest set bit of an integer in [0, 2^53) (-1 for none, and for anything else below 1). */
function ffs(x: number): number {
  if (x >= 1 && x < 2 ** 53) {
    // 32-bit words: no per-bit float division (this runs for every range invalidation).
    const lo = x | 0;
    if (lo !== 0) return 31 - Math.clz32(lo & -lo);
    const hi = Math.floor(x / TWO32) | 0;
    if (hi !== 0) return 63 - Math.clz32(hi & -hi);
  }
  for (let n = 0; n < 53; n++) if (Math.floor(x / 2 ** n) % 2 === 1) return n;
  return -1;
}

/** 2^n for n in [0, 64): `2 ** n` with a variable n is a slow Math.pow call in V8. */
const POW2 = Float64Array.from({ length: 64 }, (_, n) => 2 ** n);

/** `2 ** n`, from the table when n is in it. */
function pow2(n: number): number {
  return n >= 0 && n < 64 ? (POW2[n] as number) : 2 ** n;
}
