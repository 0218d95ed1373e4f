import { type Device, KernelError } from "@dmakit/core";
import { devIommuGet, devIommuGetOrInit } from "./devIommu.js";
import type { IommuGroup } from "./IommuGroup.js";

/**
 * `iommu_group_get(dev)`: the device's group, or null when it has none. (No refcount in the model;
 * {@link iommuGroupPut} exists for symmetry.)
 * @see drivers/iommu/iommu.c iommu_group_get
 */
export function iommuGroupGet(dev: Device): IommuGroup | null {
  return devIommuGet(dev)?.group ?? null;
}

/**
 * `iommu_group_put(group)`: a no-op in the model (groups are released when their last device leaves).
 * @see drivers/iommu/iommu.c iommu_group_put
 */
export function iommuGroupPut(_group: IommuGroup | null): void {}

/**
 * `iommu_group_id(group)`.
 * @see drivers/iommu/iommu.c iommu_group_id
 */
export function iommuGroupId(group: IommuGroup): number {
  return group.id;
}

/**
 * `iommu_group_for_each_dev(group, data, fn)`: calls `fn(dev, data)` for each member in order and
 * stops at the first non-zero return, which it returns; 0 when every call returned 0.
 * @see drivers/iommu/iommu.c iommu_group_for_each_dev
 */
export function iommuGroupForEachDev<T>(
  group: IommuGroup,
  data: T,
  fn: (dev: Device, data: T) => number,
): number {
  for (const dev of group.devices.slice()) {
    const ret = fn(dev, data);
    if (ret !== 0) return ret;
  }
  return 0;
}

/**
 * Number of devices in the group (`iommu_group_device_count`).
 * @see drivers/iommu/iommu.c iommu_group_device_count
 */
export function iommuGroupDeviceCount(group: IommuGroup): number {
  return group.devices.length;
}

/**
 * `iommu_group_add_device(group, dev)`: makes `dev` a member (no domain attach: the probe path
 * does that). `EBUSY` when `dev` is already in a group. Logs "Adding device %s to group %d".
 * @see drivers/iommu/iommu.c iommu_group_add_device
 */
export function iommuGroupAddDevice(group: IommuGroup, dev: Device): void {
  const p = devIommuGetOrInit(dev);
  if (p.group !== null)
    throw new KernelError(
      "EBUSY",
      `iommu: ${dev.name} is already in group ${p.group.id}, not adding to ${group.id}`,
    );
  p.group = group;
  group.devices.push(dev);
  group.iommu.log.info("iommu", `Adding device ${dev.name} to group ${group.id}`);
}

/**
 * `iommu_group_remove_device(dev)`: removes `dev` from its group; the group is released when it
 * becomes empty (its default domain is freed). No-op for a device without a group.
 * @see drivers/iommu/iommu.c iommu_group_remove_device
 */
export function iommuGroupRemoveDevice(dev: Device): void {
  const p = devIommuGet(dev);
  const group = p?.group;
  if (p == null || group == null) return;
  group.iommu.log.info("iommu", `Removing device ${dev.name} from group ${group.id}`);
  const i = group.devices.indexOf(dev);
  if (i >= 0) group.devices.splice(i, 1);
  p.group = null;
  if (group.devices.length === 0) {
    const dd = group.defaultDomain;
    const bd = group.blockingDomain;
    group.domain = null;
    group.defaultDomain = null;
    group.blockingDomain = null;
    const owner = dd?.owner;
    // Static driver domains (identity/blocked) are never freed.
    if (
      dd != null &&
      dd !== owner?.identityDomain &&
      dd !== owner?.blockedDomain &&
      dd !== owner?.defaultDomain
    )
      dd.ops.free?.(dd);
    if (bd != null && bd !== bd.owner?.blockedDomain) bd.ops.free?.(bd);
    group.iommu.groupRelease(group);
  }
}
