import { hex, KernelError, KernelLog } from "@dmakit/core";
import type { PhysMem } from "@dmakit/mm-pages";
import { Sg } from "./Sg.js";
import { SG_MAX_SINGLE_ALLOC, SG_SLOT_BYTES } from "./sgConstants.js";

/**
 * Byte access to physical memory as the CPU sees it. `PhysMem` (bus view) and a CPU cache model
 * both fit; `sgCopyBuffer` and `sgMiter*` users read and write through it.
 * Model-only: the CPU's byte view of simulated memory.
 */
export interface PhysAccess {
  read(phys: number, dst: Uint8Array): void;
  write(phys: number, src: Uint8Array): void;
}

/**
 * Where whole-page chunks (`__get_free_page`) and `sgl_alloc_order` pages come from: the buddy
 * allocator of `@dmakit/mm-pages` or anything with the same two calls. A failed allocation may
 * return `null`, `undefined`, a negative number, or throw a `KernelError`.
 * Model-only: the kernel calls the page allocator directly. @see mm/page_alloc.c __get_free_pages
 */
export interface SgPageSource {
  allocPages(gfp: number, order: number): number | null | undefined;
  freePages(pfn: number, order: number): void;
}

/**
 * The kernel's virtual address space, for `sg_set_buf`/`sg_init_one` (`virt_to_page`) and the
 * address `sg_miter` hands out (`kmap_local_page`). `KernelVm` of `@dmakit/mm-pages` fits.
 * Model-only: the two address translations the scatterlist code needs.
 * @see include/linux/mm.h virt_to_page, page_address
 */
export interface SgKernelVm {
  virtToPhys(va: number): number;
  pageAddress(pfn: number): number;
}

/** Options of an {@link SgPool}. Model-only: what an {@link SgPool} is built from. */
export interface SgPoolOptions {
  /** The machine's memory: `zone_device_pages_have_same_pgmap` for the merge rule, default CPU access. */
  readonly mem?: PhysMem;
  /** CPU byte access for `sgCopyBuffer` / `sgZeroBuffer` (default: `mem`). */
  readonly cpu?: PhysAccess;
  /** Backs 128-entry chunks with pages (`sg_kmalloc` → `__get_free_page`) and serves `sglAllocOrder`. */
  readonly pageAllocator?: SgPageSource;
  /** Kernel log for WARNs (default: `mem.log`, else a private log). */
  readonly log?: KernelLog;
  /**
   * The machine's kernel virtual address space. Without it, kernel "virtual" addresses passed to
   * `sgSetBuf`/`sgInitOne` and returned in `miter.addr` are physical addresses (identity map).
   */
  readonly vm?: SgKernelVm;
  /**
   * Fault injection (`CONFIG_FAILSLAB`-style): return true to make the allocation of an
   * `nents`-entry scatterlist array fail with NULL.
   */
  readonly failAlloc?: (nents: number) => boolean;
}

/** What an {@link SgPool} holds. Model-only: the holdings report every allocator gives. */
export interface SgPoolStats {
  /** Slots handed out in live blocks (power-of-two size classes, like kmalloc caches). */
  readonly slotsInUse: number;
  /** Slots the storage can hold (grows by doubling, never shrinks). */
  readonly slotsCapacity: number;
  /** Live blocks (kmalloc'd arrays and page chunks). */
  readonly blocks: number;
  /** Pages taken from the page allocator for 128-entry chunks. */
  readonly pagesHeld: number;
  /** Bytes of the slot storage (32 per slot). */
  readonly slotBytes: number;
  /** Bytes of per-frame metadata (class, bitmap, backing pfn: 28 bytes per 128 slots). */
  readonly metaBytes: number;
}

const FRAME_SHIFT = 7; // 128 slots = one 4 KiB "page" of entries
const FRAME_SLOTS = 1 << FRAME_SHIFT;
/** Largest kmalloc: KMALLOC_MAX_SIZE = 4 MiB with SLUB and MAX_PAGE_ORDER 10 = 2^17 entries. */
const MAX_CLASS = 17;
const CLASS_FREE = -1;
const CLASS_TAIL = -2;

/**
 * The scatterlist memory of one machine: every `struct scatterlist` array (sg_table chunks, arrays
 * from `kmallocArray`, `sg_split` outputs, `sgl_alloc` lists) lives here as 32-byte slots in one
 * typed-array store, so chain pointers, `sg + 1` and `sg_chain` work across allocations exactly as in
 * C. A slot has the kernel's 64-bit layout:
 *
 * | bytes | field        | model                                                        |
 * |-------|--------------|--------------------------------------------------------------|
 * | 0–7   | page_link    | f64: `(pfn + 1) * 4 + bits`, or `target * 4 + SG_CHAIN`; 0 = NULL page |
 * | 8–11  | offset       | u32                                                          |
 * | 12–15 | length       | u32                                                          |
 * | 16–23 | dma_address  | f64 (exact below 2^53; `DMA_MAPPING_ERROR` = 2^64)           |
 * | 24–27 | dma_length   | u32                                                          |
 * | 28–31 | dma_flags    | u32 (`SG_DMA_BUS_ADDRESS`, `SG_DMA_SWIOTLB`)                 |
 *
 * Arrays are allocated in power-of-two size classes carved from 128-slot frames (kmalloc-32 …
 * kmalloc-4096; larger arrays take consecutive frames up to KMALLOC_MAX_SIZE). A use of a freed
 * array, a double free or `sg + 1` past the array end throws `EFAULT` instead of corrupting memory.
 *
 * @see include/linux/scatterlist.h struct scatterlist; lib/scatterlist.c sg_kmalloc, sg_kfree
 * Model differences: the kernel has kmalloc-96 and kmalloc-192 caches (the model rounds to powers of
 * two); slots live in JS typed arrays, not in simulated RAM (a page chunk still takes a real page
 * from the page allocator so the machine's memory accounting matches).
 */
export class SgPool {
  readonly log: KernelLog;
  readonly mem: PhysMem | undefined;
  readonly cpu: PhysAccess | undefined;
  readonly vm: SgKernelVm | undefined;
  readonly pageAllocator: SgPageSource | undefined;
  private readonly failAlloc: ((nents: number) => boolean) | undefined;

  /** @internal Slot storage as f64 words (4 per slot); replaced when the pool grows. */
  f64: Float64Array;
  /** @internal Slot storage as u32 words (8 per slot), same buffer. */
  u32: Uint32Array;
  private frameClass: Int8Array;
  private frameHead: Int32Array;
  private frameBits: Uint32Array;
  private framePfn: Float64Array;
  private nextFrame = 0;
  private readonly freeBlocks: number[][] = [];
  private liveBlocks = 0;
  private liveSlots = 0;
  private pages = 0;

  constructor(options: SgPoolOptions = {}) {
    this.mem = options.mem;
    this.cpu = options.cpu ?? options.mem;
    this.vm = options.vm;
    this.pageAllocator = options.pageAllocator;
    this.log = options.log ?? options.mem?.log ?? new KernelLog();
    this.failAlloc = options.failAlloc;
    for (let c = 0; c <= MAX_CLASS; c++) this.freeBlocks.push([]);
    const frames = 8;
    const buf = new ArrayBuffer(frames * FRAME_SLOTS * SG_SLOT_BYTES);
    this.f64 = new Float64Array(buf);
    this.u32 = new Uint32Array(buf);
    this.frameClass = new Int8Array(frames).fill(CLASS_FREE);
    this.frameHead = new Int32Array(frames);
    this.frameBits = new Uint32Array(frames * 4);
    this.framePfn = new Float64Array(frames).fill(-1);
  }

  /** What the pool holds. */
  stats(): SgPoolStats {
    return {
      slotsInUse: this.liveSlots,
      slotsCapacity: this.frameClass.length * FRAME_SLOTS,
      blocks: this.liveBlocks,
      pagesHeld: this.pages,
      slotBytes: this.f64.byteLength,
      metaBytes:
        this.frameClass.byteLength +
        this.frameHead.byteLength +
        this.frameBits.byteLength +
        this.framePfn.byteLength,
    };
  }

  /** A handle to slot `index` (no check). */
  sg(index: number): Sg {
    return new Sg(this, index);
  }

  /**
   * `kmalloc_array(nents, sizeof(struct scatterlist), gfp)`: an uninitialised (here: zeroed) array of
   * `nents` entries, or `null` when the allocation fails (fault injection, or more than
   * KMALLOC_MAX_SIZE = 131072 entries). EINVAL for a non-integer or zero `nents`
   * (the kernel returns ZERO_SIZE_PTR, which the model cannot index).
   */
  kmallocArray(nents: number, _gfp = 0): Sg | null {
    const i = this.allocBlock(nents, "kmalloc_array");
    return i < 0 ? null : new Sg(this, i);
  }

  /** `kfree(sg)`: frees an array from {@link kmallocArray} (or a chunk). EFAULT for a double free. */
  kfree(sg: Sg | null): void {
    if (sg === null) return;
    this.checkSamePool(sg);
    this.freeBlock(sg.index, "kfree");
  }

  /** @internal `sg_kmalloc`: 128 entries come from a page when a page allocator is present. */
  sgKmalloc(nents: number, gfp: number): number {
    if (nents === SG_MAX_SINGLE_ALLOC && this.pageAllocator !== undefined) {
      if (this.failAlloc?.(nents)) return -1;
      const pfn = tryAllocPage(this.pageAllocator, gfp, 0);
      if (pfn < 0) return -1;
      const i = this.allocBlock(nents, "__get_free_page", true);
      this.framePfn[i >>> FRAME_SHIFT] = pfn;
      this.pages++;
      return i;
    }
    return this.allocBlock(nents, "sg_kmalloc");
  }

  /** @internal True when slot `i` lies in a live block. */
  isLive(i: number): boolean {
    let f = i >>> FRAME_SHIFT;
    if (f >= this.nextFrame || i < 0) return false;
    let c = this.frameClass[f] as number;
    if (c === CLASS_TAIL) {
      f = this.frameHead[f] as number;
      c = this.frameClass[f] as number;
    }
    if (c < 0) return false;
    if (c >= FRAME_SHIFT) return ((this.frameBits[f * 4] as number) & 1) === 1;
    const blk = (i & (FRAME_SLOTS - 1)) >>> c;
    return (((this.frameBits[f * 4 + (blk >>> 5)] as number) >>> (blk & 31)) & 1) === 1;
  }

  /** @internal One past the last slot of the live block holding `i` (-1 when not live). */
  blockEnd(i: number): number {
    if (!this.isLive(i)) return -1;
    let f = i >>> FRAME_SHIFT;
    if (this.frameClass[f] === CLASS_TAIL) f = this.frameHead[f] as number;
    const c = this.frameClass[f] as number;
    if (c >= FRAME_SHIFT) return f * FRAME_SLOTS + (1 << c);
    const size = 1 << c;
    return (i & ~(size - 1)) + size;
  }

  /** @internal True when slot `i` lies in a block smaller than one 128-slot frame (or in no block). */
  smallClass(i: number): boolean {
    const c = this.frameClass[i >>> FRAME_SHIFT];
    return c === undefined || (c >= 0 && c < FRAME_SHIFT) || c === CLASS_FREE;
  }

  /** @internal Slot capacity of the live block starting at `i` (its size class). */
  blockSlots(i: number): number {
    let f = i >>> FRAME_SHIFT;
    if (this.frameClass[f] === CLASS_TAIL) f = this.frameHead[f] as number;
    return 1 << (this.frameClass[f] as number);
  }

  /** @internal Throws EFAULT unless slot `i` is in a live block. */
  check(i: number, what: string): void {
    if (!this.isLive(i))
      throw new KernelError(
        "EFAULT",
        `scatterlist: ${what}: entry ${hex(i)} is not in a live scatterlist array (freed or never allocated)`,
      );
  }

  /** @internal Throws EFAULT unless `sg` belongs to this pool. */
  checkSamePool(sg: Sg): void {
    if (sg.pool !== this)
      throw new KernelError(
        "EFAULT",
        `scatterlist: entry ${hex(sg.index)} belongs to another machine's pool`,
      );
  }

  /** @internal Allocates a block for `nents` slots, zeroed; returns its first slot or -1 (NULL). */
  allocBlock(nents: number, what: string, fromPage = false): number {
    if (!Number.isInteger(nents) || nents < 1)
      throw new KernelError("EINVAL", `scatterlist: ${what}: nents ${String(nents)} is not an integer >= 1`);
    if (!fromPage && this.failAlloc?.(nents)) return -1;
    let c = 0;
    while (1 << c < nents) c++;
    if (c > MAX_CLASS) return -1;
    const free = this.freeBlocks[c] as number[];
    let i: number;
    if (free.length > 0) i = free.pop() as number;
    else if (c >= FRAME_SHIFT) {
      const frames = 1 << (c - FRAME_SHIFT);
      const f = this.takeFrames(frames);
      this.frameClass[f] = c;
      for (let k = 1; k < frames; k++) {
        this.frameClass[f + k] = CLASS_TAIL;
        this.frameHead[f + k] = f;
      }
      i = f * FRAME_SLOTS;
    } else {
      const f = this.takeFrames(1);
      this.frameClass[f] = c;
      const size = 1 << c;
      // Carve the frame into blocks of this class; hand out the first, keep the rest free
      // (pushed in reverse so the lowest addresses come out first).
      for (let s = FRAME_SLOTS - size; s > 0; s -= size) free.push(f * FRAME_SLOTS + s);
      i = f * FRAME_SLOTS;
    }
    this.setLive(i, c, true);
    const size = 1 << c;
    this.f64.fill(0, i * 4, (i + size) * 4);
    this.liveBlocks++;
    this.liveSlots += size;
    return i;
  }

  /** @internal Frees the block starting at slot `i`. */
  freeBlock(i: number, what: string): void {
    if (!this.isLive(i))
      throw new KernelError(
        "EFAULT",
        `scatterlist: ${what}: ${hex(i)} is not a live scatterlist array (double free?)`,
      );
    let f = i >>> FRAME_SHIFT;
    if (this.frameClass[f] === CLASS_TAIL) f = this.frameHead[f] as number;
    const c = this.frameClass[f] as number;
    const size = 1 << c;
    const start = c >= FRAME_SHIFT ? f * FRAME_SLOTS : i & ~(size - 1);
    if (start !== i)
      throw new KernelError(
        "EINVAL",
        `scatterlist: ${what}: ${hex(i)} is inside an array starting at ${hex(start)}, not its start`,
      );
    this.setLive(i, c, false);
    this.f64.fill(0, i * 4, (i + size) * 4);
    (this.freeBlocks[c] as number[]).push(i);
    this.liveBlocks--;
    this.liveSlots -= size;
    const pfn = this.framePfn[f] as number;
    if (pfn >= 0 && c === FRAME_SHIFT) {
      this.framePfn[f] = -1;
      this.pages--;
      this.pageAllocator?.freePages(pfn, 0);
    }
  }

  private setLive(i: number, c: number, on: boolean): void {
    const f = i >>> FRAME_SHIFT;
    const blk = c >= FRAME_SHIFT ? 0 : (i & (FRAME_SLOTS - 1)) >>> c;
    const w = f * 4 + (blk >>> 5);
    const bit = 1 << (blk & 31);
    const cur = this.frameBits[w] as number;
    this.frameBits[w] = on ? cur | bit : cur & ~bit;
  }

  private takeFrames(n: number): number {
    const f = this.nextFrame;
    if (f + n > this.frameClass.length) this.grow(f + n);
    this.nextFrame += n;
    return f;
  }

  private grow(minFrames: number): void {
    let frames = this.frameClass.length;
    while (frames < minFrames) frames *= 2;
    const buf = new ArrayBuffer(frames * FRAME_SLOTS * SG_SLOT_BYTES);
    const f64 = new Float64Array(buf);
    f64.set(this.f64);
    this.f64 = f64;
    this.u32 = new Uint32Array(buf);
    const cls = new Int8Array(frames).fill(CLASS_FREE);
    cls.set(this.frameClass);
    this.frameClass = cls;
    const head = new Int32Array(frames);
    head.set(this.frameHead);
    this.frameHead = head;
    const bits = new Uint32Array(frames * 4);
    bits.set(this.frameBits);
    this.frameBits = bits;
    const pfn = new Float64Array(frames).fill(-1);
    pfn.set(this.framePfn);
    this.framePfn = pfn;
  }
}

/** Calls `allocPages`, mapping every failure convention to -1. */
export function tryAllocPage(src: SgPageSource, gfp: number, order: number): number {
  try {
    const p = src.allocPages(gfp, order);
    return typeof p === "number" && p >= 0 ? p : -1;
  } catch (e) {
    if (e instanceof KernelError && e.errno === "ENOMEM") return -1;
    throw e;
  }
}
