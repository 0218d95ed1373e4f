/**
 * SMMUv3 in-memory structure layouts, command opcodes and event ids, as
 * `drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h` defines them. 64-bit fields are given as
 * (32-bit word index, shift, width) since the model keeps every structure as 32-bit words.
 * @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h
 */

/** `STRTAB_STE_DWORDS`: an STE is 8 dwords (64 bytes). */
export const STRTAB_STE_DWORDS = 8;
/** `STRTAB_STE_0_V`. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const STRTAB_STE_0_V = 1 << 0;
/** `STRTAB_STE_0_CFG` is bits [3:1]. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const STRTAB_STE_0_CFG_SHIFT = 1;
/**
 * `STRTAB_STE_0_CFG_ABORT`: terminate all traffic, record nothing.
 * @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h
 */
export const STRTAB_STE_0_CFG_ABORT = 0;
/** `STRTAB_STE_0_CFG_BYPASS`. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const STRTAB_STE_0_CFG_BYPASS = 4;
/** `STRTAB_STE_0_CFG_S1_TRANS`. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const STRTAB_STE_0_CFG_S1_TRANS = 5;
/** `STRTAB_STE_0_CFG_S2_TRANS`. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const STRTAB_STE_0_CFG_S2_TRANS = 6;
/** `STRTAB_STE_0_CFG_NESTED`: stage 1 then stage 2. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const STRTAB_STE_0_CFG_NESTED = 7;
/**
 * `STRTAB_STE_0_S1CTXPTR_MASK` is bits [51:6] of dword 0.
 * @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h
 */
export const STRTAB_STE_0_S1CTXPTR_LO_MASK = 0xffffffc0;
/** `STRTAB_STE_0_S1CDMAX` bits [63:59]. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const STRTAB_STE_0_S1CDMAX_HI_SHIFT = 27;
/** `STRTAB_STE_2_S2VMID` bits [15:0] of dword 2. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const STRTAB_STE_2_S2VMID_MASK = 0xffff;
/**
 * `STRTAB_STE_2_VTCR` bits [50:32] of dword 2: the VTCR fields, in the high word at bit 0.
 * @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h
 */
export const STRTAB_STE_2_VTCR_HI_MASK = 0x7ffff;
/** `STRTAB_STE_2_S2AA64` (bit 51). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const STRTAB_STE_2_S2AA64_HI = 1 << 19;
/** `STRTAB_STE_2_S2PTW` (bit 54). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const STRTAB_STE_2_S2PTW_HI = 1 << 22;
/** `STRTAB_STE_2_S2R`: record stage-2 faults (bit 58). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const STRTAB_STE_2_S2R_HI = 1 << 26;
/** `STRTAB_STE_3_S2TTB_MASK` bits [51:4] of dword 3. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const STRTAB_STE_3_S2TTB_LO_MASK = 0xfffffff0;

/** `CTXDESC_CD_DWORDS`: a CD is 8 dwords. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CTXDESC_CD_DWORDS = 8;
/** `CTXDESC_CD_0_TCR_T0SZ` bits [5:0]. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CTXDESC_CD_0_TCR_T0SZ_MASK = 0x3f;
/** `CTXDESC_CD_0_TCR_TG0` bits [7:6]. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CTXDESC_CD_0_TCR_TG0_SHIFT = 6;
/** `CTXDESC_CD_0_TCR_IRGN0` bits [9:8]. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CTXDESC_CD_0_TCR_IRGN0_SHIFT = 8;
/** `CTXDESC_CD_0_TCR_ORGN0` bits [11:10]. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CTXDESC_CD_0_TCR_ORGN0_SHIFT = 10;
/** `CTXDESC_CD_0_TCR_SH0` bits [13:12]. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CTXDESC_CD_0_TCR_SH0_SHIFT = 12;
/** `CTXDESC_CD_0_TCR_EPD0` (bit 14). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CTXDESC_CD_0_TCR_EPD0 = 1 << 14;
/** `CTXDESC_CD_0_TCR_EPD1` (bit 30). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CTXDESC_CD_0_TCR_EPD1 = 1 << 30;
/** `CTXDESC_CD_0_V` (bit 31). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CTXDESC_CD_0_V = 1 << 31;
/**
 * `CTXDESC_CD_0_TCR_IPS` bits [34:32]: in the high word at bit 0.
 * @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h
 */
export const CTXDESC_CD_0_TCR_IPS_HI_MASK = 0x7;
/** `CTXDESC_CD_0_AA64` (bit 41). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CTXDESC_CD_0_AA64_HI = 1 << 9;
/** `CTXDESC_CD_0_R`: record faults (bit 45). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CTXDESC_CD_0_R_HI = 1 << 13;
/** `CTXDESC_CD_0_A`: abort on fault (bit 46). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CTXDESC_CD_0_A_HI = 1 << 14;
/** `CTXDESC_CD_0_ASET` (bit 47). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CTXDESC_CD_0_ASET_HI = 1 << 15;
/**
 * `CTXDESC_CD_0_ASID` bits [63:48]: high word bits [31:16].
 * @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h
 */
export const CTXDESC_CD_0_ASID_HI_SHIFT = 16;
/** `CTXDESC_CD_1_TTB0_MASK` bits [51:4]. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CTXDESC_CD_1_TTB0_LO_MASK = 0xfffffff0;

/** `CMDQ_ENT_DWORDS`: a command is 2 dwords. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CMDQ_ENT_DWORDS = 2;
/** `EVTQ_ENT_DWORDS`: an event is 4 dwords. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const EVTQ_ENT_DWORDS = 4;
/**
 * `Q_OVERFLOW_FLAG`: bit 31 of PROD (OVFLG) / CONS (OVACKFLG).
 * @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h
 */
export const Q_OVERFLOW_FLAG = 0x80000000;

/** `CMDQ_OP_PREFETCH_CFG`. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CMDQ_OP_PREFETCH_CFG = 0x1;
/** `CMDQ_OP_CFGI_STE`. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CMDQ_OP_CFGI_STE = 0x3;
/** `CMDQ_OP_CFGI_ALL`. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CMDQ_OP_CFGI_ALL = 0x4;
/** `CMDQ_OP_CFGI_CD`. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CMDQ_OP_CFGI_CD = 0x5;
/** `CMDQ_OP_CFGI_CD_ALL`. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CMDQ_OP_CFGI_CD_ALL = 0x6;
/** `CMDQ_OP_TLBI_NH_ALL`. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CMDQ_OP_TLBI_NH_ALL = 0x10;
/** `CMDQ_OP_TLBI_NH_ASID`. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CMDQ_OP_TLBI_NH_ASID = 0x11;
/** `CMDQ_OP_TLBI_NH_VA`. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CMDQ_OP_TLBI_NH_VA = 0x12;
/** `CMDQ_OP_TLBI_EL2_ALL`. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CMDQ_OP_TLBI_EL2_ALL = 0x20;
/** `CMDQ_OP_TLBI_S12_VMALL`. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CMDQ_OP_TLBI_S12_VMALL = 0x28;
/** `CMDQ_OP_TLBI_S2_IPA`. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CMDQ_OP_TLBI_S2_IPA = 0x2a;
/** `CMDQ_OP_TLBI_NSNH_ALL`. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CMDQ_OP_TLBI_NSNH_ALL = 0x30;
/** `CMDQ_OP_CMD_SYNC`. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CMDQ_OP_CMD_SYNC = 0x46;
/** `CMDQ_TLBI_RANGE_NUM_MAX`. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CMDQ_TLBI_RANGE_NUM_MAX = 31;
/** `CMDQ_ERR_CERROR_ILL_IDX`: illegal command. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CMDQ_ERR_CERROR_ILL_IDX = 1;

/** `EVT_ID_BAD_STREAMID_CONFIG` (C_BAD_STREAMID). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const EVT_ID_BAD_STREAMID_CONFIG = 0x02;
/** `EVT_ID_STE_FETCH_FAULT` (F_STE_FETCH). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const EVT_ID_STE_FETCH_FAULT = 0x03;
/** `EVT_ID_BAD_STE_CONFIG` (C_BAD_STE). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const EVT_ID_BAD_STE_CONFIG = 0x04;
/** `EVT_ID_STREAM_DISABLED_FAULT` (F_STREAM_DISABLED). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const EVT_ID_STREAM_DISABLED_FAULT = 0x06;
/** `EVT_ID_BAD_SUBSTREAMID_CONFIG` (C_BAD_SUBSTREAMID). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const EVT_ID_BAD_SUBSTREAMID_CONFIG = 0x08;
/** `EVT_ID_CD_FETCH_FAULT` (F_CD_FETCH). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const EVT_ID_CD_FETCH_FAULT = 0x09;
/** `EVT_ID_BAD_CD_CONFIG` (C_BAD_CD). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const EVT_ID_BAD_CD_CONFIG = 0x0a;
/** `EVT_ID_WALK_EABT` (F_WALK_EABT). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const EVT_ID_WALK_EABT = 0x0b;
/** `EVT_ID_TRANSLATION_FAULT` (F_TRANSLATION). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const EVT_ID_TRANSLATION_FAULT = 0x10;
/** `EVT_ID_ADDR_SIZE_FAULT` (F_ADDR_SIZE). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const EVT_ID_ADDR_SIZE_FAULT = 0x11;
/** `EVT_ID_ACCESS_FAULT` (F_ACCESS). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const EVT_ID_ACCESS_FAULT = 0x12;
/** `EVT_ID_PERMISSION_FAULT` (F_PERMISSION). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const EVT_ID_PERMISSION_FAULT = 0x13;

/**
 * `EVTQ_1_S2` (bit 39): the fault was in stage 2 (high word bit 7).
 * @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h
 */
export const EVTQ_1_S2_HI = 1 << 7;
/**
 * `EVTQ_1_RnW` (bit 35): read (1) or write (0) (high word bit 3).
 * @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h
 */
export const EVTQ_1_RnW_HI = 1 << 3;
/**
 * `EVTQ_1_InD` (bit 34): instruction fetch (high word bit 2).
 * @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h
 */
export const EVTQ_1_InD_HI = 1 << 2;
/** `EVTQ_1_PnU` (bit 33): privileged (high word bit 1). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const EVTQ_1_PnU_HI = 1 << 1;
/**
 * `EVTQ_1_CLASS` bits [41:40]: 0 CD fetch, 1 table walk, 2 input (high word bits 9:8).
 * @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h
 */
export const EVTQ_1_CLASS_HI_SHIFT = 8;
/** `EVTQ_0_SSV` (bit 11). @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const EVTQ_0_SSV = 1 << 11;

/**
 * The SMMUv3 architecture's name for an event id (`F_TRANSLATION`, `C_BAD_STE`, ...).
 * Model-only: the SMMUv3 specification's event names, for messages.
 */
export function armSmmuEventName(id: number): string {
  switch (id) {
    case EVT_ID_BAD_STREAMID_CONFIG:
      return "C_BAD_STREAMID";
    case EVT_ID_STE_FETCH_FAULT:
      return "F_STE_FETCH";
    case EVT_ID_BAD_STE_CONFIG:
      return "C_BAD_STE";
    case EVT_ID_STREAM_DISABLED_FAULT:
      return "F_STREAM_DISABLED";
    case EVT_ID_BAD_SUBSTREAMID_CONFIG:
      return "C_BAD_SUBSTREAMID";
    case EVT_ID_CD_FETCH_FAULT:
      return "F_CD_FETCH";
    case EVT_ID_BAD_CD_CONFIG:
      return "C_BAD_CD";
    case EVT_ID_WALK_EABT:
      return "F_WALK_EABT";
    case EVT_ID_TRANSLATION_FAULT:
      return "F_TRANSLATION";
    case EVT_ID_ADDR_SIZE_FAULT:
      return "F_ADDR_SIZE";
    case EVT_ID_ACCESS_FAULT:
      return "F_ACCESS";
    case EVT_ID_PERMISSION_FAULT:
      return "F_PERMISSION";
    default:
      return `EVT_0x${id.toString(16)}`;
  }
}
