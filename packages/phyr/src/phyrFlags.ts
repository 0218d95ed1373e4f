/**
 * Per-entry flags of a {@link PhysRangeList} / {@link DmaRangeList}. These bit values are the
 * model's own: the kernel's `struct phys_vec` carries no flags, and the "Phyr Starter" thread
 * (Matthew Wilcox, linux-kernel, January 2022) only proposed that a range list should say how its
 * memory is to be treated. They are modelled on `SG_DMA_BUS_ADDRESS` / `SG_DMA_SWIOTLB`
 * (`sg->dma_flags`), `DMA_ATTR_MMIO` and GUP's `FOLL_PIN`.
 *
 * Four bits fit beside the length in one float64 slot (see {@link PHYR_MAX_LEN}).
 */

/**
 * The address is a PCI bus address (P2P through a switch, `PCI_P2PDMA_MAP_BUS_ADDR`) that must
 * not be unmapped through the IOMMU.
 * @see include/linux/scatterlist.h SG_DMA_BUS_ADDRESS (1 << 0), sg_dma_mark_bus_address
 */
export const PHYR_F_BUS_ADDR = 1 << 0;

/**
 * The range was bounced through a swiotlb slot: unmap and sync must take the swiotlb path.
 * The kernel marks only the first sg entry of a bounced list; the model marks each range.
 * @see include/linux/scatterlist.h SG_DMA_SWIOTLB (1 << 1), sg_dma_mark_swiotlb
 */
export const PHYR_F_SWIOTLB = 1 << 1;

/**
 * The range is MMIO (a BAR, no `struct page`): no kmap, no cache maintenance, no swiotlb.
 * The kernel passes this per call as an attribute (bit 10); the model stores it per range.
 * @see include/linux/dma-mapping.h DMA_ATTR_MMIO, drivers/dma-buf/dma-buf-mapping.c
 */
export const PHYR_F_MMIO = 1 << 2;

/**
 * The pages were pinned with `FOLL_PIN` (`pin_user_pages*`) and the list's owner must release them
 * with `unpin_user_pages`, never `put_page`. The kernel keeps no such bit; callers remember it.
 * @see mm/gup.c pin_user_pages, Documentation/core-api/pin_user_pages.rst
 */
export const PHYR_F_PINNED = 1 << 3;

/** Every defined flag bit; any other bit is rejected with EINVAL. Model-only. */
export const PHYR_F_MASK = PHYR_F_BUS_ADDR | PHYR_F_SWIOTLB | PHYR_F_MMIO | PHYR_F_PINNED;

const NAMES: readonly [number, string][] = [
  [PHYR_F_BUS_ADDR, "BUS_ADDR"],
  [PHYR_F_SWIOTLB, "SWIOTLB"],
  [PHYR_F_MMIO, "MMIO"],
  [PHYR_F_PINNED, "PINNED"],
];

/**
 * Flags as `BUS_ADDR|MMIO` (`0` when none), for traces and messages. Model-only: the kernel has
 * no printer for `dma_flags`.
 */
export function phyrFlagsToString(flags: number): string {
  const parts: string[] = [];
  for (const [bit, name] of NAMES) if (flags & bit) parts.push(name);
  const unknown = flags & ~PHYR_F_MASK;
  if (unknown) parts.push(`0x${unknown.toString(16)}`);
  return parts.length === 0 ? "0" : parts.join("|");
}
