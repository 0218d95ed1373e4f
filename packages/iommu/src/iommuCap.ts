/**
 * `enum iommu_cap`: what `iommu_ops.capable(dev, cap)` is asked.
 * @see include/linux/iommu.h enum iommu_cap
 */

/** `IOMMU_CAP_CACHE_COHERENCY`: `IOMMU_CACHE` is supported (DMA snoops CPU caches). */
export const IOMMU_CAP_CACHE_COHERENCY = 0;
/** `IOMMU_CAP_NOEXEC`: `IOMMU_NOEXEC` is honoured. @see include/linux/iommu.h enum iommu_cap */
export const IOMMU_CAP_NOEXEC = 1;
/**
 * `IOMMU_CAP_PRE_BOOT_PROTECTION`: firmware used the IOMMU for DMA protection before boot.
 * @see include/linux/iommu.h enum iommu_cap
 */
export const IOMMU_CAP_PRE_BOOT_PROTECTION = 2;
/**
 * `IOMMU_CAP_ENFORCE_CACHE_COHERENCY`: the IOMMU can force no-snoop TLPs to be snooped.
 * @see include/linux/iommu.h enum iommu_cap
 */
export const IOMMU_CAP_ENFORCE_CACHE_COHERENCY = 3;
/**
 * `IOMMU_CAP_DEFERRED_FLUSH`: lazy (flush-queue) invalidation is worthwhile; enables DMA-FQ.
 * @see include/linux/iommu.h enum iommu_cap
 */
export const IOMMU_CAP_DEFERRED_FLUSH = 4;
/** `IOMMU_CAP_DIRTY_TRACKING`: the IOMMU tracks dirty IOVAs. @see include/linux/iommu.h enum iommu_cap */
export const IOMMU_CAP_DIRTY_TRACKING = 5;

/** One of the `IOMMU_CAP_*` values. @see include/linux/iommu.h enum iommu_cap */
export type IommuCap = 0 | 1 | 2 | 3 | 4 | 5;
