import { type Device, devIsPci, KernelError, pciDeviceGroupKey } from "@dmakit/core";
import type { IommuGroup } from "./IommuGroup.js";
import type { IommuSubsystem } from "./IommuSubsystem.js";

/**
 * `generic_device_group(dev)`: every device gets a group of its own (platform devices with their
 * own stream ids).
 * @see drivers/iommu/iommu.c generic_device_group
 */
export function genericDeviceGroup(_dev: Device, iommu: IommuSubsystem): IommuGroup {
  return iommu.groupAlloc();
}

/**
 * `pci_device_group(dev)`: PCI devices that cannot be isolated from each other share a group:
 * devices below a bridge or switch port without an ACS path to the root, and functions of a
 * multifunction device without ACS. Returns the group of an already-grouped device with the same
 * isolation key ({@link pciDeviceGroupKey} from `@dmakit/core`), or a new group.
 * `EINVAL` for a non-PCI device.
 * @see drivers/iommu/iommu.c pci_device_group (simplifications as in `pciDeviceGroupKey`: no DMA
 * alias or ACS quirks)
 */
export function pciDeviceGroup(dev: Device, iommu: IommuSubsystem): IommuGroup {
  if (!devIsPci(dev))
    throw new KernelError("EINVAL", `iommu: pci_device_group: ${dev.name} is not a PCI device`);
  const key = pciDeviceGroupKey(dev);
  for (const g of iommu.groups())
    for (const d of g.devices) if (devIsPci(d) && pciDeviceGroupKey(d) === key) return g;
  return iommu.groupAlloc();
}

/**
 * `iommu_group_set_name(group, name)`.
 * @see drivers/iommu/iommu.c iommu_group_set_name
 */
export function iommuGroupSetName(group: IommuGroup, name: string | null): void {
  group.name = name;
}
