/**
 * IOMMU domain type bits and the composed domain types, with the kernel's exact values.
 * @see include/linux/iommu.h __IOMMU_DOMAIN_PAGING ... IOMMU_DOMAIN_NESTED
 */

/** `__IOMMU_DOMAIN_PAGING`: the domain supports `iommu_map`/`iommu_unmap`. */
export const __IOMMU_DOMAIN_PAGING = 1 << 0;
/**
 * `__IOMMU_DOMAIN_DMA_API`: the domain is used by the kernel DMA API (dma-iommu).
 * @see include/linux/iommu.h
 */
export const __IOMMU_DOMAIN_DMA_API = 1 << 1;
/** `__IOMMU_DOMAIN_PT`: the domain is an identity (passthrough) mapping. @see include/linux/iommu.h */
export const __IOMMU_DOMAIN_PT = 1 << 2;
/**
 * `__IOMMU_DOMAIN_DMA_FQ`: DMA-API domain using a flush queue (lazy invalidation).
 * @see include/linux/iommu.h
 */
export const __IOMMU_DOMAIN_DMA_FQ = 1 << 3;
/** `__IOMMU_DOMAIN_SVA`: shares a CPU page table (shared virtual addressing). @see include/linux/iommu.h */
export const __IOMMU_DOMAIN_SVA = 1 << 4;
/** `__IOMMU_DOMAIN_PLATFORM`: legacy platform domain. @see include/linux/iommu.h */
export const __IOMMU_DOMAIN_PLATFORM = 1 << 5;
/**
 * `__IOMMU_DOMAIN_NESTED`: user-managed stage-1 nested on a parent paging domain.
 * @see include/linux/iommu.h
 */
export const __IOMMU_DOMAIN_NESTED = 1 << 6;

/** `IOMMU_DOMAIN_BLOCKED` = 0: all DMA is blocked. @see include/linux/iommu.h */
export const IOMMU_DOMAIN_BLOCKED = 0;
/** `IOMMU_DOMAIN_IDENTITY`: DMA addresses are physical addresses (1:1). @see include/linux/iommu.h */
export const IOMMU_DOMAIN_IDENTITY = __IOMMU_DOMAIN_PT;
/**
 * `IOMMU_DOMAIN_UNMANAGED`: paging domain owned by VFIO/iommufd/a driver, not the DMA API.
 * @see include/linux/iommu.h
 */
export const IOMMU_DOMAIN_UNMANAGED = __IOMMU_DOMAIN_PAGING;
/**
 * `IOMMU_DOMAIN_DMA`: paging domain for the DMA API, strict (synchronous) invalidation.
 * @see include/linux/iommu.h
 */
export const IOMMU_DOMAIN_DMA = __IOMMU_DOMAIN_PAGING | __IOMMU_DOMAIN_DMA_API;
/**
 * `IOMMU_DOMAIN_DMA_FQ`: paging domain for the DMA API, lazy invalidation through a flush queue.
 * @see include/linux/iommu.h
 */
export const IOMMU_DOMAIN_DMA_FQ = __IOMMU_DOMAIN_PAGING | __IOMMU_DOMAIN_DMA_API | __IOMMU_DOMAIN_DMA_FQ;
/** `IOMMU_DOMAIN_SVA`. @see include/linux/iommu.h */
export const IOMMU_DOMAIN_SVA = __IOMMU_DOMAIN_SVA;
/** `IOMMU_DOMAIN_PLATFORM`. @see include/linux/iommu.h */
export const IOMMU_DOMAIN_PLATFORM = __IOMMU_DOMAIN_PLATFORM;
/** `IOMMU_DOMAIN_NESTED`. @see include/linux/iommu.h */
export const IOMMU_DOMAIN_NESTED = __IOMMU_DOMAIN_NESTED;

/**
 * `iommu_is_dma_domain(domain)`: the domain type has `__IOMMU_DOMAIN_DMA_API`.
 * Takes the type number (the kernel takes the domain; pass `domain.type`).
 * @see include/linux/iommu.h iommu_is_dma_domain
 */
export function iommuIsDmaDomain(type: number): boolean {
  return (type & __IOMMU_DOMAIN_DMA_API) !== 0;
}

/**
 * `iommu_domain_type_str(t)`: "Blocked", "Passthrough", "Unmanaged", "Translated" or "Unknown",
 * the words the kernel prints in "Default domain type: %s".
 * @see drivers/iommu/iommu.c iommu_domain_type_str
 */
export function iommuDomainTypeStr(type: number): string {
  switch (type) {
    case IOMMU_DOMAIN_BLOCKED:
      return "Blocked";
    case IOMMU_DOMAIN_IDENTITY:
      return "Passthrough";
    case IOMMU_DOMAIN_UNMANAGED:
      return "Unmanaged";
    case IOMMU_DOMAIN_DMA:
    case IOMMU_DOMAIN_DMA_FQ:
      return "Translated";
    default:
      return "Unknown";
  }
}

/**
 * The sysfs `/sys/kernel/iommu_groups/N/type` word for a default domain type:
 * "blocked", "identity", "unmanaged", "DMA", "DMA-FQ", or "unknown".
 * @see drivers/iommu/iommu.c iommu_group_show_type
 */
export function iommuGroupTypeStr(type: number): string {
  switch (type) {
    case IOMMU_DOMAIN_BLOCKED:
      return "blocked";
    case IOMMU_DOMAIN_IDENTITY:
      return "identity";
    case IOMMU_DOMAIN_UNMANAGED:
      return "unmanaged";
    case IOMMU_DOMAIN_DMA:
      return "DMA";
    case IOMMU_DOMAIN_DMA_FQ:
      return "DMA-FQ";
    default:
      return "unknown";
  }
}
