/**
 * `sizeof(struct phys_vec)` on 64-bit: `phys_addr_t paddr` (8) + `size_t len` (8) = 16 bytes; the
 * proposed `struct phyr` and `struct dma_range` of the "Phyr Starter" thread have the same layout.
 * `footprint().cBytes` counts this many bytes per entry.
 * @see include/linux/types.h struct phys_vec (6.19; was local to block/blk-mq-dma.c)
 */
export const PHYS_VEC_SIZE = 16;

/**
 * Longest single range the model stores: 2^49 - 1 bytes (512 TiB). The kernel's `size_t len` allows
 * 2^64 - 1; the model packs `len * 16 + flags` into one float64 and keeps it exact below 2^53, which
 * leaves 49 bits for the length. Longer ranges are rejected with E2BIG.
 * Model-only: a limit of the packed storage, not of the kernel.
 */
export const PHYR_MAX_LEN = 2 ** 49 - 1;

/**
 * Exclusive upper end of any range: 2^53. Addresses are exact integers below 2^53
 * (`MAX_PHYS_ADDR` from core); a range whose end passes this is rejected with EOVERFLOW.
 * Model-only: the limit of exact number arithmetic.
 */
export const PHYR_ADDR_LIMIT = 2 ** 53;

/**
 * Most entries one list may hold: 2^28 (4 GiB of typed-array storage). The kernel bounds `nr_ranges`
 * by `size_t` and memory; the model bounds it so that a runaway split fails with E2BIG instead of
 * exhausting the JS heap.
 * Model-only: a heap-safety bound.
 */
export const PHYR_MAX_ENTRIES = 2 ** 28;
