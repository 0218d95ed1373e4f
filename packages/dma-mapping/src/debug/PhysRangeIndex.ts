const CHUNK_SHIFT = 21;
const CHUNK = 2 ** CHUNK_SHIFT;

/**
 * Model-only: the physical ranges of live dma-debug entries, so a CPU access or a cache finding at
 * a physical address finds the mapping it hit. The kernel's dma-debug only knows entries by DMA
 * address; the cache checks need the CPU side.
 *
 * Ranges are struct-of-arrays (start, length, owning entry, next range of the same entry); a
 * `Map` from 2 MiB chunk number to the small array of range indices overlapping it answers
 * lookups. A range spanning many chunks is listed in each (a 1 GiB mapping: 512 chunks).
 */
export class PhysRangeIndex {
  start = new Float64Array(0);
  len = new Float64Array(0);
  entry = new Int32Array(0);
  /** Next range of the same entry, or -1. */
  nextOfEntry = new Int32Array(0);
  private readonly chunks = new Map<number, number[]>();
  private freeHead = -1;
  private used = 0;
  private cap = 0;
  /** Live ranges. */
  live = 0;

  /** Adds [start, start+len) for `entry`, linked before `nextRange`; returns the range index. */
  add(start: number, len: number, entry: number, nextRange: number): number {
    let r = this.freeHead;
    if (r >= 0) this.freeHead = this.nextOfEntry[r] as number;
    else {
      if (this.used === this.cap) this.grow();
      r = this.used++;
    }
    this.start[r] = start;
    this.len[r] = len;
    this.entry[r] = entry;
    this.nextOfEntry[r] = nextRange;
    this.live++;
    if (len > 0) {
      const last = Math.floor((start + len - 1) / CHUNK);
      for (let c = Math.floor(start / CHUNK); c <= last; c++) {
        const list = this.chunks.get(c);
        if (list === undefined) this.chunks.set(c, [r]);
        else list.push(r);
      }
    }
    return r;
  }

  /** Removes a chain of ranges starting at `first`. */
  removeChain(first: number): void {
    let r = first;
    while (r >= 0) {
      const nxt = this.nextOfEntry[r] as number;
      const start = this.start[r] as number;
      const len = this.len[r] as number;
      if (len > 0) {
        const last = Math.floor((start + len - 1) / CHUNK);
        for (let c = Math.floor(start / CHUNK); c <= last; c++) {
          const list = this.chunks.get(c);
          if (list === undefined) continue;
          const i = list.indexOf(r);
          if (i >= 0) {
            list[i] = list[list.length - 1] as number;
            list.pop();
          }
          if (list.length === 0) this.chunks.delete(c);
        }
      }
      this.entry[r] = -1;
      this.nextOfEntry[r] = this.freeHead;
      this.freeHead = r;
      this.live--;
      r = nxt;
    }
  }

  /**
   * Calls `fn(range, entry)` for each live range overlapping [phys, phys+size); stops when `fn`
   * returns true. A range spanning several chunks of the query is visited once.
   */
  overlapping(phys: number, size: number, fn: (range: number, entry: number) => boolean | undefined): void {
    if (this.live === 0 || size <= 0) return;
    const end = phys + size;
    const first = Math.floor(phys / CHUNK);
    const last = Math.floor((end - 1) / CHUNK);
    for (let c = first; c <= last; c++) {
      const list = this.chunks.get(c);
      if (list === undefined) continue;
      for (const r of list) {
        const s = this.start[r] as number;
        const e = s + (this.len[r] as number);
        if (s >= end || e <= phys) continue;
        // Visit a range only in the first query chunk it overlaps.
        if (c > first && Math.floor(Math.max(s, phys) / CHUNK) < c) continue;
        if (fn(r, this.entry[r] as number) === true) return;
      }
    }
  }

  private grow(): void {
    const cap = Math.max(64, this.cap * 2);
    const g = <T extends Int32Array | Float64Array>(a: T, b: T): T => {
      b.set(a as ArrayLike<number>);
      return b;
    };
    this.start = g(this.start, new Float64Array(cap));
    this.len = g(this.len, new Float64Array(cap));
    this.entry = g(this.entry, new Int32Array(cap));
    this.nextOfEntry = g(this.nextOfEntry, new Int32Array(cap));
    this.cap = cap;
  }
}
