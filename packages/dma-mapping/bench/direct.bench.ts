import { PAGE_SIZE, SZ_1G, SZ_4K } from "@dmakit/core";
import { SgTable, sgAllocTableFromPages } from "@dmakit/scatterlist";
import { type BenchFigure, type BenchSuite, measureOpsPerSec } from "../../../tools/bench/BenchSuite.js";
import {
  DMA_BIDIRECTIONAL,
  DMA_TO_DEVICE,
  dmaMapPhys,
  dmaMapSgAttrs,
  dmaUnmapPhys,
  dmaUnmapSgAttrs,
} from "../src/index.js";
import { makeMachine, RAM_BASE } from "../test/helpers/machine.js";

const BUF = 0x9000_0000;

/**
 * dma-direct on a coherent device without an IOMMU (no swiotlb pool, dma-debug off, no trace sink):
 * - `dma.map-unmap.4k.direct`: one `dma_map_phys` + `dma_unmap_phys` pair of a 4 KiB buffer;
 * - `dma.map-sg.8x4k.direct`: `dma_map_sg` + `dma_unmap_sg` of 8 scattered pages (8 segments).
 */
const suite: BenchSuite = {
  package: "dma-mapping",
  async run(): Promise<BenchFigure[]> {
    const m = makeMachine({
      layout: { banks: [{ start: RAM_BASE, size: SZ_1G }] },
      coherent: true,
      logCapacity: 64,
    });
    const dev = m.device("bench0", { dmaMask: 2 ** 64 });
    const system = m.system;
    let bad = 0;
    const pairs = 1000;
    const ops = await measureOpsPerSec(
      () => {
        for (let i = 0; i < pairs; i++) {
          const a = dmaMapPhys(dev, BUF, SZ_4K, DMA_BIDIRECTIONAL, 0);
          if (a !== BUF) bad++;
          dmaUnmapPhys(dev, a, SZ_4K, DMA_BIDIRECTIONAL, 0);
        }
      },
      { opsPerCall: pairs, timeMs: 1000 },
    );
    if (bad > 0 || system.stats.mappings !== system.stats.unmappings)
      throw new Error("bench: dma-direct did not map 1:1 or left mappings behind");

    const sgt = new SgTable(m.pool);
    const pfns = Array.from({ length: 8 }, (_, k) => BUF / PAGE_SIZE + 3 * k);
    sgAllocTableFromPages(sgt, pfns, 8, 0, 8 * SZ_4K);
    const sgl = sgt.sgl;
    if (sgl === null) throw new Error("bench: no sg list");
    const lists = 64;
    const sgOps = await measureOpsPerSec(
      () => {
        for (let i = 0; i < lists; i++) {
          if (dmaMapSgAttrs(dev, sgl, 8, DMA_TO_DEVICE, 0) !== 8) bad++;
          dmaUnmapSgAttrs(dev, sgl, 8, DMA_TO_DEVICE, 0);
        }
      },
      { opsPerCall: lists, timeMs: 1000 },
    );
    if (bad > 0) throw new Error("bench: dma_direct_map_sg did not map 8 segments");
    return [
      {
        id: "dma.map-unmap.4k.direct",
        value: 1e9 / ops,
        unit: "ns/op",
        target: "<= 200",
        note: "dmaMapPhys + dmaUnmapPhys of 4 KiB, coherent dma-direct device, no swiotlb, dma-debug off",
      },
      {
        id: "dma.map-sg.8x4k.direct",
        value: 1e9 / sgOps,
        unit: "ns/op",
        note: "dmaMapSgAttrs + dmaUnmapSgAttrs of 8 scattered pages (8 segments), coherent dma-direct device",
      },
    ];
  },
};

export default suite;
