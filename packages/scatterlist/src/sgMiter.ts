import { KernelError, PAGE_SIZE } from "@dmakit/core";
import { pageOf, slotOf } from "./internal/slot.js";
import type { Sg } from "./Sg.js";
import { SG_MITER_FROM_SG, SG_MITER_TO_SG } from "./sgConstants.js";
import { SgPageIter, sgPageIterNext, sgPageIterStart } from "./sgIter.js";

/**
 * `struct sg_mapping_iter`: after a successful {@link sgMiterNext}, `page` is the mapped page (pfn),
 * `addr` the kernel virtual address of the mapped bytes (`kmap_local_page` through the pool's kernel
 * VM; the physical address when the pool has none), `phys` their physical address, and `length`
 * their count; set `consumed` lower to consume less.
 * @see include/linux/scatterlist.h struct sg_mapping_iter
 */
export class SgMappingIter {
  page = -1;
  /** Kernel virtual address of the mapped area, null when nothing is mapped. */
  addr: number | null = null;
  /** Physical address of the mapped area (model-only, for CPU access through the machine's cache). */
  phys = -1;
  length = 0;
  consumed = 0;
  readonly piter = new SgPageIter();
  /** @internal */ offset = 0;
  /** @internal */ remaining = 0;
  /** @internal */ flags = 0;
}

/**
 * `sg_miter_start(miter, sgl, nents, flags)`: WARNs unless `flags` has SG_MITER_TO_SG or
 * SG_MITER_FROM_SG. @see lib/scatterlist.c sg_miter_start
 */
export function sgMiterStart(miter: SgMappingIter, sgl: Sg | null, nents: number, flags: number): void {
  miter.page = -1;
  miter.addr = null;
  miter.length = 0;
  miter.consumed = 0;
  miter.offset = 0;
  miter.remaining = 0;
  sgPageIterStart(miter.piter, sgl, nents, 0);
  const log = sgl?.pool.log;
  log?.warn(
    (flags & (SG_MITER_TO_SG | SG_MITER_FROM_SG)) === 0,
    "scatterlist",
    "sg_miter_start: neither SG_MITER_TO_SG nor SG_MITER_FROM_SG",
  );
  miter.flags = flags;
}

function getNextPage(miter: SgMappingIter): boolean {
  if (!miter.remaining) {
    if (!sgPageIterNext(miter.piter)) return false;
    const sg = miter.piter.sg as Sg;
    const i = sg.index;
    const u = sg.pool.u32;
    const off = u[i * 8 + 2] as number;
    const len = u[i * 8 + 3] as number;
    let o = miter.piter.sgPgoffset ? 0 : off;
    miter.piter.sgPgoffset += Math.floor(o / PAGE_SIZE);
    o %= PAGE_SIZE;
    miter.offset = o;
    const rem = off + len - miter.piter.sgPgoffset * PAGE_SIZE - o;
    miter.remaining = Math.min(rem >>> 0, PAGE_SIZE - o);
  }
  return true;
}

/**
 * `sg_miter_skip(miter, offset)`: stops the iterator, then advances `offset` bytes; false when the
 * list ends first. @see lib/scatterlist.c sg_miter_skip
 */
export function sgMiterSkip(miter: SgMappingIter, offset: number): boolean {
  if (!Number.isSafeInteger(offset) || offset < 0)
    throw new KernelError("EINVAL", `scatterlist: sg_miter_skip: offset ${String(offset)} is not >= 0`);
  sgMiterStop(miter);
  while (offset) {
    if (!getNextPage(miter)) return false;
    const consumed = Math.min(offset, miter.remaining);
    miter.offset += consumed;
    miter.remaining -= consumed;
    offset -= consumed;
  }
  return true;
}

/**
 * `sg_miter_next(miter)`: maps the next piece (at most up to the end of a page); false at the end.
 * EFAULT for an entry without a page (the kernel would kmap garbage).
 * @see lib/scatterlist.c sg_miter_next
 */
export function sgMiterNext(miter: SgMappingIter): boolean {
  sgMiterStop(miter);
  if (!getNextPage(miter)) return false;
  const sg = miter.piter.sg as Sg;
  const page = pageOf(sg.pool, slotOf(sg, "sg_miter_next"));
  if (page < 0)
    throw new KernelError("EFAULT", "scatterlist: sg_miter_next: entry has no page (DMA-only entry)");
  miter.page = page + miter.piter.sgPgoffset;
  miter.consumed = miter.length = miter.remaining;
  miter.phys = miter.page * PAGE_SIZE + miter.offset;
  const vm = sg.pool.vm;
  miter.addr = vm === undefined ? miter.phys : vm.pageAddress(miter.page) + miter.offset;
  return true;
}

/**
 * `sg_miter_stop(miter)`: releases the mapping, accounting `consumed` bytes (WARN if more than
 * `length`). Flushing the data cache for SG_MITER_TO_SG is left to the CPU cache model.
 * @see lib/scatterlist.c sg_miter_stop
 */
export function sgMiterStop(miter: SgMappingIter): void {
  const log = miter.piter.sg?.pool.log;
  log?.warn(
    miter.consumed > miter.length,
    "scatterlist",
    `sg_miter_stop: consumed ${miter.consumed} > length ${miter.length}`,
  );
  if (miter.addr !== null) {
    miter.offset += miter.consumed;
    miter.remaining -= miter.consumed;
    miter.page = -1;
    miter.addr = null;
    miter.length = 0;
    miter.consumed = 0;
  }
}
