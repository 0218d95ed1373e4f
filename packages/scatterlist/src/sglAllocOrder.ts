import { KernelError, PAGE_SHIFT, PAGE_SIZE } from "@dmakit/core";
import { initTable, nextSlot, pageOf, setPage, slotOf } from "./internal/slot.js";
import { Sg } from "./Sg.js";
import { type SgPool, tryAllocPage } from "./SgPool.js";

/**
 * `sgl_alloc_order(length, order, chainable, gfp, &nent)`: a kmalloc'ed list of
 * `nent = ceil(length / (PAGE_SIZE << order))` entries (one more, unmarked, when `chainable`), each
 * backed by `alloc_pages(gfp, order)` from the pool's page allocator; `nentP[0]` receives `nent`.
 * Returns `null` on failure, as the kernel does: allocator exhausted (pages taken so far are
 * freed), list longer than KMALLOC_MAX_SIZE, or the kernel's 32-bit overflow check
 * (`length > nent << (PAGE_SHIFT + order)` in unsigned int, which rejects lengths >= 4 GiB >> 0).
 * Model addition: `pool` comes first (the kernel allocator is global); EINVAL for `length` 0 or no
 * page allocator.
 * @see lib/scatterlist.c sgl_alloc_order
 */
export function sglAllocOrder(
  pool: SgPool,
  length: number,
  order: number,
  chainable: boolean,
  gfp: number,
  nentP?: number[],
): Sg | null {
  const what = "sgl_alloc_order";
  if (!Number.isSafeInteger(length) || length < 1)
    throw new KernelError(
      "EINVAL",
      `scatterlist: ${what}: length ${String(length)} must be at least one byte`,
    );
  if (!Number.isInteger(order) || order < 0 || order > 31)
    throw new KernelError(
      "EINVAL",
      `scatterlist: ${what}: order ${String(order)} is not an unsigned int order`,
    );
  const pa = pool.pageAllocator;
  if (pa === undefined)
    throw new KernelError("EINVAL", `scatterlist: ${what}: the pool has no page allocator`);
  const unit = PAGE_SIZE * 2 ** order;
  const nent = (Math.ceil(length / unit) % 2 ** 32) >>> 0;
  // `nent << (PAGE_SHIFT + order)` is computed in unsigned int.
  if (length > (nent * 2 ** (PAGE_SHIFT + order)) % 2 ** 32) return null;
  let nalloc = nent;
  if (chainable) {
    if (nalloc + 1 > 0xffffffff) return null;
    nalloc++;
  }
  const sgl = pool.allocBlock(nalloc, what);
  if (sgl < 0) return null;
  initTable(pool, sgl, nalloc);
  let sg = sgl;
  let left = length;
  while (left) {
    const elemLen = Math.min(left, unit);
    const page = tryAllocPage(pa, gfp, order);
    if (page < 0) {
      sglFreeOrder(new Sg(pool, sgl), order);
      return null;
    }
    setPage(pool, sg, page, elemLen, 0);
    left -= elemLen;
    sg = nextSlot(pool, sg);
  }
  if (nentP) nentP[0] = nent;
  return new Sg(pool, sgl);
}

/** `sgl_alloc(length, gfp, &nent)` = `sgl_alloc_order(length, 0, false, gfp, &nent)`. @see lib/scatterlist.c */
export function sglAlloc(pool: SgPool, length: number, gfp: number, nentP?: number[]): Sg | null {
  return sglAllocOrder(pool, length, 0, false, gfp, nentP);
}

/**
 * `sgl_free_n_order(sgl, nents, order)`: frees the pages of up to `nents` entries (stopping at the
 * end of the list, skipping entries without a page), then kfrees the list.
 * @see lib/scatterlist.c sgl_free_n_order
 */
export function sglFreeNOrder(sgl: Sg, nents: number, order: number): void {
  const p = sgl.pool;
  let i = slotOf(sgl, "sgl_free_n_order");
  const pa = p.pageAllocator;
  for (let k = 0; k < nents && i >= 0; k++) {
    const page = pageOf(p, i);
    if (page >= 0) pa?.freePages(page, order);
    i = nextSlot(p, i);
  }
  p.kfree(sgl);
}

/** `sgl_free_order(sgl, order)` = `sgl_free_n_order(sgl, INT_MAX, order)`. @see lib/scatterlist.c */
export function sglFreeOrder(sgl: Sg, order: number): void {
  sglFreeNOrder(sgl, 0x7fffffff, order);
}

/** `sgl_free(sgl)` = `sgl_free_order(sgl, 0)`. @see lib/scatterlist.c */
export function sglFree(sgl: Sg): void {
  sglFreeOrder(sgl, 0);
}
