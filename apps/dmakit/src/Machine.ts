import {
  BusNotifier,
  bitMask,
  type Device,
  dmaSetMaxSegSize,
  dmaSetSegBoundary,
  formatBytes,
  hex,
  KernelError,
  KernelLog,
  type PciDev,
  PciHostBridge,
  PlatformBus,
  type PlatformDevice,
  Prng,
  pciDevId,
  SimClock,
  SZ_1M,
  SZ_4G,
  Tracer,
} from "@dmakit/core";
import {
  type DmaDebug,
  DmaEngine,
  type DmaEngineOptions,
  DmaSystem,
  dmaAtomicPoolInit,
  dmaConfigure,
  dmaDebugInit,
  P2PDMA_PROVIDERS,
  type SwiotlbMem,
  swiotlbInit,
} from "@dmakit/dma-mapping";
import {
  devIommuFwspecGet,
  type IommuDevice,
  type IommuHardware,
  IommuSubsystem,
  iommuFwspecAddIds,
  iommuFwspecInit,
  iommuGetDmaDomain,
  iommuProbeDevice,
  type PgtableMemory,
  pgtableMemoryFromAllocator,
} from "@dmakit/iommu";
import { ArmSmmuV3 } from "@dmakit/iommu-arm-smmu-v3";
import { DmarHardware, IntelIommu } from "@dmakit/iommu-intel-vtd";
import {
  bootMemory,
  type CmaArea,
  CpuCache,
  KernelVm,
  MemoryBackedMmio,
  type MmioHandler,
  type PageAllocator,
  type PhysMem,
  type ZoneLimits,
} from "@dmakit/mm-pages";
import {
  type IommuConfig,
  iommuRegSize,
  type MachineConfig,
  type PciConfig,
  type PciEndpointConfig,
  type PlatformDeviceConfig,
  switchPorts,
} from "./machineSchema.js";
import { PciBarAllocator } from "./PciBarAllocator.js";

/** Options of {@link Machine.boot}. */
export interface MachineBootOptions {
  /** Seed of the machine's {@link Prng}; the same seed gives the same run. Default 1. */
  seed?: number;
}

/** One IOMMU instance of the machine: the kernel's `struct iommu_device`, its hardware and driver. */
export interface IommuUnit {
  readonly name: string;
  readonly type: IommuConfig["type"];
  /** `struct iommu_device`, registered with the machine's {@link IommuSubsystem}. */
  readonly device: IommuDevice;
  /** The hardware half that translates devices' DMA. */
  readonly hardware: IommuHardware;
  /** Where its tables (and, for the SMMU, stream table and queues) live. */
  readonly tables: PgtableMemory;
  /** The SMMUv3 driver, for `arm-smmu-v3` units. */
  readonly smmu: ArmSmmuV3 | null;
  /** The VT-d driver, for `intel-vtd` units. */
  readonly vtd: IntelIommu | null;
}

/** `pgsize_bitmap` from the description's page sizes. */
function pgsizeBitmap(sizes: readonly number[] | undefined): number | undefined {
  return sizes === undefined ? undefined : sizes.reduce((b, s) => b + s, 0);
}

/**
 * Registers the model does not implement: reads return zero, writes are dropped ("RAZ/WI"), so a
 * stray access is harmless but still goes through the address map (holes fault, these do not).
 */
class RazWiMmio implements MmioHandler {
  read(_offset: number, dst: Uint8Array): void {
    dst.fill(0);
  }
  write(_offset: number, _src: Uint8Array): void {}
}

/** Zone limits a description leaves out: the kernel's per-arch defaults (x86 ZONE_DMA is 16 MiB). */
function zoneLimits(config: MachineConfig): ZoneLimits {
  const z = config.memory.zones;
  return {
    dma: z.dma ?? (config.arch === "x86_64" ? 16 * SZ_1M : 0),
    dma32: z.dma32 ?? SZ_4G,
  };
}

/**
 * A simulated machine assembled from a validated {@link MachineConfig}: it owns the kernel log,
 * the clock, the random generator, physical memory and the devices. Nothing is global: two
 * machines in one process share no state.
 *
 * Kernel counterpart: what `start_kernel()` → `setup_arch()` → `mm_core_init()` and the bus probes
 * build; the model does it in one synchronous {@link Machine.boot}.
 */
export class Machine {
  readonly config: MachineConfig;
  readonly seed: number;
  readonly clock: SimClock;
  readonly log: KernelLog;
  readonly prng: Prng;
  /** Physical address space: RAM banks, reserved ranges, MMIO, zones, memmap. */
  readonly mem: PhysMem;
  /**
   * The CPU's view of memory: an unbounded write-back cache (every missing maintenance step shows),
   * coherent with devices exactly when the description says `coherent: true`.
   */
  readonly cache: CpuCache;
  /** The buddy page allocator over every non-reserved RAM page. */
  readonly pages: PageAllocator;
  /** CMA areas, in description order (carved at boot from the buddy allocator). */
  readonly cma: readonly CmaArea[];
  /** The platform bus (SoC devices). */
  readonly platform: PlatformBus;
  /** PCI host bridges, in description order; each holds its hierarchy of ports, switches and endpoints. */
  readonly pciHostBridges: readonly PciHostBridge[];
  /** The `pci_bus_type` notifier chain shared by every host bridge. */
  readonly pciNotifier: BusNotifier;
  /** IOMMU units as described. */
  readonly iommus: readonly IommuConfig[];
  /** The IOMMU core (default-domain policy, groups); null on a machine without IOMMUs. */
  readonly iommu: IommuSubsystem | null;
  /** IOMMU instances by name: SMMUv3 for `arm-smmu-v3`, VT-d for `intel-vtd`. */
  readonly iommuUnits: ReadonlyMap<string, IommuUnit>;
  /** The kernel's virtual address space (linear map, vmalloc). */
  readonly vm: KernelVm;
  /** The machine's trace bus: attach a sink (e.g. `ChromeTraceWriter`) before running a scenario. */
  readonly tracer: Tracer;
  /** The DMA layer every device is bound to (`dmaConfigure`). */
  readonly dma: DmaSystem;
  /** The default swiotlb pool, or null when the machine has none. */
  readonly swiotlb: SwiotlbMem | null;
  /** dma-debug, when the description enables it (`dmaDebug`, default true). */
  readonly dmaDebug: DmaDebug | null;
  /** Endpoint devices by name: platform devices and PCI endpoints (not ports or switches). */
  readonly devices: ReadonlyMap<string, Device>;
  /** PCI functions by description name: root ports, switch ports (`<switch>` upstream, `<switch>.dpN`), endpoints. */
  readonly pciDevices: ReadonlyMap<string, PciDev>;

  private constructor(config: MachineConfig, seed: number) {
    this.config = config;
    this.seed = seed;
    this.clock = new SimClock();
    const clock = this.clock;
    this.log = new KernelLog({ now: () => clock.now() });
    this.prng = new Prng(seed);
    this.iommus = config.iommus;

    this.log.info(
      "",
      `Booting dmakit machine ${config.name} (${config.arch}, ${config.cpus} CPUs, seed ${seed})`,
    );
    const memory = bootMemory(
      { banks: config.memory.banks, reserved: config.memory.reserved, zones: zoneLimits(config) },
      {
        log: this.log,
        cma: config.memory.cma.map((c) => ({
          name: c.name,
          size: c.size,
          ...(c.base !== undefined ? { base: c.base } : {}),
          ...(c.limit !== undefined ? { limit: c.limit } : {}),
          ...(c.align !== undefined ? { alignment: c.align } : {}),
        })),
      },
    );
    this.mem = memory.phys;
    this.pages = memory.pages;
    this.cma = memory.cma;
    for (const b of this.mem.banks)
      this.log.info(
        "memblock",
        `RAM [mem ${hex(b.start)}-${hex(b.start + b.size - 1)}] ${formatBytes(b.size)}`,
      );
    for (const r of this.mem.reserved)
      this.log.info("memblock", `reserved [mem ${hex(r.start)}-${hex(r.start + r.size - 1)}] ${r.name}`);

    this.cache = new CpuCache(this.mem, { coherent: config.coherent });
    this.log.info(
      "mm",
      `Memory: ${formatBytes(this.pages.managedPages() * 4096)} available, ${formatBytes(this.mem.totalRam)} RAM`,
    );

    const razwi = new RazWiMmio();
    for (const r of config.mmio)
      this.mem.addMmioRegion({ name: r.name, start: r.start, size: r.size, handler: razwi });
    for (const x of config.iommus) {
      if (x.base !== undefined)
        this.mem.addMmioRegion({ name: x.name, start: x.base, size: iommuRegSize(x), handler: razwi });
      this.log.info("iommu", `${x.name}: ${x.type}${x.base !== undefined ? ` at ${hex(x.base)}` : ""}`);
    }

    this.tracer = new Tracer({ now: () => clock.now() });
    this.vm = new KernelVm({ mem: this.mem, cache: this.cache, pages: this.pages });
    this.iommu =
      config.iommus.length > 0
        ? new IommuSubsystem({
            log: this.log,
            config: config.iommuPolicy ?? (config.arch === "x86_64" ? "lazy" : "strict"),
          })
        : null;
    const units = new Map<string, IommuUnit>();
    for (const x of config.iommus) units.set(x.name, this.createIommu(x));
    this.iommuUnits = units;

    const devices = new Map<string, Device>();
    this.platform = new PlatformBus({ log: this.log });
    for (const d of config.platform.devices) devices.set(d.name, this.createPlatformDevice(d, razwi));

    this.pciNotifier = new BusNotifier();
    const pciDevices = new Map<string, PciDev>();
    this.pciHostBridges = config.pci ? this.createPci(config.pci, pciDevices, devices, razwi) : [];
    this.pciDevices = pciDevices;
    this.devices = devices;

    // The DMA layer: mm_core_init's swiotlb, the atomic pools (postcore), dma-debug, then each
    // device's IOMMU probe and dma_configure as its bus adds it.
    this.dma = new DmaSystem({
      mem: memory,
      cache: this.cache,
      vm: this.vm,
      log: this.log,
      clock: this.clock,
      tracer: this.tracer,
      ...(this.iommu !== null ? { iommu: this.iommu } : {}),
      defaultCoherent: config.coherent,
      numCpus: config.cpus,
    });
    this.dma.set(P2PDMA_PROVIDERS, (owner) => pciDevices.get(owner) ?? null);
    const dma32 = zoneLimits(config).dma32;
    const sw = config.swiotlb;
    const needBounce = sw !== undefined || this.mem.banks.some((b) => b.start + b.size > (dma32 || SZ_4G));
    this.swiotlb = needBounce
      ? swiotlbInit(this.dma, {
          ...(sw?.size !== undefined ? { size: sw.size } : {}),
          ...(sw?.force === true ? { force: true } : {}),
        })
      : null;
    dmaAtomicPoolInit(this.dma);
    this.dmaDebug = config.dmaDebug ? dmaDebugInit(this.dma, { allErrors: true }) : null;
    for (const d of config.platform.devices) {
      const dev = devices.get(d.name) as Device;
      this.configureDma(dev, d.iommu ?? null, d.streamIds ?? []);
    }
    for (const e of config.pci?.endpoints ?? []) {
      const dev = pciDevices.get(e.name) as PciDev;
      const iommu = config.pci?.hostBridges.find((h) => h.name === dev.hostBridge.name)?.iommu ?? null;
      this.configureDma(dev, iommu, [pciDevId(dev)]);
    }
  }

  /** Creates and enables one IOMMU instance (`arm_smmu_device_probe` / `intel_iommu_init`). */
  private createIommu(x: IommuConfig): IommuUnit {
    const iommu = this.iommu as IommuSubsystem;
    const pgsizes = pgsizeBitmap(x.pageSizes);
    if (x.type === "arm-smmu-v3") {
      const tables = pgtableMemoryFromAllocator(this.mem, this.pages);
      const smmu = new ArmSmmuV3({
        name: x.name,
        mem: tables,
        log: this.log,
        clock: this.clock,
        ...(x.inputBits !== undefined ? { ias: Math.min(x.inputBits, 48) } : {}),
        ...(x.outputBits !== undefined ? { oas: Math.min(x.outputBits, 48) } : {}),
        ...(pgsizes !== undefined ? { pgsizeBitmap: pgsizes } : {}),
      });
      iommu.iommuDeviceRegister(smmu.iommu);
      return { name: x.name, type: x.type, device: smmu.iommu, hardware: smmu.hw, tables, smmu, vtd: null };
    }
    const hw = new DmarHardware({
      name: x.name,
      phys: this.mem,
      log: this.log,
      clock: this.clock,
      fiveLevel: (x.inputBits ?? 48) > 48,
      ...(x.pageSizes !== undefined
        ? { superpages: x.pageSizes.includes(2 ** 30) ? 2 : x.pageSizes.includes(2 ** 21) ? 1 : 0 }
        : {}),
    });
    const tables = pgtableMemoryFromAllocator(this.mem, this.pages);
    const vtd = new IntelIommu({ hardware: hw, mem: tables, log: this.log });
    iommu.iommuDeviceRegister(vtd.iommuDevice);
    return { name: x.name, type: x.type, device: vtd.iommuDevice, hardware: hw, tables, smmu: null, vtd };
  }

  /**
   * `of_dma_configure` / `pci_dma_configure` for one device: the IOMMU probe (fwspec with its
   * StreamIDs or requester id, `iommu_probe_device`, the group's default domain) when it sits
   * behind an IOMMU, then `dmaConfigure` with that domain.
   */
  private configureDma(dev: Device, iommuName: string | null, ids: readonly number[]): void {
    const unit = iommuName === null ? undefined : this.iommuUnits.get(iommuName);
    if (unit === undefined || this.iommu === null) {
      dmaConfigure(dev, this.dma);
      return;
    }
    iommuFwspecInit(dev, unit.device);
    iommuFwspecAddIds(dev, ids);
    iommuProbeDevice(this.iommu, dev);
    dmaConfigure(dev, this.dma, { domain: iommuGetDmaDomain(dev) });
  }

  /** The IOMMU unit `dev` is behind, or null. */
  iommuUnitOf(dev: Device): IommuUnit | null {
    const inst = devIommuFwspecGet(dev)?.iommu;
    for (const u of this.iommuUnits.values()) if (u.device === inst) return u;
    return null;
  }

  /**
   * A DMA engine for the device called `name`, wired to its IOMMU's fault interrupt: an SMMU fault
   * runs the driver's event-queue thread (which logs it); VT-d raises its own fault event through
   * the clock.
   */
  dmaEngine(name: string, options: Omit<DmaEngineOptions, "onIommuFault"> = {}): DmaEngine {
    const dev = this.device(name);
    const smmu = this.iommuUnitOf(dev)?.smmu ?? null;
    return new DmaEngine(dev, {
      ...options,
      onIommuFault: () => {
        smmu?.evtqThread();
      },
    });
  }

  /** Builds the machine a description describes. Throws `KernelError` if the hardware cannot be assembled. */
  static boot(config: MachineConfig, options: MachineBootOptions = {}): Machine {
    return new Machine(config, options.seed ?? 1);
  }

  /** The device called `name`; ENODEV names the known ones. */
  device(name: string): Device {
    const d = this.devices.get(name);
    if (d === undefined)
      throw new KernelError(
        "ENODEV",
        `machine ${this.config.name}: no device "${name}" (devices: ${[...this.devices.keys()].join(", ")})`,
      );
    return d;
  }

  /** Does `dev` snoop CPU caches? (its own `coherent`, else the machine's) */
  private coherentFor(d: { coherent?: boolean | undefined }): boolean {
    return d.coherent ?? this.config.coherent;
  }

  /** `dma_set_max_seg_size` / `dma_set_seg_boundary` as the description asks (what a driver's probe does). */
  private applySegmentLimits(
    dev: Device,
    d: { maxSegmentSize?: number | undefined; segmentBoundary?: number | undefined },
  ): void {
    if (d.maxSegmentSize !== undefined) dmaSetMaxSegSize(dev, d.maxSegmentSize);
    if (d.segmentBoundary !== undefined) dmaSetSegBoundary(dev, d.segmentBoundary - 1);
  }

  private createPlatformDevice(d: PlatformDeviceConfig, razwi: MmioHandler): PlatformDevice {
    const dev = this.platform.addDevice({
      name: d.name,
      dmaMask: bitMask(d.dmaMask),
      coherentDmaMask: bitMask(d.coherentDmaMask ?? d.dmaMask),
      dmaCoherent: this.coherentFor(d),
      ...(d.iommu !== undefined ? { iommu: d.iommu, streamIds: d.streamIds ?? [] } : {}),
    });
    this.applySegmentLimits(dev, d);
    if (d.reg) this.mem.addMmioRegion({ name: d.name, start: d.reg.start, size: d.reg.size, handler: razwi });
    this.log.info(
      "platform",
      `${d.name}: DMA mask ${d.dmaMask} bits, ${dev.dmaCoherent ? "coherent" : "non-coherent"}${d.iommu ? `, behind ${d.iommu}` : ""}`,
    );
    return dev;
  }

  private createPci(
    pci: PciConfig,
    pciDevices: Map<string, PciDev>,
    devices: Map<string, Device>,
    razwi: MmioHandler,
  ): PciHostBridge[] {
    const bridges: PciHostBridge[] = [];
    const allocators = new Map<PciHostBridge, PciBarAllocator>();
    // Downstream ports of each switch not yet used, in order.
    const freePorts = new Map<string, PciDev[]>();
    const parentPort = (name: string): PciDev => {
      const free = freePorts.get(name);
      if (free !== undefined) {
        const port = free.shift();
        if (port === undefined)
          throw new KernelError("ENOSPC", `pci: switch ${name} has no free downstream port`);
        return port;
      }
      const port = pciDevices.get(name);
      if (port === undefined) throw new KernelError("ENODEV", `pci: no port named ${name}`);
      return port;
    };

    for (const h of pci.hostBridges) {
      const hb = new PciHostBridge({
        name: h.name,
        domain: h.segment ?? 0,
        log: this.log,
        notifier: this.pciNotifier,
        dmaCoherent: this.config.coherent,
        ...(h.vendor !== undefined ? { vendor: h.vendor } : {}),
        ...(h.device !== undefined ? { device: h.device } : {}),
        ...(h.p2pdmaAllowlisted !== undefined ? { p2pdmaAllowlisted: h.p2pdmaAllowlisted } : {}),
        windows: (h.windows ?? []).map((w) => ({
          cpuStart: w.start,
          busStart: w.start - (w.busOffset ?? 0),
          size: w.size,
        })),
      });
      bridges.push(hb);
      allocators.set(
        hb,
        new PciBarAllocator(
          h.name,
          (h.windows ?? []).map((w) => ({ start: w.start, size: w.size, prefetch: w.prefetch ?? false })),
        ),
      );
      for (const rp of h.rootPorts)
        pciDevices.set(rp.name, hb.addRootPort({ name: rp.name, acs: rp.acs ?? false }));
      this.log.info(
        "pci",
        `${h.name}: host bridge, domain ${h.segment ?? 0}, root ports ${h.rootPorts.map((p) => p.name).join(", ")}` +
          `${hb.p2pdmaAllowlisted ? ", P2PDMA allowlisted" : ""}${h.iommu ? `, behind ${h.iommu}` : ""}`,
      );
    }

    for (const s of pci.switches) {
      const parent = parentPort(s.parent);
      const nports = switchPorts(pci, s);
      const sw = parent.hostBridge.addSwitch(
        parent,
        Array.from({ length: nports }, (_, i) => ({ name: `${s.name}.dp${i}`, acs: s.acs })),
        { name: s.name },
      );
      pciDevices.set(s.name, sw.upstream);
      for (const dp of sw.downstream) pciDevices.set(dp.name, dp);
      freePorts.set(s.name, [...sw.downstream]);
      this.log.info(
        "pci",
        `${s.name}: switch below ${s.parent}, ${nports} downstream ports, ACS ${s.acs ? "on" : "off"}`,
      );
    }

    for (const e of pci.endpoints) {
      const parent = parentPort(e.parent);
      const dev = this.createPciEndpoint(
        e,
        parent,
        allocators.get(parent.hostBridge) as PciBarAllocator,
        razwi,
      );
      pciDevices.set(e.name, dev);
      devices.set(e.name, dev);
    }
    return bridges;
  }

  private createPciEndpoint(
    e: PciEndpointConfig,
    parent: PciDev,
    bars: PciBarAllocator,
    razwi: MmioHandler,
  ): PciDev {
    let slot = 0;
    const barInits = (e.bars ?? []).map((b) => {
      const bits = b.bits ?? 64;
      const prefetch = b.prefetch ?? false;
      const bar = slot;
      slot += bits === 64 ? 2 : 1;
      const cpuAddr = bars.place(`${e.name} BAR${bar}`, b.size, prefetch, bits);
      return { bar, cpuAddr, size: b.size, prefetchable: prefetch };
    });
    const dev = parent.hostBridge.addEndpoint(parent, {
      name: e.name,
      dmaMask: bitMask(e.dmaMask),
      coherentDmaMask: bitMask(e.coherentDmaMask ?? e.dmaMask),
      dmaCoherent: this.coherentFor(e),
      untrusted: e.untrusted ?? false,
      bars: barInits,
      ...(e.vendor !== undefined ? { vendor: e.vendor } : {}),
      ...(e.device !== undefined ? { device: e.device } : {}),
    });
    this.applySegmentLimits(dev, e);
    for (const b of dev.bars) {
      // Prefetchable BARs are memory (VRAM, a controller memory buffer); the rest are registers.
      const handler = b.prefetchable ? new MemoryBackedMmio(b.size) : razwi;
      this.mem.addMmioRegion({ name: `${e.name} BAR${b.bar}`, start: b.cpuAddr, size: b.size, handler });
    }
    this.log.info(
      "pci",
      `${e.name}: endpoint below ${parent.name}, DMA mask ${e.dmaMask} bits` +
        dev.bars
          .map(
            (b) => `, BAR${b.bar} ${hex(b.cpuAddr)} ${formatBytes(b.size)}${b.prefetchable ? " pref" : ""}`,
          )
          .join(""),
    );
    return dev;
  }
}
