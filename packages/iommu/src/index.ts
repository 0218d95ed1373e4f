export {
  DEV_IOMMU,
  type DevIommu,
  devIommuFwspecGet,
  devIommuGet,
  devIommuGetOrInit,
  devIommuOps,
  devIommuPrivGet,
  devIommuPrivSet,
  deviceIommuMapped,
  type IommuFwspec,
  iommuFwspecAddIds,
  iommuFwspecInit,
} from "./devIommu.js";
export { genericDeviceGroup, iommuGroupSetName, pciDeviceGroup } from "./deviceGroup.js";
export {
  iommuDeviceClaimDmaOwner,
  iommuDeviceReleaseDmaOwner,
  iommuDeviceUnuseDefaultDomain,
  iommuDeviceUseDefaultDomain,
  iommuGroupClaimDmaOwner,
  iommuGroupDmaOwnerClaimed,
  iommuGroupReleaseDmaOwner,
} from "./dmaOwnership.js";
export {
  __IOMMU_DOMAIN_DMA_API,
  __IOMMU_DOMAIN_DMA_FQ,
  __IOMMU_DOMAIN_NESTED,
  __IOMMU_DOMAIN_PAGING,
  __IOMMU_DOMAIN_PLATFORM,
  __IOMMU_DOMAIN_PT,
  __IOMMU_DOMAIN_SVA,
  IOMMU_DOMAIN_BLOCKED,
  IOMMU_DOMAIN_DMA,
  IOMMU_DOMAIN_DMA_FQ,
  IOMMU_DOMAIN_IDENTITY,
  IOMMU_DOMAIN_NESTED,
  IOMMU_DOMAIN_PLATFORM,
  IOMMU_DOMAIN_SVA,
  IOMMU_DOMAIN_UNMANAGED,
  iommuDomainTypeStr,
  iommuGroupTypeStr,
  iommuIsDmaDomain,
} from "./domainTypes.js";
export {
  FlushQueue,
  type FlushQueueCallbacks,
  type FlushQueueEntry,
  type FlushQueueOptions,
  type FlushQueueStats,
  IOMMU_DMA_OPTS_PER_CPU_QUEUE,
  IOMMU_DMA_OPTS_SINGLE_QUEUE,
  IOVA_DEFAULT_FQ_SIZE,
  IOVA_DEFAULT_FQ_TIMEOUT,
  IOVA_SINGLE_FQ_SIZE,
  IOVA_SINGLE_FQ_TIMEOUT,
} from "./FlushQueue.js";
export {
  IommuDomain,
  type IommuDomainGeometry,
  type IommuDomainInit,
  type IommuFaultHandler,
} from "./IommuDomain.js";
export type { IommuDomainOps } from "./IommuDomainOps.js";
export { IommuGroup } from "./IommuGroup.js";
export type {
  IommuFaultKind,
  IommuFaultRecord,
  IommuHardware,
  IommuTransaction,
  IommuTranslation,
  IommuTranslationFault,
  IommuTranslationOk,
} from "./IommuHardware.js";
export {
  IommuIotlbGather,
  iommuIotlbGatherAddPage,
  iommuIotlbGatherAddRange,
  iommuIotlbGatherInit,
  iommuIotlbGatherIsDisjoint,
  iommuIotlbGatherQueued,
  iommuIotlbSync,
} from "./IommuIotlbGather.js";
export type { IommuDevice, IommuOps } from "./IommuOps.js";
export { IommuPagesList } from "./IommuPagesList.js";
export {
  IOMMU_RESV_DIRECT,
  IOMMU_RESV_DIRECT_RELAXABLE,
  IOMMU_RESV_MSI,
  IOMMU_RESV_RESERVED,
  IOMMU_RESV_SW_MSI,
  type IommuResvRegion,
  type IommuResvType,
  iommuAllocResvRegion,
  iommuResvTypeString,
  MSI_IOVA_BASE,
  MSI_IOVA_LENGTH,
  MSI_RANGE_SIZE,
  MSI_RANGE_START,
} from "./IommuResvRegion.js";
export {
  IOMMU_CMD_LINE_DMA_API,
  IOMMU_CMD_LINE_STRICT,
  type IommuDefaultDomainConfig,
  IommuSubsystem,
  type IommuSubsystemOptions,
} from "./IommuSubsystem.js";
export {
  IO_PGTABLE_QUIRK_ARM_HD,
  IO_PGTABLE_QUIRK_ARM_MTK_EXT,
  IO_PGTABLE_QUIRK_ARM_MTK_TTBR_EXT,
  IO_PGTABLE_QUIRK_ARM_NS,
  IO_PGTABLE_QUIRK_ARM_OUTER_WBWA,
  IO_PGTABLE_QUIRK_ARM_S2FWB,
  IO_PGTABLE_QUIRK_ARM_TTBR1,
  IO_PGTABLE_QUIRK_NO_PERMS,
  IO_PGTABLE_QUIRK_NO_WARN,
  type IommuFlushOps,
  type IoPgtable,
  type IoPgtableCfg,
  type IoPgtableInitFns,
  type IoPgtableOps,
  ioPgtableTlbAddPage,
  ioPgtableTlbFlushAll,
  ioPgtableTlbFlushWalk,
} from "./IoPgtable.js";
export {
  allocIoPgtableOps,
  defaultIoPgtableRegistry,
  freeIoPgtableOps,
  IoPgtableRegistry,
  registerIoPgtableFormat,
} from "./IoPgtableRegistry.js";
export { IOTLB_TAG_SPACE, Iotlb, type IotlbOptions } from "./Iotlb.js";
export {
  IOVA_ANCHOR,
  IOVA_DEPOT_DELAY_MS,
  IOVA_MAG_SIZE,
  IOVA_RANGE_CACHE_MAX_SIZE,
  Iova,
  IovaDomain,
  type IovaDomainOptions,
  type IovaDomainStats,
  initIovaDomain,
  iovaRcacheRange,
} from "./IovaDomain.js";
export {
  iommuAttachDevice,
  iommuAttachGroup,
  iommuDetachDevice,
  iommuDetachGroup,
  iommuDomainAllocType,
  iommuDomainFree,
  iommuGetDmaDomain,
  iommuGetDomainForDev,
  iommuGroupReplaceDomain,
  iommuGroupSetDomainInternal,
  iommuPagingDomainAlloc,
  iommuPagingDomainAllocType,
} from "./iommuAttach.js";
export {
  IOMMU_CAP_CACHE_COHERENCY,
  IOMMU_CAP_DEFERRED_FLUSH,
  IOMMU_CAP_DIRTY_TRACKING,
  IOMMU_CAP_ENFORCE_CACHE_COHERENCY,
  IOMMU_CAP_NOEXEC,
  IOMMU_CAP_PRE_BOOT_PROTECTION,
  type IommuCap,
} from "./iommuCap.js";
export { IOMMU_FAULT_READ, IOMMU_FAULT_WRITE, iommuSetFaultHandler, reportIommuFault } from "./iommuFault.js";
export {
  iommuGroupAddDevice,
  iommuGroupDeviceCount,
  iommuGroupForEachDev,
  iommuGroupGet,
  iommuGroupId,
  iommuGroupPut,
  iommuGroupRemoveDevice,
} from "./iommuGroupMembership.js";
export {
  type IommuSgSource,
  iommuFlushIotlbAll,
  iommuIovaToPhys,
  iommuMap,
  iommuMapNosync,
  iommuMapSg,
  iommuSyncMap,
  iommuUnmap,
  iommuUnmapFast,
} from "./iommuMap.js";
export { type IommuPgsizeResult, iommuPgsize } from "./iommuPgsize.js";
export {
  iommuCreateDeviceDirectMappings,
  iommuGetDefaultDomainType,
  iommuGroupStoreType,
  iommuProbeDevice,
  iommuReleaseDevice,
  iommuSetupDefaultDomain,
} from "./iommuProbe.js";
export { IOMMU_CACHE, IOMMU_MMIO, IOMMU_NOEXEC, IOMMU_PRIV, IOMMU_READ, IOMMU_WRITE } from "./iommuProt.js";
export {
  iommuGetGroupResvRegions,
  iommuGetResvRegions,
  iommuInsertResvRegion,
  pciHostBridgeResvRegions,
} from "./iommuResvRegions.js";
export {
  AMD_IOMMU_V1,
  AMD_IOMMU_V2,
  APPLE_DART,
  APPLE_DART2,
  ARM_32_LPAE_S1,
  ARM_32_LPAE_S2,
  ARM_64_LPAE_S1,
  ARM_64_LPAE_S2,
  ARM_MALI_LPAE,
  ARM_V7S,
  INTEL_VTD_SL,
  IO_PGTABLE_NUM_FMTS,
  type IoPgtableFmt,
  ioPgtableFmtName,
} from "./ioPgtableFmt.js";
export { MapPagesError, mappedBeforeError } from "./MapPagesError.js";
export type { PgtableMemory } from "./PgtableMemory.js";
export { pgtableMemoryFromAllocator } from "./pgtableMemoryFromAllocator.js";
