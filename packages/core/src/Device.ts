import {
  BUS_NOTIFY_BIND_DRIVER,
  BUS_NOTIFY_BOUND_DRIVER,
  BUS_NOTIFY_UNBIND_DRIVER,
  BUS_NOTIFY_UNBOUND_DRIVER,
  type BusNotifier,
} from "./BusNotifier.js";
import type { BusDmaRegion } from "./busDmaRegion.js";
import type { DeviceDmaParameters } from "./DeviceDmaParameters.js";
import { defaultDmaParms } from "./DeviceDmaParameters.js";
import type { DeviceKey } from "./DeviceKey.js";
import { KernelError } from "./KernelError.js";
import { KernelLog } from "./KernelLog.js";
import { bitMask, hex } from "./units.js";

/**
 * How a device is created; every field but `name` has the kernel's default.
 * Model-only: the kernel fills `struct device` fields in place; the model takes them at construction.
 */
export interface DeviceOptions {
  /** `dev_name(dev)`, e.g. `"cam0"`, `"0000:01:00.0"`. */
  name: string;
  /** The bus type name (`"platform"`, `"pci"`); null for bus-less devices such as a host bridge. */
  bus?: string | null;
  parent?: Device | null;
  /** The machine's kernel log; WARNs about this device go there. Default: a private new log. */
  log?: KernelLog;
  /** Notifier chain of the device's bus; driver bind/unbind events are sent to it. */
  notifier?: BusNotifier | null;
  /** `*dev->dma_mask`; null models `dev->dma_mask == NULL`. Default DMA_BIT_MASK(32). */
  dmaMask?: number | null;
  /** `dev->coherent_dma_mask`. Default DMA_BIT_MASK(32). */
  coherentDmaMask?: number;
  /** `dev->bus_dma_limit`, 0 = none. */
  busDmaLimit?: number;
  /** `dev->dma_range_map`; null = CPU and DMA addresses are equal. */
  dmaRangeMap?: readonly BusDmaRegion[] | null;
  /** `dev->dma_parms`; null = none (the dma_set_* setters then WARN). Default: the kernel defaults. */
  dmaParms?: DeviceDmaParameters | null;
  /** `dev->dma_coherent`: DMA snoops CPU caches. Default false. */
  dmaCoherent?: boolean;
  /** Untrusted (external-facing) device: dma-iommu bounces unaligned buffers. Default false. */
  untrusted?: boolean;
}

/**
 * `struct device`: a named device with its DMA constraints, its place in the tree, the driver bound
 * to it and typed per-subsystem state (see {@link DeviceKey}). Buses create subclasses
 * (`PciDev`) or plain devices (`PlatformBus`); every DMA API call takes one.
 *
 * @see include/linux/device.h struct device. The model differs: `dma_mask` is a number (null for a
 * NULL pointer), not a pointer that may alias `coherent_dma_mask`; subsystem fields (`iommu`,
 * `dma_io_tlb_mem`, ...) are {@link DeviceKey} slots; there is no kobject, refcount or devres
 * group, only the per-device actions of {@link devmAddAction}; driver binding is by name.
 */
export class Device {
  readonly name: string;
  /** Bus type name (`dev->bus->name`), or null. */
  readonly bus: string | null;
  readonly parent: Device | null;
  /** The kernel log this device's WARNs go to. */
  readonly log: KernelLog;
  /** The device's bus notifier chain, or null. */
  readonly notifier: BusNotifier | null;
  /** `*dev->dma_mask` (null: no dma_mask pointer). Use `dmaGetMask` for the defaulted value. */
  dmaMask: number | null;
  /** `dev->coherent_dma_mask`. */
  coherentDmaMask: number;
  /** `dev->bus_dma_limit` (0 = none); combined with the mask by `min_not_zero`. */
  busDmaLimit: number;
  /** `dev->dma_range_map` (devicetree `dma-ranges`); null = identity. */
  dmaRangeMap: readonly BusDmaRegion[] | null;
  /** `dev->dma_parms`. */
  dmaParms: DeviceDmaParameters | null;
  /** `dev->dma_coherent` (`dev_is_dma_coherent`). */
  dmaCoherent: boolean;
  /** `dev_is_untrusted` (the kernel keeps it in `pci_dev->untrusted`). */
  untrusted: boolean;

  private driverName: string | null = null;
  private readonly state = new Map<DeviceKey<unknown>, unknown>();
  private readonly unbindFns: Array<(dev: Device) => void> = [];
  private readonly devres: Array<() => void> = [];

  constructor(options: DeviceOptions) {
    this.name = options.name;
    this.bus = options.bus ?? null;
    this.parent = options.parent ?? null;
    this.log = options.log ?? new KernelLog();
    this.notifier = options.notifier ?? null;
    this.dmaMask = options.dmaMask === undefined ? bitMask(32) : options.dmaMask;
    this.coherentDmaMask = options.coherentDmaMask ?? bitMask(32);
    this.busDmaLimit = options.busDmaLimit ?? 0;
    this.dmaRangeMap = options.dmaRangeMap ?? null;
    this.dmaParms = options.dmaParms === undefined ? defaultDmaParms() : options.dmaParms;
    this.dmaCoherent = options.dmaCoherent ?? false;
    this.untrusted = options.untrusted ?? false;
  }

  /** `dev->driver->name`, or null when no driver is bound. */
  get driver(): string | null {
    return this.driverName;
  }

  /** The per-device state in `key`'s slot, or undefined. */
  get<T>(key: DeviceKey<T>): T | undefined {
    return this.state.get(key) as T | undefined;
  }

  /** Stores `value` in `key`'s slot, replacing what was there. */
  set<T>(key: DeviceKey<T>, value: T): void {
    this.state.set(key, value);
  }

  /** True when `key`'s slot holds a value. */
  has(key: DeviceKey<unknown>): boolean {
    return this.state.has(key);
  }

  /** Empties `key`'s slot; returns whether it held a value. */
  delete(key: DeviceKey<unknown>): boolean {
    return this.state.delete(key);
  }

  /** The value in `key`'s slot, created by `init` on first use. */
  getOrInit<T>(key: DeviceKey<T>, init: () => T): T {
    if (this.state.has(key)) return this.state.get(key) as T;
    const v = init();
    this.state.set(key, v);
    return v;
  }

  /**
   * Registers `fn` to run each time a driver is unbound from this device, after the driver's own
   * teardown and devres actions (the point of `BUS_NOTIFY_UNBOUND_DRIVER`). Returns an unregister
   * function. A per-device shortcut for a bus notifier.
   */
  onUnbind(fn: (dev: Device) => void): () => void {
    this.unbindFns.push(fn);
    return () => {
      const i = this.unbindFns.indexOf(fn);
      if (i >= 0) this.unbindFns.splice(i, 1);
    };
  }

  /**
   * Binds a driver by name: `BUS_NOTIFY_BIND_DRIVER`, then `BUS_NOTIFY_BOUND_DRIVER`.
   * Throws `EBUSY` when a driver is already bound (state unchanged).
   * @see drivers/base/dd.c really_probe, driver_bound (no probe callback in the model: the caller
   * runs its probe code after this returns)
   */
  bindDriver(driver: string): void {
    if (this.driverName !== null) {
      throw new KernelError(
        "EBUSY",
        `device ${this.name}: driver ${this.driverName} already bound, not binding ${driver}`,
      );
    }
    this.notifier?.callChain(BUS_NOTIFY_BIND_DRIVER, this);
    this.driverName = driver;
    this.notifier?.callChain(BUS_NOTIFY_BOUND_DRIVER, this);
  }

  /**
   * `device_release_driver(dev)`: `BUS_NOTIFY_UNBIND_DRIVER`, then devres actions (last added
   * first), then the driver is gone, then `BUS_NOTIFY_UNBOUND_DRIVER` and the {@link onUnbind}
   * callbacks. A device with no driver is left alone.
   * @see drivers/base/dd.c __device_release_driver
   */
  releaseDriver(): void {
    if (this.driverName === null) return;
    this.notifier?.callChain(BUS_NOTIFY_UNBIND_DRIVER, this);
    while (this.devres.length > 0) this.devres.pop()?.();
    this.driverName = null;
    this.notifier?.callChain(BUS_NOTIFY_UNBOUND_DRIVER, this);
    for (const fn of this.unbindFns.slice()) fn(this);
  }

  /** Adds a devres release action; used by {@link devmAddAction}. */
  addDevres(fn: () => void): void {
    this.devres.push(fn);
  }

  /** Number of pending devres actions. */
  get devresCount(): number {
    return this.devres.length;
  }

  /** `dev_name(dev)` plus the mask, for messages. */
  toString(): string {
    return `${this.name} (mask ${this.dmaMask === null ? "none" : hex(this.dmaMask)})`;
  }
}

/**
 * `devm_add_action(dev, action, data)`: runs `fn` when the driver is unbound, last added first.
 * Throws `EINVAL` when no driver is bound (the kernel would leak the action until the next unbind).
 * @see drivers/base/devres.c devm_add_action
 */
export function devmAddAction(dev: Device, fn: () => void): void {
  if (dev.driver === null)
    throw new KernelError("EINVAL", `devm_add_action: device ${dev.name} has no driver bound`);
  dev.addDevres(fn);
}

/**
 * `dev_name(dev)`.
 * @see include/linux/device.h dev_name
 */
export function devName(dev: Device): string {
  return dev.name;
}
