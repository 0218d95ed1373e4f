import { hex, KernelError, PAGE_SIZE } from "@dmakit/core";
import {
  DMA_ADDR,
  DMA_FLAGS,
  DMA_LEN,
  isChain,
  LENGTH,
  nextSlot,
  OFFSET,
  pageOf,
  slotOf,
} from "./internal/slot.js";
import { Sg } from "./Sg.js";
import type { SgPool } from "./SgPool.js";
import { NO_PAGE } from "./sgConstants.js";

const U32 = 0xffffffff;
const DMA_ADDR_ERROR = 2 ** 64;

function checkU32(v: number, what: string, name: string): void {
  if (!Number.isInteger(v) || v < 0 || v > U32)
    throw new KernelError("EINVAL", `scatterlist: ${what}: ${name} ${String(v)} is not an unsigned int`);
}

/**
 * Model-only: the entries of one pool read and written by slot index, for loops that walk a whole
 * list (`for_each_sg` with `sg_dma_address`, `sg->length` ...) and would otherwise make an {@link Sg}
 * handle per entry and re-check it on every access. Make one per walk (or reuse one); `first` checks the head as every accessor does
 * (EFAULT for NULL or a freed array) and `next` is `sg_next` (EFAULT past an array's end, chains
 * followed), so a walk sees exactly the entries and errors of `forEachSg`; in between, indexes
 * are trusted: use only indexes this walk returned, and do not free the list during the walk.
 * Setters check their values as the handle setters do (`sgSetLength`, `sgDmaSetAddress` ...).
 *
 * @example
 * const sl = new SgSlots();
 * let i = sl.first(sgl, "for_each_sg");
 * for (let k = 0; k < nents; k++) {
 *   total += sl.length(i);
 *   if (k + 1 < nents) i = sl.next(i);
 * }
 */
export class SgSlots {
  /** The pool of the list {@link first} started on (set before any index exists). */
  pool!: SgPool;

  /** Starts a walk at `sgl` (checked as every accessor checks its handle): returns its slot. */
  first(sgl: Sg | null, what: string): number {
    const i = slotOf(sgl, what);
    this.pool = (sgl as Sg).pool;
    return i;
  }

  /** `sg_next` by index: -1 for NULL (END). */
  next(i: number): number {
    return nextSlot(this.pool, i);
  }

  /** A handle to slot `i` (where an `Sg` must be handed on). */
  sg(i: number): Sg {
    return new Sg(this.pool, i);
  }

  /** `sg_page`: pfn or {@link NO_PAGE}; EINVAL on a chain entry, as `sgPage`. */
  page(i: number): number {
    if (isChain(this.pool, i))
      throw new KernelError(
        "EINVAL",
        `scatterlist: sg_page: entry ${hex(i)} is a chain entry (BUG_ON under CONFIG_DEBUG_SG)`,
      );
    return pageOf(this.pool, i);
  }

  /** `sg_phys`; EFAULT for an entry without a page, as `sgPhys`. */
  phys(i: number): number {
    const page = this.page(i);
    if (page === NO_PAGE)
      throw new KernelError("EFAULT", `scatterlist: sg_phys: entry ${hex(i)} has no page (DMA-only entry)`);
    return page * PAGE_SIZE + (this.pool.u32[i * 8 + OFFSET] as number);
  }

  /** `sg->offset`. */
  offset(i: number): number {
    return this.pool.u32[i * 8 + OFFSET] as number;
  }

  /** `sg->length`. */
  length(i: number): number {
    return this.pool.u32[i * 8 + LENGTH] as number;
  }

  /** `sg_dma_address`. */
  dmaAddress(i: number): number {
    return this.pool.f64[i * 4 + DMA_ADDR] as number;
  }

  /** `sg_dma_len`. */
  dmaLen(i: number): number {
    return this.pool.u32[i * 8 + DMA_LEN] as number;
  }

  /** `sg->dma_flags`. */
  dmaFlags(i: number): number {
    return this.pool.u32[i * 8 + DMA_FLAGS] as number;
  }

  /** `sg->offset = v`. */
  setOffset(i: number, v: number): void {
    checkU32(v, "sg->offset", "offset");
    this.pool.u32[i * 8 + OFFSET] = v;
  }

  /** `sg->length = v`. */
  setLength(i: number, v: number): void {
    checkU32(v, "sg->length", "len");
    this.pool.u32[i * 8 + LENGTH] = v;
  }

  /** `sg_dma_address(sg) = addr`: an integer in 0..2^53-1 or `DMA_MAPPING_ERROR` (2^64). */
  setDmaAddress(i: number, addr: number): void {
    if (!(Number.isSafeInteger(addr) && addr >= 0) && addr !== DMA_ADDR_ERROR)
      throw new KernelError("EINVAL", `scatterlist: sg_dma_address: ${String(addr)} is not a dma_addr_t`);
    this.pool.f64[i * 4 + DMA_ADDR] = addr;
  }

  /** `sg_dma_len(sg) = v`. */
  setDmaLen(i: number, v: number): void {
    checkU32(v, "sg_dma_len", "len");
    this.pool.u32[i * 8 + DMA_LEN] = v;
  }

  /** `sg->dma_flags = v` (the `SG_DMA_*` bits). */
  setDmaFlags(i: number, v: number): void {
    this.pool.u32[i * 8 + DMA_FLAGS] = v;
  }
}
