/**
 * ARM LPAE (VMSAv8-64) translation-table descriptor bits and register encodings, as
 * `drivers/iommu/io-pgtable-arm.c` / `io-pgtable-arm.h` define them.
 *
 * Descriptors are 64-bit; the model stores them as two little-endian 32-bit halves and never uses
 * BigInt. Constants that live in the upper word are given twice: the kernel's bit position
 * (`*_BIT`) and the mask within the high half (`*_HI`).
 * @see drivers/iommu/io-pgtable-arm.h, drivers/iommu/io-pgtable-arm.c
 */

/**
 * `ARM_LPAE_MAX_ADDR_BITS`: input and output address bits the format supports. The kernel's is 52;
 * the model has no 52-bit PA support.
 */
export const ARM_LPAE_MAX_ADDR_BITS = 48;
/**
 * `ARM_LPAE_S2_MAX_CONCAT_PAGES`: at most 16 concatenated stage-2 top-level tables.
 * @see drivers/iommu/io-pgtable-arm.c
 */
export const ARM_LPAE_S2_MAX_CONCAT_PAGES = 16;
/**
 * `ARM_LPAE_MAX_LEVELS`: levels 0..3; a walk with fewer levels starts deeper.
 * @see drivers/iommu/io-pgtable-arm.c
 */
export const ARM_LPAE_MAX_LEVELS = 4;

/** `ARM_LPAE_PTE_TYPE_MASK` (bits [1:0]). @see drivers/iommu/io-pgtable-arm.c */
export const ARM_LPAE_PTE_TYPE_MASK = 0x3;
/** `ARM_LPAE_PTE_TYPE_BLOCK`: a leaf above level 3. @see drivers/iommu/io-pgtable-arm.c */
export const ARM_LPAE_PTE_TYPE_BLOCK = 1;
/**
 * `ARM_LPAE_PTE_TYPE_TABLE`: a pointer to the next level (levels 0..2).
 * @see drivers/iommu/io-pgtable-arm.c
 */
export const ARM_LPAE_PTE_TYPE_TABLE = 3;
/** `ARM_LPAE_PTE_TYPE_PAGE`: a leaf at level 3. @see drivers/iommu/io-pgtable-arm.c */
export const ARM_LPAE_PTE_TYPE_PAGE = 3;
/** `ARM_LPAE_PTE_VALID` (bit 0). @see drivers/iommu/io-pgtable-arm.c */
export const ARM_LPAE_PTE_VALID = 1 << 0;
/** `ARM_LPAE_PTE_NS` (bit 5). @see drivers/iommu/io-pgtable-arm.c */
export const ARM_LPAE_PTE_NS = 1 << 5;
/** `ARM_LPAE_PTE_SH_IS`: inner shareable (bits [9:8] = 3). @see drivers/iommu/io-pgtable-arm.c */
export const ARM_LPAE_PTE_SH_IS = 3 << 8;
/** `ARM_LPAE_PTE_AF`: access flag (bit 10). @see drivers/iommu/io-pgtable-arm.c */
export const ARM_LPAE_PTE_AF = 1 << 10;
/** `ARM_LPAE_PTE_nG`: not global, ASID-tagged (bit 11; stage 1). @see drivers/iommu/io-pgtable-arm.c */
export const ARM_LPAE_PTE_nG = 1 << 11;
/**
 * `ARM_LPAE_PTE_AP_UNPRIV`: AP[1], unprivileged access allowed (bit 6; stage 1).
 * @see drivers/iommu/io-pgtable-arm.c
 */
export const ARM_LPAE_PTE_AP_UNPRIV = 1 << 6;
/** `ARM_LPAE_PTE_AP_RDONLY`: AP[2], read-only (bit 7; stage 1). @see drivers/iommu/io-pgtable-arm.c */
export const ARM_LPAE_PTE_AP_RDONLY = 2 << 6;
/** `ARM_LPAE_PTE_ATTRINDX_SHIFT`: MAIR index in bits [4:2] (stage 1). @see drivers/iommu/io-pgtable-arm.c */
export const ARM_LPAE_PTE_ATTRINDX_SHIFT = 2;
/** `ARM_LPAE_PTE_HAP_READ`: S2AP read (bit 6; stage 2). @see drivers/iommu/io-pgtable-arm.c */
export const ARM_LPAE_PTE_HAP_READ = 1 << 6;
/** `ARM_LPAE_PTE_HAP_WRITE`: S2AP write (bit 7; stage 2). @see drivers/iommu/io-pgtable-arm.c */
export const ARM_LPAE_PTE_HAP_WRITE = 2 << 6;
/**
 * `ARM_LPAE_PTE_MEMATTR_OIWB`: stage-2 MemAttr outer/inner write-back (bits [5:2]).
 * @see drivers/iommu/io-pgtable-arm.c
 */
export const ARM_LPAE_PTE_MEMATTR_OIWB = 0xf << 2;
/** `ARM_LPAE_PTE_MEMATTR_NC`: stage-2 MemAttr non-cacheable. @see drivers/iommu/io-pgtable-arm.c */
export const ARM_LPAE_PTE_MEMATTR_NC = 0x5 << 2;
/** `ARM_LPAE_PTE_MEMATTR_DEV`: stage-2 MemAttr device. @see drivers/iommu/io-pgtable-arm.c */
export const ARM_LPAE_PTE_MEMATTR_DEV = 0x1 << 2;
/**
 * `ARM_LPAE_PTE_ATTR_LO_MASK`: bits [11:2], the attributes a block split copies.
 * @see drivers/iommu/io-pgtable-arm.c
 */
export const ARM_LPAE_PTE_ATTR_LO_MASK = 0x3ff << 2;
/**
 * `ARM_LPAE_PTE_XN` is `3 << 53` (UXN|PXN); this is its mask in the high word.
 * @see drivers/iommu/io-pgtable-arm.c
 */
export const ARM_LPAE_PTE_XN_HI = 3 << 21;
/**
 * `ARM_LPAE_PTE_ATTR_HI_MASK` is `6 << 52` (XN, not the contiguous bit); mask in the high word.
 * @see drivers/iommu/io-pgtable-arm.c
 */
export const ARM_LPAE_PTE_ATTR_HI_MASK_HI = 6 << 20;
/** `ARM_LPAE_PTE_NSTABLE` is bit 63; mask in the high word. @see drivers/iommu/io-pgtable-arm.c */
export const ARM_LPAE_PTE_NSTABLE_HI = 1 << 31;
/**
 * Output address bits [47:32] in the high word.
 * Model-only: the output-address bits of the high 32-bit word.
 */
export const ARM_LPAE_PTE_ADDR_HI_MASK = 0xffff;

/** `ARM_LPAE_MAIR_ATTR_IDX_NC`. @see drivers/iommu/io-pgtable-arm.c */
export const ARM_LPAE_MAIR_ATTR_IDX_NC = 0;
/** `ARM_LPAE_MAIR_ATTR_IDX_CACHE`. @see drivers/iommu/io-pgtable-arm.c */
export const ARM_LPAE_MAIR_ATTR_IDX_CACHE = 1;
/** `ARM_LPAE_MAIR_ATTR_IDX_DEV`. @see drivers/iommu/io-pgtable-arm.c */
export const ARM_LPAE_MAIR_ATTR_IDX_DEV = 2;
/**
 * The MAIR the format programs: NC (0x44) at 0, WBRWA (0xff) at 1, device (0x04) at 2.
 * @see drivers/iommu/io-pgtable-arm.c arm_64_lpae_alloc_pgtable_s1 (the MAIR it builds)
 */
export const ARM_LPAE_MAIR = 0x44 | (0xff << 8) | (0x04 << 16);

/** `ARM_LPAE_TCR_TG0_4K` (TCR/CD/VTCR TG encoding). @see drivers/iommu/io-pgtable-arm.h */
export const ARM_LPAE_TCR_TG0_4K = 0;
/** `ARM_LPAE_TCR_TG0_64K`. @see drivers/iommu/io-pgtable-arm.h */
export const ARM_LPAE_TCR_TG0_64K = 1;
/** `ARM_LPAE_TCR_TG0_16K`. @see drivers/iommu/io-pgtable-arm.h */
export const ARM_LPAE_TCR_TG0_16K = 2;
/** `ARM_LPAE_TCR_SH_IS`. @see drivers/iommu/io-pgtable-arm.h */
export const ARM_LPAE_TCR_SH_IS = 3;
/** `ARM_LPAE_TCR_RGN_WBWA`. @see drivers/iommu/io-pgtable-arm.h */
export const ARM_LPAE_TCR_RGN_WBWA = 1;
/** `ARM_LPAE_VTCR_SL0_MASK`. @see drivers/iommu/io-pgtable-arm.c */
export const ARM_LPAE_VTCR_SL0_MASK = 0x3;

/**
 * `arm_lpae_pgtable_ps`-style encoding of an address size (TCR.IPS / VTCR.PS / CD.IPS /
 * STE.S2PS): 32→0, 36→1, 40→2, 42→3, 44→4, 48→5; -1 when unsupported.
 * @see drivers/iommu/io-pgtable-arm.c arm_64_lpae_alloc_pgtable_s1 (its `cfg->oas` switch)
 */
export function armLpaePsEncode(bits: number): number {
  switch (bits) {
    case 32:
      return 0;
    case 36:
      return 1;
    case 40:
      return 2;
    case 42:
      return 3;
    case 44:
      return 4;
    case 48:
      return 5;
    default:
      return -1;
  }
}

/**
 * Inverse of {@link armLpaePsEncode}; reserved encodings decode as 48 bits.
 * Model-only: the hardware model reads the field back.
 */
export function armLpaePsDecode(ps: number): number {
  return [32, 36, 40, 42, 44, 48][ps] ?? 48;
}

/**
 * TG field → granule shift (4K 12, 64K 16, 16K 14); 0 for the reserved encoding 3.
 * Model-only: the hardware model decodes the TG field.
 */
export function armLpaeTgToShift(tg: number): number {
  return tg === ARM_LPAE_TCR_TG0_4K
    ? 12
    : tg === ARM_LPAE_TCR_TG0_64K
      ? 16
      : tg === ARM_LPAE_TCR_TG0_16K
        ? 14
        : 0;
}
