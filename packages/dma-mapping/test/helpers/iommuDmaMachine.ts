import {
  KernelLog,
  type PciDev,
  PciHostBridge,
  type PciHostBridgeWindow,
  pciDevId,
  SimClock,
} from "@dmakit/core";
import {
  type IommuDefaultDomainConfig,
  type IommuDomain,
  IommuSubsystem,
  iommuFwspecAddIds,
  iommuFwspecInit,
  iommuGetDmaDomain,
  iommuProbeDevice,
  pgtableMemoryFromAllocator,
} from "@dmakit/iommu";
import { DmarHardware, IntelIommu } from "@dmakit/iommu-intel-vtd";
import { bootMemory, CpuCache, KernelVm, type MemorySystem } from "@dmakit/mm-pages";
import {
  forEachSg,
  SgPool,
  SgTable,
  sgAllocTable,
  sgDmaAddress,
  sgDmaIsBusAddress,
  sgDmaLen,
  sgLength,
  sgOffset,
  sgSetPage,
} from "@dmakit/scatterlist";
import { DmaSystem, dmaConfigure, swiotlbInit } from "../../src/index.js";

export const RAM_BASE = 0x8000_0000;

/** Options of {@link makeIommuDmaMachine}. */
export interface IommuDmaMachineOptions {
  /** Default-domain policy: "strict" (DMA), "lazy" (DMA_FQ) or "passthrough". Default strict. */
  mode?: IommuDefaultDomainConfig;
  /** RAM size in bytes at {@link RAM_BASE}; default 256 MiB. */
  ramSize?: number;
  /** Extra RAM bank (e.g. above 4 GiB). */
  highRam?: { start: number; size: number };
  /** Whether devices snoop CPU caches; default true (x86). */
  coherent?: boolean;
  /** Host bridge memory windows (reserved in the IOVA space). */
  windows?: readonly PciHostBridgeWindow[];
  /** Set up a swiotlb pool of this many bytes; default none. */
  swiotlb?: number;
  /** CPUs (per-CPU rcaches and flush queues); default 1. */
  numCpus?: number;
  /** IOTLB entries of the DMAR unit. */
  iotlbCapacity?: number;
  /** Log capacity (benchmarks keep it small). */
  logCapacity?: number;
}

/** An x86-like machine: RAM, one VT-d unit, a PCIe host bridge, the DMA layer. */
export interface IommuDmaMachine {
  log: KernelLog;
  clock: SimClock;
  mem: MemorySystem;
  cache: CpuCache;
  hw: DmarHardware;
  vtd: IntelIommu;
  iommu: IommuSubsystem;
  hb: PciHostBridge;
  system: DmaSystem;
  /** Probes `dev` behind the VT-d unit and binds it to the DMA layer; returns its default domain. */
  attach(dev: PciDev): IommuDomain | null;
  /** A new endpoint on its own root port (ACS), probed and configured. */
  addEndpoint(name: string, opts?: Parameters<PciHostBridge["addEndpoint"]>[1]): PciDev;
}

export function makeIommuDmaMachine(opts: IommuDmaMachineOptions = {}): IommuDmaMachine {
  const clock = new SimClock();
  const log = new KernelLog({
    now: () => clock.now(),
    ...(opts.logCapacity ? { capacity: opts.logCapacity } : {}),
  });
  const banks = [{ start: RAM_BASE, size: opts.ramSize ?? 256 * 1024 * 1024 }];
  if (opts.highRam) banks.push(opts.highRam);
  const mem = bootMemory({ banks }, { log });
  const coherent = opts.coherent ?? true;
  const cache = new CpuCache(mem.phys, { coherent });
  const vm = new KernelVm({ mem: mem.phys, cache, pages: mem.pages });
  const pgmem = pgtableMemoryFromAllocator(mem.phys, mem.pages);
  const hw = new DmarHardware({
    phys: mem.phys,
    log,
    clock,
    ...(opts.iotlbCapacity ? { iotlbCapacity: opts.iotlbCapacity } : {}),
  });
  const vtd = new IntelIommu({ hardware: hw, mem: pgmem, log });
  const iommu = new IommuSubsystem({ log, config: opts.mode ?? "strict" });
  iommu.iommuDeviceRegister(vtd.iommuDevice);
  const hb = new PciHostBridge({ log, windows: opts.windows ?? [], dmaCoherent: coherent });
  const system = new DmaSystem({
    mem,
    cache,
    vm,
    log,
    clock,
    iommu,
    defaultCoherent: coherent,
    numCpus: opts.numCpus ?? 1,
  });
  if (opts.swiotlb !== undefined) swiotlbInit(system, { size: opts.swiotlb, verbose: false });
  const attach = (dev: PciDev): IommuDomain | null => {
    iommuFwspecInit(dev, vtd.iommuDevice);
    iommuFwspecAddIds(dev, [pciDevId(dev)]);
    iommuProbeDevice(iommu, dev);
    const domain = iommuGetDmaDomain(dev);
    dmaConfigure(dev, system, { domain });
    return domain;
  };
  return {
    log,
    clock,
    mem,
    cache,
    hw,
    vtd,
    iommu,
    hb,
    system,
    attach,
    addEndpoint(name, o = {}) {
      const rp = hb.addRootPort({ acs: true });
      const dev = hb.addEndpoint(rp, { name, dmaMask: 2 ** 64, ...o });
      attach(dev);
      return dev;
    },
  };
}

/** What the device's DMA at `iova` reaches through the hardware (IOTLB, then the tables), or null on a fault. */
export function deviceTranslate(m: IommuDmaMachine, dev: PciDev, iova: number, write = false): number | null {
  const t = m.hw.translate({ streamId: pciDevId(dev), iova, size: 1, write });
  if (!t.ok) {
    m.hw.drainFaults();
    return null;
  }
  return t.phys;
}

/** An sg_table of `entries` (pfn, offset in page, length) in a pool of the machine's memory. */
export function makeSgTable(
  m: IommuDmaMachine,
  entries: ReadonlyArray<{ pfn: number; off?: number; len: number }>,
): SgTable {
  const sgt = new SgTable(new SgPool({ mem: m.mem.phys }));
  sgAllocTable(sgt, entries.length);
  let i = 0;
  for (const s of forEachSg(sgt.sgl, entries.length)) {
    const e = entries[i++] as { pfn: number; off?: number; len: number };
    sgSetPage(s, e.pfn, e.len, e.off ?? 0);
  }
  return sgt;
}

/** The DMA segments (address, length, bus flag) of the first `count` entries. */
export function dmaSegments(sgt: SgTable, count: number): Array<{ addr: number; len: number; bus: boolean }> {
  const out: Array<{ addr: number; len: number; bus: boolean }> = [];
  for (const s of forEachSg(sgt.sgl, count))
    out.push({ addr: sgDmaAddress(s), len: sgDmaLen(s), bus: sgDmaIsBusAddress(s) });
  return out;
}

/** The CPU fields (offset, length) of every entry, to check a list was restored. */
export function cpuFields(sgt: SgTable): Array<{ off: number; len: number }> {
  const out: Array<{ off: number; len: number }> = [];
  for (const s of forEachSg(sgt.sgl, sgt.origNents)) out.push({ off: sgOffset(s), len: sgLength(s) });
  return out;
}
