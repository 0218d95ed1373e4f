/**
 * `prot` bits of `iommu_map` and `map_pages`.
 * @see include/linux/iommu.h IOMMU_READ ... IOMMU_PRIV
 */

/** `IOMMU_READ`: the device may read. */
export const IOMMU_READ = 1 << 0;
/** `IOMMU_WRITE`: the device may write. @see include/linux/iommu.h */
export const IOMMU_WRITE = 1 << 1;
/** `IOMMU_CACHE`: DMA is cache coherent (snooped). @see include/linux/iommu.h */
export const IOMMU_CACHE = 1 << 2;
/** `IOMMU_NOEXEC`: the device may not fetch instructions from the mapping. @see include/linux/iommu.h */
export const IOMMU_NOEXEC = 1 << 3;
/**
 * `IOMMU_MMIO`: the mapping targets device memory (e.g. an MSI doorbell or a BAR).
 * @see include/linux/iommu.h
 */
export const IOMMU_MMIO = 1 << 4;
/** `IOMMU_PRIV`: privileged (supervisor) access only. @see include/linux/iommu.h */
export const IOMMU_PRIV = 1 << 5;
