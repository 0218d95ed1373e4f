import { KernelError } from "@dmakit/core";
import type { Sg } from "./Sg.js";
import type { SgPool } from "./SgPool.js";

/**
 * `struct sg_table`: the list head `sgl`, `orig_nents` (CPU entries: what was built) and `nents`
 * (DMA entries: what `dma_map_sg` returned; equal to `orig_nents` until mapped). Create one per
 * machine pool, then fill it with `sgAllocTable` / `sgAllocTableFromPages*`.
 *
 * Like the kernel, freeing sets `sgl` to null and leaves the counts; the model then refuses to
 * iterate or copy the table (EFAULT) where the kernel would dereference NULL.
 * @see include/linux/scatterlist.h struct sg_table
 */
export class SgTable {
  /** The first entry, null before allocation and after `sgFreeTable`. */
  sgl: Sg | null = null;
  /** Number of mapped (DMA) entries. */
  nents = 0;
  /** Number of CPU entries. */
  origNents = 0;

  constructor(readonly pool: SgPool) {}

  /** @internal Throws EFAULT unless the table holds a list. */
  checkLive(what: string): Sg {
    if (this.sgl === null)
      throw new KernelError(
        "EFAULT",
        `scatterlist: ${what}: sg_table has no list (never allocated or freed)`,
      );
    return this.sgl;
  }
}

/**
 * `struct sg_append_table` (5.15+): an sg_table being built by successive
 * `sgAllocAppendTableFromPages` calls; `prv` is the last populated entry and `totalNents` the
 * allocated (usable) slots. @see include/linux/scatterlist.h struct sg_append_table
 */
export class SgAppendTable {
  readonly sgt: SgTable;
  /** Last populated entry (null before the first call). */
  prv: Sg | null = null;
  /** Allocated slots, chain slots excluded. */
  totalNents = 0;

  constructor(readonly pool: SgPool) {
    this.sgt = new SgTable(pool);
  }
}
