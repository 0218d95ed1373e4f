import { PAGE_SIZE } from "@dmakit/core";
import { type Sg, SgTable, sgAllocTableFromPages } from "@dmakit/scatterlist";
import { describe, expect, it, vi } from "vitest";

// An implementation returning an errno outside the allowed set, which no real path does: the
// dispatcher must turn it into -EIO with a WARN_ON_ONCE (kernel/dma/mapping.c __dma_map_sg_attrs).
const next = vi.hoisted(() => ({ ret: 0 }));
vi.mock("../src/dmaDirect.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("../src/dmaDirect.js")>();
  return { ...real, dmaDirectMapSg: () => next.ret };
});

const { DMA_TO_DEVICE, dmaMapSgAttrs, dmaMapSgtable } = await import("../src/index.js");
const { LOW_RAM, makeMachine, SPLIT_RAM } = await import("./helpers/machine.js");

describe("__dma_map_sg_attrs errno rule", () => {
  it("-ENOSPC from an implementation becomes -EIO with WARN_ON_ONCE; allowed errnos pass through unwarned", () => {
    const m = makeMachine({ layout: SPLIT_RAM });
    const dev = m.device("dev0");
    const sgt = new SgTable(m.pool);
    sgAllocTableFromPages(sgt, [LOW_RAM / PAGE_SIZE], 1, 0, PAGE_SIZE);
    next.ret = -28;
    expect(() => dmaMapSgtable(dev, sgt, DMA_TO_DEVICE)).toThrow(expect.objectContaining({ errno: "EIO" }));
    expect(dmaMapSgAttrs(dev, sgt.sgl as Sg, 1, DMA_TO_DEVICE)).toBe(0);
    expect(m.log.find({ warn: true }).map((r) => r.message)).toEqual([
      "__dma_map_sg_attrs: WARN_ON_ONCE(ents != -EINVAL && ents != -ENOMEM && ents != -EIO && ents != -EREMOTEIO (ents -28))",
    ]);
    for (const [ret, errno] of [
      [-22, "EINVAL"],
      [-12, "ENOMEM"],
      [-121, "EREMOTEIO"],
    ] as const) {
      next.ret = ret;
      expect(() => dmaMapSgtable(dev, sgt, DMA_TO_DEVICE)).toThrow(expect.objectContaining({ errno }));
    }
    expect(m.log.warnCount).toBe(1);
    expect(m.system.stats.mapErrors).toBe(5);
  });
});
