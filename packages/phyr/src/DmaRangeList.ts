import { RangeList } from "./internal/RangeList.js";

/**
 * A list of DMA address ranges `{addr, len, flags}` as a device sees them: the `struct dma_range`
 * lists of Matthew Wilcox's "Phyr Starter" thread (linux-kernel, January 2022), the DMA-side
 * counterpart of a `phys_vec` array. Mainline has no such struct: it keeps DMA addresses in the
 * DMA half of an sg_table (`dma_buf_phys_vec_to_sgt` builds a DMA-only one) or in one contiguous
 * IOVA (`struct dma_iova_state`).
 *
 * Same storage, limits and operations as {@link PhysRangeList} (one shared implementation); the two
 * are distinct types so a physical list cannot be passed where DMA addresses are expected.
 * `PHYR_F_BUS_ADDR` marks a P2P bus address (no IOMMU unmap), `PHYR_F_SWIOTLB` a bounced range.
 *
 * @see include/linux/scatterlist.h sg_dma_address, sg_dma_len; include/linux/dma-mapping.h
 *   struct dma_iova_state; drivers/dma-buf/dma-buf-mapping.c dma_buf_phys_vec_to_sgt
 */
export class DmaRangeList extends RangeList {
  /** Brand: entries are device-visible DMA addresses (IOVA, direct-mapped or bus addresses). */
  readonly kind = "dma" as const;

  protected get label(): string {
    return "dma_range";
  }
}
