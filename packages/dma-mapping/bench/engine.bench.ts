import { PAGE_SIZE, PlatformBus, SZ_1G, SZ_2M } from "@dmakit/core";
import {
  type IommuSubsystem,
  iommuFwspecAddIds,
  iommuFwspecInit,
  iommuGetDmaDomain,
  iommuProbeDevice,
  pgtableMemoryFromAllocator,
} from "@dmakit/iommu";
import { ArmSmmuV3 } from "@dmakit/iommu-arm-smmu-v3";
import { type BenchFigure, type BenchSuite, measureOpsPerSec } from "../../../tools/bench/BenchSuite.js";
import { DMA_FROM_DEVICE, DmaEngine, dmaConfigure, dmaMapPhys } from "../src/index.js";
import { makeMachine, RAM_BASE } from "../test/helpers/machine.js";

/**
 * `dma.device-write.2m.iommu`: a device writes 2 MiB at one IOVA through an SMMUv3 whose IOTLB
 * already holds the translation (4 KiB bursts, each translated; a 2 MiB block mapping), into RAM
 * through the cache model (non-coherent SoC, nothing cached).
 */
const suite: BenchSuite = {
  package: "dma-mapping",
  async run(): Promise<BenchFigure[]> {
    const m = makeMachine({
      layout: { banks: [{ start: RAM_BASE, size: SZ_1G }] },
      iommu: "strict",
      vtd: false,
      logCapacity: 64,
    });
    const { mem: memory, log, clock, system } = m;
    const iommu = m.iommu as IommuSubsystem;
    const smmu = new ArmSmmuV3({
      name: "smmu0",
      mem: pgtableMemoryFromAllocator(memory.phys, memory.pages),
      log,
      clock,
    });
    iommu.iommuDeviceRegister(smmu.iommu);
    const gpu = new PlatformBus({ log }).addDevice({ name: "gpu0", dmaMask: 2 ** 48, streamIds: [0x20] });
    iommuFwspecInit(gpu, smmu.iommu);
    iommuFwspecAddIds(gpu, [0x20]);
    iommuProbeDevice(iommu, gpu);
    dmaConfigure(gpu, system, { domain: iommuGetDmaDomain(gpu) });
    const pfn = memory.pages.allocPages(0, 9);
    if (pfn === null) throw new Error("bench: no 2 MiB block");
    const iova = dmaMapPhys(gpu, pfn * PAGE_SIZE, SZ_2M, DMA_FROM_DEVICE, 0);
    const engine = new DmaEngine(gpu);
    const src = new Uint8Array(SZ_2M).fill(0x5a);
    engine.write(iova, src); // warm the IOTLB
    const missesWarm = engine.stats.iotlbMisses;
    const gbs = await measureOpsPerSec(
      () => {
        if (!engine.write(iova, src).ok) throw new Error("bench: the write faulted");
      },
      { opsPerCall: SZ_2M / 1e9, timeMs: 1000 },
    );
    if (engine.stats.iotlbMisses !== missesWarm) throw new Error("bench: the IOTLB was not warm");
    return [
      {
        id: "dma.device-write.2m.iommu",
        value: gbs,
        unit: "GB/s",
        target: ">= 1",
        note: "DmaEngine.write of 2 MiB through SMMUv3 (warm IOTLB, 512 translations of 4 KiB bursts) into RAM via the CPU cache model",
      },
    ];
  },
};

export default suite;
