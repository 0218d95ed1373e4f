/** `PAGE_SHIFT` for 4 KiB pages, the only CPU page size the model uses. @see include/asm-generic/page.h */
export const PAGE_SHIFT = 12;
/** `PAGE_SIZE` = 4096. @see include/asm-generic/page.h */
export const PAGE_SIZE = 4096;
/**
 * `PAGE_MASK` as a positive mask of the in-page offset bits (the kernel's is `~(PAGE_SIZE-1)`).
 * @see include/asm-generic/page.h PAGE_MASK
 */
export const PAGE_OFFSET_MASK = PAGE_SIZE - 1;

/** `SZ_1K`. @see include/linux/sizes.h */
export const SZ_1K = 0x400;
/** `SZ_2K`. @see include/linux/sizes.h */
export const SZ_2K = 0x800;
/** `SZ_4K`. @see include/linux/sizes.h */
export const SZ_4K = 0x1000;
/** `SZ_16K`. @see include/linux/sizes.h */
export const SZ_16K = 0x4000;
/** `SZ_64K`. @see include/linux/sizes.h */
export const SZ_64K = 0x10000;
/** `SZ_128K`. @see include/linux/sizes.h */
export const SZ_128K = 0x20000;
/** `SZ_256K`. @see include/linux/sizes.h */
export const SZ_256K = 0x40000;
/** `SZ_1M`. @see include/linux/sizes.h */
export const SZ_1M = 0x100000;
/** `SZ_2M`. @see include/linux/sizes.h */
export const SZ_2M = 0x200000;
/** `SZ_4M`. @see include/linux/sizes.h */
export const SZ_4M = 0x400000;
/** `SZ_32M`. @see include/linux/sizes.h */
export const SZ_32M = 0x2000000;
/** `SZ_64M`. @see include/linux/sizes.h */
export const SZ_64M = 0x4000000;
/** `SZ_128M`. @see include/linux/sizes.h */
export const SZ_128M = 0x8000000;
/** `SZ_256M`. @see include/linux/sizes.h */
export const SZ_256M = 0x10000000;
/** `SZ_512M`. @see include/linux/sizes.h */
export const SZ_512M = 0x20000000;
/** `SZ_1G`. @see include/linux/sizes.h */
export const SZ_1G = 0x40000000;
/** `SZ_2G`. @see include/linux/sizes.h */
export const SZ_2G = 0x80000000;
/** `SZ_4G`. @see include/linux/sizes.h */
export const SZ_4G = 0x100000000;

/** `U32_MAX` / `UINT_MAX`. @see include/linux/limits.h U32_MAX, include/vdso/limits.h UINT_MAX */
export const U32_MAX = 0xffffffff;

/**
 * The largest address the model represents exactly: 2^53 - 1. Addresses and sizes are plain
 * numbers (design rule: no BigInt on hot paths); 64-bit "all ones" masks are represented by
 * {@link ULONG_MAX}, which compares above every representable address.
 * Model-only: the limit of exact number arithmetic.
 */
export const MAX_PHYS_ADDR = Number.MAX_SAFE_INTEGER;

/**
 * `ULONG_MAX` / `U64_MAX` as a number. It is 2^64 rounded, so `x <= ULONG_MAX` holds for every
 * address; format it with {@link hex}, which prints it as 0xffffffffffffffff.
 * @see include/vdso/limits.h ULONG_MAX, include/linux/limits.h U64_MAX
 */
export const ULONG_MAX = 2 ** 64;

/**
 * `GENMASK_ULL(h, 0)` = `DMA_BIT_MASK(h + 1)` as a number; 64 gives {@link ULONG_MAX}.
 * Masks wider than 53 bits are not representable: `bitMask(k)` for k > 53 is the number 2^k, and
 * every helper here ({@link hex}, {@link fls}, {@link ffs}) reads a power of two above
 * `MAX_SAFE_INTEGER` as that mask (2^k - 1). Comparisons stay right: every address is below it.
 * @see include/linux/bits.h GENMASK_ULL, include/linux/dma-mapping.h DMA_BIT_MASK
 */
export function bitMask(bits: number): number {
  if (bits >= 64) return ULONG_MAX;
  if (bits <= 0) return 0;
  return 2 ** bits - 1;
}

/** `PFN_DOWN(addr)` / `PHYS_PFN(addr)`. @see include/linux/pfn.h PFN_DOWN, PHYS_PFN */
export function pfnDown(addr: number): number {
  return Math.floor(addr / PAGE_SIZE);
}

/** `PFN_UP(addr)`. @see include/linux/pfn.h PFN_UP */
export function pfnUp(addr: number): number {
  return Math.ceil(addr / PAGE_SIZE);
}

/** `PFN_PHYS(pfn)`. @see include/linux/pfn.h PFN_PHYS */
export function pfnPhys(pfn: number): number {
  return pfn * PAGE_SIZE;
}

/** `offset_in_page(addr)`. @see include/linux/mm.h offset_in_page */
export function offsetInPage(addr: number): number {
  return addr % PAGE_SIZE;
}

/** `PAGE_ALIGN(x)`. @see include/linux/mm.h PAGE_ALIGN */
export function pageAlign(x: number): number {
  return Math.ceil(x / PAGE_SIZE) * PAGE_SIZE;
}

/**
 * `IS_ALIGNED(x, a)` for a power-of-two (or any positive) `a`; exact for all safe integers.
 * @see include/linux/align.h IS_ALIGNED
 */
export function isAligned(x: number, a: number): boolean {
  return x % a === 0;
}

/** `ALIGN(x, a)`: round up to a multiple of `a`. @see include/linux/align.h ALIGN */
export function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

/** `ALIGN_DOWN(x, a)`: round down to a multiple of `a`. @see include/linux/align.h ALIGN_DOWN */
export function alignDown(x: number, a: number): number {
  return Math.floor(x / a) * a;
}

/**
 * `is_power_of_2(n)` for integers up to 2^53 (above that a power of two stands for a mask, see
 * {@link bitMask}, and is not a power of two).
 * @see include/linux/log2.h is_power_of_2
 */
export function isPowerOf2(n: number): boolean {
  if (!Number.isInteger(n) || n <= 0 || n > MAX_PHYS_ADDR) return false;
  return n === 2 ** fls(n);
}

// A power of two 2^k above 2^53 stands for the mask 2^k - 1; returns k, or -1 for other numbers.
function maskBits(x: number): number {
  if (x <= MAX_PHYS_ADDR) return -1;
  const k = Math.round(Math.log2(x));
  return 2 ** k === x ? k : -1;
}

/**
 * `__ffs(x)`: index of the least significant set bit of a non-negative integer below 2^53.
 * Returns -1 for 0 (the kernel leaves it undefined).
 * @see include/asm-generic/bitops/__ffs.h __ffs
 */
export function ffs(x: number): number {
  if (x === 0) return -1;
  if (maskBits(x) > 0) return 0;
  const lo = x % 0x100000000;
  if (lo !== 0) return 31 - Math.clz32(lo & -lo);
  const hi = Math.floor(x / 0x100000000);
  return 32 + 31 - Math.clz32(hi & -hi);
}

/**
 * `__fls(x)`: index of the most significant set bit of a positive integer; -1 for 0.
 * @see include/asm-generic/bitops/__fls.h __fls (the kernel leaves 0 undefined)
 */
export function fls(x: number): number {
  if (x === 0) return -1;
  if (x < 0x100000000) return 31 - Math.clz32(x);
  const k = maskBits(x);
  if (k > 0) return k - 1;
  // log2 rounds up just below a power of two (log2(2^53 - 1) === 53), so split into 32-bit halves.
  if (x <= MAX_PHYS_ADDR) return 63 - Math.clz32(Math.floor(x / 0x100000000));
  return Math.floor(Math.log2(x));
}

/** `order_base_2(n)`: ceil(log2(n)), 0 for n <= 1. @see include/linux/log2.h order_base_2 */
export function orderBase2(n: number): number {
  return n <= 1 ? 0 : fls(n - 1) + 1;
}

/**
 * `get_order(size)`: the buddy order that holds `size` bytes.
 * @see include/asm-generic/getorder.h get_order
 */
export function getOrder(size: number): number {
  return orderBase2(Math.ceil(size / PAGE_SIZE));
}

/** `roundup_pow_of_two(n)`. @see include/linux/log2.h roundup_pow_of_two */
export function roundupPowOfTwo(n: number): number {
  return 2 ** orderBase2(n);
}

/** `min_not_zero(a, b)`. @see include/linux/minmax.h min_not_zero */
export function minNotZero(a: number, b: number): number {
  if (a === 0) return b;
  if (b === 0) return a;
  return Math.min(a, b);
}

/**
 * Lowercase hex with 0x, as `%#llx` prints; {@link ULONG_MAX} prints as 0xffffffffffffffff.
 * Model-only formatting. @see lib/vsprintf.c (`%#llx`)
 */
export function hex(x: number): string {
  if (x >= ULONG_MAX) return "0xffffffffffffffff";
  const k = maskBits(x);
  if (k > 0) return `0x${maskDigits(k)}`;
  return `0x${x.toString(16)}`;
}

function maskDigits(k: number): string {
  const lead = k % 4 === 0 ? "" : ((1 << (k % 4)) - 1).toString(16);
  return lead + "f".repeat(Math.floor(k / 4));
}

/**
 * Zero-padded 16-digit hex, as `0x%016llx` prints.
 * Model-only formatting. @see lib/vsprintf.c (`0x%016llx`)
 */
export function hex16(x: number): string {
  if (x >= ULONG_MAX) return "0xffffffffffffffff";
  const k = maskBits(x);
  if (k > 0) return `0x${maskDigits(k).padStart(16, "0")}`;
  return `0x${x.toString(16).padStart(16, "0")}`;
}

/** Human-readable byte size: 4096 → "4 KiB", 1.5 MiB → "1.5 MiB". Model-only: report formatting. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u]}`;
}
