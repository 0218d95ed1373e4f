/** `RADIX_TREE_MAX_TAGS` = 3, so `ACTIVE_CACHELINE_MAX_OVERLAP` = 7. @see kernel/dma/debug.c */
export const ACTIVE_CACHELINE_MAX_OVERLAP = 7;

const CLEAN = 8;

/** What {@link ActiveCachelines.insert} found. @see kernel/dma/debug.c active_cacheline_insert */
export const CACHELINE_INSERTED = 0;
/**
 * `-EEXIST`: another device-writable mapping already starts in this cache line.
 * @see kernel/dma/debug.c active_cacheline_insert
 */
export const CACHELINE_EEXIST = -17;

/**
 * dma-debug's `dma_active_cacheline` radix tree: for each device-writable mapping, the cache line
 * number of its first byte (`paddr >> L1_CACHE_SHIFT`), with an overlap count kept, as the kernel
 * does, in the 3 radix tags (0..7). The kernel stores the first entry's pointer and reads its attrs
 * on EEXIST; the model keeps just that bit ("first mapping is cache-clean": DMA_ATTR_DEBUGGING_IGNORE_CACHELINES
 * or DMA_ATTR_REQUIRE_COHERENT) packed with the count in one number per line: no object per line.
 *
 * The kernel's quirks are kept: a count past 7 is not stored (the WARN_ONCE fires and the count
 * stays 7), so after an overflow the key is deleted while overlapping mappings remain.
 * @see kernel/dma/debug.c active_cacheline_insert, active_cacheline_remove
 */
export class ActiveCachelines {
  private readonly lines = new Map<number, number>();

  /** Number of tracked cache lines. */
  get size(): number {
    return this.lines.size;
  }

  /**
   * `radix_tree_insert` + `active_cacheline_inc_overlap`. Returns {@link CACHELINE_INSERTED} or
   * {@link CACHELINE_EEXIST}; `out.overflow` is the count that did not fit (> 7) or 0,
   * `out.existingClean` whether the first mapping of the line was cache-clean.
   */
  insert(cln: number, clean: boolean, out: { overflow: number; existingClean: boolean }): number {
    out.overflow = 0;
    out.existingClean = false;
    const v = this.lines.get(cln);
    if (v === undefined) {
      this.lines.set(cln, clean ? CLEAN : 0);
      return CACHELINE_INSERTED;
    }
    const overlap = (v & 7) + 1;
    if (overlap > ACTIVE_CACHELINE_MAX_OVERLAP) out.overflow = overlap;
    else this.lines.set(cln, (v & CLEAN) | overlap);
    out.existingClean = (v & CLEAN) !== 0;
    return CACHELINE_EEXIST;
  }

  /** `active_cacheline_remove`: drops one overlap, the key when the count goes below zero. */
  remove(cln: number): void {
    const v = this.lines.get(cln);
    if (v === undefined) return;
    const overlap = (v & 7) - 1;
    if (overlap < 0) this.lines.delete(cln);
    else this.lines.set(cln, (v & CLEAN) | overlap);
  }

  /** The overlap count of a line (0 = one mapping), or -1 when the line is not tracked. */
  overlap(cln: number): number {
    const v = this.lines.get(cln);
    return v === undefined ? -1 : v & 7;
  }
}
