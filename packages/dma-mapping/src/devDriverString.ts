import type { Device } from "@dmakit/core";

/**
 * `dev_driver_string(dev)`: the bound driver's name, else the bus name, else "" (what dmesg puts
 * before the device name in `dev_*` messages and dma-debug reports).
 * @see drivers/base/core.c dev_driver_string
 */
export function devDriverString(dev: Device): string {
  return dev.driver ?? dev.bus ?? "";
}
