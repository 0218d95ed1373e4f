/**
 * Page flag bits kept in the memmap's 16-bit flags word. Named after the kernel's `PG_*` flags and
 * page types (include/linux/page-flags.h); the model keeps only the ones the DMA stack observes,
 * and stores bit masks rather than bit numbers.
 */
/**
 * `PG_reserved`: memblock-reserved or a hole; never handed to the buddy allocator.
 * @see include/linux/page-flags.h
 */
export const PG_reserved = 1 << 0;
/**
 * `PageBuddy` (a page type in the kernel): head of a free buddy block; its order is in `order`.
 * @see include/linux/page-flags.h PageBuddy
 */
export const PG_buddy = 1 << 1;
/**
 * `PG_head`: first page of a compound page (folio); its order is in `order`.
 * @see include/linux/page-flags.h
 */
export const PG_head = 1 << 2;
/**
 * Tail page of a compound page (the kernel encodes this in `compound_head`).
 * @see include/linux/page-flags.h PageTail
 */
export const PG_tail = 1 << 3;
/** `PG_dirty`. @see include/linux/page-flags.h */
export const PG_dirty = 1 << 4;
/**
 * The page lies in a CMA area (the kernel tracks MIGRATE_CMA per pageblock).
 * Model-only page bit. @see include/linux/mmzone.h is_migrate_cma
 */
export const PG_cma = 1 << 5;
/**
 * `PG_anon`-like: the page backs anonymous user memory.
 * @see include/linux/page-flags.h PageAnon (the kernel keeps it in `page->mapping`)
 */
export const PG_anon = 1 << 6;
/**
 * The page backs a shared-memory object (shmem/memfd).
 * Model-only page bit: the kernel tells by `folio->mapping`. @see mm/shmem.c shmem_mapping
 */
export const PG_shmem = 1 << 7;
/**
 * `PG_slab`-like: allocated for kernel use (page tables, swiotlb pool, sg chunks).
 * Model-only page bit: the kernel does not mark every kernel allocation.
 */
export const PG_kernel = 1 << 8;
/**
 * `PG_lru`: on an LRU list, i.e. a movable user page that migration may move.
 * @see include/linux/page-flags.h
 */
export const PG_lru = 1 << 9;
/** Spare bits for later packages start here. Model-only. */
export const PG_FIRST_FREE_BIT = 10;
