import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DmaDebugEntries, type DmaDebugRef, HASH_FN_SHIFT, HASH_SIZE } from "../../src/index.js";

interface Naive {
  id: number;
  devId: number;
  devAddr: number;
  size: number;
  type: number;
  dir: number;
  sgCallEnts: number;
}

const bucketOf = (a: number) => Math.floor(a / 2 ** HASH_FN_SHIFT) % HASH_SIZE;

/** kernel/dma/debug.c __hash_bucket_find over a plain list in insertion order. */
function naiveFind(live: Naive[], bucket: number, ref: DmaDebugRef, containing: boolean): number {
  let ret = -1;
  let matches = 0;
  let last = -1;
  for (const e of live) {
    if (bucketOf(e.devAddr) !== bucket || e.devId !== ref.devId) continue;
    const ok = containing
      ? e.devAddr <= ref.devAddr && e.devAddr + e.size >= ref.devAddr + ref.size
      : e.devAddr === ref.devAddr;
    if (!ok) continue;
    matches++;
    const lvl =
      Number(e.size === ref.size) +
      Number(e.type === ref.type) +
      Number(e.dir === ref.dir) +
      Number(e.sgCallEnts === ref.sgCallEnts);
    if (lvl === 4) return e.id;
    if (lvl > last) {
      last = lvl;
      ret = e.id;
    }
  }
  return matches === 1 ? ret : -1;
}

function naiveContaining(live: Naive[], ref: DmaDebugRef): number {
  const start = Math.floor(ref.devAddr / 2 ** HASH_FN_SHIFT);
  for (let i = 0; i < Math.min(HASH_SIZE, start + 1); i++) {
    const e = naiveFind(live, (start - i) % HASH_SIZE, ref, true);
    if (e >= 0) return e;
  }
  return -1;
}

const op = fc.oneof(
  fc.record({
    kind: fc.constant("add" as const),
    devId: fc.integer({ min: 0, max: 1 }),
    page: fc.integer({ min: 0, max: 40 }),
    size: fc.constantFrom(64, 4096, 0x3000, 0x20000),
    dir: fc.integer({ min: 0, max: 2 }),
    // Also addresses 2^27 apart: same bucket, different address.
    far: fc.boolean(),
  }),
  fc.record({ kind: fc.constant("remove" as const), pick: fc.nat() }),
  fc.record({
    kind: fc.constant("find" as const),
    devId: fc.integer({ min: 0, max: 1 }),
    page: fc.integer({ min: 0, max: 60 }),
    off: fc.constantFrom(0, 0x40, 0x1000),
    size: fc.constantFrom(64, 4096, 0x3000),
    dir: fc.integer({ min: 0, max: 2 }),
  }),
);

describe("DmaDebugEntries", () => {
  it("hashes, best-fit lookups and the bucket walk-back agree with a plain list", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const t = new DmaDebugEntries(32);
        const live: Naive[] = [];
        for (const o of ops) {
          if (o.kind === "add") {
            const { idx } = t.alloc();
            const devAddr = o.page * 0x1000 + (o.far ? 2 ** 27 : 0);
            t.devId[idx] = o.devId;
            t.devAddr[idx] = devAddr;
            t.size[idx] = o.size;
            t.dir[idx] = o.dir;
            t.type[idx] = 4;
            t.add(idx);
            live.push({ id: idx, devId: o.devId, devAddr, size: o.size, type: 4, dir: o.dir, sgCallEnts: 0 });
          } else if (o.kind === "remove") {
            if (live.length === 0) continue;
            const [e] = live.splice(o.pick % live.length, 1) as [Naive];
            t.remove(e.id);
          } else {
            const ref: DmaDebugRef = {
              devId: o.devId,
              devAddr: o.page * 0x1000 + o.off,
              size: o.size,
              type: 4,
              dir: o.dir,
              sgCallEnts: 0,
              paddr: -1,
            };
            expect(t.findExact(ref)).toBe(naiveFind(live, bucketOf(ref.devAddr), ref, false));
            expect(t.findContaining(ref)).toBe(naiveContaining(live, ref));
          }
        }
        expect(t.live).toBe(live.length);
        expect(t.numFree).toBe(t.nrTotal - live.length);
        const seen: number[] = [];
        t.forEach((e) => {
          seen.push(e);
        });
        expect(seen.sort((a, b) => a - b)).toEqual(live.map((e) => e.id).sort((a, b) => a - b));
      }),
      { numRuns: 150 },
    );
  });

  it("puts DMA_MAPPING_ERROR in the last bucket, like (~0ULL >> 13) & 16383", () => {
    expect(DmaDebugEntries.bucketOf(2 ** 64)).toBe(HASH_SIZE - 1);
    expect(DmaDebugEntries.bucketOf(0x2000 * HASH_SIZE + 0x4000)).toBe(2);
  });
});
