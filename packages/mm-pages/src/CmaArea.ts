import { formatBytes, hex, isKernelError, KernelError, PAGE_SIZE, SZ_4G } from "@dmakit/core";
import { type PageAllocator, pageblock_nr_pages } from "./PageAllocator.js";

/**
 * `CONFIG_CMA_ALIGNMENT`: the largest alignment order `dma_alloc_contiguous` asks of CMA (8 = 1 MiB).
 * @see kernel/dma/Kconfig CMA_ALIGNMENT (the model fixes the default, 8)
 */
export const CONFIG_CMA_ALIGNMENT = 8;
/**
 * `CMA_MIN_ALIGNMENT_PAGES` = pageblock_nr_pages: CMA areas start and end on pageblock boundaries.
 * @see include/linux/cma.h
 */
export const CMA_MIN_ALIGNMENT_PAGES = pageblock_nr_pages;
/** `CMA_MIN_ALIGNMENT_BYTES` = PAGE_SIZE × CMA_MIN_ALIGNMENT_PAGES (2 MiB). @see include/linux/cma.h */
export const CMA_MIN_ALIGNMENT_BYTES = PAGE_SIZE * CMA_MIN_ALIGNMENT_PAGES;

/**
 * What a {@link CmaArea} holds: `used` returns to 0 and `allocations` to [] when every range is released.
 * Model-only: the holdings report every allocator gives.
 */
export interface CmaReport {
  readonly name: string;
  readonly basePfn: number;
  /** Pages in the area (`cma->count`). */
  readonly count: number;
  /** Pages covered by set bitmap bits. */
  readonly used: number;
  readonly orderPerBit: number;
  /** Allocated ranges as [first pfn, pages], in address order (runs of set bits). */
  readonly allocations: readonly (readonly [number, number])[];
}

/**
 * `struct cma`: a physically contiguous area carved at boot whose pages the buddy allocator lends
 * to movable allocations (`PG_cma`, MIGRATE_CMA) until {@link cmaAlloc} claims them, migrating
 * movable users away. Allocation state is a bitmap of `count >> orderPerBit` bits. Created with
 * {@link cmaDeclareContiguous} or {@link cmaInitReservedMem}.
 *
 * The model keeps one memory range per area (the kernel allows several since 6.14) and stores the
 * bitmap one byte per bit.
 * @see mm/cma.c, mm/cma.h struct cma
 */
export class CmaArea {
  readonly name: string;
  /** Index of the area; its pages carry `memmap.owner = id + 1`. */
  readonly id: number;
  readonly basePfn: number;
  readonly count: number;
  readonly orderPerBit: number;
  readonly pages: PageAllocator;
  private readonly bitmap: Uint8Array;
  private usedBits = 0;

  /** @internal use {@link cmaDeclareContiguous} / {@link cmaInitReservedMem}. */
  constructor(pages: PageAllocator, basePfn: number, count: number, orderPerBit: number, name: string) {
    this.pages = pages;
    this.name = name;
    this.basePfn = basePfn;
    this.count = count;
    this.orderPerBit = orderPerBit;
    this.id = pages.allocCmaId();
    if (this.id + 1 > 0xffff) throw new KernelError("ENOSPC", "cma: out of CMA area ids (65535)");
    this.bitmap = new Uint8Array(this.bitmapMaxno());
    pages.markCma(basePfn, basePfn + count, this.id + 1);
  }

  /** `cma_get_base(cma)`: physical base address. */
  get base(): number {
    return this.basePfn * PAGE_SIZE;
  }

  /** `cma_get_size(cma)`: size in bytes. */
  get size(): number {
    return this.count * PAGE_SIZE;
  }

  /** Pages covered by allocated bitmap bits. */
  get used(): number {
    return Math.min(this.count, this.usedBits << this.orderPerBit);
  }

  /**
   * `cma_alloc(cma, count, align, no_warn)`: `count` contiguous pages whose first pfn is aligned to
   * 2^align pages. Searches the bitmap, then claims the range from the buddy allocator
   * (`alloc_contig_range`, migrating movable users through the allocator's migrate hook); on
   * EBUSY retries at the next aligned offset. Returns the first pfn (each page has refcount 1) or
   * null, logging "cma: NAME: alloc failed, req-size: N pages, ret: -E" unless `noWarn`.
   * count 0 returns null without a log, as the kernel does.
   * @see mm/cma.c cma_alloc, __cma_alloc, cma_range_alloc
   */
  alloc(count: number, align: number, noWarn = false): number | null {
    if (!Number.isSafeInteger(count) || count <= 0 || this.count === 0) return null;
    const a = Math.max(0, align | 0);
    const mask = this.alignedMask(a);
    const offset = (this.basePfn % 2 ** a) >> this.orderPerBit;
    const bitmapMaxno = this.bitmapMaxno();
    const bitmapCount = this.pagesToBits(count);
    let ret = -12; // -ENOMEM
    let start = 0;
    let found: number | null = null;
    if (bitmapCount <= bitmapMaxno) {
      for (;;) {
        const bitmapNo = this.findNextZeroAreaOff(bitmapMaxno, start, bitmapCount, mask, offset);
        if (bitmapNo >= bitmapMaxno) break;
        this.bitmap.fill(1, bitmapNo, bitmapNo + bitmapCount);
        this.usedBits += bitmapCount;
        const pfn = this.basePfn + bitmapNo * 2 ** this.orderPerBit;
        try {
          this.pages.allocContigRange(pfn, pfn + count);
          found = pfn;
          break;
        } catch (e) {
          this.bitmap.fill(0, bitmapNo, bitmapNo + bitmapCount);
          this.usedBits -= bitmapCount;
          if (!isKernelError(e)) throw e;
          ret = e.ret;
          if (e.errno !== "EBUSY") break;
          this.pages.mem.log.debug("cma", `cma_alloc(): memory range at pfn ${hex(pfn)} is busy, retrying`);
          start = bitmapNo + mask + 1;
        }
      }
    }
    if (found === null && !noWarn)
      this.pages.mem.log.err("cma", `${this.name}: alloc failed, req-size: ${count} pages, ret: ${ret}`);
    return found;
  }

  /**
   * `cma_release(cma, pages, count)`: returns `count` pages at `pfn` to the buddy allocator
   * (`free_contig_range`) and clears their bitmap bits. False, with nothing changed, when the
   * range is not inside this area; the model also refuses (WARN, false) a range whose bits are not
   * all set, where the kernel would free pages it never handed out.
   * @see mm/cma.c cma_release
   */
  release(pfn: number, count: number): boolean {
    if (!Number.isSafeInteger(pfn) || !Number.isSafeInteger(count) || count <= 0) return false;
    if (pfn < this.basePfn || pfn + count > this.basePfn + this.count) return false;
    const first = (pfn - this.basePfn) >> this.orderPerBit;
    const bits = this.pagesToBits(count);
    for (let b = first; b < first + bits; b++)
      if (this.bitmap[b] !== 1) {
        this.pages.mem.log.warn(
          true,
          "cma",
          `cma_release: ${this.name}: range ${hex(pfn)}+${count} pages was not allocated`,
        );
        return false;
      }
    this.pages.freeContigRange(pfn, count, "cma_release");
    this.bitmap.fill(0, first, first + bits);
    this.usedBits -= bits;
    return true;
  }

  /** Area contents for tests and reports. */
  report(): CmaReport {
    const allocations: [number, number][] = [];
    const step = 2 ** this.orderPerBit;
    let run = -1;
    for (let b = 0; b <= this.bitmap.length; b++) {
      const set = b < this.bitmap.length && this.bitmap[b] === 1;
      if (set && run < 0) run = b;
      else if (!set && run >= 0) {
        const p = this.basePfn + run * step;
        allocations.push([p, Math.min(this.basePfn + this.count, this.basePfn + b * step) - p]);
        run = -1;
      }
    }
    return {
      name: this.name,
      basePfn: this.basePfn,
      count: this.count,
      used: this.used,
      orderPerBit: this.orderPerBit,
      allocations,
    };
  }

  private bitmapMaxno(): number {
    return Math.ceil(this.count / 2 ** this.orderPerBit);
  }

  private pagesToBits(pages: number): number {
    return Math.ceil(pages / 2 ** this.orderPerBit);
  }

  private alignedMask(alignOrder: number): number {
    if (alignOrder <= this.orderPerBit) return 0;
    return 2 ** (alignOrder - this.orderPerBit) - 1;
  }

  /** `bitmap_find_next_zero_area_off`: first index ≥ start of `nr` clear bits with (index + offset) & mask == 0. */
  private findNextZeroAreaOff(
    size: number,
    start0: number,
    nr: number,
    mask: number,
    offset: number,
  ): number {
    const map = this.bitmap;
    let start = start0;
    for (;;) {
      let index = start;
      while (index < size && map[index] === 1) index++;
      index = Math.ceil((index + offset) / (mask + 1)) * (mask + 1) - offset;
      const end = index + nr;
      if (end > size) return end;
      let i = index;
      while (i < end && map[i] !== 1) i++;
      if (i < end) {
        start = i + 1;
        continue;
      }
      return index;
    }
  }
}

/** `cma_alloc(cma, count, align, no_warn)`: see {@link CmaArea.alloc}. @see mm/cma.c cma_alloc */
export function cmaAlloc(cma: CmaArea, count: number, align: number, noWarn: boolean): number | null {
  return cma.alloc(count, align, noWarn);
}

/** `cma_release(cma, pages, count)`: see {@link CmaArea.release}. @see mm/cma.c cma_release */
export function cmaRelease(cma: CmaArea, pfn: number, count: number): boolean {
  return cma.release(pfn, count);
}

/** `cma_get_base(cma)`. @see mm/cma.c cma_get_base */
export function cmaGetBase(cma: CmaArea): number {
  return cma.base;
}

/** `cma_get_size(cma)`. @see mm/cma.c cma_get_size */
export function cmaGetSize(cma: CmaArea): number {
  return cma.size;
}

/** `cma_get_name(cma)`. @see mm/cma.c cma_get_name */
export function cmaGetName(cma: CmaArea): string {
  return cma.name;
}

/**
 * `cma_init_reserved_mem(base, size, order_per_bit, name, &res_cma)`: makes a CMA area of a range
 * the caller chose. EINVAL unless base and size are multiples of CMA_MIN_ALIGNMENT_BYTES and the
 * range is RAM in one zone; EBUSY if any page is not free. Returns the area (the kernel's
 * `res_cma` out-parameter).
 * @see mm/cma.c cma_init_reserved_mem
 */
export function cmaInitReservedMem(
  pages: PageAllocator,
  base: number,
  size: number,
  orderPerBit: number,
  name: string,
): CmaArea {
  if (size <= 0 || base % CMA_MIN_ALIGNMENT_BYTES !== 0 || size % CMA_MIN_ALIGNMENT_BYTES !== 0)
    throw new KernelError(
      "EINVAL",
      `cma: ${name}: ${hex(base)}+${formatBytes(size)} is not aligned to ${formatBytes(CMA_MIN_ALIGNMENT_BYTES)}`,
    );
  checkRange(pages, base, size, name);
  if (!pages.rangeIsFree(base / PAGE_SIZE, (base + size) / PAGE_SIZE))
    throw new KernelError("EBUSY", `cma: ${name}: ${hex(base)}+${formatBytes(size)} is not free memory`);
  const cma = new CmaArea(pages, base / PAGE_SIZE, size / PAGE_SIZE, orderPerBit, name);
  pages.mem.log.info("cma", `Reserved ${formatBytes(size)} at ${hex(base)} for ${name}`);
  return cma;
}

/**
 * `cma_declare_contiguous(base, size, limit, alignment, order_per_bit, fixed, name, &res_cma)`:
 * reserves a CMA area at boot. `alignment` (0 = CMA_MIN_ALIGNMENT_BYTES, else a power of two) is
 * raised to at least 2 MiB and base/size/limit are aligned to it. With `fixed`, the area is
 * exactly at `base` (EBUSY if not free). Otherwise the area is placed bottom-up above 4 GiB when
 * RAM and `limit` allow (as the kernel does to spare ZONE_DMA32), else top-down below `limit`
 * (0 = end of RAM) and above `base`. ENOMEM when no free range fits. Logs
 * "cma: Reserved SIZE at BASE for NAME".
 * @see mm/cma.c cma_declare_contiguous_nid
 */
export function cmaDeclareContiguous(
  pages: PageAllocator,
  base: number,
  size: number,
  limit: number,
  alignment: number,
  orderPerBit: number,
  fixed: boolean,
  name: string,
): CmaArea {
  const mem = pages.mem;
  if (alignment < 0 || (alignment !== 0 && !Number.isInteger(Math.log2(alignment))))
    throw new KernelError("EINVAL", `cma: ${name}: alignment ${hex(alignment)} is not a power of two`);
  if (!(size > 0)) throw new KernelError("EINVAL", `cma: ${name}: size ${size} is not positive`);
  const align = Math.max(alignment, CMA_MIN_ALIGNMENT_BYTES);
  if (fixed && base % align !== 0)
    throw new KernelError(
      "EINVAL",
      `cma: ${name}: region at ${hex(base)} must be aligned to ${hex(align)} bytes`,
    );
  const b = Math.ceil(base / align) * align;
  const sz = Math.ceil(size / align) * align;
  const memEnd = mem.maxPfn * PAGE_SIZE;
  const lim = limit === 0 || limit > memEnd ? memEnd : Math.floor(limit / align) * align;
  if (fixed) {
    checkRange(pages, b, sz, name);
    if (!pages.rangeIsFree(b / PAGE_SIZE, (b + sz) / PAGE_SIZE))
      throw new KernelError("EBUSY", `cma: ${name}: fixed region ${hex(b)}+${formatBytes(sz)} is not free`);
    return cmaInitReservedMem(pages, b, sz, orderPerBit, name);
  }
  const fits = (at: number): boolean => {
    const bank = mem.bankAt(at);
    if (bank === undefined || at + sz > bank.start + bank.size) return false;
    if (mem.pageZonenum(at / PAGE_SIZE) !== mem.pageZonenum((at + sz) / PAGE_SIZE - 1)) return false;
    return pages.rangeIsFree(at / PAGE_SIZE, (at + sz) / PAGE_SIZE);
  };
  let addr = -1;
  if (memEnd >= SZ_4G + sz && lim >= SZ_4G + sz) {
    for (let at = Math.max(b, SZ_4G); at + sz <= lim; at += align)
      if (fits(at)) {
        addr = at;
        break;
      }
  }
  if (addr < 0) {
    for (let at = Math.floor((lim - sz) / align) * align; at >= b && at >= mem.ramBase; at -= align)
      if (fits(at)) {
        addr = at;
        break;
      }
  }
  if (addr < 0)
    throw new KernelError(
      "ENOMEM",
      `cma: ${name}: no free ${formatBytes(sz)} range aligned to ${formatBytes(align)} in [${hex(b)}, ${hex(lim)})`,
    );
  return cmaInitReservedMem(pages, addr, sz, orderPerBit, name);
}

function checkRange(pages: PageAllocator, base: number, size: number, name: string): void {
  const mem = pages.mem;
  const bank = mem.bankAt(base);
  if (bank === undefined || base + size > bank.start + bank.size)
    throw new KernelError(
      "EINVAL",
      `cma: ${name}: ${hex(base)}+${formatBytes(size)} is not within one RAM bank`,
    );
  const z0 = mem.pageZonenum(base / PAGE_SIZE);
  const z1 = mem.pageZonenum((base + size) / PAGE_SIZE - 1);
  if (z0 !== z1)
    throw new KernelError("EINVAL", `cma: ${name}: ${hex(base)}+${formatBytes(size)} spans two zones`);
}
