import { KernelError, PAGE_SIZE } from "@dmakit/core";
import { DmaRangeList, PHYR_F_BUS_ADDR, PHYR_F_SWIOTLB, PhysRangeList } from "@dmakit/phyr";
import { DMA_ADDR, DMA_FLAGS, DMA_LEN, setPage } from "./internal/slot.js";
import type { SgTable } from "./SgTable.js";
import { sgAllocTable } from "./sgAllocTable.js";
import {
  NO_PAGE,
  SCATTERLIST_MAX_SEGMENT,
  SG_DMA_BUS_ADDRESS,
  SG_DMA_SWIOTLB,
  UINT_MAX,
} from "./sgConstants.js";
import { sgWalk } from "./sgIter.js";

function pieces(list: PhysRangeList | DmaRangeList, max: number): number {
  let n = 0;
  list.forEach((_a, len) => {
    n += Math.ceil(len / max);
  });
  return n;
}

/** End of the piece starting at `a`: at most `max` bytes, cut on a page boundary like page chunking. */
function pieceEnd(a: number, end: number, max: number): number {
  const e = Math.floor((a + max) / PAGE_SIZE) * PAGE_SIZE;
  return Math.min(end, e > a ? e : a + max);
}

function physPieces(list: PhysRangeList, max: number): number {
  let n = 0;
  list.forEach((addr, len) => {
    for (let a = addr; a < addr + len; n++) a = pieceEnd(a, addr + len, max);
  });
  return n;
}

/**
 * Builds the CPU view of an sg_table from a physical range list: the "Phyr Starter" fallback for code
 * that only accepts scatterlists. Each range becomes entries of at most `maxSegment` bytes
 * (aligned down to PAGE_SIZE; default SCATTERLIST_MAX_SEGMENT), cut on page boundaries as
 * `sg_alloc_table_from_pages` chunks, each with `page = addr >> PAGE_SHIFT`, `offset = addr & ~PAGE_MASK`;
 * `nents = orig_nents` = entries, DMA fields zero. Ranges are taken as they are (no merging), and pages
 * need not have a struct page (P2P BARs keep their pfn, as the kernel's P2P pages do).
 * EINVAL for an empty list or `maxSegment` below PAGE_SIZE; ENOMEM leaves `sgt` untouched.
 * Model-only (the kernel has no phys_vec → sg_table helper; DMA-side it has dma_buf_phys_vec_to_sgt).
 */
export function sgAllocTableFromPhysRanges(
  sgt: SgTable,
  list: PhysRangeList,
  maxSegment = SCATTERLIST_MAX_SEGMENT,
  gfp = 0,
): void {
  if (!Number.isInteger(maxSegment) || maxSegment < PAGE_SIZE || maxSegment > UINT_MAX)
    throw new KernelError(
      "EINVAL",
      `scatterlist: phys ranges to sg_table: max_segment ${String(maxSegment)} not in PAGE_SIZE..UINT_MAX`,
    );
  if (list.count === 0) throw new KernelError("EINVAL", "scatterlist: phys ranges to sg_table: empty list");
  const max = maxSegment - (maxSegment % PAGE_SIZE);
  sgAllocTable(sgt, physPieces(list, max), gfp);
  const p = sgt.pool;
  let i = (sgt.sgl as NonNullable<SgTable["sgl"]>).index;
  const order: number[] = [];
  sgWalk(sgt.sgl, sgt.origNents, (idx) => {
    order.push(idx);
  });
  let k = 0;
  list.forEach((addr, len) => {
    for (let a = addr; a < addr + len; ) {
      const l = pieceEnd(a, addr + len, max) - a;
      i = order[k++] as number;
      setPage(p, i, Math.floor(a / PAGE_SIZE), l, a % PAGE_SIZE);
      a += l;
    }
  });
}

/**
 * The CPU view (`orig_nents` entries) as a physical range list: `{sg_phys(sg), sg->length}` per entry,
 * zero-length entries skipped (phyr rejects them), flags 0. EINVAL for an entry without a page.
 * Model-only.
 */
export function sgTableToPhysRanges(sgt: SgTable): PhysRangeList {
  const p = sgt.pool;
  const out = new PhysRangeList();
  sgWalk(sgt.checkLive("sg_table to phys ranges"), sgt.origNents, (i, off, len, k) => {
    const page = Math.floor((p.f64[i * 4] as number) / 4) - 1;
    if (page === NO_PAGE)
      throw new KernelError("EINVAL", `scatterlist: sg_table to phys ranges: entry ${k} has no page`);
    if (len > 0) out.push(page * PAGE_SIZE + off, len);
  });
  out.shrinkToFit();
  return out;
}

/**
 * The DMA view (`nents` entries) as a DMA range list: `{sg_dma_address, sg_dma_len}` per entry, with
 * `SG_DMA_BUS_ADDRESS` → `PHYR_F_BUS_ADDR` and `SG_DMA_SWIOTLB` → `PHYR_F_SWIOTLB`; zero-length entries
 * skipped. Model-only.
 */
export function sgTableToDmaRanges(sgt: SgTable): DmaRangeList {
  const p = sgt.pool;
  const out = new DmaRangeList();
  sgWalk(sgt.checkLive("sg_table to dma ranges"), sgt.nents, (i) => {
    const len = p.u32[i * 8 + DMA_LEN] as number;
    const fl = p.u32[i * 8 + DMA_FLAGS] as number;
    const flags =
      (fl & SG_DMA_BUS_ADDRESS ? PHYR_F_BUS_ADDR : 0) | (fl & SG_DMA_SWIOTLB ? PHYR_F_SWIOTLB : 0);
    if (len > 0) out.push(p.f64[i * 4 + DMA_ADDR] as number, len, flags);
  });
  out.shrinkToFit();
  return out;
}

/**
 * A DMA-only sg_table from a DMA range list, the shape `dma_buf_phys_vec_to_sgt` builds: every entry
 * `sg_set_page(sg, NULL, 0, 0)` with `dma_address`/`dma_length` set, ranges longer than UINT_MAX split,
 * `PHYR_F_BUS_ADDR`/`PHYR_F_SWIOTLB` copied into `dma_flags`; `nents = orig_nents` = entries.
 * @see drivers/dma-buf/dma-buf-mapping.c dma_buf_phys_vec_to_sgt (model differences: no mapping is
 *   done here, the list already holds DMA addresses; orig_nents is not zeroed)
 */
export function sgAllocTableFromDmaRanges(sgt: SgTable, list: DmaRangeList, gfp = 0): void {
  if (list.count === 0) throw new KernelError("EINVAL", "scatterlist: dma ranges to sg_table: empty list");
  const max = UINT_MAX;
  sgAllocTable(sgt, pieces(list, max), gfp);
  const p = sgt.pool;
  const order: number[] = [];
  sgWalk(sgt.sgl, sgt.origNents, (idx) => {
    order.push(idx);
  });
  let k = 0;
  list.forEach((addr, len, flags) => {
    const fl =
      (flags & PHYR_F_BUS_ADDR ? SG_DMA_BUS_ADDRESS : 0) | (flags & PHYR_F_SWIOTLB ? SG_DMA_SWIOTLB : 0);
    for (let a = addr; a < addr + len; ) {
      const l = Math.min(max, addr + len - a);
      const i = order[k++] as number;
      setPage(p, i, NO_PAGE, 0, 0);
      p.f64[i * 4 + DMA_ADDR] = a;
      p.u32[i * 8 + DMA_LEN] = l;
      p.u32[i * 8 + DMA_FLAGS] = fl;
      a += l;
    }
  });
}
