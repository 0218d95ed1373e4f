import {
  BUS_NOTIFY_ADD_DEVICE,
  BUS_NOTIFY_DEL_DEVICE,
  BUS_NOTIFY_REMOVED_DEVICE,
  BusNotifier,
} from "./BusNotifier.js";
import { Device, type DeviceOptions } from "./Device.js";
import { KernelError } from "./KernelError.js";
import { KernelLog } from "./KernelLog.js";

/**
 * Options of {@link PlatformBus.addDevice}.
 * Model-only: stands for the devicetree/ACPI node a platform device is created from.
 */
export interface PlatformDeviceOptions extends Omit<DeviceOptions, "bus" | "log" | "notifier"> {
  /** IOMMU stream IDs (devicetree `iommus = <&smmu N>`, the fwspec `ids`); none = not behind an IOMMU. */
  streamIds?: readonly number[];
  /** Name of the IOMMU instance the stream IDs belong to (`iommus` phandle target). */
  iommu?: string;
}

/**
 * `struct platform_device`: a memory-mapped SoC device described by devicetree or ACPI.
 * @see include/linux/platform_device.h struct platform_device. The model keeps the IOMMU
 * association the firmware gives (`iommu_fwspec` ids and IOMMU instance) as plain fields.
 */
export class PlatformDevice extends Device {
  /** `dev_iommu_fwspec_get(dev)->ids`. */
  readonly streamIds: readonly number[];
  /** The IOMMU instance name, or null. */
  readonly iommu: string | null;

  constructor(options: DeviceOptions & { streamIds?: readonly number[]; iommu?: string }) {
    super(options);
    this.streamIds = options.streamIds ?? [];
    this.iommu = options.iommu ?? null;
  }
}

/**
 * The platform bus of one machine: registers devices (names unique), owns the bus notifier chain.
 * @see drivers/base/platform.c platform_device_register, platform_device_unregister, platform_bus_type.
 * Platform devices get `dma_parms` (as `platform_device_alloc` sets) and a 32-bit default mask.
 */
export class PlatformBus {
  /** `platform_bus_type`'s notifier chain. */
  readonly notifier: BusNotifier;
  readonly log: KernelLog;
  private readonly devs = new Map<string, PlatformDevice>();

  constructor(options: { log?: KernelLog; notifier?: BusNotifier } = {}) {
    this.log = options.log ?? new KernelLog();
    this.notifier = options.notifier ?? new BusNotifier();
  }

  /**
   * `platform_device_register`: creates and adds a device, sends `BUS_NOTIFY_ADD_DEVICE`.
   * Throws `EEXIST` when the name is taken.
   */
  addDevice(options: PlatformDeviceOptions): PlatformDevice {
    if (this.devs.has(options.name)) {
      throw new KernelError("EEXIST", `platform: device name ${options.name} already registered`);
    }
    const dev = new PlatformDevice({ ...options, bus: "platform", log: this.log, notifier: this.notifier });
    this.devs.set(dev.name, dev);
    this.notifier.callChain(BUS_NOTIFY_ADD_DEVICE, dev);
    return dev;
  }

  /**
   * `platform_device_unregister`: releases the driver (unbind notifications), sends
   * `BUS_NOTIFY_DEL_DEVICE` and `BUS_NOTIFY_REMOVED_DEVICE`. Returns false if `dev` is not on this bus.
   */
  removeDevice(dev: PlatformDevice): boolean {
    if (this.devs.get(dev.name) !== dev) return false;
    this.notifier.callChain(BUS_NOTIFY_DEL_DEVICE, dev);
    dev.releaseDriver();
    this.devs.delete(dev.name);
    this.notifier.callChain(BUS_NOTIFY_REMOVED_DEVICE, dev);
    return true;
  }

  /** The device called `name`, or undefined. */
  find(name: string): PlatformDevice | undefined {
    return this.devs.get(name);
  }

  /** All devices, in registration order. */
  devices(): PlatformDevice[] {
    return [...this.devs.values()];
  }
}
