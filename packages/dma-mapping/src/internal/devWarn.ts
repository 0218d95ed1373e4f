import type { Device } from "@dmakit/core";
import { devDriverString } from "../devDriverString.js";

/** The `"<driver> <device>"` prefix of `dev_warn`/`dev_WARN` lines (just the device without a driver or bus). */
export function devPrefix(dev: Device): string {
  return `${devDriverString(dev)} ${dev.name}`.trim();
}

/**
 * `dev_WARN_ONCE(dev, cond, fmt)`: WARN_ONCE whose text starts with `"<driver> <device>: "`. The
 * kernel keys the once-flag on the call site; `key` names it.
 * @see include/linux/device.h dev_WARN_ONCE
 */
export function devWarnOnce(dev: Device, cond: boolean, key: string, message: string): boolean {
  return dev.log.warnOnce(cond, key, devPrefix(dev), message);
}

/** `WARN_ON_ONCE(cond)` at a call site of `fn`; the message names the condition and the device. */
export function warnOnOnce(dev: Device, cond: boolean, fn: string, condition: string): boolean {
  // The key and text are built only when the condition holds (this guards every dma_map_phys).
  if (!cond) return false;
  return dev.log.warnOnce(true, `${fn}:${condition}`, dev.name, `${fn}: WARN_ON_ONCE(${condition})`);
}
