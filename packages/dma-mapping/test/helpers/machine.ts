import {
  Device,
  type DeviceOptions,
  KernelLog,
  type PciDev,
  type PciDevOptions,
  PciHostBridge,
  type PciHostBridgeWindow,
  pciDevId,
  SimClock,
  SZ_1G,
  SZ_4G,
  SZ_32M,
  SZ_256M,
  SZ_512M,
  type TraceEvent,
  TraceRing,
  Tracer,
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
import {
  bootMemory,
  type CmaSpec,
  CpuCache,
  KernelVm,
  type MemoryLayout,
  type MemorySystem,
  UserMemory,
} from "@dmakit/mm-pages";
import { SgPool } from "@dmakit/scatterlist";
import {
  type DmaAtomicPoolReport,
  type DmaConfigureOptions,
  type DmaDebug,
  type DmaDebugOptions,
  DmaSystem,
  dmaAtomicPoolInit,
  dmaAtomicPoolReport,
  dmaConfigure,
  dmaDebugInit,
  iommuDmaSgtCount,
  type SwiotlbInitOptions,
  type SwiotlbMem,
  swiotlbInit,
} from "../../src/index.js";

/** Where the default layout's RAM starts (2 GiB), and the 256 MiB it has there. */
export const RAM_BASE = 0x8000_0000;

/** RAM below 4 GiB at 2 GiB and RAM above 4 GiB at 34 GiB, 256 MiB each (streaming-map tests). */
export const LOW_RAM = 0x8000_0000;
export const HIGH_RAM = 0x8_8000_0000;
export const SPLIT_RAM: MemoryLayout = {
  banks: [
    { start: LOW_RAM, size: SZ_256M },
    { start: HIGH_RAM, size: SZ_256M },
  ],
};

/**
 * An arm64-like layout for the allocation tests: ZONE_DMA 256 MiB at 768 MiB (ends at 1 GiB, what a
 * 30-bit mask reaches); ZONE_DMA32 512 MiB at 2 GiB; ZONE_NORMAL 512 MiB at 4 GiB. With
 * {@link ALLOC_CMA}: the default CMA area `reserved` (32 MiB below 4 GiB) and `cam-cma` (16 MiB).
 */
export const ZONE_DMA_START = 0x3000_0000;
export const ZONE_DMA_END = SZ_1G;
export const DMA32_START = 0x8000_0000;
export const NORMAL_START = SZ_4G;
export const ALLOC_RAM: MemoryLayout = {
  banks: [
    { start: ZONE_DMA_START, size: SZ_256M },
    { start: DMA32_START, size: SZ_512M },
    { start: NORMAL_START, size: SZ_512M },
  ],
  zones: { dma: ZONE_DMA_END, dma32: SZ_4G },
};
export const ALLOC_CMA: readonly CmaSpec[] = [
  { name: "reserved", size: SZ_32M, limit: SZ_4G },
  { name: "cam-cma", size: 16 * 2 ** 20 },
];

/** An x86-like layout for iommu-dma allocations: 512 MiB at 2 GiB and 512 MiB at 4 GiB, no ZONE_DMA. */
export const IOMMU_ALLOC_RAM: MemoryLayout = {
  banks: [
    { start: DMA32_START, size: SZ_512M },
    { start: NORMAL_START, size: SZ_512M },
  ],
};

/** Options of {@link makeMachine}; every part not asked for is left out (it would change the boot state). */
export interface MachineOptions {
  /** RAM, zones, reservations. Default: 256 MiB at {@link RAM_BASE}. */
  readonly layout?: MemoryLayout;
  /** CMA areas declared at boot (in `mem.cma`, in this order). */
  readonly cma?: readonly CmaSpec[];
  /** Platform coherence: devices snoop CPU caches (x86-like true, arm64 SoC false). Default false. */
  readonly coherent?: boolean;
  /** Attach a trace sink: tracepoints are enabled and collected in `events`. */
  readonly trace?: boolean;
  /** An IOMMU core with this default-domain policy. */
  readonly iommu?: IommuDefaultDomainConfig;
  /** With `iommu`: register one Intel VT-d unit (default true; false to register another IOMMU). */
  readonly vtd?: boolean;
  /** IOTLB entries of the VT-d unit. */
  readonly iotlbCapacity?: number;
  /** Host bridge memory windows (reserved in the IOVA space). */
  readonly windows?: readonly PciHostBridgeWindow[];
  /** `swiotlbInit` options: a bounce-buffer pool made at boot. */
  readonly swiotlb?: SwiotlbInitOptions;
  /** Make the atomic pools at boot (`dmaAtomicPoolInit`). */
  readonly atomicPools?: boolean;
  /** `dmaDebugInit` options: dma-debug on. */
  readonly dmaDebug?: DmaDebugOptions;
  /** A `UserMemory` (it takes the zero page at boot). */
  readonly userMemory?: boolean;
  /** CPUs (per-CPU IOVA caches, flush queues, swiotlb areas). Default 1. */
  readonly numCpus?: number;
  /** Kernel log capacity (benchmarks keep it small). */
  readonly logCapacity?: number;
}

/** Options of {@link TestMachine.device}: `DeviceOptions` plus two shorthands. */
export type TestDeviceOptions = Partial<Omit<DeviceOptions, "name">> & {
  /** Sets both `dmaMask` and `coherentDmaMask` (`dma_set_mask_and_coherent`). */
  readonly mask?: number;
  /** Binds this driver after `dmaConfigure`. */
  readonly driver?: string;
};

/** Options of {@link TestMachine.endpoint}: the host bridge's endpoint options plus `mask`. */
export type TestEndpointOptions = Partial<PciDevOptions> & {
  /** Sets both `dmaMask` and `coherentDmaMask`. Default 2^64 (`DMA_BIT_MASK(64)`). */
  readonly mask?: number;
};

/** What the machine's allocators hold, to compare with the boot state (leak checks). */
export interface AllocSnapshot {
  allocated: number;
  free: number;
  cma: readonly (readonly [string, number])[];
  pools: readonly DmaAtomicPoolReport[];
  vmalloc: number;
  sgts: number;
}

/** A small simulated machine for the DMA layer's tests and benchmarks. */
export interface TestMachine {
  readonly log: KernelLog;
  readonly clock: SimClock;
  readonly mem: MemorySystem;
  readonly cache: CpuCache;
  readonly vm: KernelVm;
  /** Trace events written while `trace` is on (the DMA system has a tracer only then). */
  readonly events: TraceEvent[];
  readonly system: DmaSystem;
  /** An sg pool outside the machine's memory (entries only; no page data through it). */
  readonly pool: SgPool;
  readonly hb: PciHostBridge;
  readonly iommu: IommuSubsystem | null;
  readonly hw: DmarHardware | null;
  readonly vtd: IntelIommu | null;
  readonly swiotlb: SwiotlbMem | null;
  readonly debug: DmaDebug | null;
  readonly um: UserMemory | null;
  /** A platform device bound to the DMA layer (coherent as the machine unless `opts` say otherwise). */
  device(name: string, opts?: TestDeviceOptions, dma?: DmaConfigureOptions): Device;
  /** Probes `dev` behind the VT-d unit (when there is one) and binds it to the DMA layer; returns its domain. */
  attach(dev: PciDev): IommuDomain | null;
  /** A new PCIe endpoint on its own root port (ACS), attached. */
  endpoint(name: string, opts?: TestEndpointOptions): PciDev;
  /** Where the device's DMA at `iova` lands through the VT-d unit (IOTLB, then tables), or null on a fault. */
  translate(dev: PciDev, iova: number, write?: boolean): number | null;
  /** CPU write through the cache. */
  cpuWrite(phys: number, bytes: readonly number[] | Uint8Array): void;
  /** CPU read through the cache. */
  cpuRead(phys: number, len: number): Uint8Array;
  /** A device reading RAM (what it sees; non-coherent unless the machine or `coherent` say so). */
  devRead(phys: number, len: number, coherent?: boolean): Uint8Array;
  /** A device writing RAM. */
  devWrite(phys: number, bytes: readonly number[] | Uint8Array, coherent?: boolean): void;
  /** Everything the allocators hold. */
  snapshot(): AllocSnapshot;
}

/**
 * The one test machine builder: boot memory, a CPU cache, the kernel VM and a `DmaSystem`, plus the
 * optional parts {@link MachineOptions} asks for, made in a fixed order (IOMMU, then DMA system,
 * swiotlb, atomic pools, dma-debug, user memory) so page addresses are the same from run to run.
 */
export function makeMachine(options: MachineOptions = {}): TestMachine {
  const clock = new SimClock();
  const log = new KernelLog({
    now: () => clock.now(),
    ...(options.logCapacity !== undefined ? { capacity: options.logCapacity } : {}),
  });
  const coherent = options.coherent ?? false;
  const mem = bootMemory(
    options.layout ?? { banks: [{ start: RAM_BASE, size: SZ_256M }] },
    options.cma !== undefined ? { log, cma: options.cma } : { log },
  );
  const cache = new CpuCache(mem.phys, { coherent });
  const vm = new KernelVm({ mem: mem.phys, cache, pages: mem.pages });
  const events: TraceEvent[] = [];
  let tracer: Tracer | null = null;
  if (options.trace) {
    tracer = new Tracer({ now: () => clock.now() });
    const ring = new TraceRing();
    tracer.attach({
      write(e) {
        ring.write(e);
        events.push(e);
      },
    });
  }
  let iommu: IommuSubsystem | null = null;
  let hw: DmarHardware | null = null;
  let vtd: IntelIommu | null = null;
  if (options.iommu !== undefined) {
    if (options.vtd ?? true) {
      hw = new DmarHardware({
        phys: mem.phys,
        log,
        clock,
        ...(options.iotlbCapacity !== undefined ? { iotlbCapacity: options.iotlbCapacity } : {}),
      });
      vtd = new IntelIommu({ hardware: hw, mem: pgtableMemoryFromAllocator(mem.phys, mem.pages), log });
    }
    iommu = new IommuSubsystem({ log, config: options.iommu });
    if (vtd !== null) iommu.iommuDeviceRegister(vtd.iommuDevice);
  }
  const hb = new PciHostBridge({ log, windows: options.windows ?? [], dmaCoherent: coherent });
  const system = new DmaSystem({
    mem,
    cache,
    vm,
    log,
    clock,
    ...(tracer !== null ? { tracer } : {}),
    ...(iommu !== null ? { iommu } : {}),
    defaultCoherent: coherent,
    numCpus: options.numCpus ?? 1,
  });
  const swiotlb = options.swiotlb !== undefined ? swiotlbInit(system, options.swiotlb) : null;
  if (options.atomicPools) dmaAtomicPoolInit(system);
  const debug = options.dmaDebug !== undefined ? dmaDebugInit(system, options.dmaDebug) : null;
  const um = options.userMemory ? new UserMemory({ mem: mem.phys, pages: mem.pages, cache }) : null;

  const attach = (dev: PciDev): IommuDomain | null => {
    if (iommu === null || vtd === null) {
      dmaConfigure(dev, system);
      return null;
    }
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
    vm,
    events,
    system,
    pool: new SgPool(),
    hb,
    iommu,
    hw,
    vtd,
    swiotlb,
    debug,
    um,
    device(name, o = {}, dma = {}) {
      const { mask, driver, ...rest } = o;
      const dev = new Device({
        name,
        bus: "platform",
        log,
        dmaCoherent: coherent,
        ...(mask !== undefined ? { dmaMask: mask, coherentDmaMask: mask } : {}),
        ...rest,
      });
      dmaConfigure(dev, system, dma);
      if (driver !== undefined) dev.bindDriver(driver);
      return dev;
    },
    attach,
    endpoint(name, o = {}) {
      const { mask = 2 ** 64, ...rest } = o;
      const rp = hb.addRootPort({ acs: true });
      const dev = hb.addEndpoint(rp, { name, dmaMask: mask, coherentDmaMask: mask, ...rest });
      attach(dev);
      return dev;
    },
    translate(dev, iova, write = false) {
      if (hw === null) throw new Error("translate: the machine has no VT-d unit");
      const t = hw.translate({ streamId: pciDevId(dev), iova, size: 1, write });
      if (!t.ok) {
        hw.drainFaults();
        return null;
      }
      return t.phys;
    },
    cpuWrite(phys, bytes) {
      cache.cpuWrite(phys, Uint8Array.from(bytes));
    },
    cpuRead(phys, len) {
      const b = new Uint8Array(len);
      cache.cpuRead(phys, b);
      return b;
    },
    devRead(phys, len, devCoherent = coherent) {
      const b = new Uint8Array(len);
      cache.deviceRead(phys, b, { coherent: devCoherent, device: "dev" });
      return b;
    },
    devWrite(phys, bytes, devCoherent = coherent) {
      cache.deviceWrite(phys, Uint8Array.from(bytes), { coherent: devCoherent, device: "dev" });
    },
    snapshot() {
      const r = mem.pages.report();
      return {
        allocated: r.allocated,
        free: r.free,
        cma: mem.cma.map((a) => [a.name, a.used] as const),
        pools: dmaAtomicPoolReport(system),
        vmalloc: vm.vmallocUsed,
        sgts: iommuDmaSgtCount(system),
      };
    },
  };
}

/** `n` bytes counting up from `seed` in steps of 7 (wrapping at 256). */
export function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (seed + i * 7) & 0xff;
  return b;
}
