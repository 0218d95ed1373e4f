export {
  ARCH_DMA_MINALIGN,
  type CacheFinding,
  type CacheFindingKind,
  CpuCache,
  type CpuCacheOptions,
  type CpuCacheStats,
  type DeviceAccessOptions,
  L1_CACHE_BYTES,
  L1_CACHE_SHIFT,
} from "./CpuCache.js";
export { Memmap, PAGES_PER_SECTION, SECTION_SIZE_BITS } from "./Memmap.js";
export {
  type DevPagemap,
  MEMORY_DEVICE_COHERENT,
  MEMORY_DEVICE_FS_DAX,
  MEMORY_DEVICE_GENERIC,
  MEMORY_DEVICE_PCI_P2PDMA,
  MEMORY_DEVICE_PRIVATE,
  type MemoryType,
} from "./Pgmap.js";
export {
  MemoryBackedMmio,
  type MemoryLayout,
  type MmioHandler,
  type MmioRegion,
  PhysMem,
  type PhysMemOptions,
  type PhysRegionKind,
  type RamBank,
  type ReservedRange,
  type ZoneLimits,
} from "./PhysMem.js";
export {
  PG_anon,
  PG_buddy,
  PG_cma,
  PG_dirty,
  PG_FIRST_FREE_BIT,
  PG_head,
  PG_kernel,
  PG_lru,
  PG_reserved,
  PG_shmem,
  PG_tail,
} from "./pageFlags.js";
export { SparseStore, STORE_CHUNK_SHIFT, STORE_CHUNK_SIZE } from "./SparseStore.js";
export {
  MAX_NR_ZONES,
  ZONE_DEVICE,
  ZONE_DMA,
  ZONE_DMA32,
  ZONE_MOVABLE,
  ZONE_NAMES,
  ZONE_NORMAL,
  type ZoneType,
} from "./zones.js";
