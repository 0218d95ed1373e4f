import { hex, KernelError, PAGE_SIZE } from "@dmakit/core";
import { chainTo, initTable, isLast, LENGTH, nextSlot, OFFSET, pageOf, setPage } from "./internal/slot.js";
import { Sg } from "./Sg.js";
import type { SgPool } from "./SgPool.js";
import { SgAppendTable, type SgTable } from "./SgTable.js";
import { sgFreeAppendTable } from "./sgAllocTable.js";
import { SG_MAX_SINGLE_ALLOC, UINT_MAX } from "./sgConstants.js";

const U32 = 0xffffffff;

function fail(errno: "EINVAL" | "ENOMEM" | "EFAULT", msg: string): never {
  throw new KernelError(errno, `scatterlist: ${msg}`);
}

/**
 * `pages_are_mergeable(a, b)`: `pfn(a) == pfn(b) + 1` and `zone_device_pages_have_same_pgmap(a, b)`.
 * Without a `PhysMem`, or when it has no ZONE_DEVICE pgmap at all, the pgmap test is always true.
 */
function makeMergeable(p: SgPool): (a: number, b: number) => boolean {
  const mem = p.mem;
  if (mem === undefined || mem.pagemaps().length === 0) return (a, b) => a === b + 1;
  return (a, b) => a === b + 1 && mem.zoneDevicePagesHaveSamePgmap(a, b);
}

/**
 * `sg_alloc_append_table_from_pages(sgt_append, pages, n_pages, offset, size, max_segment,
 * left_pages, gfp)` (5.15+): appends the buffer `[offset, offset + size)` of the page array
 * `pages` (pfns) to the table, merging runs of mergeable pages (consecutive pfns, same ZONE_DEVICE
 * pgmap) into one entry of at most `max_segment` bytes, and first merging leading pages into the
 * previous call's last entry `prv` while `prv.length + PAGE_SIZE <= max_segment`.
 *
 * Kernel answers kept: `max_segment` is aligned down to PAGE_SIZE and below PAGE_SIZE WARNs and
 * fails with EINVAL; appending with a non-zero `offset` WARNs and fails with EINVAL; a new chunk
 * starts when the running segment length reaches `max_segment` or pages are not mergeable; chunk
 * sizes are `min(needed, 128)` with `needed = chunks - i + left_pages`; the last entry is marked END
 * only when `left_pages` is 0; `nents = orig_nents = ` entries so far; entry lengths are
 * `min(size_left, chunk_bytes)` with `size` an unsigned long that wraps (an undersized `size` trims
 * only the entry where it runs out).
 *
 * Model differences: a failed call (ENOMEM included) leaves the table exactly as it was (the kernel
 * leaves chunks it chained for `sg_free_append_table` to free); `n_pages` 0, `offset` >= PAGE_SIZE, a
 * `pages` array shorter than `n_pages`, non-pfn entries, and appending after the table was terminated
 * (left_pages 0 then a new entry needed: a NULL dereference in the kernel) are rejected with EINVAL/EFAULT.
 * @see lib/scatterlist.c sg_alloc_append_table_from_pages, get_next_sg, pages_are_mergeable
 */
export function sgAllocAppendTableFromPages(
  sgtAppend: SgAppendTable,
  pages: ArrayLike<number>,
  nPages: number,
  offset: number,
  size: number,
  maxSegment: number,
  leftPages: number,
  gfp = 0,
): void {
  const what = "sg_alloc_append_table_from_pages";
  const p = sgtAppend.pool;
  if (!Number.isInteger(nPages) || nPages < 1 || nPages > U32)
    fail("EINVAL", `${what}: n_pages ${String(nPages)} is not in 1..UINT_MAX`);
  if (pages.length < nPages)
    fail("EINVAL", `${what}: n_pages ${nPages} exceeds the page array (${pages.length})`);
  if (!Number.isInteger(offset) || offset < 0 || offset >= PAGE_SIZE)
    fail("EINVAL", `${what}: offset ${String(offset)} is not in 0..${PAGE_SIZE - 1}`);
  if (!Number.isSafeInteger(size) || size < 0)
    fail("EINVAL", `${what}: size ${String(size)} is not an unsigned long`);
  if (!Number.isInteger(maxSegment) || maxSegment < 0 || maxSegment > U32)
    fail("EINVAL", `${what}: max_segment ${String(maxSegment)} is not an unsigned int`);
  if (!Number.isInteger(leftPages) || leftPages < 0 || leftPages > U32)
    fail("EINVAL", `${what}: left_pages ${String(leftPages)} is not an unsigned int`);
  for (let k = 0; k < nPages; k++) {
    const pg = pages[k] as number;
    if (!(pg >= 0 && pg < 2 ** 41 && Math.floor(pg) === pg))
      fail("EINVAL", `${what}: pages[${k}] = ${String(pg)} is not a pfn`);
  }
  // The algorithm needs a page-aligned max_segment, otherwise it can overshoot.
  const maxSeg = maxSegment - (maxSegment % PAGE_SIZE);
  if (p.log.warn(maxSeg < PAGE_SIZE, "scatterlist", `${what}: max_segment ${hex(maxSegment)} < PAGE_SIZE`))
    fail("EINVAL", `${what}: max_segment ${hex(maxSegment)} aligns down to ${hex(maxSeg)}, below PAGE_SIZE`);

  const prvSg = sgtAppend.prv;
  const prv = prvSg === null ? -1 : prvSg.index;
  if (prv >= 0) {
    p.check(prv, what);
    if (p.log.warn(offset !== 0, "scatterlist", `${what}: offset ${hex(offset)} when appending`))
      fail("EINVAL", `${what}: offset ${hex(offset)} must be 0 when appending to an existing table`);
    if (pageOf(p, prv) < 0) fail("EINVAL", `${what}: previous entry ${hex(prv)} has no page`);
  }
  const mergeable = makeMergeable(p);
  const u32 = p.u32;
  const prvLen = prv >= 0 ? (u32[prv * 8 + LENGTH] as number) : 0;
  let cur = 0; // index of the first page not yet placed
  let n = nPages;
  let s = prv;

  // Undo log: pre-existing slots we overwrite (their 4 f64 words), blocks we allocate.
  const savedIdx: number[] = [];
  const savedWords: number[] = [];
  const newBlocks: number[] = [];
  const oldTotal = sgtAppend.totalNents;
  const oldSgl = sgtAppend.sgt.sgl;
  // Only slots of the chunk holding prv existed before this call; all others are in new blocks.
  const oldEnd = prv >= 0 ? p.blockEnd(prv) : -1;
  const oldStart = prv >= 0 ? oldEnd - p.blockSlots(prv) : -1;
  const save = (i: number): void => {
    if (i < oldStart || i >= oldEnd) return;
    const f = p.f64;
    savedIdx.push(i);
    savedWords.push(
      f[i * 4] as number,
      f[i * 4 + 1] as number,
      f[i * 4 + 2] as number,
      f[i * 4 + 3] as number,
    );
  };
  const rollback = (): void => {
    for (let k = savedIdx.length - 1; k >= 0; k--) {
      const i = savedIdx[k] as number;
      p.f64.set(savedWords.slice(k * 4, k * 4 + 4), i * 4);
    }
    for (const b of newBlocks) p.freeBlock(b, what);
    if (prv >= 0) p.u32[prv * 8 + LENGTH] = prvLen;
    sgtAppend.totalNents = oldTotal;
    sgtAppend.sgt.sgl = oldSgl;
  };

  let done = false;
  if (prv >= 0) {
    const prvPhys = pageOf(p, prv) * PAGE_SIZE + (u32[prv * 8 + OFFSET] as number);
    const nextPfn = Math.floor((prvPhys + prvLen) / PAGE_SIZE);
    if (pages[0] === nextPfn) {
      let lastPg = nextPfn - 1;
      let len = prvLen;
      while (n && mergeable(pages[cur] as number, lastPg)) {
        if (len + PAGE_SIZE > maxSeg) break;
        len += PAGE_SIZE;
        lastPg = pages[cur] as number;
        cur++;
        n--;
      }
      p.u32[prv * 8 + LENGTH] = len;
      if (!n) done = true;
    }
  }

  if (!done) {
    const end = cur + n;
    // Count the entries up front: get_next_sg sizes each new sg chunk by the entries still to come.
    let chunks = 1;
    let segLen = 0;
    for (let i = cur + 1; i < end; i++) {
      segLen += PAGE_SIZE;
      if (segLen >= maxSeg || !mergeable(pages[i] as number, pages[i - 1] as number)) {
        chunks++;
        segLen = 0;
      }
    }
    let sizeLeft = size;
    let wrapped = false;
    let off = offset;
    let added = 0;
    try {
      for (let i = 0; i < chunks; i++) {
        let j = cur + 1;
        segLen = 0;
        for (; j < end; j++) {
          segLen += PAGE_SIZE;
          if (segLen >= maxSeg || !mergeable(pages[j] as number, pages[j - 1] as number)) break;
        }
        s = getNextSg(sgtAppend, s, chunks - i + leftPages, gfp, newBlocks, save);
        const chunkSize = (j - cur) * PAGE_SIZE - off;
        let len: number;
        if (wrapped) len = chunkSize;
        else if (sizeLeft < chunkSize) {
          len = sizeLeft;
          wrapped = true; // size -= chunk_size underflows: every later min() picks chunk_size
        } else {
          len = chunkSize;
          sizeLeft -= chunkSize;
        }
        save(s);
        setPage(p, s, pages[cur] as number, len, off);
        added++;
        off = 0;
        cur = j;
      }
    } catch (e) {
      rollback();
      throw e;
    }
    sgtAppend.sgt.nents += added;
    sgtAppend.sgt.origNents = sgtAppend.sgt.nents;
    sgtAppend.prv = new Sg(p, s);
  }
  if (!leftPages) {
    const f = p.f64;
    const w = f[s * 4] as number;
    f[s * 4] = w - (w % 4) + 2;
  }
}

/**
 * `get_next_sg(table, cur, needed_sges, gfp)`: the slot after `cur`, unless that is the END-marked
 * last slot of its chunk and more than one entry is still needed: then a new chunk of
 * `min(needed, 128)` slots, chained through that slot.
 */
function getNextSg(
  t: SgAppendTable,
  cur: number,
  needed: number,
  gfp: number,
  newBlocks: number[],
  save: (i: number) => void,
): number {
  const p = t.pool;
  let next = -1;
  if (cur >= 0) {
    next = nextSlot(p, cur);
    if (next < 0)
      fail(
        "EFAULT",
        `sg_alloc_append_table_from_pages: previous entry ${hex(cur)} is marked END (an earlier call had left_pages 0); get_next_sg would dereference NULL`,
      );
    if (!isLast(p, next) || needed === 1) return next;
  }
  const allocSize = Math.min(needed, SG_MAX_SINGLE_ALLOC);
  const ns = p.sgKmalloc(allocSize, gfp);
  if (ns < 0) fail("ENOMEM", `sg_alloc_append_table_from_pages: cannot allocate a ${allocSize}-entry chunk`);
  newBlocks.push(ns);
  initTable(p, ns, allocSize);
  if (cur >= 0) {
    t.totalNents += allocSize - 1;
    save(next);
    chainTo(p, next, ns);
  } else {
    t.sgt.sgl = new Sg(p, ns);
    t.totalNents = allocSize;
  }
  return ns;
}

/**
 * `sg_alloc_table_from_pages_segment(sgt, pages, n_pages, offset, size, max_segment, gfp)`: one-shot
 * {@link sgAllocAppendTableFromPages} with `left_pages` 0 into a fresh append table, copied into
 * `sgt` on success (WARN if `total_nents != orig_nents`). On failure `sgt` is untouched.
 * @see lib/scatterlist.c sg_alloc_table_from_pages_segment
 */
export function sgAllocTableFromPagesSegment(
  sgt: SgTable,
  pages: ArrayLike<number>,
  nPages: number,
  offset: number,
  size: number,
  maxSegment: number,
  gfp = 0,
): void {
  const append = new SgAppendTable(sgt.pool);
  try {
    sgAllocAppendTableFromPages(append, pages, nPages, offset, size, maxSegment, 0, gfp);
  } catch (e) {
    sgFreeAppendTable(append);
    throw e;
  }
  sgt.sgl = append.sgt.sgl;
  sgt.nents = append.sgt.nents;
  sgt.origNents = append.sgt.origNents;
  sgt.pool.log.warn(
    append.totalNents !== sgt.origNents,
    "scatterlist",
    `sg_alloc_table_from_pages_segment: total_nents ${append.totalNents} != orig_nents ${sgt.origNents}`,
  );
}

/**
 * `sg_alloc_table_from_pages(sgt, pages, n_pages, offset, size, gfp)` =
 * `sg_alloc_table_from_pages_segment(..., UINT_MAX, gfp)`: segments up to 0xfffff000 bytes. The
 * device's own segment limit is the caller's business (pass `dma_max_mapping_size` to the
 * `_segment` variant). @see include/linux/scatterlist.h sg_alloc_table_from_pages
 */
export function sgAllocTableFromPages(
  sgt: SgTable,
  pages: ArrayLike<number>,
  nPages: number,
  offset: number,
  size: number,
  gfp = 0,
): void {
  sgAllocTableFromPagesSegment(sgt, pages, nPages, offset, size, UINT_MAX, gfp);
}
