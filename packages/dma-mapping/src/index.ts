// --- foundation (lead) ---

export type { DmaDebugHooks } from "./DmaDebugHooks.js";
export { type DmaStats, DmaSystem, DmaSystemKey, type DmaSystemOptions } from "./DmaSystem.js";
export {
  DMA_ATTR_ALLOC_SINGLE_PAGES,
  DMA_ATTR_DEBUGGING_IGNORE_CACHELINES,
  DMA_ATTR_FORCE_CONTIGUOUS,
  DMA_ATTR_MMIO,
  DMA_ATTR_NO_KERNEL_MAPPING,
  DMA_ATTR_NO_WARN,
  DMA_ATTR_PRIVILEGED,
  DMA_ATTR_REQUIRE_COHERENT,
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_ATTR_WEAK_ORDERING,
  DMA_ATTR_WRITE_COMBINE,
  DMA_BIT_MASK,
  DMA_MAPPING_ERROR,
} from "./dmaAttrs.js";
export {
  DMA_DEVICE,
  type DmaConfigureOptions,
  type DmaDeviceState,
  devDmaState,
  devIsDmaCoherent,
  dmaConfigure,
  dmaDevNeedSync,
  useDmaIommu,
} from "./dmaDevice.js";
export {
  checkDmaDirection,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_NONE,
  DMA_TO_DEVICE,
  type DmaDataDirection,
  dmaDirectionName,
  validDmaDirection,
} from "./dmaDirection.js";
// --- end foundation ---
// --- swiotlb (S) ---
export {
  and64,
  IO_TLB_DEFAULT_SIZE,
  IO_TLB_MIN_SLABS,
  IO_TLB_SEGSIZE,
  IO_TLB_SHIFT,
  IO_TLB_SIZE,
  nrSlots,
  type SwiotlbMapping,
  SwiotlbMem,
  type SwiotlbMemOptions,
  type SwiotlbReport,
} from "./SwiotlbMem.js";
export {
  defaultSwiotlbBase,
  defaultSwiotlbLimit,
  isSwiotlbActive,
  isSwiotlbAllocated,
  isSwiotlbBuffer,
  isSwiotlbForceBounce,
  SWIOTLB,
  SWIOTLB_BOUNCED,
  type SwiotlbInitOptions,
  type SwiotlbRestrictedOptions,
  setupIoTlbNpages,
  swiotlbDevMem,
  swiotlbExit,
  swiotlbInit,
  swiotlbInitRestricted,
  swiotlbMap,
  swiotlbMaxMappingSize,
  swiotlbRestrictedAttach,
  swiotlbSizeOrDefault,
  swiotlbSyncSingleForCpu,
  swiotlbSyncSingleForDevice,
  swiotlbTblMapSingle,
  swiotlbTblUnmapSingle,
} from "./swiotlb.js";
// --- end swiotlb ---
// --- dispatch, limits, syncs, dma-direct (A) ---
export { archSyncDmaForCpu, archSyncDmaForDevice } from "./archSync.js";
export { dmaCapable, dmaDirectMapPhys, dmaDirectMapSg, dmaDirectUnmapPhys, dmaDirectUnmapSg } from "./dmaDirect.js";
export {
  dmaDirectAllRamMapped,
  dmaDirectGetRequiredMask,
  dmaDirectMaxMappingSize,
  dmaDirectSupported,
} from "./dmaDirectLimits.js";
export {
  dmaDirectNeedSync,
  dmaDirectSyncSgForCpu,
  dmaDirectSyncSgForDevice,
  dmaDirectSyncSingleForCpu,
  dmaDirectSyncSingleForDevice,
} from "./dmaDirectSync.js";
export {
  dmaAddressingLimited,
  dmaCoerceMaskAndCoherent,
  dmaGetCacheAlignment,
  dmaGetMask,
  dmaGetMaxSegSize,
  dmaGetMergeBoundary,
  dmaGetMinAlignMask,
  dmaGetRequiredMask,
  dmaGetSegBoundary,
  dmaGetSegBoundaryNrPages,
  dmaMaxMappingSize,
  dmaOptMappingSize,
  dmaPciP2pdmaSupported,
  dmaSetCoherentMask,
  dmaSetMask,
  dmaSetMaskAndCoherent,
  dmaSetMaxSegSize,
  dmaSetMinAlignMask,
  dmaSetSegBoundary,
  dmaSetupNeedSync,
  dmaSupported,
} from "./dmaLimits.js";
export {
  __dmaSyncSgForCpu,
  __dmaSyncSgForDevice,
  __dmaSyncSingleForCpu,
  __dmaSyncSingleForDevice,
  dmaNeedSync,
  dmaNeedUnmap,
  dmaSyncSgForCpu,
  dmaSyncSgForDevice,
  dmaSyncSgtableForCpu,
  dmaSyncSgtableForDevice,
  dmaSyncSingleForCpu,
  dmaSyncSingleForDevice,
  dmaSyncSingleRangeForCpu,
  dmaSyncSingleRangeForDevice,
} from "./dmaSync.js";
export {
  type DmaMapFields,
  type DmaMapSgErrFields,
  type DmaMapSgFields,
  type DmaSyncSgFields,
  type DmaSyncSingleFields,
  type DmaUnmapFields,
  type DmaUnmapSgFields,
  decodeDmaAttrs,
  decodeDmaDataDirection,
  TRACE_DMA_MAP_PHYS,
  TRACE_DMA_MAP_SG,
  TRACE_DMA_MAP_SG_ERR,
  TRACE_DMA_SYNC_SG_FOR_CPU,
  TRACE_DMA_SYNC_SG_FOR_DEVICE,
  TRACE_DMA_SYNC_SINGLE_FOR_CPU,
  TRACE_DMA_SYNC_SINGLE_FOR_DEVICE,
  TRACE_DMA_UNMAP_PHYS,
  TRACE_DMA_UNMAP_SG,
  tracePrintArray,
} from "./dmaTrace.js";
export {
  dmaMapDirect,
  dmaMappingError,
  dmaMapPage,
  dmaMapPageAttrs,
  dmaMapPhys,
  dmaMapResource,
  dmaMapSg,
  dmaMapSgAttrs,
  dmaMapSgtable,
  dmaMapSingle,
  dmaMapSingleAttrs,
  dmaUnmapPage,
  dmaUnmapPageAttrs,
  dmaUnmapPhys,
  dmaUnmapResource,
  dmaUnmapSg,
  dmaUnmapSgAttrs,
  dmaUnmapSgtable,
  dmaUnmapSingle,
  dmaUnmapSingleAttrs,
} from "./mapping.js";
// --- end dispatch ---
// --- iommu-dma (B) ---
export {
  __iommuDmaMap,
  __iommuDmaUnmap,
  dmaInfoToProt,
  iommuDmaAllocIova,
  iommuDmaFreeIova,
  iommuDmaGetMergeBoundary,
  iommuDmaMapPhys,
  iommuDmaMapSg,
  iommuDmaMaxMappingSize,
  iommuDmaOptMappingSize,
  iommuDmaSyncSgForCpu,
  iommuDmaSyncSgForDevice,
  iommuDmaSyncSingleForCpu,
  iommuDmaSyncSingleForDevice,
  iommuDmaUnmapPhys,
  iommuDmaUnmapSg,
} from "./iommuDma.js";
export {
  IommuDmaCookie,
  type IommuDmaMsiRegion,
  iommuDmaCookie,
  iommuDmaInitDomain,
  iommuPutDmaCookie,
} from "./IommuDmaCookie.js";
export {
  P2PDMA_PROVIDERS,
  type P2pdmaProviderResolver,
  PciP2pdmaMapState,
  pciP2pdmaBusAddrMap,
  pciP2pdmaState,
} from "./p2pdma.js";
export {
  DMA_IOVA_USE_SWIOTLB,
  DmaIovaState,
  dmaIovaDestroy,
  dmaIovaFree,
  dmaIovaLink,
  dmaIovaSize,
  dmaIovaSync,
  dmaIovaTryAlloc,
  dmaIovaUnlink,
  dmaUseIova,
} from "./dmaIova.js";
export { dmaMapPhyr, dmaUnmapPhyr } from "./dmaMapPhyr.js";
// --- end iommu-dma ---
// --- dma-debug (D) ---
export {
  ACTIVE_CACHELINE_MAX_OVERLAP,
  ActiveCachelines,
  CACHELINE_EEXIST,
  CACHELINE_INSERTED,
} from "./debug/ActiveCachelines.js";
export {
  DmaDebug,
  type DmaDebugOptions,
  devDriverString,
  dmaDebugInit,
  dmaDebugKernelAccess,
} from "./debug/DmaDebug.js";
export {
  DMA_DEBUG_DYNAMIC_ENTRIES,
  DMA_DEBUG_TYPE_NAMES,
  DmaDebugEntries,
  type DmaDebugRef,
  dma_debug_coherent,
  dma_debug_noncoherent,
  dma_debug_phy,
  dma_debug_sg,
  dma_debug_single,
  HASH_FN_SHIFT,
  HASH_SIZE,
  MAP_ERR_CHECK_NOT_APPLICABLE,
  MAP_ERR_CHECKED,
  MAP_ERR_NOT_CHECKED,
  PREALLOC_DMA_DEBUG_ENTRIES,
} from "./debug/DmaDebugEntries.js";
export type { DmaDebugReport, DmaDebugReportKind } from "./debug/DmaDebugReport.js";
export { PhysRangeIndex } from "./debug/PhysRangeIndex.js";
// --- end dma-debug ---
// --- allocations (C) ---
export {
  __dmaAllocPages,
  __dmaFreePages,
  type DmaAlloc,
  type DmaPageAlloc,
  dmaAllocAttrs,
  dmaAllocCoherent,
  dmaAllocNoncoherent,
  dmaAllocPages,
  dmaAllocWc,
  dmaFreeAttrs,
  dmaFreeCoherent,
  dmaFreeNoncoherent,
  dmaFreePages,
  dmaFreeWc,
} from "./dmaAlloc.js";
export {
  type DmaAllocFields,
  type DmaFreeFields,
  type DmaSgtFields,
  TRACE_DMA_ALLOC,
  TRACE_DMA_ALLOC_PAGES,
  TRACE_DMA_ALLOC_SGT,
  TRACE_DMA_ALLOC_SGT_ERR,
  TRACE_DMA_FREE,
  TRACE_DMA_FREE_PAGES,
  TRACE_DMA_FREE_SGT,
} from "./dmaAllocTrace.js";
export {
  devGetCmaArea,
  dmaAllocContiguous,
  dmaAllocFromContiguous,
  dmaContiguousDefaultArea,
  dmaFreeContiguous,
  dmaReleaseFromContiguous,
} from "./dmaContiguous.js";
export {
  dmaCoherentOk,
  dmaDirectAlloc,
  dmaDirectAllocPages,
  dmaDirectFree,
  dmaDirectFreePages,
  dmaDirectOptimalGfpMask,
} from "./dmaDirectAlloc.js";
export { dmaGetSgtable, dmaGetSgtableAttrs } from "./dmaGetSgtable.js";
export { dmaCanMmap, dmaMmapAttrs, dmaMmapCoherent, dmaMmapPages, dmaMmapWc, dmaPgprot } from "./dmaMmap.js";
export {
  dmaAllocNoncontiguous,
  dmaFreeNoncontiguous,
  dmaMmapNoncontiguous,
  dmaVmapNoncontiguous,
  dmaVunmapNoncontiguous,
} from "./dmaNoncontiguous.js";
export { dmamAllocAttrs, dmamAllocCoherent, dmamFreeCoherent } from "./dmamAlloc.js";
export {
  DMA_ATOMIC_POOLS,
  DmaAtomicPool,
  type DmaAtomicPoolOptions,
  type DmaAtomicPoolReport,
  type DmaAtomicPools,
  type DmaPoolAlloc,
  dmaAllocFromPool,
  dmaAtomicPoolInit,
  dmaAtomicPoolReport,
  dmaFreeFromPool,
} from "./dmaPool.js";
export { DMA_SG_POOL, dmaSgPool } from "./dmaSgPool.js";
export {
  dmaCommonAllocPages,
  dmaCommonFreePages,
  iommuDmaAlloc,
  iommuDmaAllocNoncontiguous,
  iommuDmaFree,
  iommuDmaFreeNoncontiguous,
  iommuDmaGetSgtable,
  iommuDmaMmap,
  iommuDmaMmapNoncontiguous,
  iommuDmaSgtCount,
  iommuDmaSgtPages,
  iommuDmaVmapNoncontiguous,
} from "./iommuDmaAlloc.js";
// --- end allocations ---
// --- device side (E) ---
export {
  DmaEngine,
  type DmaEngineEvent,
  type DmaEngineEventKind,
  type DmaEngineOptions,
  type DmaEngineStats,
  type DmaEngineTraceFields,
  type DmaTransfer,
  TRACE_DMA_ENGINE,
} from "./DmaEngine.js";
// --- end device side ---
