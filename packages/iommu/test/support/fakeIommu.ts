// A tiny in-test IOMMU: a Map-based page table (table pages still come from PgtableMemory so leaks
// show), the shared Iotlb, a stream table and faults as data. It exists to test the core without the
// real implementation packages; it is not a model of any hardware.
import { type Device, devIsPci, KernelError, KernelLog, SZ_1G, SZ_2M, SZ_4K } from "@dmakit/core";
import { PageAllocator, PhysMem } from "@dmakit/mm-pages";
import {
  ARM_64_LPAE_S1,
  allocIoPgtableOps,
  devIommuFwspecGet,
  devIommuPrivGet,
  devIommuPrivSet,
  freeIoPgtableOps,
  genericDeviceGroup,
  IOMMU_CAP_CACHE_COHERENCY,
  IOMMU_CAP_DEFERRED_FLUSH,
  IOMMU_DOMAIN_BLOCKED,
  IOMMU_DOMAIN_IDENTITY,
  IOMMU_DOMAIN_UNMANAGED,
  IOMMU_FAULT_READ,
  IOMMU_FAULT_WRITE,
  IOMMU_READ,
  IOMMU_WRITE,
  type IommuCap,
  type IommuDevice,
  IommuDomain,
  type IommuDomainOps,
  type IommuFaultKind,
  type IommuFaultRecord,
  type IommuHardware,
  IommuIotlbGather,
  type IommuOps,
  type IommuResvRegion,
  IommuSubsystem,
  type IommuSubsystemOptions,
  type IommuTransaction,
  type IommuTranslation,
  type IoPgtable,
  type IoPgtableCfg,
  type IoPgtableInitFns,
  type IoPgtableOps,
  IoPgtableRegistry,
  Iotlb,
  iommuIotlbGatherAddPage,
  ioPgtableTlbAddPage,
  ioPgtableTlbFlushWalk,
  MapPagesError,
  type PgtableMemory,
  pciDeviceGroup,
  pgtableMemoryFromAllocator,
  reportIommuFault,
} from "../../src/index.js";

export const FAKE_PGSIZES = SZ_4K | SZ_2M | SZ_1G;

interface Leaf {
  phys: number;
  size: number;
  prot: number;
}

/** Options steering the fake page table into failures. */
export interface FakePgtableKnobs {
  /** Throw ENOMEM (MapPagesError) after this many more leaf entries are installed; -1 = never. */
  failAfterLeaves: number;
  /** Put freed table pages on the gather's freelist (VT-d style) instead of flush-walk + free. */
  deferTableFree: boolean;
}

/** Map-based io-pgtable: one "table page" per 2 MiB region holding 4 KiB leaves. */
export class FakePgtable implements IoPgtableOps {
  readonly leaves = new Map<number, Leaf>();
  private readonly tables = new Map<number, { pfn: number; n: number }>();
  iop!: IoPgtable;

  constructor(
    readonly cfg: IoPgtableCfg,
    readonly knobs: FakePgtableKnobs,
  ) {}

  private sizes(): number[] {
    const out: number[] = [];
    for (const s of [SZ_1G, SZ_2M, SZ_4K]) if ((this.cfg.pgsizeBitmap & s) !== 0) out.push(s);
    return out;
  }

  find(iova: number): { base: number; leaf: Leaf } | null {
    for (const s of this.sizes()) {
      const base = Math.floor(iova / s) * s;
      const leaf = this.leaves.get(base);
      if (leaf !== undefined && leaf.size === s) return { base, leaf };
    }
    return null;
  }

  private overlaps(iova: number, size: number): boolean {
    if (this.find(iova) !== null) return true;
    if (size > SZ_4K) for (const [b, l] of this.leaves) if (b < iova + size && b + l.size > iova) return true;
    return false;
  }

  mapPages(iova: number, paddr: number, pgsize: number, pgcount: number, prot: number, gfp: number): number {
    if ((pgsize & this.cfg.pgsizeBitmap) === 0 || iova % pgsize !== 0 || paddr % pgsize !== 0)
      throw new KernelError("EINVAL", `fake-pgtable: bad pgsize ${pgsize} at ${iova}`);
    if ((prot & (IOMMU_READ | IOMMU_WRITE)) === 0) return 0;
    let mapped = 0;
    for (let i = 0; i < pgcount; i++) {
      const va = iova + i * pgsize;
      if (this.overlaps(va, pgsize))
        throw new MapPagesError("EEXIST", `fake-pgtable: ${va} already mapped`, mapped);
      if (this.knobs.failAfterLeaves === 0)
        throw new MapPagesError("ENOMEM", `fake-pgtable: injected failure at ${va}`, mapped);
      if (this.knobs.failAfterLeaves > 0) this.knobs.failAfterLeaves--;
      if (pgsize === SZ_4K) {
        const region = Math.floor(va / SZ_2M);
        let t = this.tables.get(region);
        if (t === undefined) {
          const pfn = this.cfg.mem.allocTablePage(0, gfp);
          if (pfn === null) throw new MapPagesError("ENOMEM", "fake-pgtable: no table page", mapped);
          t = { pfn, n: 0 };
          this.tables.set(region, t);
        }
        t.n++;
      }
      this.leaves.set(va, { phys: paddr + i * pgsize, size: pgsize, prot });
      mapped += pgsize;
    }
    return mapped;
  }

  unmapPages(iova: number, pgsize: number, pgcount: number, gather: IommuIotlbGather | null): number {
    let unmapped = 0;
    for (let i = 0; i < pgcount; i++) {
      const va = iova + unmapped;
      const hit = this.find(va);
      if (hit === null || hit.base !== va) break;
      this.leaves.delete(va);
      ioPgtableTlbAddPage(this.iop, gather, va, hit.leaf.size);
      if (hit.leaf.size === SZ_4K) {
        const region = Math.floor(va / SZ_2M);
        const t = this.tables.get(region) as { pfn: number; n: number };
        if (--t.n === 0) {
          this.tables.delete(region);
          if (this.knobs.deferTableFree && gather !== null) gather.freelist.add(this.cfg.mem, t.pfn, 0);
          else {
            ioPgtableTlbFlushWalk(this.iop, region * SZ_2M, SZ_2M, SZ_4K);
            this.cfg.mem.freeTablePage(t.pfn, 0);
          }
        }
      }
      unmapped += hit.leaf.size;
      if (hit.leaf.size > pgsize) break;
    }
    return unmapped;
  }

  iovaToPhys(iova: number): number {
    const hit = this.find(iova);
    return hit === null ? 0 : hit.leaf.phys + (iova - hit.base);
  }

  freeAll(): void {
    for (const t of this.tables.values()) this.cfg.mem.freeTablePage(t.pfn, 0);
    this.tables.clear();
    this.leaves.clear();
  }
}

class FakeDomain extends IommuDomain {
  pgtbl: IoPgtableOps | null = null;
  tag = 0;
}

/** Everything a test needs about one fake IOMMU machine. */
export interface FakeMachine {
  log: KernelLog;
  phys: PhysMem;
  allocator: PageAllocator;
  mem: PgtableMemory;
  iommu: IommuSubsystem;
  fake: FakeIommu;
}

const RAM = 0x80000000;

export class FakeIommu {
  readonly registry = new IoPgtableRegistry();
  readonly knobs: FakePgtableKnobs = { failAfterLeaves: -1, deferTableFree: true };
  readonly iotlb = new Iotlb({ capacity: 64, name: "fake-iotlb" });
  readonly ops: IommuOps;
  readonly inst: IommuDevice;
  readonly hardware: IommuHardware;
  readonly streams = new Map<number, { domain: IommuDomain; dev: Device }>();
  readonly queue: IommuFaultRecord[] = [];
  /** Reserved regions handed out by getResvRegions, by device name. */
  readonly resv = new Map<string, IommuResvRegion[]>();
  /** Device names the driver insists get identity (defDomainType). */
  readonly wantIdentity = new Set<string>();
  deferredFlush = true;
  syncs = 0;
  syncMaps = 0;
  faultsReported: number[] = [];
  private nextTag = 1;
  private readonly domOps: IommuDomainOps;

  constructor(
    readonly mem: PgtableMemory,
    readonly log: KernelLog,
    readonly pgsizeBitmap = FAKE_PGSIZES,
  ) {
    const self = this;
    const initFns: IoPgtableInitFns = {
      alloc(cfg: IoPgtableCfg, cookie: unknown): IoPgtable {
        const t = new FakePgtable(cfg, self.knobs);
        const iop: IoPgtable = { fmt: ARM_64_LPAE_S1, cookie, cfg, ops: t };
        t.iop = iop;
        return iop;
      },
      free(iop: IoPgtable): void {
        (iop.ops as FakePgtable).freeAll();
      },
    };
    this.registry.register(ARM_64_LPAE_S1, initFns);
    this.domOps = {
      attachDev: (domain, dev) => self.attach(domain, dev),
      mapPages: (d, iova, paddr, pgsize, pgcount, prot, gfp) =>
        (d as FakeDomain).pgtbl?.mapPages(iova, paddr, pgsize, pgcount, prot, gfp) ?? 0,
      unmapPages: (d, iova, pgsize, pgcount, gather) =>
        (d as FakeDomain).pgtbl?.unmapPages(iova, pgsize, pgcount, gather) ?? 0,
      iotlbSyncMap: () => {
        self.syncMaps++;
      },
      iotlbSync: (d, gather) => {
        self.syncs++;
        if (gather.end !== 0)
          self.iotlb.invalidateRange((d as FakeDomain).tag, gather.start, gather.end - gather.start + 1);
      },
      flushIotlbAll: (d) => {
        self.iotlb.invalidateTag((d as FakeDomain).tag);
      },
      iovaToPhys: (d, iova) => (d as FakeDomain).pgtbl?.iovaToPhys(iova) ?? 0,
      free: (d) => {
        freeIoPgtableOps((d as FakeDomain).pgtbl, self.registry);
        (d as FakeDomain).pgtbl = null;
      },
    };
    const staticOps: IommuDomainOps = { attachDev: (domain, dev) => self.attach(domain, dev) };
    this.ops = {
      name: "fake-iommu",
      pgsizeBitmap,
      capable: (_dev: Device, cap: IommuCap) =>
        cap === IOMMU_CAP_CACHE_COHERENCY || (cap === IOMMU_CAP_DEFERRED_FLUSH && self.deferredFlush),
      probeDevice: (dev) => {
        const f = devIommuFwspecGet(dev);
        if (f === null || f.iommu !== self.inst)
          throw new KernelError("ENODEV", `fake: ${dev.name} not mine`);
        devIommuPrivSet(dev, { streamIds: [...f.ids] });
        return self.inst;
      },
      releaseDevice: (dev) => {
        for (const [sid, e] of self.streams) if (e.dev === dev) self.streams.delete(sid);
      },
      deviceGroup: (dev, iommu) =>
        devIsPci(dev) ? pciDeviceGroup(dev, iommu) : genericDeviceGroup(dev, iommu),
      getResvRegions: (dev) => (self.resv.get(dev.name) ?? []).map((r) => ({ ...r })),
      defDomainType: (dev) => (self.wantIdentity.has(dev.name) ? IOMMU_DOMAIN_IDENTITY : 0),
      domainAllocPaging: () => self.allocPaging(),
      identityDomain: new IommuDomain({
        type: IOMMU_DOMAIN_IDENTITY,
        ops: staticOps,
        name: "fake-identity",
        log,
      }),
      blockedDomain: new IommuDomain({
        type: IOMMU_DOMAIN_BLOCKED,
        ops: staticOps,
        name: "fake-blocked",
        log,
      }),
    };
    this.inst = { name: "fake0", ops: this.ops, hardware: null, maxPasids: 0, dev: null };
    this.hardware = {
      name: "fake0",
      iotlb: this.iotlb,
      translate: (txn) => self.translate(txn),
      faults: () => self.queue,
      drainFaults: () => self.queue.splice(0),
      counters: () => ({ ...self.iotlb.counters(), "iommu.translate.fault": self.faultCount }),
    };
    (this.inst as { hardware: IommuHardware }).hardware = this.hardware;
  }

  faultCount = 0;

  allocPaging(): FakeDomain {
    const d = new FakeDomain({
      type: IOMMU_DOMAIN_UNMANAGED,
      ops: this.domOps,
      pgsizeBitmap: this.pgsizeBitmap,
      geometry: { apertureStart: 0, apertureEnd: 2 ** 48 - 1, forceAperture: true },
      name: `fake-dom${this.nextTag}`,
      log: this.log,
    });
    d.tag = this.nextTag++;
    const cfg: IoPgtableCfg = {
      quirks: 0,
      pgsizeBitmap: this.pgsizeBitmap,
      ias: 48,
      oas: 48,
      coherentWalk: true,
      iommuDev: null,
      mem: this.mem,
      tlb: {
        tlbFlushAll: () => {
          this.iotlb.invalidateTag(d.tag);
        },
        tlbFlushWalk: (iova, size) => {
          this.iotlb.invalidateRange(d.tag, iova, size);
        },
        tlbAddPage: (gather, iova, granule) => iommuIotlbGatherAddPage(d, gather, iova, granule),
      },
    };
    d.pgtbl = allocIoPgtableOps(ARM_64_LPAE_S1, cfg, d, this.registry);
    if (d.pgtbl === null) throw new KernelError("ENOMEM", "fake: no page table");
    return d;
  }

  private attach(domain: IommuDomain, dev: Device): void {
    const priv = devIommuPrivGet<{ streamIds: number[] }>(dev);
    if (priv === null) throw new KernelError("EINVAL", `fake: ${dev.name} not probed`);
    for (const sid of priv.streamIds) this.streams.set(sid, { domain, dev });
  }

  private fault(
    kind: IommuFaultKind,
    txn: IommuTransaction,
    code: string,
    dev: Device | null,
    domain: IommuDomain | null,
  ): IommuTranslation {
    const f: IommuFaultRecord = {
      kind,
      iova: txn.iova,
      streamId: txn.streamId,
      write: txn.write,
      code,
      reason: -1,
      level: -1,
      message: `fake0: ${code} sid ${txn.streamId} iova 0x${txn.iova.toString(16)}`,
      timeNs: 0,
    };
    this.queue.push(f);
    this.faultCount++;
    if (domain !== null && dev !== null)
      this.faultsReported.push(
        reportIommuFault(domain, dev, txn.iova, txn.write ? IOMMU_FAULT_WRITE : IOMMU_FAULT_READ),
      );
    return { ok: false, fault: f };
  }

  translate(txn: IommuTransaction): IommuTranslation {
    const ste = this.streams.get(txn.streamId);
    if (ste === undefined) return this.fault("config", txn, "F_BAD_STREAMID", null, null);
    const d = ste.domain;
    if (d.type === IOMMU_DOMAIN_BLOCKED) return this.fault("blocked", txn, "F_ABORT", ste.dev, null);
    if (d.type === IOMMU_DOMAIN_IDENTITY)
      return { ok: true, phys: txn.iova, len: txn.size, prot: IOMMU_READ | IOMMU_WRITE, iotlbHit: false };
    const fd = d as FakeDomain;
    let slot = this.iotlb.lookup(fd.tag, txn.iova);
    const hit = slot >= 0;
    if (!hit) {
      this.iotlb.recordWalk(1);
      const found = (fd.pgtbl as FakePgtable | null)?.find(txn.iova) ?? null;
      if (found === null) return this.fault("translation", txn, "F_TRANSLATION", ste.dev, d);
      slot = this.iotlb.insert(fd.tag, found.base, found.leaf.phys, found.leaf.size, found.leaf.prot);
    }
    const prot = this.iotlb.protOf(slot);
    if ((txn.write && (prot & IOMMU_WRITE) === 0) || (!txn.write && (prot & IOMMU_READ) === 0))
      return this.fault("permission", txn, "F_PERMISSION", ste.dev, d);
    const end = this.iotlb.iovaOf(slot) + this.iotlb.sizeOf(slot);
    return {
      ok: true,
      phys: this.iotlb.physOf(slot, txn.iova),
      len: Math.min(txn.size, end - txn.iova),
      prot,
      iotlbHit: hit,
    };
  }
}

/** A small machine: 256 MiB of RAM at 2 GiB, its page allocator, an IOMMU subsystem with one fake IOMMU. */
export function makeFakeMachine(
  options: Partial<IommuSubsystemOptions> = {},
  pgsizeBitmap = FAKE_PGSIZES,
): FakeMachine {
  const log = new KernelLog();
  const phys = new PhysMem({ banks: [{ start: RAM, size: 256 * 1024 * 1024 }] }, { log });
  const allocator = new PageAllocator(phys);
  const mem = pgtableMemoryFromAllocator(phys, allocator);
  const iommu = new IommuSubsystem({ log, ...options });
  const fake = new FakeIommu(mem, log, pgsizeBitmap);
  iommu.iommuDeviceRegister(fake.inst);
  return { log, phys, allocator, mem, iommu, fake };
}

export { IommuIotlbGather, RAM as FAKE_RAM_BASE };
