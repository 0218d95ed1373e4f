import type { Device } from "./Device.js";

/** `BUS_NOTIFY_ADD_DEVICE`: device added. @see include/linux/device/bus.h */
export const BUS_NOTIFY_ADD_DEVICE = 0x00000001;
/** `BUS_NOTIFY_DEL_DEVICE`: device about to be removed. @see include/linux/device/bus.h */
export const BUS_NOTIFY_DEL_DEVICE = 0x00000002;
/** `BUS_NOTIFY_REMOVED_DEVICE`: device removed. @see include/linux/device/bus.h */
export const BUS_NOTIFY_REMOVED_DEVICE = 0x00000003;
/** `BUS_NOTIFY_BIND_DRIVER`: driver about to be bound. @see include/linux/device/bus.h */
export const BUS_NOTIFY_BIND_DRIVER = 0x00000004;
/** `BUS_NOTIFY_BOUND_DRIVER`: driver bound to device. @see include/linux/device/bus.h */
export const BUS_NOTIFY_BOUND_DRIVER = 0x00000005;
/** `BUS_NOTIFY_UNBIND_DRIVER`: driver about to be unbound. @see include/linux/device/bus.h */
export const BUS_NOTIFY_UNBIND_DRIVER = 0x00000006;
/**
 * `BUS_NOTIFY_UNBOUND_DRIVER`: driver is unbound from the device (dma-debug checks for leaks here).
 * @see include/linux/device/bus.h
 */
export const BUS_NOTIFY_UNBOUND_DRIVER = 0x00000007;
/** `BUS_NOTIFY_DRIVER_NOT_BOUND`: driver failed to bind. @see include/linux/device/bus.h */
export const BUS_NOTIFY_DRIVER_NOT_BOUND = 0x00000008;

/**
 * One of the `BUS_NOTIFY_*` actions.
 * Model-only: a type for the `unsigned long action` the kernel passes untyped.
 */
export type BusNotifyAction = 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8;

/**
 * A notifier callback: `notifier_call(nb, action, dev)`. Its return value is ignored.
 * @see include/linux/notifier.h notifier_fn_t (the model passes the device itself, no `notifier_block`)
 */
export type BusNotifierFn = (action: BusNotifyAction, dev: Device) => void;

/**
 * A bus's notifier chain: subsystems (IOMMU core, dma-debug) register here to hear about devices
 * being added, bound and unbound. Callbacks run synchronously in registration order.
 *
 * @see drivers/base/bus.c bus_register_notifier, bus_unregister_notifier; kernel/notifier.c
 * blocking_notifier_call_chain. The model has no priorities and ignores `NOTIFY_STOP`; a bus object
 * (PlatformBus, PciHostBridge, or one shared chain standing for `pci_bus_type`) owns the chain.
 */
export class BusNotifier {
  private readonly fns: BusNotifierFn[] = [];

  /** `bus_register_notifier`: returns a function that unregisters. */
  register(fn: BusNotifierFn): () => void {
    this.fns.push(fn);
    return () => this.unregister(fn);
  }

  /** `bus_unregister_notifier`: returns false if `fn` was not registered. */
  unregister(fn: BusNotifierFn): boolean {
    const i = this.fns.indexOf(fn);
    if (i < 0) return false;
    this.fns.splice(i, 1);
    return true;
  }

  /** `blocking_notifier_call_chain(&bus->p->bus_notifier, action, dev)`. */
  callChain(action: BusNotifyAction, dev: Device): void {
    // Copy: a callback may unregister itself while the chain runs.
    for (const fn of this.fns.slice()) fn(action, dev);
  }

  /** Number of registered callbacks. */
  get size(): number {
    return this.fns.length;
  }
}
