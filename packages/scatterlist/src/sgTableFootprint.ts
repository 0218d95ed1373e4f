import type { SgTable } from "./SgTable.js";
import { SG_MAX_SINGLE_ALLOC, SG_SLOT_BYTES, SG_TABLE_BYTES } from "./sgConstants.js";

/** What {@link sgTableFootprint} reports. Model-only: a memory report. */
export interface SgTableFootprint {
  /** Entries (`orig_nents`). */
  readonly entries: number;
  /** Chain slots (one per chunk but the last). */
  readonly chainSlots: number;
  /** `struct sg_table` (16) + 32 bytes per allocated slot, chain slots included, as the kernel's C layout. */
  readonly cBytes: number;
  /** Slot bytes the model's typed arrays hold for the table (power-of-two size classes, like kmalloc). */
  readonly jsBytes: number;
}

/**
 * Memory of an sg_table built by `sg_alloc_table` / `sg_alloc_table_from_pages*` (chunks of 128
 * slots, the last `min(left, 128)`): counted the kernel's way and as the model holds it.
 * Model-only.
 */
export function sgTableFootprint(sgt: SgTable): SgTableFootprint {
  const n = sgt.origNents;
  const max = SG_MAX_SINGLE_ALLOC;
  let slots = 0;
  let js = 0;
  let chain = 0;
  let left = n;
  const p = sgt.pool;
  let blk = sgt.sgl?.index ?? -1;
  while (left > 0) {
    const alloc = Math.min(left, max);
    const used = left > max ? max - 1 : left;
    slots += alloc;
    if (left > max) chain++;
    if (blk >= 0 && p.isLive(blk)) {
      js += p.blockSlots(blk) * SG_SLOT_BYTES;
      blk = left > max ? Math.floor((p.f64[(blk + max - 1) * 4] as number) / 4) : -1;
    } else {
      let c = 1;
      while (c < alloc) c *= 2;
      js += c * SG_SLOT_BYTES;
    }
    left -= used;
  }
  return { entries: n, chainSlots: chain, cBytes: SG_TABLE_BYTES + slots * SG_SLOT_BYTES, jsBytes: js };
}
