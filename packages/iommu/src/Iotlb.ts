import { hex, KernelError } from "@dmakit/core";

/** Options for {@link Iotlb}. Model-only: configuration of the IOTLB model. */
export interface IotlbOptions {
  /** Entries the IOTLB holds; default 256. */
  capacity?: number;
  /** Name for messages. */
  name?: string;
}

/**
 * Largest tag + 1: tags are 16-bit (an ASID, a VMID, or a VT-d domain id).
 * Model-only: a limit of the IOTLB model.
 */
export const IOTLB_TAG_SPACE = 0x10000;

// Page shifts an entry may have: 2 ** 1023 is the largest power of two a number holds.
const SHIFT_LIMIT = 1024;
const TWO_POW_M32 = 2 ** -32;
// Above this many hash probes a range invalidation scans the entries instead.
const RANGE_PROBE_BUDGET = 64;

/**
 * An IOTLB model shared by IOMMU implementations: a fully associative cache of leaf translations,
 * each tagged with a 16-bit context tag (ASID/VMID/domain id) and covering one naturally aligned page
 * of the size that was mapped (4 KiB, 16 KiB, 64 KiB, 2 MiB, 32 MiB, 512 MiB, 1 GiB ...).
 * Replacement is least-recently-used, so the same access sequence always evicts the same entries
 * and fills the same slots.
 *
 * Entries are struct-of-arrays (no object per entry) indexed by slot, found through an
 * open-addressing hash table (linear probing, backward-shift deletion) keyed by (tag, page shift,
 * page number) hashed with `Math.imul` over the page number's high and low words, so no key is
 * ever a heap number. A lookup probes once per page size currently cached, largest first.
 * Invalidation by range probes the pages in the range when that is cheaper than scanning;
 * invalidation by tag, by a large range or of everything scans the entries (capacity is small, as
 * in hardware). Entries are always removed in slot order, so slot reuse is deterministic.
 *
 * The IOTLB counts lookups, hits, misses, fills, evictions and invalidations, and the walks its
 * owner reports with {@link Iotlb.recordWalk}; {@link Iotlb.counters} names them for reports.
 * Model-only: the hardware cache the kernel invalidates but cannot see.
 */
export class Iotlb {
  readonly capacity: number;
  readonly name: string;

  // Entry fields, by slot.
  private readonly tag: Int32Array;
  private readonly iovaBase: Float64Array;
  private readonly physBase: Float64Array;
  private readonly pageSize: Float64Array;
  private readonly shift: Uint16Array;
  private readonly protArr: Uint8Array;
  private readonly valid: Uint8Array;
  /** Hash-table index the entry's key hashes to (where its probe sequence starts). */
  private readonly home: Int32Array;
  // Intrusive LRU list over slots: head = most recent, tail = least recent.
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private head = -1;
  private tail = -1;
  // Free slots as a stack (top = next slot handed out).
  private readonly free: Int32Array;
  private freeTop = 0;
  // Open-addressing table of slots (-1 = empty); size a power of two, at most 1/4 full.
  private readonly table: Int32Array;
  private readonly tableMask: number;
  private readonly hashShift: number;
  // Entries per page shift, and the shifts with entries, largest first (with size and 1/size).
  private readonly shiftCount = new Int32Array(SHIFT_LIMIT);
  private readonly activeShift = new Int32Array(SHIFT_LIMIT);
  private readonly activeSize = new Float64Array(SHIFT_LIMIT);
  private readonly activeInv = new Float64Array(SHIFT_LIMIT);
  private nActive = 0;
  private count = 0;
  // The last page size inserted and its log2 (NaN equals no page size).
  private lastPageSize = Number.NaN;
  private lastShift = 0;
  // Scratch list of slots to remove (sorted before removal).
  private readonly doomed: Int32Array;

  hits = 0;
  misses = 0;
  fills = 0;
  evictions = 0;
  walks = 0;
  walkReads = 0;
  invalidations = 0;
  entriesInvalidated = 0;

  constructor(options: IotlbOptions = {}) {
    const n = options.capacity ?? 256;
    if (!Number.isInteger(n) || n < 1)
      throw new KernelError("EINVAL", `iotlb: capacity ${n} must be a positive integer`);
    this.capacity = n;
    this.name = options.name ?? "iotlb";
    this.tag = new Int32Array(n);
    this.iovaBase = new Float64Array(n);
    this.physBase = new Float64Array(n);
    this.pageSize = new Float64Array(n);
    this.shift = new Uint16Array(n);
    this.protArr = new Uint8Array(n);
    this.valid = new Uint8Array(n);
    this.home = new Int32Array(n);
    this.prev = new Int32Array(n).fill(-1);
    this.next = new Int32Array(n).fill(-1);
    this.doomed = new Int32Array(n);
    this.free = new Int32Array(n);
    for (let i = n - 1; i >= 0; i--) this.free[this.freeTop++] = i;
    let bits = 4;
    while (2 ** bits < 4 * n) bits++;
    if (bits > 30) throw new KernelError("EINVAL", `iotlb: capacity ${n} exceeds 2^28 entries`);
    this.table = new Int32Array(2 ** bits).fill(-1);
    this.tableMask = 2 ** bits - 1;
    this.hashShift = 32 - bits;
  }

  /** Valid entries. */
  get size(): number {
    return this.count;
  }

  /**
   * Looks up `iova` under `tag`; returns the entry's slot (use {@link physOf}, {@link protOf}) or
   * -1. Counts a hit (and makes the entry most recent) or a miss. When entries of several page
   * sizes cover `iova`, the largest wins. A tag outside `[0, IOTLB_TAG_SPACE)` never hits.
   */
  lookup(tag: number, iova: number): number {
    const slot = this.find(tag, iova);
    if (slot >= 0) {
      this.hits++;
      if (this.head !== slot) this.touch(slot);
    } else this.misses++;
    return slot;
  }

  /**
   * {@link lookup} with a hint, for hot translation paths: when `hint` is a valid slot tagged `tag`
   * whose page covers `iova` and whose page size is the largest currently cached (so `lookup` would
   * return that very entry on its first probe), it is returned without a hash probe; otherwise this is
   * `lookup`. Counts hits and misses and updates the LRU order exactly as `lookup` does.
   * Implementations keep the last slot each stream/requester id hit as its hint.
   */
  lookupHint(tag: number, iova: number, hint: number): number {
    if (
      hint >= 0 &&
      hint < this.capacity &&
      this.valid[hint] === 1 &&
      this.tag[hint] === tag &&
      this.shift[hint] === this.activeShift[0]
    ) {
      const off = iova - (this.iovaBase[hint] as number);
      if (off >= 0 && off < (this.pageSize[hint] as number)) {
        this.hits++;
        if (this.head !== hint) this.touch(hint);
        return hint;
      }
    }
    return this.lookup(tag, iova);
  }

  /** Like {@link lookup} but counts nothing and leaves the LRU order alone (for inspection). */
  peek(tag: number, iova: number): number {
    return this.find(tag, iova);
  }

  /** The physical address of `iova` through the entry in `slot`. */
  physOf(slot: number, iova: number): number {
    return (this.physBase[slot] as number) + (iova - (this.iovaBase[slot] as number));
  }

  /** The `IOMMU_*` prot cached in `slot`. */
  protOf(slot: number): number {
    return this.protArr[slot] as number;
  }

  /** The page size of the entry in `slot`. */
  sizeOf(slot: number): number {
    return this.pageSize[slot] as number;
  }

  /** The first IOVA covered by the entry in `slot`. */
  iovaOf(slot: number): number {
    return this.iovaBase[slot] as number;
  }

  /**
   * Caches the translation of the `pageSize` page containing `iova` (and `phys`, which must lie at
   * the same offset in its page) with `prot`. Replaces an entry for the same tag and page;
   * evicts the least recently used entry when full. Returns the slot.
   */
  insert(tag: number, iova: number, phys: number, pageSize: number, prot: number): number {
    if (!Number.isInteger(tag) || tag < 0 || tag >= IOTLB_TAG_SPACE)
      throw new KernelError("EINVAL", `${this.name}: tag ${tag} outside [0, ${IOTLB_TAG_SPACE})`);
    // Walks fill one page size after another: skip the log2 when it repeats.
    let s = this.lastShift;
    if (pageSize !== this.lastPageSize) {
      s = Math.log2(pageSize);
      // (log2 rounds: 2^52 + 1 would pass as 52 without the last check.)
      if (!Number.isInteger(s) || s < 12 || 2 ** s !== pageSize)
        throw new KernelError(
          "EINVAL",
          `${this.name}: page size ${hex(pageSize)} is not a power of two ≥ 4 KiB`,
        );
    }
    const pfn = Math.floor(iova / pageSize);
    // Keys were once pfn * 2^16 + tag in one number: keep refusing what that could not hold.
    if (pfn * IOTLB_TAG_SPACE + tag > Number.MAX_SAFE_INTEGER)
      throw new KernelError("ERANGE", `${this.name}: iova ${hex(iova)} too large to tag exactly`);
    this.lastPageSize = pageSize;
    this.lastShift = s;
    const base = pfn * pageSize;
    const h = this.hashOf(tag, s, pfn);
    let slot = this.probeFrom(h, tag, s, base);
    if (slot < 0) {
      if (this.freeTop === 0) {
        this.evictions++;
        this.remove(this.tail);
      }
      slot = this.free[--this.freeTop] as number;
      this.count++;
      this.tag[slot] = tag;
      this.iovaBase[slot] = base;
      this.pageSize[slot] = pageSize;
      this.shift[slot] = s;
      this.valid[slot] = 1;
      this.addKey(slot, h);
      const c = this.shiftCount[s] as number;
      this.shiftCount[s] = c + 1;
      if (c === 0) this.activate(s);
      this.linkHead(slot);
    } else if (this.head !== slot) {
      this.touch(slot);
    }
    this.physBase[slot] = phys - (iova - base);
    this.protArr[slot] = prot;
    this.fills++;
    return slot;
  }

  /** Records one table walk that read `reads` descriptors (for the walk counters). */
  recordWalk(reads: number): void {
    this.walks++;
    this.walkReads += reads;
  }

  /** Invalidates every entry; returns how many were valid. */
  invalidateAll(): number {
    this.invalidations++;
    const n = this.count;
    if (n > 0) {
      for (let i = 0; i < this.capacity; i++) if (this.valid[i] === 1) this.free[this.freeTop++] = i;
      this.valid.fill(0);
      this.prev.fill(-1);
      this.next.fill(-1);
      this.table.fill(-1);
      for (let i = 0; i < this.nActive; i++) this.shiftCount[this.activeShift[i] as number] = 0;
      this.nActive = 0;
      this.activeShift[0] = 0;
      this.head = -1;
      this.tail = -1;
      this.count = 0;
    }
    this.entriesInvalidated += n;
    return n;
  }

  /** Invalidates every entry tagged `tag`; returns how many. */
  invalidateTag(tag: number): number {
    this.invalidations++;
    let k = 0;
    if (this.count * 4 < this.capacity) {
      for (let i = this.head; i !== -1; i = this.next[i] as number)
        if (this.tag[i] === tag) this.doomed[k++] = i;
      this.removeDoomed(k);
    } else {
      for (let i = 0; i < this.capacity; i++)
        if (this.valid[i] === 1 && this.tag[i] === tag) {
          this.remove(i);
          k++;
        }
    }
    this.entriesInvalidated += k;
    return k;
  }

  /**
   * Invalidates entries tagged `tag` (or any tag when `tag` is -1) that overlap
   * `[iova, iova+size)`; returns how many.
   */
  invalidateRange(tag: number, iova: number, size: number): number {
    this.invalidations++;
    const end = iova + size;
    let k = 0;
    if (this.count === 0) return 0;
    if (tag !== -1 && this.rangeProbes(iova, end) <= Math.min(RANGE_PROBE_BUDGET, this.count)) {
      // Few pages: probe each page of each cached size in the range.
      for (let a = 0; a < this.nActive; a++) {
        const s = this.activeShift[a] as number;
        const sz = this.activeSize[a] as number;
        const last = Math.ceil(end / sz) - 1;
        for (let pfn = Math.floor(iova / sz); pfn <= last; pfn++) {
          const slot = this.probe(tag, s, pfn * sz, pfn);
          if (slot >= 0) this.doomed[k++] = slot;
        }
      }
      this.removeDoomed(k);
    } else if (this.count * 4 < this.capacity) {
      for (let i = this.head; i !== -1; i = this.next[i] as number)
        if (this.overlaps(i, tag, iova, end)) this.doomed[k++] = i;
      this.removeDoomed(k);
    } else {
      for (let i = 0; i < this.capacity; i++)
        if (this.valid[i] === 1 && this.overlaps(i, tag, iova, end)) {
          this.remove(i);
          k++;
        }
    }
    this.entriesInvalidated += k;
    return k;
  }

  /** Zeroes the counters (entries stay). */
  resetStats(): void {
    this.hits = 0;
    this.misses = 0;
    this.fills = 0;
    this.evictions = 0;
    this.walks = 0;
    this.walkReads = 0;
    this.invalidations = 0;
    this.entriesInvalidated = 0;
  }

  /**
   * The counters under stable report ids, prefixed with `prefix` (default `"iommu"`):
   * `<p>.translate.iotlb-hit`, `.iotlb-miss`, `.walk`, `.walk-reads`, `<p>.iotlb.fill`, `.evict`,
   * `.inval`, `.inval-entries`, `.entries`.
   */
  counters(prefix = "iommu"): Record<string, number> {
    return {
      [`${prefix}.translate.iotlb-hit`]: this.hits,
      [`${prefix}.translate.iotlb-miss`]: this.misses,
      [`${prefix}.translate.walk`]: this.walks,
      [`${prefix}.translate.walk-reads`]: this.walkReads,
      [`${prefix}.iotlb.fill`]: this.fills,
      [`${prefix}.iotlb.evict`]: this.evictions,
      [`${prefix}.iotlb.inval`]: this.invalidations,
      [`${prefix}.iotlb.inval-entries`]: this.entriesInvalidated,
      [`${prefix}.iotlb.entries`]: this.count,
    };
  }

  /** The slot covering `iova` under `tag`, largest page size first, or -1. */
  private find(tag: number, iova: number): number {
    const n = this.nActive;
    for (let a = 0; a < n; a++) {
      // iova * 2^-s is exactly iova / 2^s.
      const pfn = Math.floor(iova * (this.activeInv[a] as number));
      const slot = this.probe(tag, this.activeShift[a] as number, pfn * (this.activeSize[a] as number), pfn);
      if (slot >= 0) return slot;
    }
    return -1;
  }

  /** The slot holding (tag, shift, page at `base` = `pfn` << shift), or -1. */
  private probe(tag: number, s: number, base: number, pfn: number): number {
    return this.probeFrom(this.hashOf(tag, s, pfn), tag, s, base);
  }

  /** {@link probe} from table index `h`, the key's hash. */
  private probeFrom(h: number, tag: number, s: number, base: number): number {
    const table = this.table;
    const mask = this.tableMask;
    for (let j = h; ; j = (j + 1) & mask) {
      const slot = table[j] as number;
      if (slot < 0) return -1;
      if (this.iovaBase[slot] === base && this.tag[slot] === tag && this.shift[slot] === s) return slot;
    }
  }

  /**
   * Table index for (tag, shift, pfn): the pfn's low and high words (pfn < 2^53, so no BigInt)
   * mixed with the tag and shift, then a Fibonacci multiply whose top bits index the table.
   */
  private hashOf(tag: number, s: number, pfn: number): number {
    const lo = pfn >>> 0;
    const hi = (pfn * TWO_POW_M32) | 0;
    const x = lo ^ Math.imul(hi ^ ((tag << 10) | s), 0x85ebca6b);
    return Math.imul(x ^ (x >>> 15), 0x9e3779b1) >>> this.hashShift;
  }

  private addKey(slot: number, h: number): void {
    const table = this.table;
    const mask = this.tableMask;
    let j = h;
    while ((table[j] as number) >= 0) j = (j + 1) & mask;
    table[j] = slot;
    this.home[slot] = h;
  }

  /** Backward-shift deletion: later entries of the probe run move up so no tombstone is needed. */
  private deleteKey(slot: number): void {
    const table = this.table;
    const mask = this.tableMask;
    let i = this.home[slot] as number;
    while (table[i] !== slot) i = (i + 1) & mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const t = table[j] as number;
      if (t < 0) break;
      const h = this.home[t] as number;
      // Move t into the hole at i unless its home lies cyclically in (i, j].
      if (i <= j ? h <= i || h > j : h <= i && h > j) {
        table[i] = t;
        i = j;
      }
    }
    table[i] = -1;
  }

  /** Inserts shift `s` into the active list, keeping it largest first. */
  private activate(s: number): void {
    let a = this.nActive++;
    while (a > 0 && (this.activeShift[a - 1] as number) < s) {
      this.activeShift[a] = this.activeShift[a - 1] as number;
      this.activeSize[a] = this.activeSize[a - 1] as number;
      this.activeInv[a] = this.activeInv[a - 1] as number;
      a--;
    }
    this.activeShift[a] = s;
    this.activeSize[a] = 2 ** s;
    this.activeInv[a] = 2 ** -s;
  }

  private deactivate(s: number): void {
    const n = --this.nActive;
    let a = 0;
    while (this.activeShift[a] !== s) a++;
    for (; a < n; a++) {
      this.activeShift[a] = this.activeShift[a + 1] as number;
      this.activeSize[a] = this.activeSize[a + 1] as number;
      this.activeInv[a] = this.activeInv[a + 1] as number;
    }
    // Keep slot 0 meaningful for lookupHint even when no size is cached (no entry has shift 0).
    if (n === 0) this.activeShift[0] = 0;
  }

  /** Hash probes a page-by-page invalidation of `[iova, end)` would take (NaN or ∞ if unbounded). */
  private rangeProbes(iova: number, end: number): number {
    let n = 0;
    for (let a = 0; a < this.nActive; a++) {
      const sz = this.activeSize[a] as number;
      const pages = Math.ceil(end / sz) - Math.floor(iova / sz);
      if (pages > 0) n += pages;
      else if (!(pages <= 0)) return Number.POSITIVE_INFINITY;
    }
    return n;
  }

  private overlaps(i: number, tag: number, iova: number, end: number): boolean {
    if (tag !== -1 && this.tag[i] !== tag) return false;
    const b = this.iovaBase[i] as number;
    return b < end && b + (this.pageSize[i] as number) > iova;
  }

  /** Removes the first `k` slots of the scratch list, in ascending slot order. */
  private removeDoomed(k: number): void {
    if (k > 1) this.doomed.subarray(0, k).sort();
    for (let i = 0; i < k; i++) this.remove(this.doomed[i] as number);
  }

  private remove(slot: number): void {
    this.deleteKey(slot);
    const s = this.shift[slot] as number;
    const c = (this.shiftCount[s] as number) - 1;
    this.shiftCount[s] = c;
    if (c === 0) this.deactivate(s);
    this.valid[slot] = 0;
    this.unlink(slot);
    this.free[this.freeTop++] = slot;
    this.count--;
  }

  private touch(slot: number): void {
    this.unlink(slot);
    this.linkHead(slot);
  }

  private linkHead(slot: number): void {
    this.prev[slot] = -1;
    this.next[slot] = this.head;
    if (this.head !== -1) this.prev[this.head] = slot;
    this.head = slot;
    if (this.tail === -1) this.tail = slot;
  }

  private unlink(slot: number): void {
    const p = this.prev[slot] as number;
    const n = this.next[slot] as number;
    if (p !== -1) this.next[p] = n;
    else if (this.head === slot) this.head = n;
    if (n !== -1) this.prev[n] = p;
    else if (this.tail === slot) this.tail = p;
    this.prev[slot] = -1;
    this.next[slot] = -1;
  }
}
