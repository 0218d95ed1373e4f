import { hex, KernelError, PAGE_SIZE } from "@dmakit/core";
import { and64 } from "./and64.js";

/** `IO_TLB_SHIFT`: log2 of a slot. @see include/linux/swiotlb.h */
export const IO_TLB_SHIFT = 11;
/** `IO_TLB_SIZE` = 1 << IO_TLB_SHIFT = 2048 bytes per slot. @see include/linux/swiotlb.h */
export const IO_TLB_SIZE = 1 << IO_TLB_SHIFT;
/**
 * `IO_TLB_SEGSIZE`: at most 128 contiguous slots per mapping (256 KiB); free runs never cross a segment.
 * @see include/linux/swiotlb.h
 */
export const IO_TLB_SEGSIZE = 128;
/** `IO_TLB_DEFAULT_SIZE`: the default pool, 64 MiB. @see include/linux/swiotlb.h */
export const IO_TLB_DEFAULT_SIZE = 64 << 20;
/** `IO_TLB_MIN_SLABS`: the boot allocation stops halving below 1 MiB worth of slots. @see kernel/dma/swiotlb.c */
export const IO_TLB_MIN_SLABS = (1 << 20) >> IO_TLB_SHIFT;

/** `INVALID_PHYS_ADDR` (`~(phys_addr_t)0`): the model stores -1 in the slot arrays. */
const INVALID = -1;

/** `nr_slots(val)` = DIV_ROUND_UP(val, IO_TLB_SIZE). @see kernel/dma/swiotlb.c nr_slots */
export function nrSlots(val: number): number {
  return Math.ceil(val / IO_TLB_SIZE);
}

/** `io_tlb_offset(val)`: slot index within its segment. */
function ioTlbOffset(i: number): number {
  return i & (IO_TLB_SEGSIZE - 1);
}

/** One live bounce buffer of a {@link SwiotlbMem}, as {@link SwiotlbMem.mappings} reports it. Model-only. */
export interface SwiotlbMapping {
  /** First slot of the allocation (padding slots included). */
  readonly index: number;
  /** Slots the allocation holds (`nr_slots(alloc_size)`). */
  readonly nslots: number;
  /** Leading slots skipped for `alloc_align_mask` (`io_tlb_slot.pad_slots`). */
  readonly padSlots: number;
  /** Physical address of the bounce buffer as returned to the caller (`tlb_addr`). */
  readonly tlbAddr: number;
  /** `io_tlb_slot.orig_addr` of the first used slot: the original buffer's slot-aligned address. */
  readonly origAddr: number;
  /** `io_tlb_slot.alloc_size` of the first used slot. */
  readonly allocSize: number;
}

/** What a pool holds, for reports and tests. Model-only. */
export interface SwiotlbReport {
  readonly start: number;
  readonly end: number;
  readonly nslabs: number;
  readonly nareas: number;
  readonly used: number;
  readonly usedHiwater: number;
  readonly forceBounce: boolean;
  readonly mappings: readonly SwiotlbMapping[];
}

/** Options of a {@link SwiotlbMem}. @see include/linux/swiotlb.h struct io_tlb_mem */
export interface SwiotlbMemOptions {
  /** Physical start of the bounce area (slot 0). */
  readonly start: number;
  /** Number of slots (`nslabs`). */
  readonly nslabs: number;
  /** Number of areas (a power of two, `nslabs / nareas` slots each); default 1. */
  readonly nareas?: number;
  /** `io_tlb_mem.force_bounce`: every device using this pool bounces everything. */
  readonly forceBounce?: boolean;
  /** `late_alloc`: the pool came from the page allocator after boot. */
  readonly lateAlloc?: boolean;
  /** Kernel virtual address of `start` (`io_tlb_pool.vaddr`). */
  readonly vaddr?: number;
  /** Name for reports (`"default"`, or the restricted-dma-pool node name). */
  readonly name?: string;
}

/**
 * One software IO TLB: `struct io_tlb_mem` with its single `struct io_tlb_pool` (the model has no
 * CONFIG_SWIOTLB_DYNAMIC pools). Slot descriptors (`struct io_tlb_slot`) are typed arrays:
 * `orig_addr`, `alloc_size`, `list` (free slots from here to the end of the segment) and
 * `pad_slots`; areas (`struct io_tlb_area`) keep `used` and the next search `index`.
 *
 * The slot arithmetic ({@link searchPoolArea}, {@link releaseSlots}) is the kernel's, so the slots
 * it picks are the slots the kernel picks for the same sequence of requests. The model adds one
 * record the kernel lacks: where each allocation starts and how many slots it holds, so a bad
 * unmap (an address that is not a live bounce buffer) is reported instead of corrupting the free
 * lists, and {@link mappings} can list what is live.
 *
 * @see kernel/dma/swiotlb.c struct io_tlb_slot, struct io_tlb_area, swiotlb_init_io_tlb_pool;
 *      include/linux/swiotlb.h struct io_tlb_mem, struct io_tlb_pool
 */
export class SwiotlbMem {
  readonly name: string;
  /** `pool->start`, `pool->end` (exclusive). */
  readonly start: number;
  readonly end: number;
  readonly vaddr: number;
  readonly nslabs: number;
  readonly nareas: number;
  /** `pool->area_nslabs`. */
  readonly areaNslabs: number;
  readonly lateAlloc: boolean;
  /** `io_tlb_mem.force_bounce` (`swiotlb=force`, restricted pools). */
  forceBounce: boolean;

  /** `io_tlb_slot.orig_addr` (-1 = INVALID_PHYS_ADDR). */
  readonly slotOrigAddr: Float64Array;
  /** `io_tlb_slot.alloc_size`; may be negative where the kernel's size_t wraps (tail slots with an offset). */
  readonly slotAllocSize: Float64Array;
  /** `io_tlb_slot.list`: free slots from here to the first used slot or the end of the segment. */
  readonly slotList: Uint8Array;
  /** `io_tlb_slot.pad_slots`, stored on the first used slot of an allocation. */
  readonly slotPadSlots: Uint8Array;
  /** Model record: slots of the allocation starting here (0 = no allocation starts here). */
  private readonly allocSlots: Uint8Array;
  /** `io_tlb_area.used` and `.index`. */
  readonly areaUsed: Int32Array;
  readonly areaIndex: Int32Array;
  private usedTotal = 0;
  private hiwater = 0;
  private scratchBuf = new Uint8Array(0);

  constructor(options: SwiotlbMemOptions) {
    const nslabs = options.nslabs;
    const nareas = options.nareas ?? 1;
    if (!Number.isInteger(nslabs) || nslabs < 1)
      throw new KernelError("EINVAL", `swiotlb: pool of ${nslabs} slots`);
    if (!Number.isInteger(nareas) || nareas < 1 || (nareas & (nareas - 1)) !== 0 || nareas > nslabs)
      throw new KernelError(
        "EINVAL",
        `swiotlb: ${nareas} areas for ${nslabs} slots (a power of two, at most one per slot)`,
      );
    if (options.start % PAGE_SIZE !== 0)
      throw new KernelError("EINVAL", `swiotlb: pool start ${hex(options.start)} is not page aligned`);
    this.name = options.name ?? "default";
    this.start = options.start;
    this.end = options.start + nslabs * IO_TLB_SIZE;
    this.vaddr = options.vaddr ?? 0;
    this.nslabs = nslabs;
    this.nareas = nareas;
    this.areaNslabs = Math.floor(nslabs / nareas);
    this.lateAlloc = options.lateAlloc ?? false;
    this.forceBounce = options.forceBounce ?? false;
    this.slotOrigAddr = new Float64Array(nslabs).fill(INVALID);
    this.slotAllocSize = new Float64Array(nslabs);
    this.slotList = new Uint8Array(nslabs);
    for (let i = 0; i < nslabs; i++) this.slotList[i] = IO_TLB_SEGSIZE - ioTlbOffset(i);
    this.slotPadSlots = new Uint8Array(nslabs);
    this.allocSlots = new Uint8Array(nslabs);
    this.areaUsed = new Int32Array(nareas);
    this.areaIndex = new Int32Array(nareas);
  }

  /** Slots in use (`mem_used`, exact: the kernel's CONFIG_DEBUG_FS `total_used`). */
  get used(): number {
    return this.usedTotal;
  }

  /** `used_hiwater`: the most slots ever in use at once. */
  get usedHiwater(): number {
    return this.hiwater;
  }

  /** Resets the high-water mark (debugfs `io_tlb_used_hiwater` accepts only 0). */
  resetHiwater(): void {
    this.hiwater = this.usedTotal;
  }

  /** True if `phys` lies in the bounce area (`paddr >= pool->start && paddr < pool->end`). */
  contains(phys: number): boolean {
    return phys >= this.start && phys < this.end;
  }

  /** Slot index of a bounce address. */
  slotIndex(phys: number): number {
    return Math.floor((phys - this.start) / IO_TLB_SIZE);
  }

  /** `slot_addr(pool->start, idx)`. */
  slotAddr(index: number): number {
    return this.start + index * IO_TLB_SIZE;
  }

  /**
   * `swiotlb_search_pool_area()` (6.10+): finds and claims `nr_slots(allocSize)` contiguous free
   * slots in area `areaIndex` whose DMA address satisfies the alignment rules:
   * - without `allocAlignMask` and `minAlignMask`, an allocation of PAGE_SIZE or more is page aligned;
   * - the allocation is aligned to `allocAlignMask | (IO_TLB_SIZE - 1)`;
   * - the address bits of `minAlignMask` above that alignment equal those of `origAddr`
   *   (`iotlb_align_mask`, skipped when `origAddr` is 0);
   * - the run does not cross a `boundaryMask` boundary;
   * scanning from the area's `index` with a stride of the alignment, wrapping to 0 at the area's end.
   * Claimed slots get `list = 0` and `alloc_size = allocSize - (offset + i * IO_TLB_SIZE)`; free
   * slots before them in the segment get their run lengths recounted. Returns the first slot index
   * or -1 (nothing claimed).
   * @see kernel/dma/swiotlb.c swiotlb_search_pool_area
   */
  searchPoolArea(
    areaIndex: number,
    origAddr: number,
    tblDmaAddr: number,
    allocSize: number,
    allocAlignMask: number,
    minAlignMask: number,
    boundaryMask: number,
  ): number {
    const nslots = nrSlots(allocSize);
    if (nslots === 0) throw new KernelError("EINVAL", `swiotlb_search_pool_area: BUG: zero-size allocation`);
    if (areaIndex >= this.nareas)
      throw new KernelError("EINVAL", `swiotlb_search_pool_area: BUG: area ${areaIndex} of ${this.nareas}`);
    const tbl = and64(tblDmaAddr, boundaryMask);
    const maxSlots = getMaxSlots(boundaryMask);
    let iotlbAlignMask = minAlignMask >>> 0;
    const offset = (origAddr & minAlignMask & (IO_TLB_SIZE - 1)) >>> 0;
    let alignMask = allocAlignMask >>> 0;
    // Streaming mappings pass no alignment: keep the historical page alignment for >= PAGE_SIZE.
    if (alignMask === 0 && iotlbAlignMask === 0 && allocSize >= PAGE_SIZE) alignMask = PAGE_SIZE - 1;
    alignMask = (alignMask | (IO_TLB_SIZE - 1)) >>> 0;
    iotlbAlignMask = (iotlbAlignMask & ~alignMask) >>> 0;
    const stride = getMaxSlots(Math.max(alignMask, iotlbAlignMask));
    const areaNslabs = this.areaNslabs;
    if (nslots > areaNslabs - (this.areaUsed[areaIndex] as number)) return -1;
    const origBits = (origAddr & iotlbAlignMask) >>> 0;
    const tblSlots = nrSlots(tbl);
    const slotBase = areaIndex * areaNslabs;
    let index = this.areaIndex[areaIndex] as number;
    const list = this.slotList;
    let slotIndex = -1;
    for (let checked = 0; checked < areaNslabs; ) {
      const si = slotBase + index;
      const tlbAddr = tbl + si * IO_TLB_SIZE;
      if ((tlbAddr & alignMask) !== 0 || (origAddr !== 0 && (tlbAddr & iotlbAlignMask) >>> 0 !== origBits)) {
        index = index + 1 >= areaNslabs ? 0 : index + 1;
        checked++;
        continue;
      }
      if (!iommuIsSpanBoundary(si, nslots, tblSlots, maxSlots) && (list[si] as number) >= nslots) {
        slotIndex = si;
        break;
      }
      index = index + stride >= areaNslabs ? 0 : index + stride;
      checked += stride;
    }
    if (slotIndex < 0) return -1;

    for (let i = slotIndex; i < slotIndex + nslots; i++) {
      list[i] = 0;
      this.slotAllocSize[i] = allocSize - (offset + (i - slotIndex) * IO_TLB_SIZE);
    }
    let count = 0;
    for (let i = slotIndex - 1; i >= 0 && ioTlbOffset(i) !== IO_TLB_SEGSIZE - 1 && list[i] !== 0; i--)
      list[i] = ++count;
    this.allocSlots[slotIndex] = nslots;
    this.areaIndex[areaIndex] = index + nslots >= areaNslabs ? 0 : index + nslots;
    this.areaUsed[areaIndex] = (this.areaUsed[areaIndex] as number) + nslots;
    this.usedTotal += nslots;
    if (this.usedTotal > this.hiwater) this.hiwater = this.usedTotal;
    return slotIndex;
  }

  /**
   * `swiotlb_pool_find_slots()` / `swiotlb_find_slots()` without dynamic pools: tries the areas
   * from `cpu & (nareas - 1)` round-robin. Returns the first slot or -1.
   * @see kernel/dma/swiotlb.c swiotlb_find_slots (!CONFIG_SWIOTLB_DYNAMIC)
   */
  findSlots(
    cpu: number,
    origAddr: number,
    tblDmaAddr: number,
    allocSize: number,
    allocAlignMask: number,
    minAlignMask: number,
    boundaryMask: number,
  ): number {
    const start = cpu & (this.nareas - 1);
    let i = start;
    do {
      const index = this.searchPoolArea(
        i,
        origAddr,
        tblDmaAddr,
        allocSize,
        allocAlignMask,
        minAlignMask,
        boundaryMask,
      );
      if (index >= 0) return index;
      if (++i >= this.nareas) i = 0;
    } while (i !== start);
    return -1;
  }

  /**
   * Records what a new bounce buffer maps (the loop in `swiotlb_tbl_map_single`): `pad_slots` on
   * the first used slot, `orig_addr = origAddr + i * IO_TLB_SIZE` on every used slot.
   */
  setOrig(index: number, padSlots: number, nslots: number, origAddr: number): void {
    const first = index + padSlots;
    this.slotPadSlots[first] = padSlots;
    for (let i = 0; i < nslots - padSlots; i++) this.slotOrigAddr[first + i] = origAddr + i * IO_TLB_SIZE;
  }

  /**
   * The allocation a bounce address starts, as `swiotlb_release_slots` computes it (`offset` is
   * `tlb_addr & min_align_mask & (IO_TLB_SIZE - 1)`): `{ index, nslots }`, or null when the
   * address is not the start of a live allocation (where the kernel would corrupt its free lists).
   */
  allocationAt(tlbAddr: number, offset: number): { index: number; nslots: number } | null {
    if (!this.contains(tlbAddr - offset)) return null;
    const first = this.slotIndex(tlbAddr - offset);
    const index = first - (this.slotPadSlots[first] as number);
    if (index < 0) return null;
    const recorded = this.allocSlots[index] as number;
    if (recorded === 0 || this.slotOrigAddr[first] === INVALID) return null;
    const nslots = nrSlots((this.slotAllocSize[index] as number) + offset);
    if (nslots !== recorded) return null;
    return { index, nslots };
  }

  /**
   * `swiotlb_release_slots()` after the caller found the allocation: returns the slots to the free
   * lists, merging with the free run after them (same segment) and recounting the free slots
   * before them; clears `orig_addr`, `alloc_size`, `pad_slots`.
   * @see kernel/dma/swiotlb.c swiotlb_release_slots
   */
  releaseSlots(index: number, nslots: number): void {
    const list = this.slotList;
    const aindex = Math.floor(index / this.areaNslabs);
    let count = index + nslots < alignUpSeg(index + 1) ? (list[index + nslots] as number) : 0;
    for (let i = index + nslots - 1; i >= index; i--) {
      list[i] = ++count;
      this.slotOrigAddr[i] = INVALID;
      this.slotAllocSize[i] = 0;
      this.slotPadSlots[i] = 0;
    }
    for (let i = index - 1; i >= 0 && ioTlbOffset(i) !== IO_TLB_SEGSIZE - 1 && list[i] !== 0; i--)
      list[i] = ++count;
    this.allocSlots[index] = 0;
    this.areaUsed[aindex] = (this.areaUsed[aindex] as number) - nslots;
    this.usedTotal -= nslots;
  }

  /** A reusable copy buffer of `n` bytes for `swiotlb_bounce` (the model's stand-in for memcpy). */
  scratch(n: number): Uint8Array {
    if (this.scratchBuf.length < n)
      this.scratchBuf = new Uint8Array(Math.max(n, IO_TLB_SIZE * IO_TLB_SEGSIZE));
    return this.scratchBuf.subarray(0, n);
  }

  /** True when the slot's `orig_addr` is set (it belongs to a live bounce buffer). */
  slotInUse(index: number): boolean {
    return this.slotOrigAddr[index] !== INVALID;
  }

  /** Live bounce buffers, lowest slot first. */
  mappings(minAlignMask = 0): SwiotlbMapping[] {
    const out: SwiotlbMapping[] = [];
    for (let i = 0; i < this.nslabs; i++) {
      const n = this.allocSlots[i] as number;
      if (n === 0) continue;
      const pad = this.findPad(i, n);
      const first = i + pad;
      const origAddr = this.slotOrigAddr[first] as number;
      const offset = (origAddr & minAlignMask & (IO_TLB_SIZE - 1)) >>> 0;
      out.push({
        index: i,
        nslots: n,
        padSlots: pad,
        tlbAddr: this.slotAddr(first) + offset,
        origAddr,
        allocSize: this.slotAllocSize[first] as number,
      });
      i += n - 1;
    }
    return out;
  }

  /** Everything the pool holds. */
  report(): SwiotlbReport {
    return {
      start: this.start,
      end: this.end,
      nslabs: this.nslabs,
      nareas: this.nareas,
      used: this.usedTotal,
      usedHiwater: this.hiwater,
      forceBounce: this.forceBounce,
      mappings: this.mappings(),
    };
  }

  private findPad(index: number, nslots: number): number {
    for (let p = 0; p < nslots; p++) if (this.slotOrigAddr[index + p] !== INVALID) return p;
    return 0;
  }
}

/** `get_max_slots(boundary_mask)` = (boundary_mask >> IO_TLB_SHIFT) + 1, exact for ULONG_MAX. */
function getMaxSlots(boundaryMask: number): number {
  return Math.floor(boundaryMask / IO_TLB_SIZE) + 1;
}

/** `iommu_is_span_boundary(index, nr, shift, boundary_size)`. @see include/linux/iommu-helper.h */
function iommuIsSpanBoundary(index: number, nr: number, shift: number, boundarySize: number): boolean {
  const s = (shift + index) % boundarySize;
  return s + nr > boundarySize;
}

/** `ALIGN(x, IO_TLB_SEGSIZE)`. */
function alignUpSeg(x: number): number {
  return Math.ceil(x / IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE;
}
