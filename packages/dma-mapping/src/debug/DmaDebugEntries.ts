/** `HASH_SIZE`: dma-debug's hash of live entries has 16384 buckets. @see kernel/dma/debug.c */
export const HASH_SIZE = 16384;
/**
 * `HASH_FN_SHIFT`: the bucket of an entry is `(dev_addr >> 13) & (HASH_SIZE - 1)`.
 * @see kernel/dma/debug.c HASH_FN_SHIFT
 */
export const HASH_FN_SHIFT = 13;
const HASH_FN_MASK = HASH_SIZE - 1;
const HASH_STEP = 2 ** HASH_FN_SHIFT;

/**
 * `PREALLOC_DMA_DEBUG_ENTRIES` = 65536 (boot option `dma_debug_entries=`).
 * @see kernel/dma/debug.c PREALLOC_DMA_DEBUG_ENTRIES
 */
export const PREALLOC_DMA_DEBUG_ENTRIES = 1 << 16;
/**
 * `DMA_DEBUG_DYNAMIC_ENTRIES` = `PAGE_SIZE / sizeof(struct dma_debug_entry)`: the pool grows by one
 * page of entries. The 6.18 entry (list head, dev, dev_addr, size, 4 ints, paddr, map_err_type,
 * attrs, a 5-frame stack trace) is 120 bytes, `____cacheline_aligned_in_smp` makes it 128: 32 per page.
 * @see kernel/dma/debug.c DMA_DEBUG_DYNAMIC_ENTRIES
 */
export const DMA_DEBUG_DYNAMIC_ENTRIES = 32;

/**
 * Entry types (`enum { dma_debug_single, ... }` in 6.18: `single` only describes sync lookups).
 * @see kernel/dma/debug.c
 */
export const dma_debug_single = 0;
/** `dma_debug_sg`: a `dma_map_sg` entry. @see kernel/dma/debug.c */
export const dma_debug_sg = 1;
/** `dma_debug_coherent`: a `dma_alloc_attrs` buffer. @see kernel/dma/debug.c */
export const dma_debug_coherent = 2;
/** `dma_debug_noncoherent`: a `dma_alloc_pages` buffer. @see kernel/dma/debug.c */
export const dma_debug_noncoherent = 3;
/**
 * `dma_debug_phy` (6.18): every `dma_map_phys` mapping, including `dma_map_resource` (DMA_ATTR_MMIO).
 * @see kernel/dma/debug.c
 */
export const dma_debug_phy = 4;

/**
 * `type2name[]` of 6.18 (`"scatter-gather"`: the old "scather-gather" typo was fixed before 6.18).
 * @see kernel/dma/debug.c type2name
 */
export const DMA_DEBUG_TYPE_NAMES = ["single", "scatter-gather", "coherent", "noncoherent", "phy"] as const;

/** `enum map_err_types`. @see kernel/dma/debug.c enum map_err_types */
export const MAP_ERR_CHECK_NOT_APPLICABLE = 0;
/**
 * `MAP_ERR_NOT_CHECKED`: mapped, `dma_mapping_error` not called yet.
 * @see kernel/dma/debug.c enum map_err_types
 */
export const MAP_ERR_NOT_CHECKED = 1;
/** `MAP_ERR_CHECKED`: the driver called `dma_mapping_error`. @see kernel/dma/debug.c enum map_err_types */
export const MAP_ERR_CHECKED = 2;
/** `maperr2str[]`. */
export const MAP_ERR_NAMES = [
  "dma map error check not applicable",
  "dma map error not checked",
  "dma map error checked",
] as const;

/** Who may touch the buffer now (model-only ownership tracking). */
export const OWNER_NONE = 0;
export const OWNER_DEVICE = 1;
export const OWNER_CPU = 2;

/** The last ownership transition of an entry (model-only). */
export const OP_MAP = 1;
export const OP_SYNC_FOR_DEVICE = 2;
export const OP_SYNC_FOR_CPU = 3;
export const OP_ALLOC = 4;

/** The entry point that created a streaming entry, for report wording (model-only). */
export const API_PAGE = 0;
export const API_SINGLE = 1;
export const API_RESOURCE = 2;

/**
 * The lookup key of an unmap or sync: the kernel's on-stack `struct dma_debug_entry ref`.
 * @see kernel/dma/debug.c struct dma_debug_entry
 */
export interface DmaDebugRef {
  devId: number;
  devAddr: number;
  size: number;
  type: number;
  dir: number;
  sgCallEnts: number;
  paddr: number;
}

/**
 * The live `struct dma_debug_entry`s of one machine and their hash (`dma_entry_hash[]`), kept as
 * struct-of-arrays: an entry is an index into typed arrays, a bucket a doubly linked list through
 * `next`/`prev` with head and tail per bucket (the kernel's `list_add_tail` order, which best-fit
 * lookups and `dma_mapping_error` marking depend on). Freed slots go on a free list and are reused.
 *
 * The pool counters (`num_free_entries`, `min_free_entries`, `nr_total_entries`) are the kernel's
 * logical ones; the typed arrays themselves grow on demand, so preallocating 65536 entries costs
 * nothing until they are used.
 * @see kernel/dma/debug.c struct dma_debug_entry, dma_entry_hash, dma_entry_alloc, dma_entry_free
 */
export class DmaDebugEntries {
  devId = new Int32Array(0);
  devAddr = new Float64Array(0);
  size = new Float64Array(0);
  type = new Uint8Array(0);
  dir = new Uint8Array(0);
  sgCallEnts = new Int32Array(0);
  sgMappedEnts = new Int32Array(0);
  /** Physical start (`paddr`); -1 when the model cannot tell (an sg entry without a page). */
  paddr = new Float64Array(0);
  mapErr = new Uint8Array(0);
  attrs = new Int32Array(0);
  owner = new Uint8Array(0);
  lastOp = new Uint8Array(0);
  api = new Uint8Array(0);
  /** Set once a CPU access during the current device ownership was reported (one report per period). */
  touched = new Uint8Array(0);
  /** Running number of the map/alloc that created the entry ("Mapped at", in place of a stack trace). */
  seq = new Float64Array(0);
  /** First physical range of the entry in the {@link PhysRangeIndex}, or -1. */
  firstRange = new Int32Array(0);
  next = new Int32Array(0);
  prev = new Int32Array(0);

  private readonly head = new Int32Array(HASH_SIZE).fill(-1);
  private readonly tail = new Int32Array(HASH_SIZE).fill(-1);
  private freeHead = -1;
  private used = 0;
  private cap = 0;
  private seqNext = 0;

  /** `num_free_entries`, `min_free_entries`, `nr_total_entries`, `nr_prealloc_entries`. */
  numFree: number;
  minFree: number;
  nrTotal: number;
  readonly nrPrealloc: number;
  /** Live entries. */
  live = 0;

  constructor(prealloc: number) {
    this.nrPrealloc = prealloc;
    const pages = Math.ceil(prealloc / DMA_DEBUG_DYNAMIC_ENTRIES);
    this.nrTotal = pages * DMA_DEBUG_DYNAMIC_ENTRIES;
    this.numFree = this.nrTotal;
    this.minFree = this.numFree;
  }

  /** `hash_fn`: the bucket of a DMA address (`DMA_MAPPING_ERROR` = 2^64 lands in bucket 16383, as `~0 >> 13` does). */
  static bucketOf(devAddr: number): number {
    if (devAddr >= 2 ** 64) return HASH_FN_MASK;
    return Math.floor(devAddr / HASH_STEP) % HASH_SIZE;
  }

  /**
   * `dma_entry_alloc`: takes a zeroed entry. Returns the slot and whether the logical pool had to
   * grow by {@link DMA_DEBUG_DYNAMIC_ENTRIES} (the caller logs "pool grown" when due).
   */
  alloc(): { idx: number; grew: boolean } {
    let grew = false;
    if (this.numFree === 0) {
      this.numFree += DMA_DEBUG_DYNAMIC_ENTRIES;
      this.nrTotal += DMA_DEBUG_DYNAMIC_ENTRIES;
      grew = true;
    }
    this.numFree--;
    if (this.numFree < this.minFree) this.minFree = this.numFree;
    let idx = this.freeHead;
    if (idx >= 0) this.freeHead = this.next[idx] as number;
    else {
      if (this.used === this.cap) this.grow();
      idx = this.used++;
    }
    this.devId[idx] = -1;
    this.devAddr[idx] = 0;
    this.size[idx] = 0;
    this.type[idx] = 0;
    this.dir[idx] = 0;
    this.sgCallEnts[idx] = 0;
    this.sgMappedEnts[idx] = 0;
    this.paddr[idx] = -1;
    this.mapErr[idx] = MAP_ERR_CHECK_NOT_APPLICABLE;
    this.attrs[idx] = 0;
    this.owner[idx] = OWNER_NONE;
    this.lastOp[idx] = 0;
    this.api[idx] = API_PAGE;
    this.touched[idx] = 0;
    this.seq[idx] = this.seqNext++;
    this.firstRange[idx] = -1;
    this.next[idx] = -1;
    this.prev[idx] = -1;
    return { idx, grew };
  }

  /** `hash_bucket_add`: appends a filled entry to its bucket (by `devAddr`). */
  add(idx: number): void {
    const b = DmaDebugEntries.bucketOf(this.devAddr[idx] as number);
    const t = this.tail[b] as number;
    this.prev[idx] = t;
    this.next[idx] = -1;
    if (t < 0) this.head[b] = idx;
    else this.next[t] = idx;
    this.tail[b] = idx;
    this.live++;
  }

  /** `hash_bucket_del` + `dma_entry_free` (the cacheline side is the caller's). */
  remove(idx: number): void {
    const b = DmaDebugEntries.bucketOf(this.devAddr[idx] as number);
    const p = this.prev[idx] as number;
    const n = this.next[idx] as number;
    if (p < 0) this.head[b] = n;
    else this.next[p] = n;
    if (n < 0) this.tail[b] = p;
    else this.prev[n] = p;
    this.devId[idx] = -1;
    this.next[idx] = this.freeHead;
    this.freeHead = idx;
    this.numFree++;
    this.live--;
  }

  /** First entry of a bucket, or -1; continue with `next[idx]`. */
  bucketHead(bucket: number): number {
    return this.head[bucket] as number;
  }

  /**
   * `__hash_bucket_find` with `exact_match` (same device and address) or `containing_match` (same
   * device, the entry covers the ref's range): a perfect fit on size, type, direction and
   * sg_call_ents wins at once; otherwise the single match, or -1 when several match imperfectly.
   */
  find(bucket: number, ref: DmaDebugRef, containing: boolean): number {
    let ret = -1;
    let matches = 0;
    let lastLvl = -1;
    for (let e = this.head[bucket] as number; e >= 0; e = this.next[e] as number) {
      if (this.devId[e] !== ref.devId) continue;
      const a = this.devAddr[e] as number;
      if (containing) {
        if (!(a <= ref.devAddr && a + (this.size[e] as number) >= ref.devAddr + ref.size)) continue;
      } else if (a !== ref.devAddr) continue;
      matches++;
      let lvl = 0;
      if (this.size[e] === ref.size) lvl++;
      if (this.type[e] === ref.type) lvl++;
      if (this.dir[e] === ref.dir) lvl++;
      if (this.sgCallEnts[e] === ref.sgCallEnts) lvl++;
      if (lvl === 4) return e;
      if (lvl > lastLvl) {
        lastLvl = lvl;
        ret = e;
      }
    }
    return matches === 1 ? ret : -1;
  }

  /** `bucket_find_exact`. */
  findExact(ref: DmaDebugRef): number {
    return this.find(DmaDebugEntries.bucketOf(ref.devAddr), ref, false);
  }

  /**
   * `bucket_find_contain`: searches the ref's bucket, then walks back one bucket (8 KiB of address)
   * at a time, at most `min(HASH_SIZE, (dev_addr >> 13) + 1)` buckets.
   */
  findContaining(ref: DmaDebugRef): number {
    const start = ref.devAddr >= 2 ** 64 ? 2 ** 51 - 1 : Math.floor(ref.devAddr / HASH_STEP);
    const limit = Math.min(HASH_SIZE, start + 1);
    for (let i = 0; i < limit; i++) {
      const e = this.find((start - i) % HASH_SIZE, ref, true);
      if (e >= 0) return e;
    }
    return -1;
  }

  /** Calls `fn(idx, bucket)` for every live entry, bucket by bucket, in list order. */
  forEach(fn: (idx: number, bucket: number) => void): void {
    if (this.live === 0) return;
    for (let b = 0; b < HASH_SIZE; b++)
      for (let e = this.head[b] as number; e >= 0; e = this.next[e] as number) fn(e, b);
  }

  /** Bytes held by the typed arrays. */
  get byteLength(): number {
    return this.cap * 67 + 2 * HASH_SIZE * 4;
  }

  private grow(): void {
    const cap = Math.max(64, this.cap * 2);
    const g = <T extends Int32Array | Float64Array | Uint8Array>(a: T, b: T): T => {
      b.set(a as ArrayLike<number>);
      return b;
    };
    this.devId = g(this.devId, new Int32Array(cap));
    this.devAddr = g(this.devAddr, new Float64Array(cap));
    this.size = g(this.size, new Float64Array(cap));
    this.type = g(this.type, new Uint8Array(cap));
    this.dir = g(this.dir, new Uint8Array(cap));
    this.sgCallEnts = g(this.sgCallEnts, new Int32Array(cap));
    this.sgMappedEnts = g(this.sgMappedEnts, new Int32Array(cap));
    this.paddr = g(this.paddr, new Float64Array(cap));
    this.mapErr = g(this.mapErr, new Uint8Array(cap));
    this.attrs = g(this.attrs, new Int32Array(cap));
    this.owner = g(this.owner, new Uint8Array(cap));
    this.lastOp = g(this.lastOp, new Uint8Array(cap));
    this.api = g(this.api, new Uint8Array(cap));
    this.touched = g(this.touched, new Uint8Array(cap));
    this.seq = g(this.seq, new Float64Array(cap));
    this.firstRange = g(this.firstRange, new Int32Array(cap));
    this.next = g(this.next, new Int32Array(cap));
    this.prev = g(this.prev, new Int32Array(cap));
    this.cap = cap;
  }
}
