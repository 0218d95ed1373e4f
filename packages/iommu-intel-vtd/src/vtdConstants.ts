/**
 * VT-d architectural constants: second-level PTE bits, context-entry fields, register offsets and
 * the fault-status / fault-recording bits, with the kernel's names and values.
 *
 * 64-bit registers are modelled as two 32-bit dwords (the kernel's `lo_hi_writeq` order); a name
 * ending in `_HI` is the kernel constant shifted into the upper dword (`DMA_TLB_IVT` is bit 63 of
 * the IOTLB register, so `DMA_TLB_IVT_HI` is bit 31 of its upper dword).
 * @see drivers/iommu/intel/iommu.h
 */

/** `VTD_PAGE_SHIFT`: VT-d always uses 4 KiB pages. */
export const VTD_PAGE_SHIFT = 12;
/** `VTD_PAGE_SIZE`. @see drivers/iommu/intel/iommu.h */
export const VTD_PAGE_SIZE = 4096;
/** `VTD_STRIDE_SHIFT`: 9 index bits (512 entries) per table level. @see drivers/iommu/intel/iommu.h */
export const VTD_STRIDE_SHIFT = 9;

/**
 * `DMA_PTE_READ`: second-level entry allows reads (R=W=0 means not present).
 * @see drivers/iommu/intel/iommu.h
 */
export const DMA_PTE_READ = 1 << 0;
/** `DMA_PTE_WRITE`. @see drivers/iommu/intel/iommu.h */
export const DMA_PTE_WRITE = 1 << 1;
/**
 * `DMA_PTE_LARGE_PAGE`: the entry maps a 2 MiB / 1 GiB superpage instead of pointing to a table.
 * @see drivers/iommu/intel/iommu.h
 */
export const DMA_PTE_LARGE_PAGE = 1 << 7;
/** `DMA_PTE_SNP`: snoop behaviour (force snooping). @see drivers/iommu/intel/iommu.h */
export const DMA_PTE_SNP = 1 << 11;

/** `ADDR_WIDTH_4LEVEL`. @see drivers/iommu/intel/iommu.h */
export const ADDR_WIDTH_4LEVEL = 48;
/** `ADDR_WIDTH_5LEVEL`. @see drivers/iommu/intel/iommu.h */
export const ADDR_WIDTH_5LEVEL = 57;

/** `CONTEXT_TT_MULTI_LEVEL`: translate through the second-level table. @see drivers/iommu/intel/iommu.h */
export const CONTEXT_TT_MULTI_LEVEL = 0;
/** `CONTEXT_TT_DEV_IOTLB`: as MULTI_LEVEL, device TLB (ATS) allowed. @see drivers/iommu/intel/iommu.h */
export const CONTEXT_TT_DEV_IOTLB = 1;
/** `CONTEXT_TT_PASS_THROUGH`: untranslated DMA goes straight to memory. @see drivers/iommu/intel/iommu.h */
export const CONTEXT_TT_PASS_THROUGH = 2;

/**
 * `FLPT_DEFAULT_DID`: the domain id used for pass-through (identity) contexts in legacy mode.
 * @see drivers/iommu/intel/iommu.h
 */
export const FLPT_DEFAULT_DID = 1;
/**
 * `IDA_START_DID`: first domain id handed to paging domains (0 is reserved for caching mode).
 * @see drivers/iommu/intel/iommu.h
 */
export const IDA_START_DID = 2;

// --- register offsets (drivers/iommu/intel/iommu.h) ---
/** `DMAR_VER_REG`. @see drivers/iommu/intel/iommu.h */
export const DMAR_VER_REG = 0x0;
/** `DMAR_CAP_REG` (64-bit). @see drivers/iommu/intel/iommu.h */
export const DMAR_CAP_REG = 0x8;
/** `DMAR_ECAP_REG` (64-bit). @see drivers/iommu/intel/iommu.h */
export const DMAR_ECAP_REG = 0x10;
/** `DMAR_GCMD_REG`. @see drivers/iommu/intel/iommu.h */
export const DMAR_GCMD_REG = 0x18;
/** `DMAR_GSTS_REG`. @see drivers/iommu/intel/iommu.h */
export const DMAR_GSTS_REG = 0x1c;
/** `DMAR_RTADDR_REG` (64-bit). @see drivers/iommu/intel/iommu.h */
export const DMAR_RTADDR_REG = 0x20;
/** `DMAR_CCMD_REG` (64-bit). @see drivers/iommu/intel/iommu.h */
export const DMAR_CCMD_REG = 0x28;
/** `DMAR_FSTS_REG`. @see drivers/iommu/intel/iommu.h */
export const DMAR_FSTS_REG = 0x34;
/** `DMAR_FECTL_REG`. @see drivers/iommu/intel/iommu.h */
export const DMAR_FECTL_REG = 0x38;

/** `DMA_GCMD_TE`: translation enable. @see drivers/iommu/intel/iommu.h */
export const DMA_GCMD_TE = 0x8000_0000;
/** `DMA_GCMD_SRTP`: set root table pointer (one-shot). @see drivers/iommu/intel/iommu.h */
export const DMA_GCMD_SRTP = 1 << 30;
/** `DMA_GSTS_TES`: translation enabled. @see drivers/iommu/intel/iommu.h */
export const DMA_GSTS_TES = 0x8000_0000;
/** `DMA_GSTS_RTPS`: root table pointer set. @see drivers/iommu/intel/iommu.h */
export const DMA_GSTS_RTPS = 1 << 30;

/**
 * `DMA_CCMD_ICC` (bit 63): invalidate context cache; cleared by hardware on completion.
 * @see drivers/iommu/intel/iommu.h
 */
export const DMA_CCMD_ICC_HI = 0x8000_0000;
/** `DMA_CCMD_GLOBAL_INVL` (1 << 61), as upper-dword bits. @see drivers/iommu/intel/iommu.h */
export const DMA_CCMD_GLOBAL_INVL_HI = 1 << 29;
/** `DMA_CCMD_DOMAIN_INVL` (2 << 61). @see drivers/iommu/intel/iommu.h */
export const DMA_CCMD_DOMAIN_INVL_HI = 2 << 29;
/** `DMA_CCMD_DEVICE_INVL` (3 << 61). @see drivers/iommu/intel/iommu.h */
export const DMA_CCMD_DEVICE_INVL_HI = 3 << 29;
/** `DMA_CCMD_MASK_NOBIT`: function mask 0 (exact source id). @see drivers/iommu/intel/iommu.h */
export const DMA_CCMD_MASK_NOBIT = 0;

/**
 * `DMA_TLB_IVT` (bit 63): invalidate IOTLB; cleared by hardware on completion.
 * @see drivers/iommu/intel/iommu.h
 */
export const DMA_TLB_IVT_HI = 0x8000_0000;
/** `DMA_TLB_GLOBAL_FLUSH` (1 << 60), as upper-dword bits. @see drivers/iommu/intel/iommu.h */
export const DMA_TLB_GLOBAL_FLUSH_HI = 1 << 28;
/** `DMA_TLB_DSI_FLUSH` (2 << 60): domain-selective. @see drivers/iommu/intel/iommu.h */
export const DMA_TLB_DSI_FLUSH_HI = 2 << 28;
/** `DMA_TLB_PSI_FLUSH` (3 << 60): page-selective within a domain. @see drivers/iommu/intel/iommu.h */
export const DMA_TLB_PSI_FLUSH_HI = 3 << 28;
/**
 * `DMA_TLB_IH_NONLEAF` (bit 6 of the IVA register): invalidation hint, leaf entries only changed.
 * @see drivers/iommu/intel/iommu.h
 */
export const DMA_TLB_IH_NONLEAF = 1 << 6;

/** `DMA_FECTL_IM`: fault event interrupt mask. @see drivers/iommu/intel/iommu.h */
export const DMA_FECTL_IM = 0x8000_0000;
/** `DMA_FECTL_IP`: interrupt pending (set while masked). @see drivers/iommu/intel/iommu.h */
export const DMA_FECTL_IP = 1 << 30;

/** `DMA_FSTS_PFO`: primary fault overflow (RW1C). @see drivers/iommu/intel/iommu.h */
export const DMA_FSTS_PFO = 1 << 0;
/**
 * `DMA_FSTS_PPF`: primary pending fault: OR of the F bits of all FRCD registers (read-only).
 * @see drivers/iommu/intel/iommu.h
 */
export const DMA_FSTS_PPF = 1 << 1;
/** `DMA_FSTS_IQE`. @see drivers/iommu/intel/iommu.h */
export const DMA_FSTS_IQE = 1 << 4;
/** `DMA_FSTS_ICE`. @see drivers/iommu/intel/iommu.h */
export const DMA_FSTS_ICE = 1 << 5;
/** `DMA_FSTS_ITE`. @see drivers/iommu/intel/iommu.h */
export const DMA_FSTS_ITE = 1 << 6;
/** `DMA_FSTS_PRO`. @see drivers/iommu/intel/iommu.h */
export const DMA_FSTS_PRO = 1 << 7;

/**
 * `dma_fsts_fault_record_index(s)`: the FRI field of FSTS.
 * @see drivers/iommu/intel/iommu.h dma_fsts_fault_record_index
 */
export function dmaFstsFaultRecordIndex(s: number): number {
  return (s >>> 8) & 0xff;
}

/**
 * `DMA_FRCD_F`: fault bit of the upper dword of a fault recording register (RW1C).
 * @see drivers/iommu/intel/iommu.h
 */
export const DMA_FRCD_F = 0x8000_0000;
/** `PRIMARY_FAULT_REG_LEN`: each FRCD register is 128 bits. @see drivers/iommu/intel/iommu.h */
export const PRIMARY_FAULT_REG_LEN = 16;

/**
 * `dma_frcd_type(d)`: 1 = read request, 0 = write request (upper dword bit 30).
 * @see drivers/iommu/intel/iommu.h dma_frcd_type
 */
export function dmaFrcdType(d: number): number {
  return (d >>> 30) & 1;
}
/** `dma_frcd_fault_reason(c)`. @see drivers/iommu/intel/iommu.h dma_frcd_fault_reason */
export function dmaFrcdFaultReason(c: number): number {
  return c & 0xff;
}
/** `dma_frcd_source_id(c)` (third dword). @see drivers/iommu/intel/iommu.h dma_frcd_source_id */
export function dmaFrcdSourceId(c: number): number {
  return c & 0xffff;
}

/**
 * `dma_remap_fault_reasons[]`: legacy-mode DMA remapping fault reasons, indexed by reason code.
 * @see drivers/iommu/intel/dmar.c dma_remap_fault_reasons
 */
export const DMA_REMAP_FAULT_REASONS: readonly string[] = [
  "Software",
  "Present bit in root entry is clear",
  "Present bit in context entry is clear",
  "Invalid context entry",
  "Access beyond MGAW",
  "PTE Write access is not set",
  "PTE Read access is not set",
  "Next page table ptr is invalid",
  "Root table address invalid",
  "Context table ptr is invalid",
  "non-zero reserved fields in RTP",
  "non-zero reserved fields in CTP",
  "non-zero reserved fields in PTE",
  "PCE for translation request specifies blocking",
];

/**
 * Fault reason 0x1: root entry not present.
 * Model-only name for a `dma_remap_fault_reasons` index. @see drivers/iommu/intel/dmar.c
 */
export const DMAR_FR_ROOT_NOT_PRESENT = 0x1;
/**
 * Fault reason 0x2: context entry not present.
 * Model-only name for a `dma_remap_fault_reasons` index. @see drivers/iommu/intel/dmar.c
 */
export const DMAR_FR_CONTEXT_NOT_PRESENT = 0x2;
/**
 * Fault reason 0x3: invalid context entry (bad TT or AW).
 * Model-only name for a `dma_remap_fault_reasons` index. @see drivers/iommu/intel/dmar.c
 */
export const DMAR_FR_INVALID_CONTEXT = 0x3;
/**
 * Fault reason 0x4: address above 2^min(MGAW, AGAW) - 1.
 * Model-only name for a `dma_remap_fault_reasons` index. @see drivers/iommu/intel/dmar.c
 */
export const DMAR_FR_BEYOND_MGAW = 0x4;
/**
 * Fault reason 0x5: write to an entry without W (a non-present entry has neither R nor W).
 * Model-only name for a `dma_remap_fault_reasons` index. @see drivers/iommu/intel/dmar.c
 */
export const DMAR_FR_PTE_WRITE = 0x5;
/**
 * Fault reason 0x6: read from an entry without R.
 * Model-only name for a `dma_remap_fault_reasons` index. @see drivers/iommu/intel/dmar.c
 */
export const DMAR_FR_PTE_READ = 0x6;
/**
 * Fault reason 0xc: reserved bits set in a PTE (e.g. PS on a level without superpage support).
 * Model-only name for a `dma_remap_fault_reasons` index. @see drivers/iommu/intel/dmar.c
 */
export const DMAR_FR_PTE_RESERVED = 0xc;

/**
 * `dmar_get_fault_reason(fault_reason, &fault_type)` for DMA remapping reasons (legacy mode); the
 * scalable-mode and interrupt-remapping tables are not modelled ("Unknown").
 * @see drivers/iommu/intel/dmar.c dmar_get_fault_reason
 */
export function dmarGetFaultReason(reason: number): string {
  return DMA_REMAP_FAULT_REASONS[reason] ?? "Unknown";
}

/**
 * `agaw_to_level(agaw)`: adjusted guest address width code → table levels (2 → 4, 3 → 5).
 * @see drivers/iommu/intel/iommu.h agaw_to_level
 */
export function agawToLevel(agaw: number): number {
  return agaw + 2;
}
/** `agaw_to_width(agaw)`: 30 + 9·agaw bits, capped at 64. @see drivers/iommu/intel/iommu.h agaw_to_width */
export function agawToWidth(agaw: number): number {
  return Math.min(30 + agaw * VTD_STRIDE_SHIFT, 64);
}
/** `width_to_agaw(width)`. @see drivers/iommu/intel/iommu.h width_to_agaw */
export function widthToAgaw(width: number): number {
  return Math.ceil((width - 30) / VTD_STRIDE_SHIFT);
}
