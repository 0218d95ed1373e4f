import {
  bitMask,
  Device,
  dmaSetMaxSegSize,
  dmaSetSegBoundary,
  formatBytes,
  hex,
  KernelError,
  KernelLog,
  Prng,
  SimClock,
  SZ_1M,
  SZ_4G,
} from "@dmakit/core";
import { type MmioHandler, PhysMem, type ZoneLimits } from "@dmakit/mm-pages";
import {
  type IommuConfig,
  iommuRegSize,
  type MachineConfig,
  type PlatformDeviceConfig,
} from "./machineSchema.js";

/** Options of {@link Machine.boot}. */
export interface MachineBootOptions {
  /** Seed of the machine's {@link Prng}; the same seed gives the same run. Default 1. */
  seed?: number;
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
  /** Platform devices by name, in description order. */
  readonly platformDevices: ReadonlyMap<string, Device>;
  /** IOMMU units as described; translation arrives with the IOMMU packages. */
  readonly iommus: readonly IommuConfig[];

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
    this.mem = new PhysMem(
      { banks: config.memory.banks, reserved: config.memory.reserved, zones: zoneLimits(config) },
      { log: this.log },
    );
    for (const b of this.mem.banks)
      this.log.info(
        "memblock",
        `RAM [mem ${hex(b.start)}-${hex(b.start + b.size - 1)}] ${formatBytes(b.size)}`,
      );
    for (const r of this.mem.reserved)
      this.log.info("memblock", `reserved [mem ${hex(r.start)}-${hex(r.start + r.size - 1)}] ${r.name}`);

    const razwi = new RazWiMmio();
    for (const r of config.mmio)
      this.mem.addMmioRegion({ name: r.name, start: r.start, size: r.size, handler: razwi });
    for (const x of config.iommus) {
      if (x.base !== undefined)
        this.mem.addMmioRegion({ name: x.name, start: x.base, size: iommuRegSize(x), handler: razwi });
      this.log.info("iommu", `${x.name}: ${x.type}${x.base !== undefined ? ` at ${hex(x.base)}` : ""}`);
    }

    const devices = new Map<string, Device>();
    for (const d of config.platform.devices) devices.set(d.name, this.createPlatformDevice(d, razwi));
    this.platformDevices = devices;
  }

  /** Builds the machine a description describes. Throws `KernelError` if the hardware cannot be assembled. */
  static boot(config: MachineConfig, options: MachineBootOptions = {}): Machine {
    return new Machine(config, options.seed ?? 1);
  }

  /** Every device by name (platform devices for now). */
  get devices(): ReadonlyMap<string, Device> {
    return this.platformDevices;
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

  private createPlatformDevice(d: PlatformDeviceConfig, razwi: MmioHandler): Device {
    const dev = new Device({
      name: d.name,
      bus: "platform",
      log: this.log,
      dmaMask: bitMask(d.dmaMask),
      coherentDmaMask: bitMask(d.coherentDmaMask ?? d.dmaMask),
      dmaCoherent: this.coherentFor(d),
    });
    if (d.maxSegmentSize !== undefined) dmaSetMaxSegSize(dev, d.maxSegmentSize);
    if (d.segmentBoundary !== undefined) dmaSetSegBoundary(dev, d.segmentBoundary - 1);
    if (d.reg) this.mem.addMmioRegion({ name: d.name, start: d.reg.start, size: d.reg.size, handler: razwi });
    this.log.info(
      "platform",
      `${d.name}: DMA mask ${d.dmaMask} bits, ${dev.dmaCoherent ? "coherent" : "non-coherent"}${d.iommu ? `, behind ${d.iommu}` : ""}`,
    );
    return dev;
  }
}
