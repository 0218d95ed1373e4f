import { isKernelError } from "@dmakit/core";
import { GFP_KERNEL, PageAllocator } from "@dmakit/mm-pages";
import { describe, expect, it } from "vitest";
import {
  forEachSgtableSg,
  SgPool,
  SgTable,
  sgAllocTable,
  sgChainPtr,
  sgFreeTable,
  sgIsChain,
  sgIsLast,
  sgLast,
  sgNents,
  sgTableFootprint,
} from "../src/index.js";
import { machine } from "./helpers.js";

describe("sgAllocTable / sgFreeTable", () => {
  it("chains 128-slot chunks like __sg_alloc_table", () => {
    const pool = new SgPool();
    const t = new SgTable(pool);
    sgAllocTable(t, 300);
    expect([t.nents, t.origNents]).toEqual([300, 300]);
    // 300 = 127 + 127 + 46: three chunks, slot 127 of the first two is a chain entry.
    expect(pool.stats().blocks).toBe(3);
    const head = t.sgl!;
    expect(sgIsChain(head.add(127))).toBe(true);
    const second = sgChainPtr(head.add(127));
    expect(sgIsChain(second.add(127))).toBe(true);
    expect(sgNents(head)).toBe(300);
    const last = sgLast(head, 300);
    expect(sgIsLast(last)).toBe(true);
    expect(last.index).toBe(sgChainPtr(second.add(127)).index + 45);
    expect(sgTableFootprint(t)).toMatchObject({
      entries: 300,
      chainSlots: 2,
      cBytes: 16 + (128 + 128 + 46) * 32,
    });
    sgFreeTable(t);
    expect(pool.stats().blocks).toBe(0);
    expect(t.sgl).toBeNull();
    expect(t.origNents).toBe(300);
  });

  it("exactly 128 entries need no chain; 129 need two chunks", () => {
    const pool = new SgPool();
    const a = new SgTable(pool);
    sgAllocTable(a, 128);
    expect(pool.stats().blocks).toBe(1);
    expect(sgIsLast(a.sgl!.add(127))).toBe(true);
    const b = new SgTable(pool);
    sgAllocTable(b, 129);
    expect(pool.stats().blocks).toBe(3);
    expect(sgNents(b.sgl)).toBe(129);
  });

  it("takes 128-entry chunks from the page allocator and gives them back", () => {
    const { mem } = machine();
    const pa = new PageAllocator(mem);
    const pool = new SgPool({ mem, pageAllocator: pa });
    const t = new SgTable(pool);
    sgAllocTable(t, 400, GFP_KERNEL);
    // 400 = 127 * 3 + 19: three page chunks and one kmalloc chunk.
    expect(pool.stats().pagesHeld).toBe(3);
    sgFreeTable(t);
    expect(pool.stats().pagesHeld).toBe(0);
  });

  it("fails with ENOMEM and leaves the table and pool as they were", () => {
    let calls = 0;
    const pool = new SgPool({ failAlloc: () => ++calls === 3 });
    const t = new SgTable(pool);
    let err: unknown;
    try {
      sgAllocTable(t, 1000);
    } catch (e) {
      err = e;
    }
    expect(isKernelError(err, "ENOMEM")).toBe(true);
    expect(t.sgl).toBeNull();
    expect([t.nents, t.origNents]).toEqual([0, 0]);
    expect(pool.stats().blocks).toBe(0);
  });

  it("rejects nents 0 and negative sizes with EINVAL", () => {
    const t = new SgTable(new SgPool());
    expect(() => sgAllocTable(t, 0)).toThrow(/EINVAL/);
    expect(() => sgAllocTable(t, -1)).toThrow(/EINVAL/);
    expect(t.sgl).toBeNull();
  });

  it("a freed table used again throws EFAULT; a second free is a no-op", () => {
    const pool = new SgPool();
    const t = new SgTable(pool);
    sgAllocTable(t, 4);
    const stale = t.sgl!;
    sgFreeTable(t);
    sgFreeTable(t);
    expect(() => [...forEachSgtableSg(t)]).toThrow(/EFAULT/);
    expect(() => sgNents(stale)).toThrow(/EFAULT/);
  });
});
