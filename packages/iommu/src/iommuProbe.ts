import { type Device, KernelError } from "@dmakit/core";
import { devIommuGet, devIommuGetOrInit } from "./devIommu.js";
import {
  __IOMMU_DOMAIN_PAGING,
  IOMMU_DOMAIN_DMA,
  IOMMU_DOMAIN_DMA_FQ,
  IOMMU_DOMAIN_IDENTITY,
  iommuDomainTypeStr,
  iommuIsDmaDomain,
} from "./domainTypes.js";
import type { IommuDomain } from "./IommuDomain.js";
import type { IommuGroup } from "./IommuGroup.js";
import { IOMMU_RESV_DIRECT, IOMMU_RESV_DIRECT_RELAXABLE } from "./IommuResvRegion.js";
import type { IommuSubsystem } from "./IommuSubsystem.js";
import {
  iommuDomainAllocType,
  iommuDomainFree,
  iommuGroupSetDomainInternal,
  iommuPagingDomainAllocType,
} from "./iommuAttach.js";
import { IOMMU_CAP_DEFERRED_FLUSH } from "./iommuCap.js";
import { iommuGroupAddDevice, iommuGroupRemoveDevice } from "./iommuGroupMembership.js";
import { iommuIovaToPhys, iommuMap } from "./iommuMap.js";
import { iommuGetResvRegions } from "./iommuResvRegions.js";

/** `iommu_get_def_domain_type(group, dev, cur_type)`: folds one device's driver preference in. */
function defDomainTypeOf(group: IommuGroup, dev: Device, curType: number): number {
  const ops = devIommuGet(dev)?.iommuDev?.ops;
  if (ops === undefined) return curType;
  let type: number;
  if (ops.defaultDomain !== undefined) type = ops.defaultDomain.type;
  else if (ops.defDomainType !== undefined) type = ops.defDomainType(dev);
  else return curType;
  if (type === 0 || curType === type) return curType;
  if (curType === 0) return type;
  group.iommu.log.err(
    dev.name,
    `IOMMU driver error, requesting conflicting def_domain_type, ${iommuDomainTypeStr(curType)} and ${iommuDomainTypeStr(type)}, for devices in group ${group.id}.`,
  );
  // Drivers may force IDENTITY or DMA; IDENTITY wins.
  return type === IOMMU_DOMAIN_IDENTITY ? type : curType;
}

/**
 * `iommu_get_default_domain_type(group, target_type)`: the type the group must have (driver
 * requirements; untrusted devices force `IOMMU_DOMAIN_DMA`), `targetType` if compatible, 0 for "no
 * requirement", or -1 when the requirements conflict.
 * @see drivers/iommu/iommu.c iommu_get_default_domain_type
 */
export function iommuGetDefaultDomainType(group: IommuGroup, targetType: number): number {
  let driverType = 0;
  let untrusted: Device | null = null;
  for (const dev of group.devices) {
    driverType = defDomainTypeOf(group, dev, driverType);
    if (dev.untrusted) untrusted = dev;
  }
  if (untrusted !== null) {
    if (driverType !== 0 && driverType !== IOMMU_DOMAIN_DMA) {
      group.iommu.log.err(
        untrusted.name,
        `Device is not trusted, but driver is overriding group ${group.id} to ${iommuDomainTypeStr(driverType)}, refusing to probe.`,
      );
      return -1;
    }
    driverType = IOMMU_DOMAIN_DMA;
  }
  if (targetType !== 0) {
    if (driverType !== 0 && targetType !== driverType) return -1;
    return targetType;
  }
  return driverType;
}

/**
 * `__iommu_group_alloc_default_domain(group, req_type)`. Model placement: a DMA-FQ domain on an
 * IOMMU without `IOMMU_CAP_DEFERRED_FLUSH` becomes plain DMA here (the kernel does it in
 * dma-iommu's `iommu_dma_init_domain`).
 */
function allocDefaultDomainOfType(group: IommuGroup, reqType: number): IommuDomain {
  if (group.defaultDomain !== null && group.defaultDomain.type === reqType) return group.defaultDomain;
  const dev = group.devices[0] as Device;
  const dom =
    (reqType & __IOMMU_DOMAIN_PAGING) !== 0
      ? iommuPagingDomainAllocType(dev, reqType)
      : iommuDomainAllocType(dev, reqType);
  if (
    dom.type === IOMMU_DOMAIN_DMA_FQ &&
    devIommuGet(dev)?.iommuDev?.ops.capable?.(dev, IOMMU_CAP_DEFERRED_FLUSH) !== true
  )
    dom.type = IOMMU_DOMAIN_DMA;
  return dom;
}

/**
 * `iommu_group_alloc_default_domain(group, req_type)`: the driver's static default domain, the
 * requested type, or the policy's type falling back to DMA (with the kernel's warning).
 * @see drivers/iommu/iommu.c iommu_group_alloc_default_domain
 */
function allocDefaultDomain(group: IommuGroup, reqType: number): IommuDomain {
  const iommu = group.iommu;
  const ops = devIommuGet(group.devices[0] as Device)?.iommuDev?.ops;
  if (ops?.defaultDomain !== undefined) {
    if (reqType !== 0 && reqType !== ops.defaultDomain.type)
      throw new KernelError(
        "EINVAL",
        `iommu: group ${group.id}: driver's static default domain is not type ${reqType}`,
      );
    return ops.defaultDomain;
  }
  if (reqType !== 0) return allocDefaultDomainOfType(group, reqType);
  try {
    return allocDefaultDomainOfType(group, iommu.defDomainType);
  } catch (e) {
    if (iommu.defDomainType === IOMMU_DOMAIN_DMA) throw e;
  }
  const dom = allocDefaultDomainOfType(group, IOMMU_DOMAIN_DMA);
  iommu.log.warning(
    "iommu",
    `Failed to allocate default IOMMU domain of type ${iommu.defDomainType} for group ${group.name ?? group.id} - Falling back to IOMMU_DOMAIN_DMA`,
  );
  return dom;
}

/**
 * `iommu_create_device_direct_mappings(domain, dev)`: maps the device's `IOMMU_RESV_DIRECT` and
 * `_DIRECT_RELAXABLE` regions 1:1 in a DMA domain (skipping pages already mapped), and marks the
 * device `requireDirect` when it has a DIRECT region.
 * @see drivers/iommu/iommu.c iommu_create_device_direct_mappings
 */
export function iommuCreateDeviceDirectMappings(domain: IommuDomain, dev: Device): void {
  const minPg = domain.pgsizeBitmap !== 0 ? lowestPage(domain.pgsizeBitmap) : 0;
  if (iommuIsDmaDomain(domain.type) && minPg === 0)
    throw new KernelError("EINVAL", `iommu: ${domain.name}: DMA domain without page sizes`);
  const p = devIommuGetOrInit(dev);
  for (const entry of iommuGetResvRegions(dev)) {
    if (entry.type === IOMMU_RESV_DIRECT) p.requireDirect = true;
    if (
      (entry.type !== IOMMU_RESV_DIRECT && entry.type !== IOMMU_RESV_DIRECT_RELAXABLE) ||
      !iommuIsDmaDomain(domain.type)
    )
      continue;
    const start = Math.ceil(entry.start / minPg) * minPg;
    const end = Math.ceil((entry.start + entry.length) / minPg) * minPg;
    let mapSize = 0;
    for (let addr = start; addr <= end; addr += minPg) {
      if (addr !== end && iommuIovaToPhys(domain, addr) === 0) {
        mapSize += minPg;
        continue;
      }
      if (mapSize !== 0) {
        iommuMap(domain, addr - mapSize, addr - mapSize, mapSize, entry.prot);
        mapSize = 0;
      }
    }
  }
}

function lowestPage(bitmap: number): number {
  for (let n = 0; n < 53; n++) if (Math.floor(bitmap / 2 ** n) % 2 === 1) return 2 ** n;
  return 0;
}

/**
 * `iommu_setup_default_domain(group, target_type)`: picks the type (driver requirements, untrusted
 * devices, the subsystem policy, `targetType`), allocates the domain, maps direct regions, and
 * attaches the group to it if it was on the old default domain (or nothing). `EINVAL` for
 * conflicting requirements; the driver's error on allocation/attach failure (old default kept).
 * @see drivers/iommu/iommu.c iommu_setup_default_domain
 */
export function iommuSetupDefaultDomain(group: IommuGroup, targetType: number): void {
  const reqType = iommuGetDefaultDomainType(group, targetType);
  if (reqType < 0)
    throw new KernelError("EINVAL", `iommu: group ${group.id}: conflicting default domain requirements`);
  const dom = allocDefaultDomain(group, reqType);
  if (group.defaultDomain === dom) return;
  let directFailed = false;
  for (const dev of group.devices) {
    try {
      iommuCreateDeviceDirectMappings(dom, dev);
    } catch {
      directFailed = true;
      group.iommu.log.warning(dev.name, "iommu: Failed to create direct mappings");
    }
  }
  const old = group.defaultDomain;
  group.defaultDomain = dom;
  if (group.domain === null) {
    iommuGroupSetDomainInternal(group, dom, true);
  } else if (group.domain === old) {
    try {
      iommuGroupSetDomainInternal(group, dom);
    } catch (e) {
      group.defaultDomain = old;
      iommuDomainFree(dom);
      throw e;
    }
  }
  // Drivers that map direct regions only once attached get a second chance now.
  if (directFailed) for (const dev of group.devices) iommuCreateDeviceDirectMappings(dom, dev);
  if (old !== null && old !== dom) iommuDomainFree(old);
}

/**
 * `iommu_probe_device(dev)`: hands `dev` to the IOMMU its fwspec names (`iommuFwspecInit`), or to
 * the machine's only IOMMU: the driver's `probeDevice`, then `deviceGroup`, membership, the group's
 * default domain (set up on first member; later members join the group's current domain), direct
 * mappings, `probeFinalize`. A device already probed is left alone.
 *
 * Throws `ENODEV` when no IOMMU handles the device (the kernel returns -ENODEV and the device does
 * DMA without an IOMMU); the driver's or the policy's error otherwise, after undoing the probe.
 * Model difference: takes the machine's IOMMU subsystem (the kernel finds ops through the bus).
 * @see drivers/iommu/iommu.c iommu_probe_device, __iommu_probe_device, iommu_init_device
 */
export function iommuProbeDevice(iommu: IommuSubsystem, dev: Device): void {
  const p = devIommuGetOrInit(dev);
  if (p.group !== null) return;
  const inst = p.fwspec?.iommu ?? (iommu.iommus.length === 1 ? iommu.iommus[0] : undefined);
  if (inst === undefined)
    throw new KernelError(
      "ENODEV",
      `iommu: ${dev.name}: no IOMMU instance (no fwspec, ${iommu.iommus.length} IOMMUs)`,
    );
  const ops = inst.ops;
  p.iommuDev = ops.probeDevice(dev);
  let group: IommuGroup | null = null;
  try {
    group = ops.deviceGroup(dev, iommu);
    iommuGroupAddDevice(group, dev);
    if (group.defaultDomain !== null) iommuCreateDeviceDirectMappings(group.defaultDomain, dev);
    if (group.domain !== null) {
      // Joining an existing group: its current domain (default, blocking or an owner's) applies.
      group.domain.ops.attachDev(group.domain, dev);
    } else if (group.defaultDomain === null) {
      iommuSetupDefaultDomain(group, 0);
    }
  } catch (e) {
    if (group !== null && p.group === group) iommuGroupRemoveDevice(dev);
    ops.releaseDevice?.(dev);
    p.iommuDev = null;
    throw e;
  }
  ops.probeFinalize?.(dev);
}

/**
 * `iommu_release_device(dev)`: the reverse of {@link iommuProbeDevice}: the driver's
 * `releaseDomain` (or blocked domain) is attached, the driver forgets the device, and it leaves its
 * group. No-op for a device the IOMMU never probed.
 * @see drivers/iommu/iommu.c iommu_release_device, iommu_deinit_device
 */
export function iommuReleaseDevice(dev: Device): void {
  const p = devIommuGet(dev);
  if (p == null || p.iommuDev === null) return;
  const ops = p.iommuDev.ops;
  const rel = ops.releaseDomain ?? ops.blockedDomain;
  if (rel !== undefined && p.group !== null && p.group.devices.length > 0) {
    try {
      rel.ops.attachDev(rel, dev);
    } catch {}
  }
  ops.releaseDevice?.(dev);
  iommuGroupRemoveDevice(dev);
  p.iommuDev = null;
  p.priv = null;
}

/**
 * Writing `/sys/kernel/iommu_groups/N/type` ("DMA", "DMA-FQ", "identity", "auto"): DMA → DMA-FQ
 * switches live; any other change needs a group with devices and no bound driver or owner
 * (`EPERM`) and re-creates the default domain. `EINVAL` for an unknown word or a group without a
 * default domain.
 * @see drivers/iommu/iommu.c iommu_group_store_type
 */
export function iommuGroupStoreType(group: IommuGroup, type: "DMA" | "DMA-FQ" | "identity" | "auto"): void {
  const reqType =
    type === "identity"
      ? IOMMU_DOMAIN_IDENTITY
      : type === "DMA"
        ? IOMMU_DOMAIN_DMA
        : type === "DMA-FQ"
          ? IOMMU_DOMAIN_DMA_FQ
          : type === "auto"
            ? 0
            : -1;
  if (reqType < 0) throw new KernelError("EINVAL", `iommu: group ${group.id}: unknown domain type "${type}"`);
  const dd = group.defaultDomain;
  if (dd === null) throw new KernelError("EINVAL", `iommu: group ${group.id} has no default domain`);
  if (reqType === IOMMU_DOMAIN_DMA_FQ && dd.type === IOMMU_DOMAIN_DMA) {
    dd.type = IOMMU_DOMAIN_DMA_FQ;
    return;
  }
  if (group.devices.length === 0 || group.ownerCnt > 0)
    throw new KernelError(
      "EPERM",
      `iommu: group ${group.id}: devices bound or owned, cannot change default domain`,
    );
  iommuSetupDefaultDomain(group, reqType);
}
