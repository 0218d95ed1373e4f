/**
 * `enum io_pgtable_fmt`: page-table formats, with the kernel's values, plus the model's names for
 * formats the kernel keeps outside io-pgtable.
 * @see include/linux/io-pgtable.h enum io_pgtable_fmt
 */

export const ARM_32_LPAE_S1 = 0;
/** `ARM_32_LPAE_S2`. @see include/linux/io-pgtable.h enum io_pgtable_fmt */
export const ARM_32_LPAE_S2 = 1;
/** `ARM_64_LPAE_S1`. @see include/linux/io-pgtable.h enum io_pgtable_fmt */
export const ARM_64_LPAE_S1 = 2;
/** `ARM_64_LPAE_S2`. @see include/linux/io-pgtable.h enum io_pgtable_fmt */
export const ARM_64_LPAE_S2 = 3;
/** `ARM_V7S`. @see include/linux/io-pgtable.h enum io_pgtable_fmt */
export const ARM_V7S = 4;
/** `ARM_MALI_LPAE`. @see include/linux/io-pgtable.h enum io_pgtable_fmt */
export const ARM_MALI_LPAE = 5;
/** `AMD_IOMMU_V1`. @see include/linux/io-pgtable.h enum io_pgtable_fmt */
export const AMD_IOMMU_V1 = 6;
/** `AMD_IOMMU_V2`. @see include/linux/io-pgtable.h enum io_pgtable_fmt */
export const AMD_IOMMU_V2 = 7;
/** `APPLE_DART`. @see include/linux/io-pgtable.h enum io_pgtable_fmt */
export const APPLE_DART = 8;
/** `APPLE_DART2`. @see include/linux/io-pgtable.h enum io_pgtable_fmt */
export const APPLE_DART2 = 9;
/**
 * The model's id for the Intel VT-d second-level (stage-2) table. The kernel's VT-d driver keeps its
 * own table code (`drivers/iommu/intel/iommu.c`, now `generic_pt` "iommupt"), not an io-pgtable
 * format; the model registers it like one so both implementations share one interface.
 * Model-only.
 */
export const INTEL_VTD_SL = 10;
/**
 * `IO_PGTABLE_NUM_FMTS` (the kernel's is 10; the model's includes {@link INTEL_VTD_SL}).
 * @see include/linux/io-pgtable.h enum io_pgtable_fmt
 */
export const IO_PGTABLE_NUM_FMTS = 11;

/** One of the `io_pgtable_fmt` values. @see include/linux/io-pgtable.h enum io_pgtable_fmt */
export type IoPgtableFmt = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10;

const FMT_NAMES = [
  "ARM_32_LPAE_S1",
  "ARM_32_LPAE_S2",
  "ARM_64_LPAE_S1",
  "ARM_64_LPAE_S2",
  "ARM_V7S",
  "ARM_MALI_LPAE",
  "AMD_IOMMU_V1",
  "AMD_IOMMU_V2",
  "APPLE_DART",
  "APPLE_DART2",
  "INTEL_VTD_SL",
] as const;

/**
 * The format's constant name (`"ARM_64_LPAE_S1"`), for messages; `"fmt <n>"` when unknown.
 * Model-only: names for messages.
 */
export function ioPgtableFmtName(fmt: number): string {
  return FMT_NAMES[fmt] ?? `fmt ${fmt}`;
}
