const TWO32 = 4294967296;

/**
 * `addr & mask` for a 64-bit mask (a segment boundary, an alignment mask) on addresses below 2^53:
 * JavaScript's bitwise operators are 32-bit, so the halves are masked apart. A mask at or above
 * 2^53 (`ULONG_MAX`, `DMA_BIT_MASK(64)`) keeps every representable bit.
 * Model-only: C writes `addr & mask` on a `u64`.
 */
export function and64(addr: number, mask: number): number {
  if (mask >= Number.MAX_SAFE_INTEGER) return addr;
  const lo = (addr & mask) >>> 0;
  const hi = (Math.floor(addr / TWO32) & Math.floor(mask / TWO32)) >>> 0;
  return hi * TWO32 + lo;
}
