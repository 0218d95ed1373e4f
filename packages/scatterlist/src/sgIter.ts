import { KernelError, PAGE_SIZE } from "@dmakit/core";
import { DMA_ADDR, DMA_LEN, LENGTH, nextSlot, OFFSET, pageOf, slotOf } from "./internal/slot.js";
import { Sg } from "./Sg.js";
import type { SgTable } from "./SgTable.js";

/**
 * `for_each_sg(sglist, sg, nr, i)`: yields the first `nr` entries, following chains. EFAULT when the
 * list ends (END) before `nr` entries (the kernel dereferences NULL).
 * @example for (const sg of forEachSg(sgt.sgl, sgt.origNents)) total += sgLength(sg);
 * @see include/linux/scatterlist.h for_each_sg
 */
export function* forEachSg(sglist: Sg | null, nr: number): Generator<Sg, void, undefined> {
  if (nr <= 0) return;
  const p = (sglist as Sg).pool;
  let i = slotOf(sglist, "for_each_sg");
  for (let k = 0; k < nr; k++) {
    if (i < 0)
      throw new KernelError("EFAULT", `scatterlist: for_each_sg: list ends after ${k} of ${nr} entries`);
    yield new Sg(p, i);
    if (k + 1 < nr) i = nextSlot(p, i);
  }
}

/**
 * Model-only fast walk: calls `fn(index, offset, length, k)` for the first `nr` entries (raw slot
 * index, no handle allocated). Same order and checks as {@link forEachSg}.
 */
export function sgWalk(
  sglist: Sg | null,
  nr: number,
  fn: (index: number, offset: number, length: number, k: number) => void,
): void {
  if (nr <= 0) return;
  const p = (sglist as Sg).pool;
  let i = slotOf(sglist, "for_each_sg");
  for (let k = 0; k < nr; k++) {
    if (i < 0)
      throw new KernelError("EFAULT", `scatterlist: for_each_sg: list ends after ${k} of ${nr} entries`);
    const u = p.u32;
    fn(i, u[i * 8 + OFFSET] as number, u[i * 8 + LENGTH] as number, k);
    if (k + 1 < nr) i = nextSlot(p, i);
  }
}

/** `for_each_sgtable_sg(sgt, sg, i)`: the CPU view, `orig_nents` entries. @see include/linux/scatterlist.h */
export function forEachSgtableSg(sgt: SgTable): Generator<Sg, void, undefined> {
  return forEachSg(sgt.checkLive("for_each_sgtable_sg"), sgt.origNents);
}

/** `for_each_sgtable_dma_sg(sgt, sg, i)`: the DMA view, `nents` entries. @see include/linux/scatterlist.h */
export function forEachSgtableDmaSg(sgt: SgTable): Generator<Sg, void, undefined> {
  return forEachSg(sgt.checkLive("for_each_sgtable_dma_sg"), sgt.nents);
}

/**
 * `struct sg_page_iter`: `sg` holds the current page, `sgPgoffset` its page index within the entry.
 * The iterators yield the same object every step, as the C loops reuse one struct.
 * @see include/linux/scatterlist.h struct sg_page_iter, struct sg_dma_page_iter
 */
export class SgPageIter {
  sg: Sg | null = null;
  sgPgoffset = 0;
  /** @internal remaining entries */
  nentsLeft = 0;
  /** @internal pages to advance at the next step */
  pgAdvance = 0;
}

/** `__sg_page_iter_start(piter, sglist, nents, pgoffset)`. @see lib/scatterlist.c */
export function sgPageIterStart(piter: SgPageIter, sglist: Sg | null, nents: number, pgoffset: number): void {
  piter.pgAdvance = 0;
  piter.nentsLeft = nents;
  piter.sg = sglist;
  piter.sgPgoffset = pgoffset;
}

function pageIterNext(piter: SgPageIter, dma: boolean): boolean {
  if (!piter.nentsLeft || piter.sg === null) return false;
  const p = piter.sg.pool;
  let i = slotOf(piter.sg, "__sg_page_iter_next");
  piter.sgPgoffset += piter.pgAdvance;
  piter.pgAdvance = 1;
  const u = p.u32;
  for (;;) {
    const len = dma ? (u[i * 8 + DMA_LEN] as number) : (u[i * 8 + LENGTH] as number);
    // sg_page_count / sg_dma_page_count: PAGE_ALIGN(offset + length) >> PAGE_SHIFT.
    const count = Math.ceil(((u[i * 8 + OFFSET] as number) + len) / PAGE_SIZE);
    if (piter.sgPgoffset < count) break;
    piter.sgPgoffset -= count;
    i = nextSlot(p, i);
    if (!--piter.nentsLeft || i < 0) {
      piter.sg = i < 0 ? null : new Sg(p, i);
      return false;
    }
  }
  if (i !== piter.sg.index) piter.sg = new Sg(p, i);
  return true;
}

/** `__sg_page_iter_next(piter)`. @see lib/scatterlist.c */
export function sgPageIterNext(piter: SgPageIter): boolean {
  return pageIterNext(piter, false);
}

/** `__sg_page_iter_dma_next(dma_iter)`: pages counted from `sg_dma_len`. @see lib/scatterlist.c */
export function sgPageIterDmaNext(piter: SgPageIter): boolean {
  return pageIterNext(piter, true);
}

/**
 * `sg_page_iter_page(piter)` = `nth_page(sg_page(piter->sg), piter->sg_pgoffset)`: a pfn. EFAULT
 * for an entry without a page. @see include/linux/scatterlist.h
 */
export function sgPageIterPage(piter: SgPageIter): number {
  const sg = piter.sg;
  const i = slotOf(sg, "sg_page_iter_page");
  const page = pageOf((sg as Sg).pool, i);
  if (page < 0)
    throw new KernelError("EFAULT", "scatterlist: sg_page_iter_page: entry has no page (DMA-only entry)");
  return page + piter.sgPgoffset;
}

/**
 * `sg_page_iter_dma_address(dma_iter)` = `sg_dma_address(sg) + (sg_pgoffset << PAGE_SHIFT)`.
 * @see include/linux/scatterlist.h
 */
export function sgPageIterDmaAddress(piter: SgPageIter): number {
  const sg = piter.sg;
  const i = slotOf(sg, "sg_page_iter_dma_address");
  return ((sg as Sg).pool.f64[i * 4 + DMA_ADDR] as number) + piter.sgPgoffset * PAGE_SIZE;
}

/**
 * `for_each_sg_page(sglist, piter, nents, pgoffset)`: yields the iterator once per page of the CPU
 * view (pages = PAGE_ALIGN(offset + length) >> PAGE_SHIFT per entry). @see include/linux/scatterlist.h
 */
export function* forEachSgPage(
  sglist: Sg | null,
  nents: number,
  pgoffset = 0,
): Generator<SgPageIter, void, undefined> {
  const piter = new SgPageIter();
  sgPageIterStart(piter, sglist, nents, pgoffset);
  while (sgPageIterNext(piter)) yield piter;
}

/**
 * `for_each_sg_dma_page(sglist, dma_iter, dma_nents, pgoffset)`: pages of the DMA view.
 * @see include/linux/scatterlist.h for_each_sg_dma_page
 */
export function* forEachSgDmaPage(
  sglist: Sg | null,
  dmaNents: number,
  pgoffset = 0,
): Generator<SgPageIter, void, undefined> {
  const piter = new SgPageIter();
  sgPageIterStart(piter, sglist, dmaNents, pgoffset);
  while (sgPageIterDmaNext(piter)) yield piter;
}

/**
 * `for_each_sgtable_page(sgt, piter, pgoffset)`: pages of the CPU view (`orig_nents`).
 * @see include/linux/scatterlist.h for_each_sgtable_page
 */
export function forEachSgtablePage(sgt: SgTable, pgoffset = 0): Generator<SgPageIter, void, undefined> {
  return forEachSgPage(sgt.checkLive("for_each_sgtable_page"), sgt.origNents, pgoffset);
}

/**
 * `for_each_sgtable_dma_page(sgt, dma_iter, pgoffset)`: pages of the DMA view (`nents`).
 * @see include/linux/scatterlist.h for_each_sgtable_dma_page
 */
export function forEachSgtableDmaPage(sgt: SgTable, pgoffset = 0): Generator<SgPageIter, void, undefined> {
  return forEachSgDmaPage(sgt.checkLive("for_each_sgtable_dma_page"), sgt.nents, pgoffset);
}
