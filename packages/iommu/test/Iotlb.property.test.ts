import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Iotlb } from "../src/index.js";

// 4K, 16K, 64K (ARM granules), 2M, 32M, 512M (ARM blocks), 1G.
const SHIFTS = [12, 14, 16, 21, 25, 29, 30] as const;

interface RefEntry {
  slot: number;
  tag: number;
  shift: number;
  base: number;
  phys: number;
  prot: number;
}

/**
 * The naive IOTLB: a Map by (tag, shift, page base) and an array in LRU order (most recent first),
 * slots from a free stack, entries removed in slot order.
 */
class RefIotlb {
  private lru: RefEntry[] = [];
  private readonly byKey = new Map<string, RefEntry>();
  private readonly free: number[] = [];
  hits = 0;
  misses = 0;
  evictions = 0;
  fills = 0;
  invalidated = 0;

  constructor(readonly capacity: number) {
    for (let i = capacity - 1; i >= 0; i--) this.free.push(i);
  }

  get size(): number {
    return this.lru.length;
  }

  entries(): readonly RefEntry[] {
    return this.lru;
  }

  find(tag: number, iova: number): RefEntry | undefined {
    const shifts = [...new Set(this.lru.map((e) => e.shift))].sort((a, b) => b - a);
    for (const s of shifts) {
      const e = this.byKey.get(`${tag}:${s}:${Math.floor(iova / 2 ** s) * 2 ** s}`);
      if (e !== undefined) return e;
    }
    return undefined;
  }

  lookup(tag: number, iova: number): number {
    const e = this.find(tag, iova);
    if (e === undefined) {
      this.misses++;
      return -1;
    }
    this.hits++;
    this.lru.splice(this.lru.indexOf(e), 1);
    this.lru.unshift(e);
    return e.slot;
  }

  insert(tag: number, iova: number, phys: number, shift: number, prot: number): number {
    const base = Math.floor(iova / 2 ** shift) * 2 ** shift;
    const key = `${tag}:${shift}:${base}`;
    let e = this.byKey.get(key);
    if (e === undefined) {
      if (this.free.length === 0) {
        this.evictions++;
        this.remove([this.lru[this.lru.length - 1] as RefEntry]);
      }
      e = { slot: this.free.pop() as number, tag, shift, base, phys: 0, prot: 0 };
      this.byKey.set(key, e);
    } else this.lru.splice(this.lru.indexOf(e), 1);
    this.lru.unshift(e);
    e.phys = phys - (iova - base);
    e.prot = prot;
    this.fills++;
    return e.slot;
  }

  invalidate(pred: (e: RefEntry) => boolean): number {
    const doomed = this.lru.filter(pred);
    this.remove(doomed);
    this.invalidated += doomed.length;
    return doomed.length;
  }

  private remove(doomed: RefEntry[]): void {
    for (const e of [...doomed].sort((a, b) => a.slot - b.slot)) {
      this.byKey.delete(`${e.tag}:${e.shift}:${e.base}`);
      this.lru.splice(this.lru.indexOf(e), 1);
      this.free.push(e.slot);
    }
  }
}

type Op =
  | { op: "ins"; tag: number; iova: number; shift: number; prot: number }
  | { op: "look" | "peek"; tag: number; iova: number }
  | { op: "hint"; tag: number; iova: number; hint: number }
  | { op: "range"; tag: number; iova: number; size: number }
  | { op: "tag"; tag: number }
  | { op: "all" };

// IOVAs cluster in a few 1 GiB windows (some above 2^32 and 2^45, so the page number's high word
// matters), at page granularity of a random size, so pages of different sizes overlap.
const iovaArb = fc
  .tuple(
    fc.constantFrom(0, 2 ** 30, 5 * 2 ** 32, 2 ** 45 + 2 ** 31),
    fc.constantFrom(...SHIFTS),
    fc.integer({ min: 0, max: 11 }),
    fc.integer({ min: 0, max: 4095 }),
  )
  .map(([win, s, page, off]) => win + ((page * 2 ** s) % 2 ** 30) + off);
const tagArb = fc.constantFrom(0, 1, 7, 0xffff);
// Small IOTLBs evict often; larger ones, mostly empty, take the live-entry invalidation paths.
const capArb = fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 16, max: 40 }));

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant("ins" as const),
      tag: tagArb,
      iova: iovaArb,
      shift: fc.constantFrom(...SHIFTS),
      prot: fc.integer({ min: 0, max: 15 }),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constantFrom("look" as const, "peek" as const),
      tag: tagArb,
      iova: iovaArb,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("hint" as const),
      tag: tagArb,
      iova: iovaArb,
      hint: fc.integer({ min: -1, max: 40 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("range" as const),
      tag: fc.oneof(tagArb, fc.constant(-1)),
      iova: iovaArb,
      size: fc.oneof(
        fc.integer({ min: 0, max: 8 }).map((n) => n * 4096),
        fc.constantFrom(1, 2 ** 21, 2 ** 30 + 1, 2 ** 40),
      ),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("tag" as const), tag: tagArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("all" as const) }) },
);

describe("Iotlb (property)", () => {
  it("matches a Map + LRU array model: same slots, hits, misses, evictions and translations", () => {
    fc.assert(
      fc.property(capArb, fc.array(opArb, { minLength: 20, maxLength: 400, size: "max" }), (cap, ops) => {
        const t = new Iotlb({ capacity: cap });
        const ref = new RefIotlb(cap);
        for (const o of ops) {
          switch (o.op) {
            case "ins":
              expect(t.insert(o.tag, o.iova, o.iova + 0x7_0000_0000, 2 ** o.shift, o.prot)).toBe(
                ref.insert(o.tag, o.iova, o.iova + 0x7_0000_0000, o.shift, o.prot),
              );
              break;
            case "look":
            case "peek":
            case "hint": {
              const want =
                o.op === "peek" ? (ref.find(o.tag, o.iova)?.slot ?? -1) : ref.lookup(o.tag, o.iova);
              const got =
                o.op === "hint"
                  ? t.lookupHint(o.tag, o.iova, o.hint)
                  : o.op === "look"
                    ? t.lookup(o.tag, o.iova)
                    : t.peek(o.tag, o.iova);
              expect(got).toBe(want);
              if (got >= 0) {
                const e = ref.find(o.tag, o.iova) as RefEntry;
                expect(t.physOf(got, o.iova)).toBe(e.phys + (o.iova - e.base));
                expect([t.iovaOf(got), t.sizeOf(got), t.protOf(got)]).toEqual([e.base, 2 ** e.shift, e.prot]);
              }
              break;
            }
            case "range": {
              const end = o.iova + o.size;
              expect(t.invalidateRange(o.tag, o.iova, o.size)).toBe(
                ref.invalidate(
                  (e) => (o.tag === -1 || e.tag === o.tag) && e.base < end && e.base + 2 ** e.shift > o.iova,
                ),
              );
              break;
            }
            case "tag":
              expect(t.invalidateTag(o.tag)).toBe(ref.invalidate((e) => e.tag === o.tag));
              break;
            case "all":
              expect(t.invalidateAll()).toBe(ref.invalidate(() => true));
              break;
          }
          // Every cached entry stays reachable (hash-table deletions never strand one).
          for (const e of ref.entries()) {
            const slot = t.peek(e.tag, e.base);
            expect(slot >= 0 && t.iovaOf(slot) <= e.base && t.sizeOf(slot) >= 2 ** e.shift).toBe(true);
          }
          expect([t.size, t.hits, t.misses, t.evictions, t.fills, t.entriesInvalidated]).toEqual([
            ref.size,
            ref.hits,
            ref.misses,
            ref.evictions,
            ref.fills,
            ref.invalidated,
          ]);
        }
      }),
      { numRuns: 150, seed: 20261121 },
    );
  });

  it("finds a block entry from any IOVA inside it, alongside smaller pages of the same tag", () => {
    const t = new Iotlb({ capacity: 4 });
    const blk = t.insert(3, 2 ** 40 + 2 ** 30 + 0x1234, 0x8000_0000 + 0x1234, 2 ** 30, 1);
    const page = t.insert(3, 2 ** 40 + 2 ** 30 + 0x5_0000, 0x1_0000_0000, 2 ** 16, 3);
    expect(blk).not.toBe(page);
    // The larger page size wins where both cover the IOVA, as in the Map-per-size model.
    expect(t.lookup(3, 2 ** 40 + 2 ** 30 + 0x5_0008)).toBe(blk);
    expect(t.lookup(3, 2 ** 40 + 2 ** 31 - 1)).toBe(blk);
    expect(t.physOf(blk, 2 ** 40 + 2 ** 31 - 1)).toBe(0x8000_0000 + 2 ** 30 - 1);
    expect(t.lookup(3, 2 ** 40 + 2 ** 31)).toBe(-1);
    expect(t.lookup(4, 2 ** 40 + 2 ** 30)).toBe(-1);
    expect(t.invalidateRange(3, 2 ** 40 + 2 ** 30 + 0x4000, 0x1000)).toBe(1); // only the block overlaps
    expect(t.lookup(3, 2 ** 40 + 2 ** 30 + 0x5_0008)).toBe(page);
    expect(t.physOf(page, 2 ** 40 + 2 ** 30 + 0x5_0008)).toBe(0x1_0000_0008);
  });
});
