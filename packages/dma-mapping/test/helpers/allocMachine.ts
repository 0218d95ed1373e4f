import {
  bitMask,
  Device,
  KernelLog,
  type PciDev,
  PciHostBridge,
  pciDevId,
  SimClock,
  SZ_1G,
  SZ_1M,
  SZ_4G,
  SZ_32M,
  SZ_256M,
  SZ_512M,
} from "@dmakit/core";
import {
  type IommuDefaultDomainConfig,
  IommuSubsystem,
  iommuFwspecAddIds,
  iommuFwspecInit,
  iommuGetDmaDomain,
  iommuProbeDevice,
  pgtableMemoryFromAllocator,
} from "@dmakit/iommu";
import { DmarHardware, IntelIommu } from "@dmakit/iommu-intel-vtd";
import {
  bootMemory,
  type CmaArea,
  CpuCache,
  KernelVm,
  type MemorySystem,
  UserMemory,
} from "@dmakit/mm-pages";
import {
  type DmaAtomicPoolReport,
  DmaSystem,
  dmaAtomicPoolInit,
  dmaAtomicPoolReport,
  dmaConfigure,
  iommuDmaSgtCount,
} from "../../src/index.js";

/**
 * An arm64-like machine for the allocation tests:
 * - ZONE_DMA: 256 MiB at 768 MiB (ends at 1 GiB, what a 30-bit mask reaches);
 * - ZONE_DMA32: 512 MiB at 2 GiB; ZONE_NORMAL: 512 MiB at 4 GiB;
 * - CMA: the default area `reserved` (32 MiB below 4 GiB) and `cam-cma` (16 MiB) for one device;
 * - the atomic pools, made at "boot".
 */
export interface AllocMachine {
  log: KernelLog;
  clock: SimClock;
  mem: MemorySystem;
  cache: CpuCache;
  vm: KernelVm;
  system: DmaSystem;
  um: UserMemory;
  defaultCma: CmaArea;
  camCma: CmaArea;
  /** A platform device configured for DMA (non-coherent unless `coherent`). */
  device(name: string, opts?: { mask?: number; coherent?: boolean; cma?: CmaArea | null }): Device;
  /** Everything the machine's allocators hold, to compare with the boot state. */
  snapshot(): AllocSnapshot;
}

export interface AllocSnapshot {
  allocated: number;
  free: number;
  cma: readonly (readonly [string, number])[];
  pools: readonly DmaAtomicPoolReport[];
  vmalloc: number;
  sgts: number;
}

export const ZONE_DMA_START = 0x3000_0000;
export const ZONE_DMA_END = SZ_1G;
export const DMA32_START = 0x8000_0000;
export const NORMAL_START = SZ_4G;

export function makeAllocMachine(opts: { coherent?: boolean; pools?: boolean } = {}): AllocMachine {
  const clock = new SimClock();
  const log = new KernelLog({ now: () => clock.now() });
  const mem = bootMemory(
    {
      banks: [
        { start: ZONE_DMA_START, size: SZ_256M },
        { start: DMA32_START, size: SZ_512M },
        { start: NORMAL_START, size: SZ_512M },
      ],
      zones: { dma: ZONE_DMA_END, dma32: SZ_4G },
    },
    {
      log,
      cma: [
        { name: "reserved", size: SZ_32M, limit: SZ_4G },
        { name: "cam-cma", size: 16 * SZ_1M },
      ],
    },
  );
  const cache = new CpuCache(mem.phys, { coherent: opts.coherent ?? false });
  const vm = new KernelVm({ mem: mem.phys, cache, pages: mem.pages });
  const system = new DmaSystem({ mem, cache, vm, log, clock });
  if (opts.pools ?? true) dmaAtomicPoolInit(system);
  const um = new UserMemory({ mem: mem.phys, pages: mem.pages, cache });
  const [defaultCma, camCma] = mem.cma as [CmaArea, CmaArea];
  return {
    log,
    clock,
    mem,
    cache,
    vm,
    system,
    um,
    defaultCma,
    camCma,
    device(name, o = {}) {
      const dev = new Device({
        name,
        bus: "platform",
        log,
        dmaMask: o.mask ?? bitMask(32),
        coherentDmaMask: o.mask ?? bitMask(32),
        dmaCoherent: o.coherent ?? opts.coherent ?? false,
      });
      dmaConfigure(dev, system, { cmaArea: o.cma ?? null });
      return dev;
    },
    snapshot: () => snapshotOf(mem, system, vm),
  };
}

function snapshotOf(mem: MemorySystem, system: DmaSystem, vm: KernelVm): AllocSnapshot {
  const r = mem.pages.report();
  return {
    allocated: r.allocated,
    free: r.free,
    cma: mem.cma.map((a) => [a.name, a.used] as const),
    pools: dmaAtomicPoolReport(system),
    vmalloc: vm.vmallocUsed,
    sgts: iommuDmaSgtCount(system),
  };
}

/** An x86-like machine with one VT-d unit for iommu-dma allocations (devices coherent unless told). */
export interface IommuAllocMachine {
  log: KernelLog;
  mem: MemorySystem;
  cache: CpuCache;
  vm: KernelVm;
  hw: DmarHardware;
  system: DmaSystem;
  um: UserMemory;
  endpoint(name: string, opts?: { mask?: number }): PciDev;
  /** Where the device's DMA to `iova` lands, or null on a fault. */
  translate(dev: PciDev, iova: number): number | null;
  snapshot(): AllocSnapshot;
}

export function makeIommuAllocMachine(
  opts: { coherent?: boolean; mode?: IommuDefaultDomainConfig } = {},
): IommuAllocMachine {
  const clock = new SimClock();
  const log = new KernelLog({ now: () => clock.now() });
  const mem = bootMemory(
    {
      banks: [
        { start: DMA32_START, size: SZ_512M },
        { start: NORMAL_START, size: SZ_512M },
      ],
    },
    { log, cma: [{ name: "reserved", size: SZ_32M, limit: SZ_4G }] },
  );
  const coherent = opts.coherent ?? true;
  const cache = new CpuCache(mem.phys, { coherent });
  const vm = new KernelVm({ mem: mem.phys, cache, pages: mem.pages });
  const hw = new DmarHardware({ phys: mem.phys, log, clock });
  const vtd = new IntelIommu({ hardware: hw, mem: pgtableMemoryFromAllocator(mem.phys, mem.pages), log });
  const iommu = new IommuSubsystem({ log, config: opts.mode ?? "strict" });
  iommu.iommuDeviceRegister(vtd.iommuDevice);
  const hb = new PciHostBridge({ log, windows: [], dmaCoherent: coherent });
  const system = new DmaSystem({ mem, cache, vm, log, clock, iommu, defaultCoherent: coherent });
  dmaAtomicPoolInit(system);
  const um = new UserMemory({ mem: mem.phys, pages: mem.pages, cache });
  return {
    log,
    mem,
    cache,
    vm,
    hw,
    system,
    um,
    endpoint(name, o = {}) {
      const rp = hb.addRootPort({ acs: true });
      const dev = hb.addEndpoint(rp, {
        name,
        dmaMask: o.mask ?? 2 ** 64,
        coherentDmaMask: o.mask ?? 2 ** 64,
      });
      iommuFwspecInit(dev, vtd.iommuDevice);
      iommuFwspecAddIds(dev, [pciDevId(dev)]);
      iommuProbeDevice(iommu, dev);
      dmaConfigure(dev, system, { domain: iommuGetDmaDomain(dev) });
      return dev;
    },
    translate(dev, iova) {
      const t = hw.translate({ streamId: pciDevId(dev), iova, size: 1, write: false });
      if (!t.ok) {
        hw.drainFaults();
        return null;
      }
      return t.phys;
    },
    snapshot: () => snapshotOf(mem, system, vm),
  };
}

export { SZ_512M };
