import { Device, KernelLog, Prng, SimClock, SZ_1G, SZ_64K } from "@dmakit/core";
import { bootMemory, CpuCache, KernelVm } from "@dmakit/mm-pages";
import { type BenchFigure, type BenchSuite, measureOpsPerSec } from "../../../tools/bench/BenchSuite.js";
import {
  DMA_TO_DEVICE,
  DmaSystem,
  dmaConfigure,
  swiotlbInit,
  swiotlbMap,
  swiotlbTblUnmapSingle,
} from "../src/index.js";

const BUF = 0x9000_0000;

const suite: BenchSuite = {
  package: "dma-mapping",
  async run(): Promise<BenchFigure[]> {
    const clock = new SimClock();
    const log = new KernelLog({ now: () => clock.now() });
    const memory = bootMemory({ banks: [{ start: 0x8000_0000, size: 2 * SZ_1G }] }, { log });
    const cache = new CpuCache(memory.phys, { coherent: true });
    const vm = new KernelVm({ mem: memory.phys, cache, pages: memory.pages });
    const system = new DmaSystem({ mem: memory, cache, vm, log, clock });
    const mem = swiotlbInit(system);
    if (mem === null) throw new Error("bench: no swiotlb pool");
    const dev = new Device({ name: "bench0", log, dmaCoherent: true });
    dmaConfigure(dev, system);
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
