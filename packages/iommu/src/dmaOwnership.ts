import { type Device, KernelError } from "@dmakit/core";
import { devIommuGet } from "./devIommu.js";
import type { IommuGroup } from "./IommuGroup.js";
import { iommuGroupSetDomainInternal, iommuPagingDomainAlloc } from "./iommuAttach.js";

/**
 * `iommu_device_use_default_domain(dev)`: what the driver core does before a kernel driver probes
 * `dev`: counts the driver as a user of the group's default domain. Throws `EBUSY` when the group
 * is owned by a user-space owner (VFIO/iommufd) or attached to a non-default domain, `EAGAIN` (the
 * kernel's `-EPROBE_DEFER`) when the group has no default domain yet. No-op without a group.
 * @see drivers/iommu/iommu.c iommu_device_use_default_domain
 */
export function iommuDeviceUseDefaultDomain(dev: Device): void {
  const group = devIommuGet(dev)?.group;
  if (group == null) return;
  if (group.defaultDomain === null)
    throw new KernelError(
      "EAGAIN",
      `iommu: ${dev.name}: group ${group.id} has no default domain yet (EPROBE_DEFER)`,
    );
  if (group.ownerCnt > 0 && (group.domain !== group.defaultDomain || group.owner !== null))
    throw new KernelError(
      "EBUSY",
      `iommu: ${dev.name}: group ${group.id} is owned for user-space DMA${
        group.domain !== group.defaultDomain ? ` (attached to ${group.domain?.name ?? "none"})` : ""
      }, a kernel driver cannot use its default domain`,
    );
  group.ownerCnt++;
}

/**
 * `iommu_device_unuse_default_domain(dev)`: the driver core after a kernel driver unbinds. WARNs on
 * an unbalanced call.
 * @see drivers/iommu/iommu.c iommu_device_unuse_default_domain
 */
export function iommuDeviceUnuseDefaultDomain(dev: Device): void {
  const group = devIommuGet(dev)?.group;
  if (group == null) return;
  if (
    !group.iommu.log.warn(
      group.ownerCnt === 0,
      "iommu",
      `WARN: ${dev.name}: unbalanced unuse of default domain`,
    )
  )
    group.ownerCnt--;
}

/** `__iommu_group_alloc_blocking_domain`: the driver's static blocked domain, else an empty paging domain. */
function allocBlockingDomain(group: IommuGroup): void {
  if (group.blockingDomain !== null) return;
  const dev = group.devices[0];
  if (dev === undefined) throw new KernelError("EINVAL", `iommu: group ${group.id} has no devices`);
  const ops = devIommuGet(dev)?.iommuDev?.ops;
  if (ops?.blockedDomain !== undefined) {
    group.blockingDomain = ops.blockedDomain;
    return;
  }
  // Drivers without IOMMU_DOMAIN_BLOCKED get an empty paging domain: nothing mapped, all DMA faults.
  group.blockingDomain = iommuPagingDomainAlloc(dev);
}

/** `__iommu_take_dma_ownership`: blocks the group's DMA and records the owner. */
function takeDmaOwnership(group: IommuGroup, owner: unknown): void {
  if (group.domain !== null && group.domain !== group.defaultDomain)
    throw new KernelError(
      "EBUSY",
      `iommu: group ${group.id} is attached to ${group.domain.name}, cannot claim DMA ownership`,
    );
  allocBlockingDomain(group);
  iommuGroupSetDomainInternal(group, group.blockingDomain as NonNullable<typeof group.blockingDomain>);
  group.owner = owner;
  group.ownerCnt++;
}

/**
 * `iommu_group_claim_dma_owner(group, owner)`: VFIO takes the whole group for user-space DMA; the
 * group's DMA is blocked until the owner attaches its own domain. Throws `EINVAL` (WARN) for a
 * null owner, `EPERM` when any user exists (a kernel driver is bound and using the default domain,
 * or the group is already claimed), `EBUSY` when a non-default domain is attached.
 * @see drivers/iommu/iommu.c iommu_group_claim_dma_owner
 */
export function iommuGroupClaimDmaOwner(group: IommuGroup, owner: unknown): void {
  if (group.iommu.log.warn(owner == null, "iommu", "WARN: iommu_group_claim_dma_owner: no owner"))
    throw new KernelError("EINVAL", `iommu: group ${group.id}: DMA owner cookie is null`);
  if (group.ownerCnt > 0)
    throw new KernelError(
      "EPERM",
      `iommu: group ${group.id} has ${group.ownerCnt} DMA user(s)${group.owner === null ? " (kernel drivers bound)" : ""}, cannot claim DMA ownership`,
    );
  takeDmaOwnership(group, owner);
}

/**
 * `iommu_device_claim_dma_owner(dev, owner)`: per-device claim (iommufd/VFIO cdev): a second claim
 * by the same owner only counts; `EPERM` when the group has users with another owner (or kernel
 * drivers), `ENODEV` without a group, `EINVAL` for a null owner, `EBUSY` as for the group claim.
 * @see drivers/iommu/iommu.c iommu_device_claim_dma_owner
 */
export function iommuDeviceClaimDmaOwner(dev: Device, owner: unknown): void {
  const group = devIommuGet(dev)?.group;
  if (owner == null) {
    dev.log.warn(true, "iommu", "WARN: iommu_device_claim_dma_owner: no owner");
    throw new KernelError("EINVAL", `iommu: ${dev.name}: DMA owner cookie is null`);
  }
  if (group == null) throw new KernelError("ENODEV", `iommu: ${dev.name} has no IOMMU group`);
  if (group.ownerCnt > 0) {
    if (group.owner !== owner)
      throw new KernelError(
        "EPERM",
        `iommu: ${dev.name}: group ${group.id} is used by ${group.owner === null ? "kernel drivers" : "another owner"}`,
      );
    group.ownerCnt++;
    return;
  }
  takeDmaOwnership(group, owner);
}

/** `__iommu_release_dma_ownership`: back to the default domain. */
function releaseDmaOwnership(group: IommuGroup): void {
  if (
    group.iommu.log.warn(
      group.ownerCnt === 0 || group.owner === null,
      "iommu",
      `WARN: group ${group.id}: releasing DMA ownership that was not claimed`,
    )
  )
    return;
  group.ownerCnt = 0;
  group.owner = null;
  if (group.defaultDomain !== null) iommuGroupSetDomainInternal(group, group.defaultDomain, true);
}

/**
 * `iommu_group_release_dma_owner(group)`.
 * @see drivers/iommu/iommu.c iommu_group_release_dma_owner
 */
export function iommuGroupReleaseDmaOwner(group: IommuGroup): void {
  releaseDmaOwnership(group);
}

/**
 * `iommu_device_release_dma_owner(dev)`: drops one claim; the last one returns the group to its
 * default domain.
 * @see drivers/iommu/iommu.c iommu_device_release_dma_owner
 */
export function iommuDeviceReleaseDmaOwner(dev: Device): void {
  const group = devIommuGet(dev)?.group;
  if (group == null) return;
  if (group.ownerCnt > 1) group.ownerCnt--;
  else releaseDmaOwnership(group);
}

/**
 * `iommu_group_dma_owner_claimed(group)`: any user (kernel driver or user-space owner) exists.
 * @see drivers/iommu/iommu.c iommu_group_dma_owner_claimed
 */
export function iommuGroupDmaOwnerClaimed(group: IommuGroup): boolean {
  return group.ownerCnt > 0;
}
