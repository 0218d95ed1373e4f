import { hex, KernelError } from "@dmakit/core";
import { chainPtr, chainTo, initTable, isChain } from "./internal/slot.js";
import { Sg } from "./Sg.js";
import type { SgAppendTable, SgTable } from "./SgTable.js";
import { SG_MAX_SINGLE_ALLOC } from "./sgConstants.js";

/**
 * `sg_alloc_table(table, nents, gfp)` = `__sg_alloc_table(table, nents, SG_MAX_SINGLE_ALLOC, NULL,
 * 0, gfp, sg_kmalloc)`: `nents` entries in chunks of at most 128 slots, every non-final chunk giving
 * its last slot to the chain link; `nents = orig_nents = nents`, the last entry marked END.
 * 128-slot chunks come from the page allocator when the pool has one.
 *
 * Errors (thrown as `KernelError`; the table is left exactly as it was, where the kernel memsets it):
 * EINVAL for `nents` 0 or not an unsigned int, ENOMEM when a chunk cannot be allocated (the chunks
 * already taken are freed, as the kernel's `sg_free_table` on failure does).
 * @see lib/scatterlist.c sg_alloc_table, __sg_alloc_table
 */
export function sgAllocTable(table: SgTable, nents: number, gfp = 0): void {
  if (!Number.isInteger(nents) || nents < 0 || nents > 0xffffffff)
    throw new KernelError(
      "EINVAL",
      `scatterlist: sg_alloc_table: nents ${String(nents)} is not an unsigned int`,
    );
  if (nents === 0) throw new KernelError("EINVAL", "scatterlist: sg_alloc_table: nents 0");
  const p = table.pool;
  const max = SG_MAX_SINGLE_ALLOC;
  const taken: number[] = [];
  let left = nents;
  let prv = -1;
  let sgl = -1;
  let total = 0;
  do {
    let allocSize = left;
    let sgSize: number;
    if (allocSize > max) {
      allocSize = max;
      sgSize = allocSize - 1;
    } else sgSize = allocSize;
    left -= sgSize;
    const sg = p.sgKmalloc(allocSize, gfp);
    if (sg < 0) {
      for (const b of taken) p.freeBlock(b, "sg_alloc_table");
      throw new KernelError(
        "ENOMEM",
        `scatterlist: sg_alloc_table: cannot allocate a ${allocSize}-entry chunk (${total} of ${nents} entries allocated)`,
      );
    }
    taken.push(sg);
    initTable(p, sg, allocSize);
    total += sgSize;
    if (prv >= 0) chainTo(p, prv + max - 1, sg);
    else sgl = sg;
    // sg_init_table already marked sg[alloc_size - 1]; a final chunk has sg_size == alloc_size.
    prv = sg;
  } while (left);
  table.sgl = new Sg(p, sgl);
  table.nents = total;
  table.origNents = total;
}

/**
 * `__sg_free_table(table, SG_MAX_SINGLE_ALLOC, 0, sg_kfree, num_ents)` walked the kernel's way:
 * chunks of `min(left, 128)` slots, the next chunk found through slot 127. The model warns when a
 * chunk's real size differs from what the arithmetic assumes (a driver changed `orig_nents`).
 */
function freeChunks(table: SgTable, numEnts: number, what: string): void {
  const p = table.pool;
  const head = table.sgl;
  if (head === null) return;
  const max = SG_MAX_SINGLE_ALLOC;
  let sgl = head.index;
  let num = numEnts;
  while (num) {
    let allocSize = num;
    let sgSize: number;
    let next = -1;
    if (!p.isLive(sgl))
      throw new KernelError("EFAULT", `scatterlist: ${what}: chunk ${hex(sgl)} is already freed`);
    if (allocSize > max) {
      if (!isChain(p, sgl + max - 1))
        throw new KernelError(
          "EFAULT",
          `scatterlist: ${what}: ${num} entries left but slot ${max - 1} of chunk ${hex(sgl)} is not a chain entry`,
        );
      next = chainPtr(p, sgl + max - 1);
      allocSize = max;
      sgSize = allocSize - 1;
    } else sgSize = allocSize;
    num -= sgSize;
    const real = p.blockSlots(sgl);
    let cls = 1;
    while (cls < allocSize) cls *= 2;
    p.log.warn(
      real !== cls,
      "scatterlist",
      `${what}: freeing a ${real}-slot chunk as ${allocSize} entries (nents changed after allocation?)`,
    );
    p.freeBlock(sgl, what);
    sgl = next;
  }
  table.sgl = null;
}

/**
 * `sg_free_table(table)`: frees the chunks, walking `orig_nents` entries; sets `sgl` to null and
 * leaves `nents`/`orig_nents` as the kernel does. A table without a list is a no-op.
 * @see lib/scatterlist.c sg_free_table, __sg_free_table
 */
export function sgFreeTable(table: SgTable): void {
  freeChunks(table, table.origNents, "sg_free_table");
}

/**
 * `sg_free_append_table(table)`: like {@link sgFreeTable} but walks `total_nents` slots. `prv` keeps
 * pointing at the freed entry, as in the kernel; appending again then fails with EFAULT.
 * @see lib/scatterlist.c sg_free_append_table
 */
export function sgFreeAppendTable(table: SgAppendTable): void {
  freeChunks(table.sgt, table.totalNents, "sg_free_append_table");
}
