import { KernelError, PAGE_SIZE } from "@dmakit/core";
import { describe, expect, it } from "vitest";
import {
  SgAppendTable,
  SgPool,
  SgTable,
  sgAllocAppendTableFromPages,
  sgAllocTableFromPagesSegment,
  sgFreeAppendTable,
  sgFreeTable,
  sgNents,
  UINT_MAX,
} from "../src/index.js";

// tools/testing/scatterlist/main.c: { alloc_ret, num_pages, pfn, pfn_app, size, max_seg, expected_segments }.
// The harness passes page pointers (1 + pfn) * PAGE_SIZE, i.e. pfns shifted by one.
type Row = [number, number, number[], number[] | null, number, number, number];
const sgmax = UINT_MAX;
const P = PAGE_SIZE;
const rows: Row[] = [
  [-22, 1, [0], null, P, 0, 1],
  [0, 1, [0], null, P, P + 1, 1],
  [0, 1, [0], null, P, sgmax, 1],
  [0, 1, [0], null, 1, sgmax, 1],
  [0, 2, [0, 1], null, 2 * P, sgmax, 1],
  [0, 2, [1, 0], null, 2 * P, sgmax, 2],
  [0, 3, [0, 1, 2], null, 3 * P, sgmax, 1],
  [0, 3, [0, 1, 2], null, 3 * P, sgmax, 1],
  [0, 3, [0, 1, 2], [3, 4, 5], 3 * P, sgmax, 1],
  [0, 3, [0, 1, 2], [4, 5, 6], 3 * P, sgmax, 2],
  [0, 3, [0, 2, 1], null, 3 * P, sgmax, 3],
  [0, 3, [0, 1, 3], null, 3 * P, sgmax, 2],
  [0, 3, [1, 2, 4], null, 3 * P, sgmax, 2],
  [0, 3, [1, 3, 4], null, 3 * P, sgmax, 2],
  [0, 4, [0, 1, 3, 4], null, 4 * P, sgmax, 2],
  [0, 5, [0, 1, 3, 4, 5], null, 5 * P, sgmax, 2],
  [0, 5, [0, 1, 3, 4, 6], null, 5 * P, sgmax, 3],
  [0, 5, [0, 1, 2, 3, 4], null, 5 * P, sgmax, 1],
  [0, 5, [0, 1, 2, 3, 4], null, 5 * P, 2 * P, 3],
  [0, 6, [0, 1, 2, 3, 4, 5], null, 6 * P, 2 * P, 3],
  [0, 6, [0, 2, 3, 4, 5, 6], null, 6 * P, 2 * P, 4],
  [0, 6, [0, 1, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], 6 * P, 12 * P, 2],
];

const pagesOf = (a: number[]): number[] => a.map((x) => 1 + x);

describe("tools/testing/scatterlist/main.c table", () => {
  it.each(rows.map((r, i) => [i, ...r] as const))(
    "row %i: ret %i, %i pages",
    (_i, allocRet, numPages, pfn, pfnApp, size, maxSeg, expected) => {
      const pool = new SgPool();
      const append = new SgAppendTable(pool);
      const leftPages = pfnApp ? numPages : 0;
      const run = (): void => {
        if (pfnApp) sgAllocAppendTableFromPages(append, pagesOf(pfn), numPages, 0, size, maxSeg, leftPages);
        else sgAllocTableFromPagesSegment(append.sgt, pagesOf(pfn), numPages, 0, size, maxSeg);
      };
      if (allocRet) {
        let err: unknown;
        try {
          run();
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(KernelError);
        expect((err as KernelError).ret).toBe(allocRet);
        expect(append.sgt.sgl).toBeNull();
        expect(pool.log.warnCount).toBe(1);
        return;
      }
      run();
      if (pfnApp) sgAllocAppendTableFromPages(append, pagesOf(pfnApp), numPages, 0, size, maxSeg, 0);
      expect(append.sgt.nents).toBe(expected);
      if (!pfnApp) expect(append.sgt.origNents).toBe(expected);
      expect(sgNents(append.sgt.sgl)).toBe(expected);
      if (pfnApp) sgFreeAppendTable(append);
      else sgFreeTable(append.sgt);
      expect(pool.stats().blocks).toBe(0);
    },
  );

  it("a plain SgTable works the same way", () => {
    const pool = new SgPool();
    const t = new SgTable(pool);
    sgAllocTableFromPagesSegment(t, [1, 3, 4, 5, 6, 7], 6, 0, 6 * P, 2 * P);
    expect([t.nents, t.origNents]).toEqual([4, 4]);
  });
});
