import { KernelLog, PlatformBus, Prng, SZ_1G, SZ_2M, SZ_4K } from "@dmakit/core";
import { IOMMU_READ, IOMMU_WRITE, type IommuTransaction, pgtableMemoryFromAllocator } from "@dmakit/iommu";
import { GFP_KERNEL, PageAllocator, PhysMem } from "@dmakit/mm-pages";
import { type BenchFigure, type BenchSuite, measureOpsPerSec } from "../../../tools/bench/BenchSuite.js";
import { ArmSmmuV3 } from "../src/index.js";

const RW = IOMMU_READ | IOMMU_WRITE;
const RAM = 0x4000_0000;

function machine(iotlbCapacity = 256) {
  const log = new KernelLog({ capacity: 64 });
  const phys = new PhysMem({ banks: [{ start: RAM, size: 512 * 1024 * 1024 }] }, { log });
  const mem = pgtableMemoryFromAllocator(phys, new PageAllocator(phys));
  const smmu = new ArmSmmuV3({ name: "smmu0", mem, log, iotlbCapacity });
  const dev = new PlatformBus({ log }).addDevice({ name: "dev0", streamIds: [1] });
  smmu.ops.probeDevice(dev);
  const d = smmu.domainAllocPagingFlags(dev, 0);
  d.ops.attachDev(d, dev);
  const pt = d.pgtblOps;
  if (pt === null) throw new Error("no page table");
  return { smmu, d, pt, mem };
}

/** Times `round` (which does `ops` operations) repeatedly for about `ms`; returns ops/s. */
function timed(ms: number, ops: number, round: () => void, reset: () => void): number {
  let n = 0;
  let t = 0;
  for (let w = 0; w < 3; w++) {
    round();
    reset();
  }
  while (t < ms) {
    const t0 = performance.now();
    round();
    t += performance.now() - t0;
    n += ops;
    reset();
  }
  return (n / t) * 1000;
}

const suite: BenchSuite = {
  package: "iommu-arm-smmu-v3",
  async run(): Promise<BenchFigure[]> {
    const out: BenchFigure[] = [];
    // 4K map/unmap: one 4K page per map_pages call (as iommu_map does for a scattered buffer),
    // 16 MiB of IOVA per round, tables kept (the ARM format never frees leaf tables on unmap).
    {
      const { pt } = machine();
      const pages = 4096;
      const base = 0x1000_0000;
      const mapRound = () => {
        for (let i = 0; i < pages; i++)
          pt.mapPages(base + i * SZ_4K, RAM + ((i * 7919) % 65536) * SZ_4K, SZ_4K, 1, RW, GFP_KERNEL);
      };
      const unmapRound = () => {
        for (let i = 0; i < pages; i++) pt.unmapPages(base + i * SZ_4K, SZ_4K, 1, null);
      };
      const mapRate = timed(400, pages, mapRound, unmapRound);
      let unmapTotal = 0;
      let unmapN = 0;
      for (let r = 0; r < 60; r++) {
        mapRound();
        const t0 = performance.now();
        unmapRound();
        unmapTotal += performance.now() - t0;
        unmapN += pages;
      }
      out.push({
        id: "iommu.map.4k.arm-smmu-v3",
        value: mapRate,
        unit: "pages/s",
        target: ">= 5e6",
        note: "io-pgtable map_pages, one 4K page per call, scattered PAs, 4-level S1 table",
      });
      out.push({
        id: "iommu.unmap.4k.arm-smmu-v3",
        value: (unmapN / unmapTotal) * 1000,
        unit: "pages/s",
        target: ">= 5e6",
        note: "io-pgtable unmap_pages, one 4K page per call, no gather",
      });
    }
    {
      const { pt } = machine();
      const n = 512;
      const rate = timed(
        300,
        n,
        () => {
          for (let i = 0; i < n; i++) pt.mapPages(SZ_1G + i * SZ_2M, RAM, SZ_2M, 1, RW, GFP_KERNEL);
        },
        () => {
          for (let i = 0; i < n; i++) pt.unmapPages(SZ_1G + i * SZ_2M, SZ_2M, 1, null);
        },
      );
      out.push({
        id: "iommu.map.2m-block.arm-smmu-v3",
        value: rate,
        unit: "ops/s",
        note: "2M block per map_pages call",
      });
    }
    {
      const { pt, smmu } = machine();
      for (let i = 0; i < 64; i++) pt.mapPages(i * SZ_4K, RAM + i * SZ_4K, SZ_4K, 1, RW, GFP_KERNEL);
      const txn: IommuTransaction = { streamId: 1, iova: 0, size: 64, write: false };
      const hw = smmu.hw;
      let k = 0;
      const hit = await measureOpsPerSec(
        () => {
          for (let i = 0; i < 1000; i++) {
            txn.iova = ((k++ & 63) << 12) | 0x40;
            hw.translate(txn);
          }
        },
        { opsPerCall: 1000 },
      );
      out.push({
        id: "iommu.translate.iotlb-hit.arm-smmu-v3",
        value: hit,
        unit: "ops/s",
        target: ">= 2e7",
        note: "64 pages cycled: served by the TBU micro-TLB (64 entries) in front of the 256-entry IOTLB",
      });
      for (let i = 64; i < 128; i++) pt.mapPages(i * SZ_4K, RAM + i * SZ_4K, SZ_4K, 1, RW, GFP_KERNEL);
      const main = await measureOpsPerSec(
        () => {
          for (let i = 0; i < 1000; i++) {
            txn.iova = ((k++ & 127) << 12) | 0x40;
            hw.translate(txn);
          }
        },
        { opsPerCall: 1000 },
      );
      out.push({
        id: "iommu.translate.iotlb-hit-main.arm-smmu-v3",
        value: main,
        unit: "ops/s",
        note: "128 pages cycled: every access misses the micro-TLB and hits the core Iotlb (config cache for STE/CD)",
      });
    }
    {
      const { pt, smmu } = machine(16);
      const pages = 4096;
      for (let i = 0; i < pages; i++) pt.mapPages(i * SZ_4K, RAM + i * SZ_4K, SZ_4K, 1, RW, GFP_KERNEL);
      const txn: IommuTransaction = { streamId: 1, iova: 0, size: 64, write: false };
      const hw = smmu.hw;
      let k = 0;
      const walk = await measureOpsPerSec(
        () => {
          for (let i = 0; i < 1000; i++) {
            txn.iova = ((k++ * 97) % pages) * SZ_4K;
            hw.translate(txn);
          }
        },
        { opsPerCall: 1000 },
      );
      out.push({
        id: "iommu.translate.walk.arm-smmu-v3",
        value: walk,
        unit: "ops/s",
        target: ">= 3e6",
        note: "IOTLB miss on every access (16 entries, 4096 pages): 4-level S1 walk in RAM + fill",
      });
    }
    {
      const { pt, d } = machine();
      const rng = new Prng(1);
      const pages = SZ_1G / SZ_4K;
      for (let i = 0; i < pages; i++)
        pt.mapPages(0x8000_0000 + i * SZ_4K, rng.below(1 << 24) * SZ_4K, SZ_4K, 1, RW, GFP_KERNEL);
      const bytes = (d.pgtbl?.tablePages ?? 0) * SZ_4K;
      out.push({
        id: "iommu.pgtable.bytes-per-4k-page.arm-smmu-v3",
        value: bytes / pages,
        unit: "bytes/page",
        note: "1 GiB mapped as 262144 scattered 4K pages, S1 4K granule, 48-bit ias",
      });
    }
    return out;
  },
};

export default suite;
