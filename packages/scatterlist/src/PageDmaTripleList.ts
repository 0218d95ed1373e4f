import { DMA_MAPPING_ERROR, KernelError, PAGE_SIZE } from "@dmakit/core";
import { DmaRangeList, PhysRangeList } from "@dmakit/phyr";
import { DMA_ADDR, DMA_LEN, setPage } from "./internal/slot.js";
import { sgTableToPageBuffer } from "./PageBuffer.js";
import type { SgTable } from "./SgTable.js";
import { sgAllocTable } from "./sgAllocTable.js";
import { NO_PAGE } from "./sgConstants.js";
import { sgWalk } from "./sgIter.js";

/**
 * C size of one triple: page pointer 8 + dma_addr_t 8 + unsigned int num_pages 4 + 4 padding.
 * Model-only: the 2018 proposal never became a kernel struct.
 */
export const PAGE_DMA_TRIPLE_BYTES = 24;

/**
 * The single buffer description proposed on the list in 2018: a list of `(page or none, dma_addr,
 * num_pages)` triples, one per run of pages that is contiguous both physically and in DMA space, plus
 * the byte `offset` into the first page and the `size` of the buffer. `page` is {@link NO_PAGE} for
 * memory without struct page (a BAR), `dma` is `DMA_MAPPING_ERROR` while unmapped.
 *
 * Storage: three typed arrays (page f64, dma f64, num_pages u32: 20 bytes per entry). Model-only;
 * not a kernel structure.
 */
export class PageDmaTripleList {
  private pg: Float64Array;
  private dm: Float64Array;
  private np: Uint32Array;
  private n = 0;

  constructor(
    readonly offset = 0,
    readonly size = 0,
    capacity = 4,
  ) {
    this.pg = new Float64Array(capacity);
    this.dm = new Float64Array(capacity);
    this.np = new Uint32Array(capacity);
  }

  get count(): number {
    return this.n;
  }
  page(i: number): number {
    return this.pg[this.idx(i)] as number;
  }
  dma(i: number): number {
    return this.dm[this.idx(i)] as number;
  }
  numPages(i: number): number {
    return this.np[this.idx(i)] as number;
  }

  /** Appends a triple; merges into the previous one when both page and DMA runs continue. */
  push(page: number, dma: number, numPages: number): void {
    if (!Number.isInteger(numPages) || numPages < 1 || numPages > 0xffffffff)
      throw new KernelError(
        "EINVAL",
        `scatterlist: triple: num_pages ${String(numPages)} is not 1..UINT_MAX`,
      );
    const k = this.n - 1;
    if (k >= 0) {
      const pp = this.pg[k] as number;
      const pd = this.dm[k] as number;
      const pn = this.np[k] as number;
      const pageOk = page === NO_PAGE ? pp === NO_PAGE : pp !== NO_PAGE && pp + pn === page;
      const dmaOk =
        dma === DMA_MAPPING_ERROR
          ? pd === DMA_MAPPING_ERROR
          : pd !== DMA_MAPPING_ERROR && pd + pn * PAGE_SIZE === dma;
      if (
        pageOk &&
        dmaOk &&
        pn + numPages <= 0xffffffff &&
        !(page === NO_PAGE && dma === DMA_MAPPING_ERROR)
      ) {
        this.np[k] = pn + numPages;
        return;
      }
    }
    if (this.n === this.pg.length) this.grow();
    this.pg[this.n] = page;
    this.dm[this.n] = dma;
    this.np[this.n] = numPages;
    this.n++;
  }

  /** `cBytes`: 24 per triple; `jsBytes`: the typed arrays (20 per slot, capacity included). */
  footprint(): { cBytes: number; jsBytes: number } {
    return {
      cBytes: this.n * PAGE_DMA_TRIPLE_BYTES,
      jsBytes: this.pg.byteLength + this.dm.byteLength + this.np.byteLength,
    };
  }

  /** Drops unused capacity. */
  shrinkToFit(): void {
    this.pg = this.pg.slice(0, this.n);
    this.dm = this.dm.slice(0, this.n);
    this.np = this.np.slice(0, this.n);
  }

  /** Physical byte ranges (pages only). EINVAL when a triple has no page. */
  toPhysRanges(): PhysRangeList {
    return this.ranges(true) as PhysRangeList;
  }

  /** DMA byte ranges. EINVAL when a triple is unmapped. */
  toDmaRanges(): DmaRangeList {
    return this.ranges(false) as DmaRangeList;
  }

  private ranges(phys: boolean): PhysRangeList | DmaRangeList {
    const out = phys ? new PhysRangeList() : new DmaRangeList();
    let pos = -this.offset; // buffer byte position of the current page start
    for (let i = 0; i < this.n; i++) {
      const base = phys ? (this.pg[i] as number) * PAGE_SIZE : (this.dm[i] as number);
      if ((phys && this.pg[i] === NO_PAGE) || (!phys && this.dm[i] === DMA_MAPPING_ERROR))
        throw new KernelError("EINVAL", `scatterlist: triple ${i} has no ${phys ? "page" : "DMA address"}`);
      const bytes = (this.np[i] as number) * PAGE_SIZE;
      const from = Math.max(pos, 0);
      const to = Math.min(pos + bytes, this.size);
      if (to > from) out.push(base + (from - pos), to - from);
      pos += bytes;
    }
    out.shrinkToFit();
    return out;
  }

  private idx(i: number): number {
    if (!(Number.isInteger(i) && i >= 0 && i < this.n))
      throw new KernelError("ERANGE", `scatterlist: triple index ${String(i)} not in 0..${this.n - 1}`);
    return i;
  }

  private grow(): void {
    const c = this.pg.length * 2;
    const pg = new Float64Array(c);
    pg.set(this.pg);
    const dm = new Float64Array(c);
    dm.set(this.dm);
    const np = new Uint32Array(c);
    np.set(this.np);
    this.pg = pg;
    this.dm = dm;
    this.np = np;
  }
}

/**
 * Triples from an sg_table: pages from the CPU view (which must be a page-array buffer, see
 * `sgTableToPageBuffer`), and with `mapped` the DMA address of every page from the DMA view
 * (`nents` entries, zipped by byte position; a DMA segment boundary inside a page is EINVAL since a
 * triple cannot express it). Model-only.
 */
export function sgTableToTriples(sgt: SgTable, mapped: boolean): PageDmaTripleList {
  const buf = sgTableToPageBuffer(sgt);
  const out = new PageDmaTripleList(buf.offset, buf.size);
  const np = buf.pages.length;
  const dma = new Float64Array(np).fill(DMA_MAPPING_ERROR);
  if (mapped) {
    const p = sgt.pool;
    // DMA segments as [start, end) in buffer bytes.
    let segStart = 0;
    let k = 0; // next page whose first buffer byte is not yet assigned
    sgWalk(sgt.sgl, sgt.nents, (i) => {
      const len = p.u32[i * 8 + DMA_LEN] as number;
      const addr = p.f64[i * 4 + DMA_ADDR] as number;
      const segEnd = segStart + len;
      while (k < np) {
        const pageStart = k * PAGE_SIZE - buf.offset;
        const first = Math.max(pageStart, 0);
        if (first >= segEnd) break;
        const last = Math.min(pageStart + PAGE_SIZE, buf.size);
        if (first < segStart || last > segEnd)
          throw new KernelError(
            "EINVAL",
            `scatterlist: sg_table to triples: DMA segment boundary inside page ${k}`,
          );
        dma[k] = addr + (pageStart - segStart);
        k++;
      }
      segStart = segEnd;
    });
    if (k < np)
      throw new KernelError(
        "EINVAL",
        `scatterlist: sg_table to triples: DMA view covers ${segStart} of ${buf.size} bytes`,
      );
  }
  for (let k = 0; k < np; k++) out.push(buf.pages[k] as number, dma[k] as number, 1);
  out.shrinkToFit();
  return out;
}

/**
 * Triples from a DMA range list (memory without pages, e.g. a BAR exported as phys_vec): one triple
 * per page run; interior range boundaries must be page-aligned. Model-only.
 */
export function dmaRangesToTriples(list: DmaRangeList): PageDmaTripleList {
  if (list.count === 0) return new PageDmaTripleList();
  const first = list.addr(0) % PAGE_SIZE;
  const out = new PageDmaTripleList(first, list.totalLength);
  const n = list.count;
  list.forEach((addr, len, _f, i) => {
    if (i > 0 && addr % PAGE_SIZE !== 0)
      throw new KernelError("EINVAL", `scatterlist: dma ranges to triples: range ${i} starts inside a page`);
    if (i + 1 < n && (addr + len) % PAGE_SIZE !== 0)
      throw new KernelError("EINVAL", `scatterlist: dma ranges to triples: range ${i} ends inside a page`);
    const start = addr - (addr % PAGE_SIZE);
    out.push(NO_PAGE, start, Math.ceil((addr + len - start) / PAGE_SIZE));
  });
  out.shrinkToFit();
  return out;
}

/**
 * An sg_table from triples: one entry per triple (the first starting at `offset`, the last ending at
 * `size`); entries with a page get it, others are DMA-only (`sg_set_page(sg, NULL, 0, 0)`); mapped
 * triples also set `dma_address`/`dma_length` so both views hold `nents = orig_nents` entries.
 * Triples longer than 0xfffff000 bytes are not split (EINVAL). Model-only.
 */
export function sgAllocTableFromTriples(sgt: SgTable, t: PageDmaTripleList, gfp = 0): void {
  if (t.count === 0) throw new KernelError("EINVAL", "scatterlist: triples to sg_table: empty list");
  for (let i = 0; i < t.count; i++)
    if (t.numPages(i) * PAGE_SIZE > 0xfffff000)
      throw new KernelError(
        "EINVAL",
        `scatterlist: triples to sg_table: triple ${i} exceeds an entry's length`,
      );
  sgAllocTable(sgt, t.count, gfp);
  const p = sgt.pool;
  let pos = -t.offset;
  let k = 0;
  sgWalk(sgt.sgl, sgt.origNents, (i) => {
    const bytes = t.numPages(k) * PAGE_SIZE;
    const from = Math.max(pos, 0);
    const to = Math.min(pos + bytes, t.size);
    const len = Math.max(to - from, 0);
    const page = t.page(k);
    const dma = t.dma(k);
    if (page === NO_PAGE) setPage(p, i, NO_PAGE, 0, 0);
    else setPage(p, i, page, len, from - pos);
    if (dma !== DMA_MAPPING_ERROR) {
      p.f64[i * 4 + DMA_ADDR] = dma + (from - pos);
      p.u32[i * 8 + DMA_LEN] = len;
    }
    pos += bytes;
    k++;
  });
}
