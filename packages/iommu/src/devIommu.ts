import { type Device, DeviceKey, KernelError } from "@dmakit/core";
import type { IommuGroup } from "./IommuGroup.js";
import type { IommuDevice } from "./IommuOps.js";

/**
 * `struct iommu_fwspec`: how firmware (devicetree `iommus`/`iommu-map`, ACPI IORT/DMAR) says which
 * IOMMU instance a device is behind and which stream/requester ids it emits.
 * @see include/linux/iommu.h struct iommu_fwspec
 */
export interface IommuFwspec {
  /** The IOMMU instance (the kernel's `iommu_fwnode` resolved to its `iommu_device`). */
  readonly iommu: IommuDevice;
  /** Stream ids (SMMU) or requester ids (VT-d: bus << 8 | devfn). */
  readonly ids: number[];
  flags: number;
}

/**
 * `struct dev_iommu`: the IOMMU core's per-device state, kept in the device's
 * {@link DEV_IOMMU} slot (never in a global).
 * @see include/linux/iommu.h struct dev_iommu
 */
export interface DevIommu {
  fwspec: IommuFwspec | null;
  /** `iommu_dev`: set by a successful probe. */
  iommuDev: IommuDevice | null;
  /** `dev->iommu_group`. */
  group: IommuGroup | null;
  /** `priv`: the IOMMU driver's per-device state. */
  priv: unknown;
  /** `require_direct`: the device has IOMMU_RESV_DIRECT regions, so it cannot be blocked. */
  requireDirect: boolean;
  /** `shadow_on_flush`: the IOTLB caches non-present entries (VT-d caching mode). */
  shadowOnFlush: boolean;
}

/**
 * The per-device slot holding {@link DevIommu}.
 * Model-only: the slot that stands for the `iommu` field of `struct device` (include/linux/device.h).
 */
export const DEV_IOMMU = new DeviceKey<DevIommu>("iommu");

/**
 * `dev->iommu` (null when the device was never seen by the IOMMU core).
 * @see include/linux/device.h struct device (the `iommu` field, read directly in the kernel)
 */
export function devIommuGet(dev: Device): DevIommu | null {
  return dev.get(DEV_IOMMU) ?? null;
}

/**
 * `dev_iommu_get(dev)`: the device's IOMMU state, created empty on first use.
 * @see drivers/iommu/iommu.c dev_iommu_get
 */
export function devIommuGetOrInit(dev: Device): DevIommu {
  return dev.getOrInit(DEV_IOMMU, () => ({
    fwspec: null,
    iommuDev: null,
    group: null,
    priv: null,
    requireDirect: false,
    shadowOnFlush: false,
  }));
}

/**
 * `iommu_fwspec_init(dev, iommu_fwnode)`: records that `dev` sits behind `iommu`. Calling it again
 * with the same instance is a no-op; another instance throws `EINVAL`.
 * @see drivers/iommu/iommu.c iommu_fwspec_init
 */
export function iommuFwspecInit(dev: Device, iommu: IommuDevice): void {
  const p = devIommuGetOrInit(dev);
  if (p.fwspec !== null) {
    if (p.fwspec.iommu === iommu) return;
    throw new KernelError(
      "EINVAL",
      `iommu: ${dev.name}: fwspec already names ${p.fwspec.iommu.name}, not ${iommu.name}`,
    );
  }
  p.fwspec = { iommu, ids: [], flags: 0 };
}

/**
 * `iommu_fwspec_add_ids(dev, ids, num_ids)`: appends stream/requester ids. `EINVAL` without a fwspec.
 * @see drivers/iommu/iommu.c iommu_fwspec_add_ids
 */
export function iommuFwspecAddIds(dev: Device, ids: readonly number[]): void {
  const f = devIommuGet(dev)?.fwspec;
  if (f == null) throw new KernelError("EINVAL", `iommu: ${dev.name}: no fwspec to add ids to`);
  f.ids.push(...ids);
}

/**
 * `dev_iommu_fwspec_get(dev)`: the device's fwspec, or null.
 * @see include/linux/iommu.h dev_iommu_fwspec_get
 */
export function devIommuFwspecGet(dev: Device): IommuFwspec | null {
  return devIommuGet(dev)?.fwspec ?? null;
}

/**
 * `dev_iommu_priv_get(dev)`: the IOMMU driver's per-device state, or null.
 * @see include/linux/iommu.h dev_iommu_priv_get
 */
export function devIommuPrivGet<T = unknown>(dev: Device): T | null {
  return (devIommuGet(dev)?.priv ?? null) as T | null;
}

/**
 * `dev_iommu_priv_set(dev, priv)`.
 * @see drivers/iommu/iommu.c dev_iommu_priv_set
 */
export function devIommuPrivSet(dev: Device, priv: unknown): void {
  devIommuGetOrInit(dev).priv = priv;
}

/**
 * `dev_iommu_ops(dev)`: the ops of the IOMMU that probed `dev`; `ENODEV` if none did.
 * @see drivers/iommu/iommu-priv.h dev_iommu_ops
 */
export function devIommuOps(dev: Device): IommuDevice["ops"] {
  const d = devIommuGet(dev)?.iommuDev;
  if (d == null) throw new KernelError("ENODEV", `iommu: ${dev.name}: not probed by an IOMMU`);
  return d.ops;
}

/**
 * `device_iommu_mapped(dev)`: the device is in an IOMMU group (its DMA goes through an IOMMU).
 * @see include/linux/device.h device_iommu_mapped
 */
export function deviceIommuMapped(dev: Device): boolean {
  return devIommuGet(dev)?.group != null;
}
