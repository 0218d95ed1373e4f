/**
 * `enum memory_type` for ZONE_DEVICE memory. @see include/linux/memremap.h
 */
export const MEMORY_DEVICE_PRIVATE = 1;
/** `MEMORY_DEVICE_COHERENT`. @see include/linux/memremap.h enum memory_type */
export const MEMORY_DEVICE_COHERENT = 2;
/** `MEMORY_DEVICE_FS_DAX`. @see include/linux/memremap.h enum memory_type */
export const MEMORY_DEVICE_FS_DAX = 3;
/** `MEMORY_DEVICE_GENERIC`. @see include/linux/memremap.h enum memory_type */
export const MEMORY_DEVICE_GENERIC = 4;
/** `MEMORY_DEVICE_PCI_P2PDMA`. @see include/linux/memremap.h enum memory_type */
export const MEMORY_DEVICE_PCI_P2PDMA = 5;

/** A `memory_type` value. @see include/linux/memremap.h enum memory_type */
export type MemoryType =
  | typeof MEMORY_DEVICE_PRIVATE
  | typeof MEMORY_DEVICE_COHERENT
  | typeof MEMORY_DEVICE_FS_DAX
  | typeof MEMORY_DEVICE_GENERIC
  | typeof MEMORY_DEVICE_PCI_P2PDMA;

/**
 * `struct dev_pagemap`: a range of device memory given struct pages by {@link PhysMem.memremapPages}.
 * The model keeps one range per pgmap (the kernel allows several) and identifies the owner by name;
 * `busOffset` is the PCI bus address minus the CPU physical address (P2PDMA's `bus_offset`).
 *
 * @see include/linux/memremap.h struct dev_pagemap
 */
export interface DevPagemap {
  /** Assigned by `memremapPages`; stored per page in the memmap (0 = no pgmap). */
  readonly id: number;
  readonly type: MemoryType;
  /** CPU physical start of the range (page-aligned). */
  readonly start: number;
  /** Size in bytes (page-aligned). */
  readonly size: number;
  /** The device that provides the memory (e.g. a PCI endpoint's name). */
  readonly owner: string;
  /** `bus_offset` of the P2PDMA provider: PCI bus address = physical address + busOffset. */
  readonly busOffset: number;
}
