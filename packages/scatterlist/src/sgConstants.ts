/** `SG_CHAIN`: bit 0 of `page_link`, the entry links to another scatterlist array. @see include/linux/scatterlist.h */
export const SG_CHAIN = 0x01;
/** `SG_END`: bit 1 of `page_link`, the entry is the last of its list. @see include/linux/scatterlist.h */
export const SG_END = 0x02;
/** `SG_PAGE_LINK_MASK` = `SG_CHAIN | SG_END`. @see include/linux/scatterlist.h */
export const SG_PAGE_LINK_MASK = SG_CHAIN | SG_END;

/**
 * `sizeof(struct scatterlist)` on 64-bit with NEED_SG_DMA_LENGTH and NEED_SG_DMA_FLAGS: 32 bytes.
 * @see include/linux/scatterlist.h struct scatterlist
 */
export const SG_SLOT_BYTES = 32;
/**
 * `sizeof(struct sg_table)` on 64-bit: pointer + two unsigned ints = 16 bytes.
 * @see include/linux/scatterlist.h struct sg_table
 */
export const SG_TABLE_BYTES = 16;
/**
 * `sizeof(struct sg_append_table)` on 64-bit: sg_table 16 + prv 8 + total_nents 4 (+4 padding) = 32 bytes.
 * @see include/linux/scatterlist.h struct sg_append_table
 */
export const SG_APPEND_TABLE_BYTES = 32;

/**
 * `SG_MAX_SINGLE_ALLOC` = PAGE_SIZE / sizeof(struct scatterlist) = 128: entries per chunk; longer
 * tables are chained. @see include/linux/scatterlist.h
 */
export const SG_MAX_SINGLE_ALLOC = 128;
/** `SG_CHUNK_SIZE` (lib/sg_pool.c mempool chunk). @see include/linux/scatterlist.h */
export const SG_CHUNK_SIZE = 128;
/** `SG_MAX_SEGMENTS` with sg chaining (128 with CONFIG_ARCH_NO_SG_CHAIN). @see include/linux/scatterlist.h */
export const SG_MAX_SEGMENTS = 2048;
/**
 * `SCATTERLIST_MAX_SEGMENT` = `UINT_MAX & PAGE_MASK` (5.x; today's `sg_alloc_table_from_pages` passes
 * UINT_MAX and the code aligns it down to the same value).
 * @see include/linux/scatterlist.h (5.x)
 */
export const SCATTERLIST_MAX_SEGMENT = 0xfffff000;
/** `UINT_MAX`: what `sg_alloc_table_from_pages` passes as `max_segment`. @see include/vdso/limits.h */
export const UINT_MAX = 0xffffffff;

/**
 * The model's "no struct page" (`NULL` page pointer): `sgPage` returns it for DMA-only entries built
 * with `sg_set_page(sg, NULL, 0, 0)`, and `sgSetPage` accepts it.
 * Model-only: the pfn sentinel for a NULL page pointer.
 */
export const NO_PAGE = -1;

/**
 * `SG_DMA_BUS_ADDRESS` (`dma_flags` bit 0): a P2P bus address, not unmapped through the IOMMU.
 * @see include/linux/scatterlist.h
 */
export const SG_DMA_BUS_ADDRESS = 1 << 0;
/**
 * `SG_DMA_SWIOTLB` (`dma_flags` bit 1): dma-iommu bounced this list through swiotlb.
 * @see include/linux/scatterlist.h
 */
export const SG_DMA_SWIOTLB = 1 << 1;

/** `SG_MITER_ATOMIC`: kmap_atomic. @see include/linux/scatterlist.h */
export const SG_MITER_ATOMIC = 1 << 0;
/**
 * `SG_MITER_TO_SG`: the iteration writes the list (flush_dcache_page on unmap).
 * @see include/linux/scatterlist.h
 */
export const SG_MITER_TO_SG = 1 << 1;
/** `SG_MITER_FROM_SG`: the iteration reads the list. @see include/linux/scatterlist.h */
export const SG_MITER_FROM_SG = 1 << 2;
/** `SG_MITER_LOCAL`: kmap_local_page. @see include/linux/scatterlist.h */
export const SG_MITER_LOCAL = 1 << 3;
