import { Device, KernelLog, SimClock, SZ_1G, SZ_4K } from "@dmakit/core";
import { bootMemory, CpuCache, KernelVm } from "@dmakit/mm-pages";
import { type BenchFigure, type BenchSuite, measureOpsPerSec } from "../../../tools/bench/BenchSuite.js";
import { DMA_BIDIRECTIONAL, DmaSystem, dmaConfigure, dmaMapPhys, dmaUnmapPhys } from "../src/index.js";

const BUF = 0x9000_0000;

/**
 * `dma.map-unmap.4k.direct`: one `dma_map_phys` + `dma_unmap_phys` pair of a 4 KiB buffer on a
 * coherent device without an IOMMU (dma-direct, no swiotlb pool, dma-debug off, no trace sink).
 */
const suite: BenchSuite = {
  package: "dma-mapping",
  async run(): Promise<BenchFigure[]> {
    const clock = new SimClock();
    const log = new KernelLog({ now: () => clock.now(), capacity: 64 });
    const memory = bootMemory({ banks: [{ start: 0x8000_0000, size: SZ_1G }] }, { log });
    const cache = new CpuCache(memory.phys, { coherent: true });
    const vm = new KernelVm({ mem: memory.phys, cache, pages: memory.pages });
    const system = new DmaSystem({ mem: memory, cache, vm, log, clock });
    const dev = new Device({ name: "bench0", log, dmaMask: 2 ** 64, dmaCoherent: true });
    dmaConfigure(dev, system);
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
    return [
      {
        id: "dma.map-unmap.4k.direct",
        value: 1e9 / ops,
        unit: "ns/op",
        target: "<= 200",
        note: "dmaMapPhys + dmaUnmapPhys of 4 KiB, coherent dma-direct device, no swiotlb, dma-debug off",
      },
    ];
  },
};

export default suite;
