import { KernelError, PAGE_SIZE, ULONG_MAX } from "@dmakit/core";
import { DmaRangeList, PHYR_F_BUS_ADDR, PHYR_F_SWIOTLB, PhysRangeList } from "@dmakit/phyr";
import { describe, expect, it } from "vitest";

describe("DmaRangeList", () => {
  it("shares the implementation but keeps its own kind through every derived list", () => {
    const l = DmaRangeList.from([
      { addr: 0x8000_0000, len: 0x3000, flags: PHYR_F_BUS_ADDR },
      { addr: 0x8000_3000, len: 0x1000, flags: PHYR_F_BUS_ADDR },
    ]);
    expect(l.kind).toBe("dma");
    for (const d of [l.slice(0x1000, 0x2000), l.coalesce(), l.splitSegments(PAGE_SIZE, ULONG_MAX)]) {
      expect(d).toBeInstanceOf(DmaRangeList);
      expect(d).not.toBeInstanceOf(PhysRangeList);
      expect(d.kind).toBe("dma");
    }
    expect(l.coalesce().toArray()).toEqual([{ addr: 0x8000_0000, len: 0x4000, flags: PHYR_F_BUS_ADDR }]);
    expect(DmaRangeList.fromPfns([3, 4])).toBeInstanceOf(DmaRangeList);
    expect(PhysRangeList.fromPfns([3, 4]).kind).toBe("phys");
  });

  it("names itself dma_range in errors", () => {
    const l = new DmaRangeList();
    l.push(0x1000, 0x10, PHYR_F_SWIOTLB);
    try {
      l.push(0x2000, 0);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(KernelError);
      expect((e as KernelError).message).toContain("phyr: dma_range[1]: len 0");
    }
    expect(l.count).toBe(1);
  });
});
