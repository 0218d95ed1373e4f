import { errnoOf } from "@dmakit/core";
import { describe, expect, it } from "vitest";
import {
  forEachSg,
  SgPool,
  SgSlots,
  SgTable,
  sgAllocTable,
  sgDmaAddress,
  sgDmaLen,
  sgFreeTable,
  sgLength,
  sgOffset,
  sgPhys,
  sgSetPage,
} from "../src/index.js";

describe("SgSlots", () => {
  it("walks the same entries as for_each_sg across chained arrays and reads the same fields", () => {
    const pool = new SgPool();
    const sgt = new SgTable(pool);
    // More than one 128-entry chunk: the walk must follow chain entries.
    sgAllocTable(sgt, 300);
    let k = 0;
    for (const s of forEachSg(sgt.sgl, 300)) sgSetPage(s, 0x1000 + 3 * k, 100 + k, k++ % 7);
    const sl = new SgSlots();
    let i = sl.first(sgt.sgl, "for_each_sg");
    k = 0;
    for (const s of forEachSg(sgt.sgl, 300)) {
      expect(i).toBe(s.index);
      expect(sl.phys(i)).toBe(sgPhys(s));
      expect(sl.length(i)).toBe(sgLength(s));
      expect(sl.offset(i)).toBe(sgOffset(s));
      sl.setDmaAddress(i, 0x1_0000_0000 + k * 4096);
      sl.setDmaLen(i, k);
      expect(sgDmaAddress(s)).toBe(0x1_0000_0000 + k * 4096);
      expect(sgDmaLen(s)).toBe(k);
      k++;
      if (k < 300) i = sl.next(i);
    }
    expect(sl.next(i)).toBe(-1);
  });

  it("checks the head and setter values like the handle accessors", () => {
    const pool = new SgPool();
    const sgt = new SgTable(pool);
    sgAllocTable(sgt, 4);
    const sl = new SgSlots();
    expect(errnoOf(() => sl.first(null, "for_each_sg"))).toBe("EFAULT");
    const i = sl.first(sgt.sgl, "for_each_sg");
    expect(errnoOf(() => sl.setLength(i, -1))).toBe("EINVAL");
    expect(errnoOf(() => sl.setDmaLen(i, 2 ** 32))).toBe("EINVAL");
    expect(errnoOf(() => sl.setDmaAddress(i, 0.5))).toBe("EINVAL");
    expect(errnoOf(() => sl.setDmaAddress(i, 2 ** 64))).toBeNull();
    // No page (NULL): sg_phys is EFAULT, as sgPhys.
    expect(errnoOf(() => sl.phys(i))).toBe("EFAULT");
    const head = sgt.sgl;
    sgFreeTable(sgt);
    expect(errnoOf(() => sl.first(head, "for_each_sg"))).toBe("EFAULT");
  });
});
