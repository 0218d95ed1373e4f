import type { Device } from "@dmakit/core";
import type { IommuDomain } from "./IommuDomain.js";
import type { IommuDomainOps } from "./IommuDomainOps.js";
import type { IommuGroup } from "./IommuGroup.js";
import type { IommuHardware } from "./IommuHardware.js";
import type { IommuResvRegion } from "./IommuResvRegion.js";
import type { IommuSubsystem } from "./IommuSubsystem.js";
import type { IommuCap } from "./iommuCap.js";

/**
 * `struct iommu_device`: one IOMMU hardware instance as the kernel knows it: the driver's ops, and
 * (the model's addition) the hardware half that devices' DMA goes through.
 * @see include/linux/iommu.h struct iommu_device
 */
export interface IommuDevice {
  /** Instance name, e.g. `"smmu0"`, `"dmar0"` (sysfs `/sys/class/iommu/<name>`). */
  readonly name: string;
  readonly ops: IommuOps;
  /** The hardware model that translates DMA for devices behind this instance; null for a software-only IOMMU. */
  readonly hardware: IommuHardware | null;
  /** `max_pasids`: 0 when PASIDs are unsupported. */
  readonly maxPasids: number;
  /** The IOMMU's own device (`iommu->dev`), for messages; null if none. */
  readonly dev: Device | null;
}

/**
 * `struct iommu_ops`: what an IOMMU implementation package provides. The core calls these; users
 * never do. Swapping an IOMMU implementation means registering another {@link IommuDevice} whose
 * `ops` is another object; nothing above the core changes.
 *
 * Errors are thrown as `KernelError` (the kernel's `ERR_PTR`/negative returns).
 * @see include/linux/iommu.h struct iommu_ops
 */
export interface IommuOps {
  /** Driver name for messages (`"arm-smmu-v3"`, `"intel-iommu"`). */
  readonly name: string;
  /** `pgsize_bitmap`: page sizes the hardware maps with (bit n ⇒ 2^n bytes). */
  readonly pgsizeBitmap: number;
  /** `capable(dev, cap)`: per-device capability query (`IOMMU_CAP_*`). Absent ⇒ false. */
  capable?(dev: Device, cap: IommuCap): boolean;
  /**
   * `probe_device(dev)`: takes a device behind this IOMMU (its fwspec ids name its stream or
   * requester ids), sets up per-device driver state (`devIommuPrivSet`), returns the instance.
   * Throws `ENODEV` when the device is not behind this IOMMU.
   */
  probeDevice(dev: Device): IommuDevice;
  /** `release_device(dev)`: undoes `probeDevice`. */
  releaseDevice?(dev: Device): void;
  /** `probe_finalize(dev)`: after the default domain is attached. */
  probeFinalize?(dev: Device): void;
  /**
   * `device_group(dev)`: the group `dev` belongs in: an existing group of a device it cannot be
   * isolated from, or a new one. Typically {@link pciDeviceGroup} or {@link genericDeviceGroup}.
   * Model difference: takes the subsystem that owns group ids.
   */
  deviceGroup(dev: Device, iommu: IommuSubsystem): IommuGroup;
  /** `get_resv_regions(dev, list)`: the device's reserved IOVA regions (MSI windows, RMRRs, holes). */
  getResvRegions?(dev: Device): IommuResvRegion[];
  /**
   * `def_domain_type(dev)`: the default domain type the driver requires for this device
   * (`IOMMU_DOMAIN_IDENTITY` or `IOMMU_DOMAIN_DMA`), or 0 for no preference.
   */
  defDomainType?(dev: Device): number;
  /**
   * `domain_alloc_paging(dev)`: a new paging domain (type `IOMMU_DOMAIN_UNMANAGED`; the core
   * retypes it for DMA-API use) suitable for `dev`, with `pgsizeBitmap` and `geometry` set.
   * Throws `ENOMEM`, `EOPNOTSUPP`.
   */
  domainAllocPaging?(dev: Device): IommuDomain;
  /** `domain_alloc(type)`: legacy allocator for any type; null if unsupported. */
  domainAlloc?(type: number): IommuDomain | null;
  /** `identity_domain`: the driver's static identity (passthrough) domain. */
  identityDomain?: IommuDomain;
  /** `blocked_domain`: the driver's static blocking domain. */
  blockedDomain?: IommuDomain;
  /** `release_domain`: attached when a device is released. */
  releaseDomain?: IommuDomain;
  /** `default_domain`: legacy: a static domain that is always the default. */
  defaultDomain?: IommuDomain;
  /** `default_domain_ops`: ops for domains the driver allocates (informational). */
  defaultDomainOps?: IommuDomainOps;
}
