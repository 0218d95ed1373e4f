import { type Device, devIsPci, fls, ULONG_MAX } from "@dmakit/core";

/** `dev_is_untrusted(dev)`: a PCI device marked untrusted (external-facing port, Thunderbolt). */
export function devIsUntrusted(dev: Device): boolean {
  return devIsPci(dev) && dev.untrusted;
}

/** `bits_per(n)` for a DMA limit: 64 for `DMA_BIT_MASK(64)` (stored as 2^64), else `fls64(n)`. */
export function bitsPer(limit: number): number {
  if (limit >= ULONG_MAX) return 64;
  if (limit < 2) return 1;
  return fls(limit) + 1;
}

/** `(mask - len + 1) & mask` of `iommu_dma_map_sg`: padding up to the next segment boundary. */
export function padToBoundary(len: number, mask: number): number {
  // With a 64-bit mask the padding is 2^64 - len, never smaller than a segment: no padding.
  if (mask >= Number.MAX_SAFE_INTEGER) return len === 0 ? 0 : Number.POSITIVE_INFINITY;
  const bnd = mask + 1;
  // Integer fast paths (this runs once per scatterlist entry); `%` on large numbers is an fmod call.
  if (len >= 0 && len < bnd) return len === 0 ? 0 : bnd - len;
  if (bnd <= 0x4000_0000 && (bnd & mask) === 0 && Number.isInteger(len)) {
    const r = len & mask;
    return r === 0 ? 0 : bnd - r;
  }
  return (bnd - (len % bnd)) % bnd;
}
