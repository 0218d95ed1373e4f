/**
 * Zone numbers, in the kernel's order. @see include/linux/mmzone.h enum zone_type
 * (the model has no ZONE_HIGHMEM: it models 64-bit machines only).
 */
export const ZONE_DMA = 0;
/** `ZONE_DMA32`. @see include/linux/mmzone.h enum zone_type */
export const ZONE_DMA32 = 1;
/** `ZONE_NORMAL`. @see include/linux/mmzone.h enum zone_type */
export const ZONE_NORMAL = 2;
/** `ZONE_MOVABLE`. @see include/linux/mmzone.h enum zone_type */
export const ZONE_MOVABLE = 3;
/**
 * ZONE_DEVICE: memory with struct pages created by `memremap_pages()` (P2PDMA BARs, device-private).
 * @see include/linux/mmzone.h enum zone_type
 */
export const ZONE_DEVICE = 4;
/** `MAX_NR_ZONES`. @see include/linux/mmzone.h __MAX_NR_ZONES */
export const MAX_NR_ZONES = 5;

/** A zone number. @see include/linux/mmzone.h enum zone_type */
export type ZoneType =
  | typeof ZONE_DMA
  | typeof ZONE_DMA32
  | typeof ZONE_NORMAL
  | typeof ZONE_MOVABLE
  | typeof ZONE_DEVICE;

/** The kernel's zone names, as /proc/zoneinfo prints them. @see mm/page_alloc.c zone_names */
export const ZONE_NAMES: readonly string[] = ["DMA", "DMA32", "Normal", "Movable", "Device"];
