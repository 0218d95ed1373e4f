/**
 * DMA attributes, the `attrs` argument of the `*_attrs` calls.
 * @see include/linux/dma-mapping.h, Documentation/core-api/dma-attributes.rst
 * Bits 0 and 3 are historical (WRITE_BARRIER, NON_CONSISTENT) and unused.
 */
export const DMA_ATTR_WEAK_ORDERING = 1 << 1;
/**
 * Writes through the CPU mapping may be combined (`pgprot_writecombine`).
 * @see include/linux/dma-mapping.h
 */
export const DMA_ATTR_WRITE_COMBINE = 1 << 2;
/** No kernel virtual mapping of the buffer (the CPU address is a cookie). @see include/linux/dma-mapping.h */
export const DMA_ATTR_NO_KERNEL_MAPPING = 1 << 4;
/**
 * No CPU cache maintenance; also suppresses dma-debug's overlapping-cacheline error.
 * @see include/linux/dma-mapping.h
 */
export const DMA_ATTR_SKIP_CPU_SYNC = 1 << 5;
/** The buffer must be physically contiguous, even behind an IOMMU. @see include/linux/dma-mapping.h */
export const DMA_ATTR_FORCE_CONTIGUOUS = 1 << 6;
/**
 * Build the buffer from single pages (no higher-order attempts); iommu-dma only.
 * @see include/linux/dma-mapping.h
 */
export const DMA_ATTR_ALLOC_SINGLE_PAGES = 1 << 7;
/**
 * Suppresses allocation-failure warnings such as "swiotlb buffer is full".
 * @see include/linux/dma-mapping.h
 */
export const DMA_ATTR_NO_WARN = 1 << 8;
/**
 * Only privileged (supervisor) device accesses may reach the buffer (`IOMMU_PRIV`).
 * @see include/linux/dma-mapping.h
 */
export const DMA_ATTR_PRIVILEGED = 1 << 9;
/**
 * (6.18) `phys` is MMIO: no struct page, no kmap, no cache flush, no swiotlb.
 * @see include/linux/dma-mapping.h
 */
export const DMA_ATTR_MMIO = 1 << 10;
/** (recent) dma-debug ignores overlapping cachelines for this mapping. @see include/linux/dma-mapping.h */
export const DMA_ATTR_DEBUGGING_IGNORE_CACHELINES = 1 << 11;
/** (recent, 2026) the mapping must not use swiotlb or cache maintenance. @see include/linux/dma-mapping.h */
export const DMA_ATTR_REQUIRE_COHERENT = 1 << 12;

/** `DMA_BIT_MASK(n)` = `GENMASK_ULL(n - 1, 0)`; `DMA_BIT_MASK(64)` is the model's `ULONG_MAX`. */
export { bitMask as DMA_BIT_MASK, DMA_MAPPING_ERROR } from "@dmakit/core";
