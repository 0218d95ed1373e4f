import { KernelError, PAGE_SIZE } from "@dmakit/core";
import { OFFSET, pageOf } from "./internal/slot.js";
import type { SgTable } from "./SgTable.js";
import { sgWalk } from "./sgIter.js";

/**
 * A buffer as a page array: `pages` (pfns, `struct page **` in C, 8 bytes per entry) plus the byte
 * `offset` into the first page and the `size` in bytes: the arguments of
 * `sg_alloc_table_from_pages(sgt, pages, n_pages, offset, size, gfp)`. Model-only container.
 */
export interface PageBuffer {
  readonly pages: Float64Array;
  readonly offset: number;
  readonly size: number;
}

/**
 * The page array behind an sg_table's CPU view (`orig_nents` entries): every page each entry touches,
 * in order. EINVAL when the table is not a page-array buffer: an entry without a page, or an interior
 * entry boundary that is not page-aligned (only the first entry may start and the last may end inside
 * a page). Model-only: the kernel has no inverse of `sg_alloc_table_from_pages`.
 */
export function sgTableToPageBuffer(sgt: SgTable): PageBuffer {
  const sgl = sgt.checkLive("sg_table to pages");
  const p = sgt.pool;
  let count = 0;
  let size = 0;
  let first = 0;
  const n = sgt.origNents;
  sgWalk(sgl, n, (i, off, len, k) => {
    if (pageOf(p, i) < 0)
      throw new KernelError("EINVAL", `scatterlist: sg_table to pages: entry ${k} has no page`);
    if (k > 0 && off % PAGE_SIZE !== 0)
      throw new KernelError(
        "EINVAL",
        `scatterlist: sg_table to pages: entry ${k} starts at offset ${off}, not on a page`,
      );
    if (k + 1 < n && (off + len) % PAGE_SIZE !== 0)
      throw new KernelError("EINVAL", `scatterlist: sg_table to pages: entry ${k} ends inside a page`);
    if (k === 0) first = off % PAGE_SIZE;
    count += Math.ceil(((off % PAGE_SIZE) + len) / PAGE_SIZE);
    size += len;
  });
  const pages = new Float64Array(count);
  let w = 0;
  const u = p.u32;
  sgWalk(sgl, n, (i, off, len) => {
    const base = pageOf(p, i) + Math.floor((u[i * 8 + OFFSET] as number) / PAGE_SIZE);
    const np = Math.ceil(((off % PAGE_SIZE) + len) / PAGE_SIZE);
    for (let j = 0; j < np; j++) pages[w++] = base + j;
  });
  return { pages, offset: first, size };
}

/**
 * Bytes a page array of `nPages` entries takes: `cBytes` as `struct page *[]` (8 per entry) and
 * `jsBytes` as the model stores it (a Float64Array: also 8 per entry; a plain JS array of small
 * integers would be 8 per element plus its header).
 * Model-only: a memory report.
 */
export function pageArrayFootprint(pages: ArrayLike<number>): { cBytes: number; jsBytes: number } {
  const js = ArrayBuffer.isView(pages)
    ? (pages as unknown as ArrayBufferView).byteLength
    : pages.length * 8 + 16;
  return { cBytes: pages.length * 8, jsBytes: js };
}
