import { RangeList } from "./internal/RangeList.js";

/**
 * A list of physical address ranges `{addr, len, flags}`: the model of `struct phys_vec` arrays
 * (`phys_addr_t paddr; size_t len;`, 16 bytes per entry) and of the `struct phyr` lists proposed in
 * Matthew Wilcox's "Phyr Starter" thread (linux-kernel, January 2022) as a replacement for
 * scatterlists on the CPU side.
 *
 * Differences from the kernel: each entry also carries `PHYR_F_*` flags (MMIO, P2P bus address,
 * swiotlb, FOLL_PIN ownership) packed beside the length, so lengths are limited to
 * `PHYR_MAX_LEN` (2^49 - 1) and addresses to below 2^53; storage is chained typed-array chunks (the
 * kernel passes one flat array plus `nr_ranges`), so appending never copies earlier entries.
 * Zero-length entries are rejected. All derived lists (`slice`, `coalesce`, `splitSegments`) are
 * new objects; a failed call throws `KernelError` and leaves the list unchanged.
 *
 * @see include/linux/types.h struct phys_vec; drivers/dma-buf/dma-buf-mapping.c dma_buf_phys_vec_to_sgt;
 *   block/blk-mq-dma.c (blk_map_iter_next)
 * @example
 * const l = PhysRangeList.fromPfns([0x100, 0x101, 0x200], 512, 3 * 4096 - 1024);
 * l.count;            // 2: [0x100200, +0x1e00) and [0x200000, +0xe00)
 * l.splitSegments(4096, ULONG_MAX).count; // 3
 */
export class PhysRangeList extends RangeList {
  /** Brand: entries are CPU physical addresses (or bus addresses where `PHYR_F_BUS_ADDR` is set). */
  readonly kind = "phys" as const;

  protected get label(): string {
    return "phys_vec";
  }
}
