import { Device } from "@dmakit/core";
import { iommuFwspecAddIds, iommuFwspecInit, iommuProbeDevice } from "../src/index.js";
import { describeIommuConformance } from "../test-support/conformance.js";
import { FAKE_RAM_BASE, makeFakeMachine } from "./support/fakeIommu.js";

// The shared suite run against the in-test fake, so the suite itself is exercised in this package.
describeIommuConformance("in-test fake", () => {
  const m = makeFakeMachine();
  const dev = new Device({ name: "dma0", bus: "platform", log: m.log });
  iommuFwspecInit(dev, m.fake.inst);
  iommuFwspecAddIds(dev, [0x42]);
  iommuProbeDevice(m.iommu, dev);
  return {
    iommu: m.iommu,
    dev,
    streamId: 0x42,
    hardware: m.fake.hardware,
    tablePagesInUse: () => m.mem.pagesInUse,
    physBase: FAKE_RAM_BASE,
  };
});
