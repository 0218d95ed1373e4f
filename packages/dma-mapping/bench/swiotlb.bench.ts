import { Prng, SZ_1G, SZ_64K } from "@dmakit/core";
import { type BenchFigure, type BenchSuite, measureOpsPerSec } from "../../../tools/bench/BenchSuite.js";
import { DMA_TO_DEVICE, swiotlbMap, swiotlbTblUnmapSingle } from "../src/index.js";
import { makeMachine, RAM_BASE } from "../test/helpers/machine.js";

const BUF = 0x9000_0000;

const suite: BenchSuite = {
  package: "dma-mapping",
  async run(): Promise<BenchFigure[]> {
    const m = makeMachine({
      layout: { banks: [{ start: RAM_BASE, size: 2 * SZ_1G }] },
      coherent: true,
      swiotlb: {},
    });
    const { cache, system, swiotlb: mem } = m;
    if (mem === null) throw new Error("bench: no swiotlb pool");
    const dev = m.device("bench0");
    cache.cpuWrite(BUF, new Prng(1).fill(new Uint8Array(SZ_64K)));
    const before = system.stats.bytesBounced;
    let calls = 0;
    const gbs = await measureOpsPerSec(
      () => {
        const a = swiotlbMap(dev, BUF, SZ_64K, DMA_TO_DEVICE, 0);
        swiotlbTblUnmapSingle(dev, a, SZ_64K, DMA_TO_DEVICE, 0);
        calls++;
      },
      { opsPerCall: SZ_64K / 1e9, timeMs: 1000 },
    );
    // Bytes copied per map+unmap pair must be exactly the buffer once (TO_DEVICE: no copy back).
    if (system.stats.bytesBounced - before !== calls * SZ_64K || mem.used !== 0)
      throw new Error("bench: unexpected bounce byte count or leaked slots");
    return [
      {
        id: "dma.swiotlb.bounce.64k",
        value: gbs,
        unit: "GB/s",
        note: "swiotlbMap(DMA_TO_DEVICE) + swiotlbTblUnmapSingle of a 64 KiB buffer on a coherent device, 64 MiB pool; counts the 64 KiB copied per pair (CPU copy through the cache model)",
      },
    ];
  },
};

export default suite;
