import { hex, KernelError } from "@dmakit/core";
import { Sg } from "../Sg.js";
import type { SgPool } from "../SgPool.js";

// Raw slot access by index: the hot paths (table building, iteration, copies) use these and never
// allocate. Word offsets: f64 [4i] page_link, [4i+2] dma_address; u32 [8i+2] offset, [8i+3] length,
// [8i+6] dma_length, [8i+7] dma_flags. page_link words are integers below 2^53, so `w & 3` reads
// the CHAIN/END bits exactly (ToInt32 keeps the low 32 bits) without `%`, which V8 runs as an fmod
// call on a float.

export const DMA_ADDR = 2;
export const OFFSET = 2;
export const LENGTH = 3;
export const DMA_LEN = 6;
export const DMA_FLAGS = 7;

export function isChain(p: SgPool, i: number): boolean {
  return ((p.f64[i * 4] as number) & 1) === 1;
}

export function isLast(p: SgPool, i: number): boolean {
  return ((p.f64[i * 4] as number) & 2) === 2;
}

/** Chain target slot of a chain entry. */
export function chainPtr(p: SgPool, i: number): number {
  return Math.floor((p.f64[i * 4] as number) / 4);
}

/** pfn of the entry's page, or -1 for NULL. */
export function pageOf(p: SgPool, i: number): number {
  return Math.floor((p.f64[i * 4] as number) / 4) - 1;
}

/** `sg_assign_page`: keeps CHAIN/END bits. */
export function assignPage(p: SgPool, i: number, pfn: number): void {
  const f = p.f64;
  f[i * 4] = (pfn + 1) * 4 + ((f[i * 4] as number) & 3);
}

export function setPage(p: SgPool, i: number, pfn: number, len: number, offset: number): void {
  const f = p.f64;
  f[i * 4] = (pfn + 1) * 4 + ((f[i * 4] as number) & 3);
  const u = p.u32;
  u[i * 8 + OFFSET] = offset;
  u[i * 8 + LENGTH] = len;
}

export function markEnd(p: SgPool, i: number): void {
  const f = p.f64;
  const w = f[i * 4] as number;
  f[i * 4] = w - (w & 3) + SG_END_BIT;
}

const SG_END_BIT = 2;

/** `__sg_chain(chain_sg, sgl)`. */
export function chainTo(p: SgPool, at: number, target: number): void {
  p.u32[at * 8 + OFFSET] = 0;
  p.u32[at * 8 + LENGTH] = 0;
  p.f64[at * 4] = target * 4 + 1;
}

/** `sg_next` on raw slots: -1 for NULL. Throws EFAULT when `i + 1` leaves the array. */
export function nextSlot(p: SgPool, i: number): number {
  if (((p.f64[i * 4] as number) & 2) === 2) return -1;
  let j = i + 1;
  // Block ends are multiples of their size class, so only small classes and frame edges need the check.
  if (((j & 127) === 0 || p.smallClass(i)) && j >= p.blockEnd(i)) outOfArray(p, i);
  if (((p.f64[j * 4] as number) & 1) === 1) {
    j = Math.floor((p.f64[j * 4] as number) / 4);
    if (!p.isLive(j))
      throw new KernelError(
        "EFAULT",
        `scatterlist: sg_next: chain entry ${hex(i + 1)} points to freed array ${hex(j)}`,
      );
  }
  return j;
}

function outOfArray(_p: SgPool, i: number): never {
  throw new KernelError(
    "EFAULT",
    `scatterlist: sg_next: entry ${hex(i)} is the last slot of its array but has neither SG_END nor a chain slot after it`,
  );
}

/** Zeroes `n` slots from `i` and marks the last END (`sg_init_table`). */
export function initTable(p: SgPool, i: number, n: number): void {
  p.f64.fill(0, i * 4, (i + n) * 4);
  p.f64[(i + n - 1) * 4] = SG_END_BIT;
}

/** Checks that `sg` is a live entry of this pool; returns its index. */
export function slotOf(sg: Sg | null, what: string): number {
  if (sg === null) throw new KernelError("EFAULT", `scatterlist: ${what}: NULL scatterlist pointer`);
  sg.pool.check(sg.index, what);
  return sg.index;
}

export function handle(p: SgPool, i: number): Sg | null {
  return i < 0 ? null : new Sg(p, i);
}

export function copySlot(p: SgPool, from: number, to: number): void {
  p.f64.copyWithin(to * 4, from * 4, from * 4 + 4);
}
