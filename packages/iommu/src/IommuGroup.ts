import type { Device } from "@dmakit/core";
import type { IommuDomain } from "./IommuDomain.js";
import type { IommuSubsystem } from "./IommuSubsystem.js";

/**
 * `struct iommu_group`: the smallest set of devices the IOMMU can isolate from each other (devices
 * that alias each other's requester ids, or sit behind a PCI bridge or switch port without ACS).
 * All devices of a group always share one domain. Create groups with `iommu.groupAlloc()`.
 *
 * `ownerCnt` / `owner` implement DMA ownership: kernel drivers using the default domain count as
 * users (owner null); a user-space owner (VFIO, iommufd) claims it with a non-null cookie.
 * @see drivers/iommu/iommu.c struct iommu_group
 */
export class IommuGroup {
  /** `group->id`, the number in `/sys/kernel/iommu_groups/<id>`. */
  readonly id: number;
  /** The subsystem that owns this group. */
  readonly iommu: IommuSubsystem;
  /** `group->name`, optional. */
  name: string | null = null;
  /** Member devices in the order they were added. */
  readonly devices: Device[] = [];
  /** The domain kernel drivers use (DMA, DMA-FQ or identity); null until set up. */
  defaultDomain: IommuDomain | null = null;
  /** The group's blocking domain, made on demand for ownership changes. */
  blockingDomain: IommuDomain | null = null;
  /** The domain currently attached to every member. */
  domain: IommuDomain | null = null;
  /** `owner_cnt`: users of the current ownership (drivers, or claims by the same owner). */
  ownerCnt = 0;
  /** `owner`: the user-space DMA owner's cookie, or null while kernel drivers own it. */
  owner: unknown = null;
  /** `iommu_data`: driver-private data. */
  iommuData: unknown = null;

  constructor(iommu: IommuSubsystem, id: number) {
    this.iommu = iommu;
    this.id = id;
  }

  toString(): string {
    return `group ${this.id}`;
  }
}
