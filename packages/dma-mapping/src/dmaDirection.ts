import { KernelError } from "@dmakit/core";

/** `enum dma_data_direction`. @see include/linux/dma-direction.h */
export const DMA_BIDIRECTIONAL = 0;
/** `DMA_TO_DEVICE`: the device reads the buffer. @see include/linux/dma-direction.h */
export const DMA_TO_DEVICE = 1;
/** `DMA_FROM_DEVICE`: the device writes the buffer. @see include/linux/dma-direction.h */
export const DMA_FROM_DEVICE = 2;
/** `DMA_NONE`: invalid for every map, unmap and sync (debug use only). @see include/linux/dma-direction.h */
export const DMA_NONE = 3;

/** A `dma_data_direction` value. @see include/linux/dma-direction.h enum dma_data_direction */
export type DmaDataDirection =
  | typeof DMA_BIDIRECTIONAL
  | typeof DMA_TO_DEVICE
  | typeof DMA_FROM_DEVICE
  | typeof DMA_NONE;

const NAMES = ["DMA_BIDIRECTIONAL", "DMA_TO_DEVICE", "DMA_FROM_DEVICE", "DMA_NONE"] as const;

/** `valid_dma_direction(dir)`: BIDIRECTIONAL, TO_DEVICE or FROM_DEVICE. @see include/linux/dma-direction.h */
export function validDmaDirection(dir: number): dir is DmaDataDirection {
  return dir === DMA_BIDIRECTIONAL || dir === DMA_TO_DEVICE || dir === DMA_FROM_DEVICE;
}

/**
 * The name dma-debug prints for a direction (`dir2name[]` in kernel/dma/debug.c).
 * @see kernel/dma/debug.c dir2name
 */
export function dmaDirectionName(dir: number): string {
  return NAMES[dir] ?? `DMA_DIR_${dir}`;
}

/**
 * `BUG_ON(!valid_dma_direction(dir))`, which every map, unmap and sync does. The kernel crashes;
 * the model throws `EINVAL` naming the caller and the value, before touching any state.
 * @see kernel/dma/mapping.c (e.g. dma_map_phys)
 */
export function checkDmaDirection(dir: number, fn: string): asserts dir is DmaDataDirection {
  if (!validDmaDirection(dir))
    throw new KernelError("EINVAL", `${fn}: BUG: invalid DMA direction ${dmaDirectionName(dir)} (${dir})`);
}
