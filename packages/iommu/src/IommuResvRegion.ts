/**
 * `IOMMU_RESV_DIRECT`: must be identity-mapped for the device (e.g. an RMRR the firmware DMAs to).
 * @see include/linux/iommu.h enum iommu_resv_type
 */
export const IOMMU_RESV_DIRECT = 0;
/**
 * `IOMMU_RESV_DIRECT_RELAXABLE`: identity-mapped by default, but may be dropped (USB/GFX RMRRs) for
 * device assignment.
 * @see include/linux/iommu.h enum iommu_resv_type
 */
export const IOMMU_RESV_DIRECT_RELAXABLE = 1;
/**
 * `IOMMU_RESV_RESERVED`: never map anything here (e.g. a host bridge window the device cannot reach
 * through the IOMMU).
 * @see include/linux/iommu.h enum iommu_resv_type
 */
export const IOMMU_RESV_RESERVED = 2;
/**
 * `IOMMU_RESV_MSI`: hardware MSI doorbell region, translated by the IOMMU bypass (x86 0xfee00000).
 * @see include/linux/iommu.h enum iommu_resv_type
 */
export const IOMMU_RESV_MSI = 3;
/**
 * `IOMMU_RESV_SW_MSI`: software-managed MSI window (ARM: the driver maps the ITS doorbell here).
 * @see include/linux/iommu.h enum iommu_resv_type
 */
export const IOMMU_RESV_SW_MSI = 4;

/** One of the `IOMMU_RESV_*` values. @see include/linux/iommu.h enum iommu_resv_type */
export type IommuResvType = 0 | 1 | 2 | 3 | 4;

/**
 * `struct iommu_resv_region`: an IOVA range with special meaning for a device.
 * @see include/linux/iommu.h struct iommu_resv_region
 */
export interface IommuResvRegion {
  start: number;
  length: number;
  /** `IOMMU_*` prot for DIRECT/MSI mappings. */
  prot: number;
  type: IommuResvType;
}

/**
 * `iommu_alloc_resv_region(start, length, prot, type, gfp)`.
 * @see drivers/iommu/iommu.c iommu_alloc_resv_region
 */
export function iommuAllocResvRegion(
  start: number,
  length: number,
  prot: number,
  type: IommuResvType,
): IommuResvRegion {
  return { start, length, prot, type };
}

const RESV_TYPE_STRINGS = ["direct", "direct-relaxable", "reserved", "msi", "msi"] as const;

/**
 * The sysfs word for a reserved region type (`reserved_regions` file): "direct",
 * "direct-relaxable", "reserved", "msi" (hardware and software MSI print the same).
 * @see drivers/iommu/iommu.c iommu_group_resv_type_string
 */
export function iommuResvTypeString(type: IommuResvType): string {
  return RESV_TYPE_STRINGS[type];
}

/**
 * The x86 MSI doorbell window 0xfee00000-0xfeefffff (`IOAPIC_RANGE_START`/`_END`).
 * @see drivers/iommu/amd/amd_iommu_types.h MSI_RANGE_START, drivers/iommu/intel/iommu.c IOAPIC_RANGE_START
 */
export const MSI_RANGE_START = 0xfee00000;
/**
 * Length of the x86 MSI window.
 * Model-only: the kernel defines the end instead (`MSI_RANGE_END` = 0xfeefffff).
 */
export const MSI_RANGE_SIZE = 0x100000;
/**
 * ARM SMMU's software MSI IOVA window base (`MSI_IOVA_BASE`).
 * @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h
 */
export const MSI_IOVA_BASE = 0x8000000;
/**
 * ARM SMMU's software MSI IOVA window length (`MSI_IOVA_LENGTH`).
 * @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h
 */
export const MSI_IOVA_LENGTH = 0x100000;
