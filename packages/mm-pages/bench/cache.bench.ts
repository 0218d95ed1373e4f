import { KernelLog, Prng, SZ_2M, SZ_64M } from "@dmakit/core";
import { type BenchFigure, type BenchSuite, measureOpsPerSec } from "../../../tools/bench/BenchSuite.js";
import { CpuCache, PhysMem } from "../src/index.js";

const RAM = 0x8000_0000;

function setup(coherent: boolean): { cache: CpuCache; buf: Uint8Array } {
  const mem = new PhysMem({ banks: [{ start: RAM, size: SZ_64M }] }, { log: new KernelLog() });
  const cache = new CpuCache(mem, { coherent });
  return { cache, buf: new Prng(1).fill(new Uint8Array(SZ_2M)) };
}

const suite: BenchSuite = {
  package: "mm-pages",
  async run(): Promise<BenchFigure[]> {
    const figures: BenchFigure[] = [];

    // A driver filling a 2 MiB DMA buffer, then dma_sync_single_for_device (clean to PoC).
    const nc = setup(false);
    const writeClean = await measureOpsPerSec(
      () => {
        nc.cache.cpuWrite(RAM, nc.buf);
        nc.cache.cleanRange(RAM, SZ_2M);
      },
      { opsPerCall: SZ_2M / 1e9, timeMs: 1000 },
    );
    if (nc.cache.stats().dirtyLines !== 0 || nc.cache.findings().length !== 0)
      throw new Error("bench: cache not clean after the measured loop");
    figures.push({
      id: "mm-pages.cache.noncoherent.write",
      value: writeClean,
      unit: "GB/s",
      note: "cpuWrite of a 2 MiB buffer (32768 lines, all dirtied) into an unbounded non-coherent cache, then cleanRange writing every line back; warm (lines resident)",
    });

    // The device side after it: DMA write, then dma_sync_single_for_cpu (invalidate) and a CPU read.
    const devData = new Prng(2).fill(new Uint8Array(SZ_2M));
    const out = new Uint8Array(SZ_2M);
    const readBack = await measureOpsPerSec(
      () => {
        nc.cache.deviceWrite(RAM, devData, { device: "bench" });
        nc.cache.invalidateRange(RAM, SZ_2M);
        nc.cache.cpuRead(RAM, out);
      },
      { opsPerCall: SZ_2M / 1e9, timeMs: 1000 },
    );
    figures.push({
      id: "mm-pages.cache.noncoherent.dma-from-device-read",
      value: readBack,
      unit: "GB/s",
      note: "non-coherent device write of 2 MiB, invalidateRange, CPU read of 2 MiB (every line misses and refills)",
    });

    const co = setup(true);
    const coherentWrite = await measureOpsPerSec(
      () => {
        co.cache.cpuWrite(RAM, co.buf);
        co.cache.deviceRead(RAM, out);
      },
      { opsPerCall: SZ_2M / 1e9, timeMs: 1000 },
    );
    figures.push({
      id: "mm-pages.cache.coherent.write-snoop",
      value: coherentWrite,
      unit: "GB/s",
      note: "cpuWrite of 2 MiB, then a coherent device reads it, snooping the dirty lines (no maintenance)",
    });
    return figures;
  },
};

export default suite;
