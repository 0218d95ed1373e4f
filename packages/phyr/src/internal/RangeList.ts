import { type Errno, hex, KernelError, MAX_PHYS_ADDR, PAGE_SIZE } from "@dmakit/core";
import { PHYR_F_MASK, phyrFlagsToString } from "../phyrFlags.js";
import { PHYR_ADDR_LIMIT, PHYR_MAX_ENTRIES, PHYR_MAX_LEN, PHYS_VEC_SIZE } from "../phyrLimits.js";

/**
 * One entry of a range list as a plain object (only for convenience APIs, never on hot paths).
 * Model-only: one `struct phys_vec` (`paddr`, `len`) plus the model's flags.
 */
export interface RangeEntry {
  /** Start address (physical, bus or DMA, by list kind and flags). */
  addr: number;
  /** Length in bytes, >= 1. */
  len: number;
  /** `PHYR_F_*` bits. */
  flags: number;
}

/**
 * What {@link RangeList.footprint} reports.
 * Model-only: a memory report (the kernel has no such accounting).
 */
export interface RangeListFootprint {
  /** Bytes the kernel's C layout would use: `nents * sizeof(struct phys_vec)`. */
  cBytes: number;
  /** Bytes the JS heap holds in typed arrays for this list (sum of `byteLength`, incl. slack). */
  jsBytes: number;
}

// Storage: chunks of Float64Array, two slots per entry: [addr, len * 16 + flags]. len < 2^49 keeps
// the packed word below 2^53, so both halves are exact; /16 and %16 are exact on doubles.
const FLAG_SCALE = 16;
// Chunk k holds entries [start(k), start(k) + cap(k)). Chunk 0 holds 16, chunk k in 1..12 holds
// 16 << (k - 1) (so capacity doubles without ever copying old chunks), and from chunk 13 on every
// chunk holds 65536 entries (1 MiB), like sg chaining with a bounded chunk size.
const MIN_SHIFT = 4;
const MAX_SHIFT = 16;
const MAX_CHUNK = 1 << MAX_SHIFT;
// Chunks 0..GEOM_CHUNKS cover [0, MAX_CHUNK); chunk GEOM_CHUNKS + j starts at j * MAX_CHUNK.
const GEOM_CHUNKS = MAX_SHIFT - MIN_SHIFT;

function chunkOf(i: number): number {
  return i < MAX_CHUNK ? 32 - Math.clz32(i >>> MIN_SHIFT) : GEOM_CHUNKS + (i >>> MAX_SHIFT);
}

function chunkStart(k: number): number {
  if (k === 0) return 0;
  return k <= GEOM_CHUNKS ? (1 << MIN_SHIFT) << (k - 1) : (k - GEOM_CHUNKS) * MAX_CHUNK;
}

function chunkCap(k: number): number {
  if (k === 0) return 1 << MIN_SHIFT;
  return k <= GEOM_CHUNKS ? (1 << MIN_SHIFT) << (k - 1) : MAX_CHUNK;
}

const EMPTY = new Float64Array(0);

/**
 * The one storage implementation behind `PhysRangeList` and `DmaRangeList`: a chained list of
 * `{addr, len, flags}` ranges in typed arrays, 16 bytes per entry. Derived lists (slice, coalesce,
 * split) are new objects of the same subclass; the only in-place mutators are `push` and `setFlags`.
 */
export abstract class RangeList {
  /** Which address space the entries live in. */
  abstract readonly kind: "phys" | "dma";

  private chunks: Float64Array[] = [];
  private n = 0;
  private total = 0;
  // Append cursor into the last chunk: slot index and the chunk's allocated slot count.
  private tail: Float64Array = EMPTY;
  private tailPos = 0;
  private tailEnd = 0;

  /** Name used in error messages. */
  protected abstract get label(): string;

  /** Number of ranges (`nr_ranges`). */
  get count(): number {
    return this.n;
  }

  /** Sum of all range lengths in bytes (the `size` passed beside a `phys_vec` array). */
  get totalLength(): number {
    return this.total;
  }

  /** Start address of entry `i`. Throws ERANGE when `i` is not an index below {@link count}. */
  addr(i: number): number {
    return this.slotAt(i, 0);
  }

  /** Length in bytes of entry `i`. Throws ERANGE when `i` is out of range. */
  len(i: number): number {
    return Math.floor(this.slotAt(i, 1) / FLAG_SCALE);
  }

  /** `PHYR_F_*` flags of entry `i`. Throws ERANGE when `i` is out of range. */
  flags(i: number): number {
    // The word is len * 16 + flags, a non-negative integer: its low bits, without an fmod call.
    return this.slotAt(i, 1) & (FLAG_SCALE - 1);
  }

  /**
   * Replaces the flags of entry `i` (e.g. a mapping routine marking a bus address, as
   * `sg_dma_mark_bus_address` does). EINVAL for unknown bits, ERANGE for a bad index.
   */
  setFlags(i: number, flags: number): void {
    this.checkIndex(i);
    this.checkFlags(flags, i);
    const k = chunkOf(i);
    const c = this.chunks[k]!;
    const s = (i - chunkStart(k)) * 2 + 1;
    const w = c[s]!;
    c[s] = w - (w % FLAG_SCALE) + flags;
  }

  /**
   * Appends one range. Validates before touching anything: `addr` a safe integer >= 0; `len` an
   * integer in 1..PHYR_MAX_LEN (EINVAL, E2BIG above); `addr + len <= 2^53` (EOVERFLOW); flags within
   * `PHYR_F_MASK` (EINVAL); at most `PHYR_MAX_ENTRIES` entries (E2BIG); total length stays a safe
   * integer (EOVERFLOW). Never copies existing chunks, except re-growing a tail chunk trimmed by
   * {@link shrinkToFit} (at most 1 MiB).
   */
  push(addr: number, len: number, flags = 0): void {
    const where = `${this.label}[${this.n}]`;
    if (!Number.isSafeInteger(addr) || addr < 0)
      this.fail("EINVAL", `${where}: addr ${String(addr)} is not an integer in 0..${hex(MAX_PHYS_ADDR)}`);
    if (!Number.isSafeInteger(len) || len < 1)
      this.fail(
        "EINVAL",
        `${where}: len ${String(len)} is not a positive integer (zero-length ranges are not allowed)`,
      );
    if (len > PHYR_MAX_LEN)
      this.fail("E2BIG", `${where}: len ${hex(len)} exceeds PHYR_MAX_LEN ${hex(PHYR_MAX_LEN)}`);
    // Compare without adding: addr + len may round to 2^53 and hide the overflow.
    if (addr > PHYR_ADDR_LIMIT - len)
      this.fail(
        "EOVERFLOW",
        `${where}: ${hex(addr)}+${hex(len)} ends past the address limit ${hex(PHYR_ADDR_LIMIT)}`,
      );
    this.checkFlags(flags, this.n);
    if (this.n >= PHYR_MAX_ENTRIES)
      this.fail(
        "E2BIG",
        `${this.label}: push: ${this.n} entries already, limit PHYR_MAX_ENTRIES ${PHYR_MAX_ENTRIES}`,
      );
    if (this.total + len > MAX_PHYS_ADDR)
      this.fail(
        "EOVERFLOW",
        `${where}: total length ${hex(this.total)}+${hex(len)} exceeds ${hex(MAX_PHYS_ADDR)}`,
      );
    this.appendRaw(addr, len * FLAG_SCALE + flags, len);
  }

  /**
   * Calls `fn(addr, len, flags, i)` for every entry in order, walking the chunks directly
   * (no object per entry). The kernel's equivalent is a plain `for (i = 0; i < nr_ranges; i++)`.
   */
  forEach(fn: (addr: number, len: number, flags: number, index: number) => void): void {
    let i = 0;
    for (const c of this.chunks) {
      for (let s = 0; s < c.length && i < this.n; s += 2, i++) {
        const w = c[s + 1]!;
        fn(c[s]!, Math.floor(w / FLAG_SCALE), w % FLAG_SCALE, i);
      }
    }
  }

  /** Yields each entry as a fresh `{addr, len, flags}` object (convenient, not for hot paths). */
  *entries(): Generator<RangeEntry, void, undefined> {
    let i = 0;
    for (const c of this.chunks) {
      for (let s = 0; s < c.length && i < this.n; s += 2, i++) {
        const w = c[s + 1]!;
        yield { addr: c[s]!, len: Math.floor(w / FLAG_SCALE), flags: w % FLAG_SCALE };
      }
    }
  }

  /** Same as {@link entries}. */
  [Symbol.iterator](): Generator<RangeEntry, void, undefined> {
    return this.entries();
  }

  /** All entries as plain objects (tests, traces). */
  toArray(): RangeEntry[] {
    return [...this.entries()];
  }

  /**
   * Memory used: `cBytes` as the kernel would count a `struct phys_vec` array (16 bytes per entry,
   * no chaining overhead), `jsBytes` as the typed arrays hold (16 bytes per allocated slot; after
   * {@link shrinkToFit}, or for any list built by this package's builders, exactly 16 per entry).
   */
  footprint(): RangeListFootprint {
    let js = 0;
    for (const c of this.chunks) js += c.byteLength;
    return { cBytes: this.n * PHYS_VEC_SIZE, jsBytes: js };
  }

  /** Releases unused slots of the last chunk (copies at most that one chunk, <= 1 MiB). */
  shrinkToFit(): void {
    const k = this.n === 0 ? -1 : chunkOf(this.n - 1);
    this.chunks.length = k + 1;
    if (k < 0) {
      this.tail = EMPTY;
      this.tailPos = this.tailEnd = 0;
      return;
    }
    const used = (this.n - chunkStart(k)) * 2;
    const c = this.chunks[k]!;
    if (c.length !== used) {
      const t = c.slice(0, used);
      this.chunks[k] = t;
      this.tail = t;
    }
    this.tailEnd = this.tail.length;
  }

  /**
   * A new list of the same kind covering bytes `[offset, offset + length)` of this one; entries at
   * the edges are cut (addr advanced / len shortened), flags kept. `length` 0 gives an empty list.
   * EINVAL for a negative or non-integer argument or a range past {@link totalLength}; this list is
   * never modified.
   * @see lib/sg_split.c sg_split (same byte-range semantics for one split, but a new phys_vec-style
   *   list instead of kmalloc'ed scatterlists; no DMA/CPU pair)
   */
  slice(offset: number, length: number): this {
    if (!Number.isSafeInteger(offset) || offset < 0)
      this.fail("EINVAL", `${this.label}: slice: offset ${String(offset)} is not an integer >= 0`);
    if (!Number.isSafeInteger(length) || length < 0)
      this.fail("EINVAL", `${this.label}: slice: length ${String(length)} is not an integer >= 0`);
    if (offset + length > this.total)
      this.fail(
        "EINVAL",
        `${this.label}: slice: ${hex(offset)}+${hex(length)} runs past total length ${hex(this.total)}`,
      );
    const out = this.spawn();
    if (length === 0) return out;
    const end = offset + length;
    let pos = 0; // byte position of the current entry's start
    let i = 0;
    outer: for (const c of this.chunks) {
      for (let s = 0; s < c.length && i < this.n; s += 2, i++) {
        const w = c[s + 1]!;
        const len = Math.floor(w / FLAG_SCALE);
        const next = pos + len;
        if (next > offset) {
          const from = Math.max(pos, offset);
          const to = Math.min(next, end);
          const l = to - from;
          out.appendRaw(c[s]! + (from - pos), l * FLAG_SCALE + (w % FLAG_SCALE), l);
          if (next >= end) break outer;
        }
        pos = next;
      }
    }
    out.shrinkToFit();
    return out;
  }

  /**
   * A new list with adjacent ranges merged where the flags match and one ends exactly where the next
   * begins (a merged range never exceeds `PHYR_MAX_LEN`). Order is kept; non-adjacent ranges are never
   * reordered or merged. Model-only helper: the kernel merges while building (sg_alloc_table_from_pages,
   * `__finalise_sg`, bio merging), never as a separate pass over a phys_vec array.
   */
  coalesce(): this {
    const out = this.spawn();
    let curAddr = 0;
    let curLen = 0;
    let curFlags = -1;
    let i = 0;
    for (const c of this.chunks) {
      for (let s = 0; s < c.length && i < this.n; s += 2, i++) {
        const a = c[s]!;
        const w = c[s + 1]!;
        const len = Math.floor(w / FLAG_SCALE);
        const f = w % FLAG_SCALE;
        if (f === curFlags && curAddr + curLen === a && curLen + len <= PHYR_MAX_LEN) {
          curLen += len;
        } else {
          if (curFlags >= 0) out.appendRaw(curAddr, curLen * FLAG_SCALE + curFlags, curLen);
          curAddr = a;
          curLen = len;
          curFlags = f;
        }
      }
    }
    if (curFlags >= 0) out.appendRaw(curAddr, curLen * FLAG_SCALE + curFlags, curLen);
    out.shrinkToFit();
    return out;
  }

  /**
   * A new list where every range is cut so that no piece is longer than `maxSegmentSize` and no piece
   * crosses a `(segmentBoundaryMask + 1)`-aligned address (the device's `dma_parms`). Cuts are greedy:
   * each piece ends at the earliest of its range end, `start + maxSegmentSize` and the next boundary.
   * Nothing is merged; flags are copied to every piece.
   *
   * `maxSegmentSize`: integer >= 1 (the kernel's is an `unsigned int`, default 64 KiB; the model allows
   * more, e.g. for ranges > 4 GiB). `segmentBoundaryMask`: `2^k - 1`, or anything >= 2^53 - 1
   * (e.g. `ULONG_MAX`, the kernel default) for "no boundary". EINVAL for other values, E2BIG when the
   * result would exceed `PHYR_MAX_ENTRIES` (checked before anything is allocated).
   * @see include/linux/dma-mapping.h dma_get_max_seg_size, dma_get_seg_boundary;
   *   block/blk-merge.c get_max_segment_size (the same two limits applied to bvecs)
   */
  splitSegments(maxSegmentSize: number, segmentBoundaryMask: number): this {
    if (!Number.isSafeInteger(maxSegmentSize) || maxSegmentSize < 1)
      this.fail(
        "EINVAL",
        `${this.label}: split: max_segment_size ${String(maxSegmentSize)} is not an integer >= 1`,
      );
    let b = Number.POSITIVE_INFINITY;
    if (segmentBoundaryMask < MAX_PHYS_ADDR) {
      const m = segmentBoundaryMask;
      if (!Number.isSafeInteger(m) || m < 0 || !Number.isInteger(Math.log2(m + 1)))
        this.fail("EINVAL", `${this.label}: split: segment_boundary_mask ${String(m)} is not 2^k - 1`);
      b = m + 1;
    } else if (Number.isNaN(segmentBoundaryMask)) {
      this.fail("EINVAL", `${this.label}: split: segment_boundary_mask NaN is not 2^k - 1`);
    }
    const max = maxSegmentSize;
    // Count first so that an oversized result fails before any allocation.
    let pieces = 0;
    this.forEach((a, len) => {
      pieces += countPieces(a, len, max, b);
    });
    if (pieces > PHYR_MAX_ENTRIES)
      this.fail(
        "E2BIG",
        `${this.label}: split: ${pieces} segments (max_segment_size ${hex(max)}, boundary ${hex(b - 1)}) exceed PHYR_MAX_ENTRIES ${PHYR_MAX_ENTRIES}`,
      );
    const out = this.spawn();
    let i = 0;
    for (const c of this.chunks) {
      for (let s = 0; s < c.length && i < this.n; s += 2, i++) {
        let a = c[s]!;
        const w = c[s + 1]!;
        const f = w % FLAG_SCALE;
        const end = a + Math.floor(w / FLAG_SCALE);
        while (a < end) {
          let e = a + max;
          if (e > end) e = end;
          if (b !== Number.POSITIVE_INFINITY) {
            const be = Math.floor(a / b) * b + b;
            if (e > be) e = be;
          }
          const l = e - a;
          out.appendRaw(a, l * FLAG_SCALE + f, l);
          a = e;
        }
      }
    }
    out.shrinkToFit();
    return out;
  }

  /**
   * Builds a list of this kind from plain entries, validating each as {@link push} does.
   */
  static from<T extends RangeList>(this: new () => T, entries: Iterable<RangeEntry>): T {
    const out = new this();
    for (const e of entries) out.push(e.addr, e.len, e.flags);
    out.shrinkToFit();
    return out;
  }

  /**
   * Builds a list from a page-frame array: each run of consecutive pfns becomes one range; the first
   * range starts `offset` bytes into the first page and the list covers exactly `size` bytes, so the
   * last range may end inside its page (as `sg_alloc_table_from_pages` does with `offset`/`size`).
   * Every range gets `flags` (e.g. `PHYR_F_PINNED` for pages from `pin_user_pages`).
   *
   * Differences from the kernel: no `max_segment` (use {@link splitSegments}), no ZONE_DEVICE pgmap
   * check (the model's pfns carry no pgmap), and inputs are validated: `offset` in 0..PAGE_SIZE-1,
   * `size` >= 1 reaching into the last page and not past it, pfns integers with `pfn * PAGE_SIZE`
   * below 2^53 (EINVAL otherwise). An empty pfn array with `size` 0 gives an empty list.
   * @see lib/scatterlist.c sg_alloc_table_from_pages, sg_alloc_append_table_from_pages
   */
  static fromPfns<T extends RangeList>(
    this: new () => T,
    pfns: ArrayLike<number>,
    offset = 0,
    size: number = pfns.length * PAGE_SIZE - offset,
    flags = 0,
  ): T {
    const out = new this();
    const n = pfns.length;
    const what = `${out.label}: from_pfns`;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset >= PAGE_SIZE)
      out.fail("EINVAL", `${what}: offset ${String(offset)} is not in 0..${PAGE_SIZE - 1}`);
    if (!Number.isSafeInteger(size) || size < 0)
      out.fail("EINVAL", `${what}: size ${String(size)} is not an integer >= 0`);
    out.checkFlags(flags, 0);
    if (n === 0) {
      if (size !== 0) out.fail("EINVAL", `${what}: size ${hex(size)} with 0 pages`);
      return out;
    }
    const end = offset + size;
    if (end > n * PAGE_SIZE)
      out.fail("EINVAL", `${what}: offset ${hex(offset)} + size ${hex(size)} exceeds ${n} pages`);
    if (end <= (n - 1) * PAGE_SIZE)
      out.fail(
        "EINVAL",
        `${what}: offset ${hex(offset)} + size ${hex(size)} leaves page ${n - 1} of ${n} unused`,
      );
    const maxPfn = PHYR_ADDR_LIMIT / PAGE_SIZE - 1;
    // Two passes: validate and count runs, then fill exactly sized chunks (no growth, no trim).
    const runs = scanPfns(pfns, n, maxPfn);
    if (runs < 0) {
      const bad = ~runs;
      out.fail("EINVAL", `${what}: pfns[${bad}] = ${String(pfns[bad])} is not a pfn in 0..${hex(maxPfn)}`);
    }
    if (runs > PHYR_MAX_ENTRIES)
      out.fail("E2BIG", `${what}: ${runs} ranges exceed PHYR_MAX_ENTRIES ${PHYR_MAX_ENTRIES}`);
    out.fillPfnRuns(pfns, n, offset, end, flags, runs);
    return out;
  }

  private fillPfnRuns(
    pfns: ArrayLike<number>,
    n: number,
    offset: number,
    end: number,
    flags: number,
    runs: number,
  ): void {
    const chunks: Float64Array[] = [];
    for (let k = 0; chunkStart(k) < runs; k++)
      chunks.push(new Float64Array(Math.min(chunkCap(k), runs - chunkStart(k)) * 2));
    let k = 0;
    let c = chunks[0]!;
    let s = 0;
    let prev = pfns[0]!;
    // The first run may start mid-page; later runs start on a page boundary.
    let runAddr = prev * PAGE_SIZE + offset;
    let runFrom = offset;
    for (let i = 1; i < n; i++) {
      const p = pfns[i]!;
      if (p !== prev + 1) {
        const l = i * PAGE_SIZE - runFrom;
        if (s === c.length) {
          c = chunks[++k]!;
          s = 0;
        }
        c[s] = runAddr;
        c[s + 1] = l * FLAG_SCALE + flags;
        s += 2;
        runAddr = p * PAGE_SIZE;
        runFrom = i * PAGE_SIZE;
      }
      prev = p;
    }
    if (s === c.length) {
      c = chunks[++k]!;
      s = 0;
    }
    c[s] = runAddr;
    c[s + 1] = (end - runFrom) * FLAG_SCALE + flags;
    this.chunks = chunks;
    this.n = runs;
    this.total = end - offset;
    this.tail = c;
    this.tailPos = this.tailEnd = c.length;
  }

  /** An empty list of the same subclass. */
  protected spawn(): this {
    return new (this.constructor as new () => this)();
  }

  /**
   * Appends without validation; callers guarantee the invariants push checks. `len` is passed
   * separately so the running total needs no unpacking.
   */
  private appendRaw(addr: number, word: number, len: number): void {
    if (this.tailPos === this.tailEnd) this.growTail();
    const t = this.tail;
    t[this.tailPos] = addr;
    t[this.tailPos + 1] = word;
    this.tailPos += 2;
    this.n++;
    this.total += len;
  }

  private growTail(): void {
    if (this.n >= PHYR_MAX_ENTRIES)
      this.fail(
        "E2BIG",
        `${this.label}: ${this.n} entries already, limit PHYR_MAX_ENTRIES ${PHYR_MAX_ENTRIES}`,
      );
    const k = chunkOf(this.n);
    const cap = chunkCap(k) * 2;
    const old = this.chunks[k];
    const c = new Float64Array(cap);
    if (old) c.set(old);
    this.chunks[k] = c;
    this.tail = c;
    this.tailPos = (this.n - chunkStart(k)) * 2;
    this.tailEnd = cap;
  }

  private slotAt(i: number, slot: 0 | 1): number {
    if (!(i >>> 0 === i && i < this.n)) this.badIndex(i);
    if (i < MAX_CHUNK) {
      const k = 32 - Math.clz32(i >>> MIN_SHIFT);
      const off = k === 0 ? i : i - ((1 << MIN_SHIFT) << (k - 1));
      return this.chunks[k]![off * 2 + slot]!;
    }
    return this.chunks[GEOM_CHUNKS + (i >>> MAX_SHIFT)]![(i & (MAX_CHUNK - 1)) * 2 + slot]!;
  }

  private checkIndex(i: number): void {
    if (!(i >>> 0 === i && i < this.n)) this.badIndex(i);
  }

  private badIndex(i: number): never {
    return this.fail(
      "ERANGE",
      `${this.label}: index ${String(i)} is not in 0..${this.n - 1} (count ${this.n})`,
    );
  }

  private checkFlags(flags: number, i: number): void {
    if (!Number.isInteger(flags) || flags < 0 || (flags & ~PHYR_F_MASK) !== 0 || flags > PHYR_F_MASK)
      this.fail(
        "EINVAL",
        `${this.label}[${i}]: flags ${String(flags)} (${Number.isInteger(flags) ? phyrFlagsToString(flags) : "?"}) outside PHYR_F_MASK ${hex(PHYR_F_MASK)}`,
      );
  }

  private fail(errno: Errno, message: string): never {
    throw new KernelError(errno, `phyr: ${message}`);
  }
}

/**
 * Validates a pfn array (integers in 0..maxPfn, checked where a run starts and ends; a run only
 * grows by +1 so its interior is valid too) and counts runs of consecutive pfns. Returns the run
 * count, or `~i` for the first bad index `i`.
 */
function scanPfns(pfns: ArrayLike<number>, n: number, maxPfn: number): number {
  let prev = pfns[0]!;
  if (!(prev >= 0 && prev <= maxPfn && Math.floor(prev) === prev)) return ~0;
  let runs = 1;
  for (let i = 1; i < n; i++) {
    const p = pfns[i]!;
    if (p !== prev + 1) {
      if (prev > maxPfn) return ~(i - 1);
      if (!(p >= 0 && p <= maxPfn && Math.floor(p) === p)) return ~i;
      runs++;
    }
    prev = p;
  }
  return prev > maxPfn ? ~(n - 1) : runs;
}

/** Pieces one range `[a, a + len)` splits into under `max` and boundary `b` (Infinity = none). */
function countPieces(a: number, len: number, max: number, b: number): number {
  if (b === Number.POSITIVE_INFINITY) return Math.ceil(len / max);
  const end = a + len;
  const firstEnd = Math.min(end, Math.floor(a / b) * b + b);
  let p = Math.ceil((firstEnd - a) / max);
  const rest = end - firstEnd;
  if (rest > 0) {
    const full = Math.floor(rest / b);
    p += full * Math.ceil(b / max);
    const last = rest - full * b;
    if (last > 0) p += Math.ceil(last / max);
  }
  return p;
}
