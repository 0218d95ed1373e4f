import { PAGE_SIZE } from "@dmakit/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  forEachSg,
  SgPool,
  SgTable,
  sgAllocTable,
  sgAllocTableFromPages,
  sgDmaLen,
  sgDmaSetAddress,
  sgDmaSetLen,
  sgIsLast,
  sgLength,
  sgNents,
  sgPhys,
  sgSetPage,
  sgSplit,
} from "../src/index.js";
import type { Sg } from "../src/Sg.js";
import { coalesce } from "./helpers.js";

const P = PAGE_SIZE;

function bytes(sgl: Sg, n: number): [number, number][] {
  return [...forEachSg(sgl, n)].map((sg) => [sgPhys(sg), sgLength(sg)]);
}

/**
 * Naive split: cut the list's byte stream. `quirk` reproduces lib/sg_split.c: when the last split
 * ends strictly inside an entry that is not the list's last, `--nb_splits` runs past 0, the loop does
 * not break, and that split takes every later entry whole except the list's last, which gets length 0.
 */
function naive(ranges: [number, number][], skip: number, sizes: number[]): [number, number][][] {
  const out: [number, number][][] = [];
  let pos = skip;
  for (let k = 0; k < sizes.length; k++) {
    let s = sizes[k]!;
    if (k === sizes.length - 1) {
      let at = 0;
      for (let i = 0; i < ranges.length; i++) {
        const l = ranges[i]![1];
        if (pos + s > at && pos + s < at + l && i < ranges.length - 1) {
          // Every later entry is copied whole, and the list's last one gets length 0.
          const total = ranges.reduce((a, r) => a + r[1], 0);
          s = total - ranges[ranges.length - 1]![1] - pos;
          break;
        }
        at += l;
      }
    }
    const part: [number, number][] = [];
    let at = 0;
    for (const [a, l] of ranges) {
      const from = Math.max(at, pos);
      const to = Math.min(at + l, pos + s);
      if (to > from) part.push([a + (from - at), to - from]);
      at += l;
    }
    out.push(coalesce(part));
    pos += s;
  }
  return out;
}

describe("sgSplit", () => {
  it("splits the CPU view and, when mapped, the DMA view", () => {
    const pool = new SgPool();
    const t = new SgTable(pool);
    sgAllocTableFromPages(t, [1, 5, 9, 13], 4, 0, 4 * P);
    // DMA view: one merged segment.
    sgDmaSetAddress(t.sgl!, 0x8000_0000);
    sgDmaSetLen(t.sgl!, 4 * P);
    const out: (Sg | null)[] = [];
    const mapped: number[] = [];
    sgSplit(t.sgl!, 1, 100, 2, [P, 2 * P], out, mapped, 0);
    expect(bytes(out[0]!, sgNents(out[0]!))).toEqual([
      [P + 100, P - 100],
      [5 * P, 100],
    ]);
    expect(sgIsLast(out[0]!.add(1))).toBe(true);
    expect(mapped).toEqual([1, 1]);
    expect(sgDmaLen(out[0]!)).toBe(P);
    expect(sgDmaLen(out[1]!)).toBe(2 * P);
    expect(() => sgSplit(t.sgl!, 0, 0, 1, [5 * P], out, null, 0)).toThrow(/EINVAL/);
    const blocks = pool.stats().blocks;
    pool.kfree(out[0]!);
    pool.kfree(out[1]!);
    expect(pool.stats().blocks).toBe(blocks - 2);
  });

  it("reproduces the kernel's overshoot when the last split ends inside a non-final entry", () => {
    const pool = new SgPool();
    const t = new SgTable(pool);
    sgAllocTable(t, 2);
    sgSetPage(t.sgl!, 100, 2, 7);
    sgSetPage(t.sgl!.add(1), 200, 1, 7);
    const out: (Sg | null)[] = [];
    sgSplit(t.sgl!, 0, 0, 1, [1], out, null);
    // Asked for 1 byte; lib/sg_split.c returns entry 0 whole and a zero-length copy of entry 1.
    expect(bytes(out[0]!, sgNents(out[0]!))).toEqual([
      [100 * P + 7, 2],
      [200 * P + 7, 0],
    ]);
  });

  it("property: matches a naive byte split", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 3 * P }), { minLength: 1, maxLength: 10 }),
        fc.array(fc.integer({ min: 1, max: 4 * P }), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 0, max: 2 * P }),
        (lens, sizes, skip) => {
          const pool = new SgPool();
          const t = new SgTable(pool);
          sgAllocTable(t, lens.length);
          let k = 0;
          const ranges: [number, number][] = [];
          for (const sg of forEachSg(t.sgl, lens.length)) {
            const pfn = 100 * (k + 1);
            sgSetPage(sg, pfn, lens[k]!, 7);
            ranges.push([pfn * P + 7, lens[k]!]);
            k++;
          }
          const total = lens.reduce((a, b) => a + b, 0);
          const out: (Sg | null)[] = [];
          const need = skip + sizes.reduce((a, b) => a + b, 0);
          if (need > total) {
            expect(() => sgSplit(t.sgl!, 0, skip, sizes.length, sizes, out, null)).toThrow(/EINVAL/);
            expect(pool.stats().blocks).toBe(1);
            return;
          }
          sgSplit(t.sgl!, 0, skip, sizes.length, sizes, out, null);
          const want = naive(ranges, skip, sizes);
          for (let i = 0; i < sizes.length; i++)
            expect(coalesce(bytes(out[i]!, sgNents(out[i]!)))).toEqual(want[i]);
        },
      ),
      { numRuns: 200 },
    );
  });
});
