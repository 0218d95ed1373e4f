import { describeIommuConformance } from "@dmakit/iommu/conformance";
import { makeVtdMachine, RAM_BASE } from "./support/vtdMachine.js";

// The core's shared suite, through iommuMap/iommuUnmap/attach and the hardware's translate().
describeIommuConformance("intel-vtd (4-level)", () => {
  const m = makeVtdMachine();
  return {
    iommu: m.iommu,
    dev: m.dev,
    streamId: m.sid,
    hardware: m.hw,
    tablePagesInUse: () => m.mem.pagesInUse,
    physBase: RAM_BASE,
  };
});

describeIommuConformance("intel-vtd (5-level, 8 GiB phys)", () => {
  const m = makeVtdMachine({ fiveLevel: true });
  return {
    iommu: m.iommu,
    dev: m.dev,
    streamId: m.sid,
    hardware: m.hw,
    tablePagesInUse: () => m.mem.pagesInUse,
    physBase: 0x2_0000_0000,
    seed: 7,
  };
});
