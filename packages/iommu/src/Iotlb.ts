import { hex, KernelError } from "@dmakit/core";

/** Options for {@link Iotlb}. */
export interface IotlbOptions {
  /** Entries the IOTLB holds; default 256. */
  capacity?: number;
  /** Name for messages. */
  name?: string;
}

// 2^n for page shifts: `2 ** n` is a Math.pow call on the lookup hot path.
const POW2 = Float64Array.from({ length: 64 }, (_, n) => 2 ** n);

/** Largest tag + 1: tags are 16-bit (an ASID, a VMID, or a VT-d domain id). */
export const IOTLB_TAG_SPACE = 0x10000;

/**
 * An IOTLB model shared by IOMMU implementations: a fully associative cache of leaf translations,
 * each tagged with a 16-bit context tag (ASID/VMID/domain id) and covering one naturally aligned page
 * of the size that was mapped (4 KiB, 2 MiB, 1 GiB ...). Replacement is least-recently-used, so
 * the same access sequence always evicts the same entries.
 *
 * Entries are typed arrays (no object per entry); lookup costs one Map probe per distinct page size
 * cached. Invalidation by tag or range scans the entries (capacity is small, as in hardware).
 *
 * The IOTLB counts lookups, hits, misses, fills, evictions and invalidations, and the walks its
 * owner reports with {@link Iotlb.recordWalk}; {@link Iotlb.counters} names them for reports.
 */
export class Iotlb {
  readonly capacity: number;
  readonly name: string;

  private readonly key: Float64Array;
  private readonly tag: Int32Array;
  private readonly iovaBase: Float64Array;
  private readonly physBase: Float64Array;
  private readonly shift: Uint8Array;
  private readonly protArr: Uint8Array;
  private readonly valid: Uint8Array;
  // Intrusive LRU list over slots: head = most recent, tail = least recent.
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private head = -1;
  private tail = -1;
  private readonly free: number[] = [];
  // One key → slot map per page shift, and the shifts present, largest first.
  private readonly maps = new Map<number, Map<number, number>>();
  private shifts: number[] = [];
  private count = 0;

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
    this.key = new Float64Array(n);
    this.tag = new Int32Array(n);
    this.iovaBase = new Float64Array(n);
    this.physBase = new Float64Array(n);
    this.shift = new Uint8Array(n);
    this.protArr = new Uint8Array(n);
    this.valid = new Uint8Array(n);
    this.prev = new Int32Array(n).fill(-1);
    this.next = new Int32Array(n).fill(-1);
    for (let i = n - 1; i >= 0; i--) this.free.push(i);
  }

  /** Valid entries. */
  get size(): number {
    return this.count;
  }

  /**
   * Looks up `iova` under `tag`; returns the entry's slot (use {@link physOf}, {@link protOf}) or
   * -1. Counts a hit (and makes the entry most recent) or a miss.
   */
  lookup(tag: number, iova: number): number {
    for (const s of this.shifts) {
      const slot = this.maps.get(s)?.get(Iotlb.keyOf(tag, iova, s));
      if (slot !== undefined) {
        this.hits++;
        this.touch(slot);
        return slot;
      }
    }
    this.misses++;
    return -1;
  }

  /**
   * {@link lookup} with a hint, for hot translation paths: when `hint` is a valid slot tagged `tag`
   * whose page covers `iova` and whose page size is the largest cached (so `lookup` would return
   * that very entry on its first probe), it is returned without a hash probe; otherwise this is
   * `lookup`. Counts hits and misses and updates the LRU order exactly as `lookup` does.
   * Implementations keep the last slot each stream/requester id hit as its hint.
   */
  lookupHint(tag: number, iova: number, hint: number): number {
    if (
      hint >= 0 &&
      hint < this.capacity &&
      this.valid[hint] === 1 &&
      this.tag[hint] === tag &&
      this.shift[hint] === this.shifts[0]
    ) {
      const base = this.iovaBase[hint] as number;
      if (iova >= base && iova - base < 2 ** (this.shift[hint] as number)) {
        this.hits++;
        this.touch(hint);
        return hint;
      }
    }
    return this.lookup(tag, iova);
  }

  /** Like {@link lookup} but counts nothing and leaves the LRU order alone (for inspection). */
  peek(tag: number, iova: number): number {
    for (const s of this.shifts) {
      const slot = this.maps.get(s)?.get(Iotlb.keyOf(tag, iova, s));
      if (slot !== undefined) return slot;
    }
    return -1;
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
    return POW2[this.shift[slot] as number] as number;
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
    const s = Math.log2(pageSize);
    if (!Number.isInteger(s) || s < 12)
      throw new KernelError(
        "EINVAL",
        `${this.name}: page size ${hex(pageSize)} is not a power of two ≥ 4 KiB`,
      );
    const key = Iotlb.keyOf(tag, iova, s);
    if (key > Number.MAX_SAFE_INTEGER)
      throw new KernelError("ERANGE", `${this.name}: iova ${hex(iova)} too large to tag exactly`);
    const base = Math.floor(iova / pageSize) * pageSize;
    let map = this.maps.get(s);
    if (map === undefined) {
      map = new Map();
      this.maps.set(s, map);
      this.shifts = [...this.maps.keys()].sort((a, b) => b - a);
    }
    let slot = map.get(key);
    if (slot === undefined) {
      if (this.free.length === 0) {
        this.evictions++;
        this.remove(this.tail);
      }
      slot = this.free.pop() as number;
      this.count++;
      map.set(key, slot);
      this.linkHead(slot);
    } else {
      this.touch(slot);
    }
    this.key[slot] = key;
    this.tag[slot] = tag;
    this.iovaBase[slot] = base;
    this.physBase[slot] = phys - (iova - base);
    this.shift[slot] = s;
    this.protArr[slot] = prot;
    this.valid[slot] = 1;
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
    let n = 0;
    for (let i = 0; i < this.capacity; i++)
      if (this.valid[i] === 1) {
        this.remove(i);
        n++;
      }
    this.entriesInvalidated += n;
    return n;
  }

  /** Invalidates every entry tagged `tag`; returns how many. */
  invalidateTag(tag: number): number {
    this.invalidations++;
    let n = 0;
    for (let i = 0; i < this.capacity; i++)
      if (this.valid[i] === 1 && this.tag[i] === tag) {
        this.remove(i);
        n++;
      }
    this.entriesInvalidated += n;
    return n;
  }

  /**
   * Invalidates entries tagged `tag` (or any tag when `tag` is -1) that overlap
   * `[iova, iova+size)`; returns how many.
   */
  invalidateRange(tag: number, iova: number, size: number): number {
    this.invalidations++;
    const end = iova + size;
    let n = 0;
    for (let i = 0; i < this.capacity; i++) {
      if (this.valid[i] !== 1 || (tag !== -1 && this.tag[i] !== tag)) continue;
      const b = this.iovaBase[i] as number;
      if (b < end && b + 2 ** (this.shift[i] as number) > iova) {
        this.remove(i);
        n++;
      }
    }
    this.entriesInvalidated += n;
    return n;
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

  private static keyOf(tag: number, iova: number, shift: number): number {
    return Math.floor(iova / (POW2[shift] as number)) * IOTLB_TAG_SPACE + tag;
  }

  private remove(slot: number): void {
    this.maps.get(this.shift[slot] as number)?.delete(this.key[slot] as number);
    this.valid[slot] = 0;
    this.unlink(slot);
    this.free.push(slot);
    this.count--;
  }

  private touch(slot: number): void {
    if (this.head === slot) return;
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
