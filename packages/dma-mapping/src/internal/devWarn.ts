import { type Device, hex } from "@dmakit/core";

/**
 * `dev_driver_string(dev)`: the bound driver's name, else the bus name, else "".
 * @see drivers/base/core.c dev_driver_string
 */
export function devDriverString(dev: Device): string {
  return dev.driver ?? dev.bus ?? "";
}

/**
 * `dev_WARN_ONCE(dev, cond, fmt)`: WARN_ONCE whose text starts with `"<driver> <device>: "`. The
 * kernel keys the once-flag on the call site; `key` names it.
 * @see include/linux/device.h dev_WARN_ONCE
 */
export function devWarnOnce(dev: Device, cond: boolean, key: string, message: string): boolean {
  return dev.log.warnOnce(cond, key, `${devDriverString(dev)} ${dev.name}`.trim(), message);
}

/** `WARN_ON_ONCE(cond)` at a call site of `fn`; the message names the condition and the device. */
export function warnOnOnce(dev: Device, cond: boolean, fn: string, condition: string): boolean {
  // The key and text are built only when the condition holds (this guards every dma_map_phys).
  if (!cond) return false;
  return dev.log.warnOnce(true, `${fn}:${condition}`, dev.name, `${fn}: WARN_ON_ONCE(${condition})`);
}

/** `%llx`: hex digits without the 0x prefix (DMA_MAPPING_ERROR and 64-bit masks as 16 f's). */
export function llx(x: number): string {
  return hex(x).slice(2);
}
