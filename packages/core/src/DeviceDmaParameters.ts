import type { Device } from "./Device.js";
import { bitMask, SZ_64K, U32_MAX, ULONG_MAX } from "./units.js";

/**
 * `struct device_dma_parameters`: a device's scatter/gather limits. A field of 0 means "unset" and
 * the getters return the kernel's default, exactly as the kernel does; {@link Device} starts with
 * the defaults written in (`maxSegmentSize` SZ_64K, `segmentBoundaryMask` ULONG_MAX, `minAlignMask` 0).
 * @see include/linux/device.h struct device_dma_parameters
 */
export interface DeviceDmaParameters {
  /** Largest DMA segment the device takes, in bytes (`unsigned int` in the kernel). */
  maxSegmentSize: number;
  /** A segment must not cross an address boundary of (mask + 1); ULONG_MAX = no boundary. */
  segmentBoundaryMask: number;
  /** Low address bits the device relies on; swiotlb preserves them when bouncing. */
  minAlignMask: number;
}

/**
 * The defaults the kernel's getters fall back to.
 * @see include/linux/dma-mapping.h dma_get_max_seg_size, dma_get_seg_boundary (the model returns them as a fresh object)
 */
export function defaultDmaParms(): DeviceDmaParameters {
  return { maxSegmentSize: SZ_64K, segmentBoundaryMask: ULONG_MAX, minAlignMask: 0 };
}

/**
 * `dma_get_mask(dev)`: `*dev->dma_mask` when set and non-zero, else `DMA_BIT_MASK(32)`.
 * @see include/linux/dma-mapping.h dma_get_mask
 */
export function dmaGetMask(dev: Device): number {
  return dev.dmaMask ? dev.dmaMask : bitMask(32);
}

/**
 * `dma_get_max_seg_size(dev)`: `dma_parms->max_segment_size`, SZ_64K when unset or no dma_parms.
 * @see include/linux/dma-mapping.h dma_get_max_seg_size
 */
export function dmaGetMaxSegSize(dev: Device): number {
  const p = dev.dmaParms;
  return p?.maxSegmentSize ? p.maxSegmentSize : SZ_64K;
}

/**
 * `dma_set_max_seg_size(dev, size)`: WARN_ON_ONCE (logged) and no change when the device has no
 * dma_parms. Like the kernel since 6.11 it returns nothing.
 * @see include/linux/dma-mapping.h dma_set_max_seg_size
 */
export function dmaSetMaxSegSize(dev: Device, size: number): void {
  if (noParms(dev, "dma_set_max_seg_size")) return;
  dev.dmaParms!.maxSegmentSize = Math.min(size, U32_MAX);
}

/**
 * `dma_get_seg_boundary(dev)`: `dma_parms->segment_boundary_mask`, ULONG_MAX when unset.
 * @see include/linux/dma-mapping.h dma_get_seg_boundary
 */
export function dmaGetSegBoundary(dev: Device): number {
  const p = dev.dmaParms;
  return p?.segmentBoundaryMask ? p.segmentBoundaryMask : ULONG_MAX;
}

/**
 * `dma_get_seg_boundary_nr_pages(dev, page_shift)`: the segment boundary in pages of
 * `1 << pageShift`, i.e. `(boundary >> page_shift) + 1`; with a null `dev` the boundary is U32_MAX.
 * For the ULONG_MAX boundary it returns 2^(64 - pageShift), which is exact.
 * @see include/linux/dma-mapping.h dma_get_seg_boundary_nr_pages
 */
export function dmaGetSegBoundaryNrPages(dev: Device | null, pageShift: number): number {
  if (dev === null) return Math.floor(U32_MAX / 2 ** pageShift) + 1;
  const boundary = dmaGetSegBoundary(dev);
  if (boundary > Number.MAX_SAFE_INTEGER) return 2 ** (Math.round(Math.log2(boundary)) - pageShift);
  return Math.floor(boundary / 2 ** pageShift) + 1;
}

/**
 * `dma_set_seg_boundary(dev, mask)`: WARN_ON_ONCE and no change without dma_parms.
 * @see include/linux/dma-mapping.h dma_set_seg_boundary
 */
export function dmaSetSegBoundary(dev: Device, mask: number): void {
  if (noParms(dev, "dma_set_seg_boundary")) return;
  dev.dmaParms!.segmentBoundaryMask = mask;
}

/**
 * `dma_get_min_align_mask(dev)`: 0 when unset or no dma_parms.
 * @see include/linux/dma-mapping.h dma_get_min_align_mask
 */
export function dmaGetMinAlignMask(dev: Device): number {
  return dev.dmaParms?.minAlignMask ?? 0;
}

/**
 * `dma_set_min_align_mask(dev, min_align_mask)`: WARN_ON_ONCE and no change without dma_parms.
 * @see include/linux/dma-mapping.h dma_set_min_align_mask
 */
export function dmaSetMinAlignMask(dev: Device, minAlignMask: number): void {
  if (noParms(dev, "dma_set_min_align_mask")) return;
  dev.dmaParms!.minAlignMask = minAlignMask;
}

function noParms(dev: Device, fn: string): boolean {
  return dev.log.warnOnce(
    dev.dmaParms === null,
    fn,
    dev.name,
    `${fn}: device has no dma_parms (WARN_ON_ONCE(!dev->dma_parms))`,
  );
}
