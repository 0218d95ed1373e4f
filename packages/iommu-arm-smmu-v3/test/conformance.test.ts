import { KernelLog, PlatformBus, SimClock } from "@dmakit/core";
import {
  IommuSubsystem,
  iommuFwspecAddIds,
  iommuFwspecInit,
  iommuProbeDevice,
  pgtableMemoryFromAllocator,
} from "@dmakit/iommu";
import { describeIommuConformance } from "@dmakit/iommu/conformance";
import { PageAllocator, PhysMem } from "@dmakit/mm-pages";
import { ArmSmmuV3 } from "../src/index.js";

const RAM_BASE = 0x8000_0000;

function makeSmmuMachine(opts: { rangeInv?: boolean; seed?: number } = {}) {
  const clock = new SimClock();
  const log = new KernelLog({ now: () => clock.now() });
  const phys = new PhysMem({ banks: [{ start: RAM_BASE, size: 256 * 1024 * 1024 }] }, { log });
  const mem = pgtableMemoryFromAllocator(phys, new PageAllocator(phys));
  const smmu = new ArmSmmuV3({ name: "smmu0", mem, log, clock, rangeInv: opts.rangeInv ?? true });
  const iommu = new IommuSubsystem({ log });
  iommu.iommuDeviceRegister(smmu.iommu);
  const dev = new PlatformBus({ log }).addDevice({ name: "cam0", streamIds: [0x42], iommu: "smmu0" });
  iommuFwspecInit(dev, smmu.iommu);
  iommuFwspecAddIds(dev, [0x42]);
  iommuProbeDevice(iommu, dev);
  return {
    iommu,
    dev,
    streamId: 0x42,
    hardware: smmu.hw,
    tablePagesInUse: () => mem.pagesInUse,
    physBase: RAM_BASE,
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
  };
}

// The core's shared suite, through iommuMap/iommuUnmap/attach and the hardware's translate().
describeIommuConformance("arm-smmu-v3 (range TLBI)", () => makeSmmuMachine());
describeIommuConformance("arm-smmu-v3 (per-page TLBI)", () => makeSmmuMachine({ rangeInv: false, seed: 7 }));
