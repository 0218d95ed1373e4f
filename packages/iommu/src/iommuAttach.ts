import { type Device, KernelError } from "@dmakit/core";
import { devIommuGet, devIommuOps } from "./devIommu.js";
import {
  __IOMMU_DOMAIN_DMA_FQ,
  __IOMMU_DOMAIN_PAGING,
  IOMMU_DOMAIN_BLOCKED,
  IOMMU_DOMAIN_IDENTITY,
  IOMMU_DOMAIN_UNMANAGED,
} from "./domainTypes.js";
import type { IommuDomain } from "./IommuDomain.js";
import type { IommuGroup } from "./IommuGroup.js";
import type { IommuOps } from "./IommuOps.js";

/**
 * `iommu_domain_init(domain, type, ops)`: sets the type, owner, the page sizes (the driver's, unless
 * the domain set its own) and points the domain's log at the machine's.
 */
function domainInit(domain: IommuDomain, type: number, ops: IommuOps, dev: Device): void {
  domain.type = type;
  domain.owner = ops;
  if (domain.pgsizeBitmap === 0) domain.pgsizeBitmap = ops.pgsizeBitmap;
  const group = devIommuGet(dev)?.group;
  if (group != null) domain.log = group.iommu.log;
  else domain.log = dev.log;
}

/**
 * `__iommu_paging_domain_alloc_flags(dev, type, 0)`: a paging domain from `domainAllocPaging`
 * (or the legacy `domainAlloc(UNMANAGED)`), typed `type`. `EOPNOTSUPP` when the driver can do neither.
 * @see drivers/iommu/iommu.c __iommu_paging_domain_alloc_flags
 */
export function iommuPagingDomainAllocType(dev: Device, type: number): IommuDomain {
  const ops = devIommuOps(dev);
  let domain: IommuDomain | null;
  if (ops.domainAllocPaging !== undefined) domain = ops.domainAllocPaging(dev);
  else if (ops.domainAlloc !== undefined) domain = ops.domainAlloc(IOMMU_DOMAIN_UNMANAGED);
  else
    throw new KernelError("EOPNOTSUPP", `iommu: ${ops.name} cannot allocate paging domains for ${dev.name}`);
  if (domain === null) throw new KernelError("ENOMEM", `iommu: ${ops.name}: paging domain allocation failed`);
  domainInit(domain, type, ops, dev);
  return domain;
}

/**
 * `iommu_paging_domain_alloc(dev)`: a new `IOMMU_DOMAIN_UNMANAGED` domain for `dev`'s IOMMU
 * (what VFIO, iommufd and drivers managing their own IOVA space use). `ENODEV` when `dev` was not
 * probed, `EOPNOTSUPP`/`ENOMEM` from the driver.
 * @see drivers/iommu/iommu.c iommu_paging_domain_alloc
 */
export function iommuPagingDomainAlloc(dev: Device): IommuDomain {
  return iommuPagingDomainAllocType(dev, IOMMU_DOMAIN_UNMANAGED);
}

/**
 * `__iommu_domain_alloc(ops, dev, type)`: the driver's static identity/blocked domain when it has
 * one, else a paging domain for paging types, else the legacy `domainAlloc(type)`.
 * `EOPNOTSUPP` when the driver cannot provide the type.
 * @see drivers/iommu/iommu.c __iommu_domain_alloc
 */
export function iommuDomainAllocType(dev: Device, type: number): IommuDomain {
  const ops = devIommuOps(dev);
  const allocType = type & ~__IOMMU_DOMAIN_DMA_FQ;
  if (allocType === IOMMU_DOMAIN_IDENTITY && ops.identityDomain !== undefined) return ops.identityDomain;
  if (allocType === IOMMU_DOMAIN_BLOCKED && ops.blockedDomain !== undefined) return ops.blockedDomain;
  let domain: IommuDomain | null;
  if ((type & __IOMMU_DOMAIN_PAGING) !== 0 && ops.domainAllocPaging !== undefined)
    domain = ops.domainAllocPaging(dev);
  else if (ops.domainAlloc !== undefined) domain = ops.domainAlloc(allocType);
  else throw new KernelError("EOPNOTSUPP", `iommu: ${ops.name} cannot allocate a domain of type ${type}`);
  if (domain === null)
    throw new KernelError("EOPNOTSUPP", `iommu: ${ops.name} cannot allocate a domain of type ${type}`);
  domainInit(domain, type, ops, dev);
  return domain;
}

/**
 * `iommu_domain_free(domain)`: the driver's `free`. Static identity/blocked domains are left alone.
 * @see drivers/iommu/iommu.c iommu_domain_free
 */
export function iommuDomainFree(domain: IommuDomain): void {
  const o = domain.owner;
  if (o != null && (domain === o.identityDomain || domain === o.blockedDomain || domain === o.defaultDomain))
    return;
  domain.ops.free?.(domain);
}

/**
 * `__iommu_device_set_domain`: attaches one device, refusing blocking domains for devices whose
 * firmware demands a 1:1 mapping (`require_direct`).
 */
function deviceSetDomain(group: IommuGroup, dev: Device, domain: IommuDomain, mustSucceed: boolean): void {
  const p = devIommuGet(dev);
  if (
    p?.requireDirect === true &&
    (domain.type === IOMMU_DOMAIN_BLOCKED || domain === group.blockingDomain)
  ) {
    group.iommu.log.warning(
      dev.name,
      "Firmware has requested this device have a 1:1 IOMMU mapping, rejecting configuring the device without a 1:1 mapping. Contact your platform vendor.",
    );
    throw new KernelError(
      "EINVAL",
      `iommu: ${dev.name} requires a 1:1 mapping, cannot attach ${domain.name}`,
    );
  }
  try {
    domain.ops.attachDev(domain, dev);
  } catch (e) {
    // Modern drivers' blocking domains cannot fail: fall back to it rather than leave a dangling domain.
    if (mustSucceed && group.blockingDomain !== null && group.blockingDomain !== domain) {
      try {
        group.blockingDomain.ops.attachDev(group.blockingDomain, dev);
      } catch {}
    }
    throw e;
  }
}

/**
 * `__iommu_group_set_domain_internal(group, new_domain, flags)`: attaches every member to
 * `domain`; on a failure the members already moved are put back on the old domain, and the error
 * is thrown with `group.domain` unchanged. With `mustSucceed` the remaining devices are still tried
 * and the first error thrown after `group.domain` is set.
 * @see drivers/iommu/iommu.c __iommu_group_set_domain_internal
 */
export function iommuGroupSetDomainInternal(
  group: IommuGroup,
  domain: IommuDomain,
  mustSucceed = false,
): void {
  if (group.domain === domain) return;
  let firstError: unknown = null;
  const done: Device[] = [];
  for (const dev of group.devices) {
    try {
      deviceSetDomain(group, dev, domain, mustSucceed);
      done.push(dev);
    } catch (e) {
      if (mustSucceed) {
        firstError ??= e;
        continue;
      }
      // Unwind: a well-behaved driver can always re-attach a domain that was attached before.
      const old = group.domain;
      if (old !== null)
        for (const d of [...done, dev]) {
          try {
            deviceSetDomain(group, d, old, true);
          } catch {
            group.iommu.log.warn(
              true,
              "iommu",
              `WARN: ${d.name}: cannot restore ${old.name} after a failed attach`,
            );
          }
        }
      throw e;
    }
  }
  group.domain = domain;
  if (firstError !== null) throw firstError;
}

/** `__iommu_group_set_core_domain`: back to the blocking domain when user-owned, else the default domain. */
function groupSetCoreDomain(group: IommuGroup): void {
  const target = group.owner !== null ? group.blockingDomain : group.defaultDomain;
  if (target === null) return;
  try {
    iommuGroupSetDomainInternal(group, target, true);
  } catch (e) {
    group.iommu.log.warn(true, "iommu", `WARN: group ${group.id}: cannot restore core domain: ${String(e)}`);
  }
}

/**
 * `__iommu_attach_group`: `EBUSY` when another non-core domain is attached, `EINVAL` when the domain
 * belongs to another IOMMU driver.
 */
function attachGroup(domain: IommuDomain, group: IommuGroup): void {
  if (group.domain !== null && group.domain !== group.defaultDomain && group.domain !== group.blockingDomain)
    throw new KernelError(
      "EBUSY",
      `iommu: group ${group.id} is attached to ${group.domain.name}, not attaching ${domain.name}`,
    );
  const dev = group.devices[0];
  if (dev === undefined || devIommuGet(dev)?.iommuDev == null || devIommuOps(dev) !== domain.owner)
    throw new KernelError("EINVAL", `iommu: ${domain.name} belongs to another IOMMU than group ${group.id}`);
  iommuGroupSetDomainInternal(group, domain);
}

/**
 * `iommu_attach_device(domain, dev)`: attaches `domain` to `dev`'s group, which must contain only
 * `dev` (`EINVAL` otherwise: use `iommuAttachGroup`). `ENODEV` when `dev` has no group; `EBUSY`
 * when a non-default domain is already attached; `EINVAL` for another driver's domain; the
 * driver's error otherwise (state unchanged).
 * @see drivers/iommu/iommu.c iommu_attach_device
 */
export function iommuAttachDevice(domain: IommuDomain, dev: Device): void {
  const group = devIommuGet(dev)?.group;
  if (group == null) throw new KernelError("ENODEV", `iommu: ${dev.name} has no IOMMU group`);
  if (group.devices.length !== 1)
    throw new KernelError(
      "EINVAL",
      `iommu: ${dev.name}: group ${group.id} has ${group.devices.length} devices, iommu_attach_device needs a singleton group`,
    );
  attachGroup(domain, group);
}

/**
 * `iommu_detach_device(domain, dev)`: back to the default domain (or the blocking domain when the
 * group is user-owned). WARNs and does nothing when `domain` is not attached or the group is not
 * a singleton.
 * @see drivers/iommu/iommu.c iommu_detach_device
 */
export function iommuDetachDevice(domain: IommuDomain, dev: Device): void {
  const group = devIommuGet(dev)?.group;
  if (group == null) return;
  const log = group.iommu.log;
  if (
    log.warn(
      domain !== group.domain,
      "iommu",
      `WARN: iommu_detach_device: ${domain.name} is not attached to ${dev.name}`,
    )
  )
    return;
  if (
    log.warn(
      group.devices.length !== 1,
      "iommu",
      `WARN: iommu_detach_device: group ${group.id} is not a singleton`,
    )
  )
    return;
  groupSetCoreDomain(group);
}

/**
 * `iommu_attach_group(domain, group)`: attaches every device of the group; errors as
 * {@link iommuAttachDevice} without the singleton rule.
 * @see drivers/iommu/iommu.c iommu_attach_group
 */
export function iommuAttachGroup(domain: IommuDomain, group: IommuGroup): void {
  attachGroup(domain, group);
}

/**
 * `iommu_detach_group(domain, group)`: back to the core domain (default, or blocking when owned).
 * @see drivers/iommu/iommu.c iommu_detach_group
 */
export function iommuDetachGroup(_domain: IommuDomain, group: IommuGroup): void {
  groupSetCoreDomain(group);
}

/**
 * `iommu_group_replace_domain(group, new_domain)`: switches the group to `domain` directly, without
 * passing through the default or blocking domain (iommufd). On failure the old domain stays.
 * @see drivers/iommu/iommu.c iommu_group_replace_domain
 */
export function iommuGroupReplaceDomain(group: IommuGroup, domain: IommuDomain): void {
  iommuGroupSetDomainInternal(group, domain);
}

/**
 * `iommu_get_domain_for_dev(dev)`: the domain currently attached to `dev`'s group, or null.
 * @see drivers/iommu/iommu.c iommu_get_domain_for_dev
 */
export function iommuGetDomainForDev(dev: Device): IommuDomain | null {
  return devIommuGet(dev)?.group?.domain ?? null;
}

/**
 * `iommu_get_dma_domain(dev)`: the group's default domain (what the DMA API maps through), or null.
 * @see drivers/iommu/iommu.c iommu_get_dma_domain
 */
export function iommuGetDmaDomain(dev: Device): IommuDomain | null {
  return devIommuGet(dev)?.group?.defaultDomain ?? null;
}
