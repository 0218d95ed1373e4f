import { Device, type KernelLog, SZ_4K } from "@dmakit/core";
import { describe, expect, it } from "vitest";
import {
  IOMMU_DOMAIN_UNMANAGED,
  IOMMU_FAULT_READ,
  IOMMU_FAULT_WRITE,
  IOMMU_READ,
  IommuDomain,
  iommuAttachDevice,
  iommuFwspecAddIds,
  iommuFwspecInit,
  iommuMap,
  iommuPagingDomainAlloc,
  iommuProbeDevice,
  iommuSetFaultHandler,
  reportIommuFault,
} from "../src/index.js";
import { makeFakeMachine, FAKE_RAM_BASE as RAM } from "./support/fakeIommu.js";

describe("fault reporting", () => {
  it("report_iommu_fault returns -ENOSYS without a handler, else the handler's number", () => {
    const dev = new Device({ name: "d" });
    const domain = new IommuDomain({ type: IOMMU_DOMAIN_UNMANAGED, ops: { attachDev: () => {} } });
    expect(reportIommuFault(domain, dev, 0x1000, IOMMU_FAULT_READ)).toBe(-38);
    const seen: unknown[] = [];
    iommuSetFaultHandler(
      domain,
      (d, dv, iova, flags, token) => {
        seen.push([d, dv, iova, flags, token]);
        return iova === 0x2000 ? 0 : -38;
      },
      "tok",
    );
    expect(reportIommuFault(domain, dev, 0x2000, IOMMU_FAULT_WRITE)).toBe(0);
    expect(reportIommuFault(domain, dev, 0x3000, IOMMU_FAULT_READ)).toBe(-38);
    expect(seen).toEqual([
      [domain, dev, 0x2000, 1, "tok"],
      [domain, dev, 0x3000, 0, "tok"],
    ]);
  });

  it("a domain with a DMA-API cookie cannot take a handler (WARN, unchanged)", () => {
    const domain = new IommuDomain({ type: IOMMU_DOMAIN_UNMANAGED, ops: { attachDev: () => {} } });
    domain.iovaCookie = {};
    iommuSetFaultHandler(domain, () => 0, null);
    expect(domain.handler).toBeNull();
    expect((domain.log as KernelLog).warnCount).toBe(1);
  });

  it("a device fault reaches the domain's handler with the access direction, and stays data", () => {
    const m = makeFakeMachine();
    const dev = new Device({ name: "cam0", bus: "platform", log: m.log });
    iommuFwspecInit(dev, m.fake.inst);
    iommuFwspecAddIds(dev, [5]);
    iommuProbeDevice(m.iommu, dev);
    const domain = iommuPagingDomainAlloc(dev);
    iommuAttachDevice(domain, dev);
    iommuMap(domain, 0x10000, RAM, SZ_4K, IOMMU_READ);
    const got: Array<[number, number]> = [];
    iommuSetFaultHandler(
      domain,
      (_d, _dev, iova, flags) => {
        got.push([iova, flags]);
        return 0;
      },
      null,
    );
    const t = m.fake.hardware.translate({ streamId: 5, iova: 0x10008, size: 8, write: true });
    expect(t.ok).toBe(false);
    if (!t.ok) expect([t.fault.kind, t.fault.code]).toEqual(["permission", "F_PERMISSION"]);
    m.fake.hardware.translate({ streamId: 5, iova: 0x20000, size: 8, write: false });
    expect(got).toEqual([
      [0x10008, IOMMU_FAULT_WRITE],
      [0x20000, IOMMU_FAULT_READ],
    ]);
    expect(m.fake.faultsReported).toEqual([0, 0]);
    expect(m.fake.hardware.faults().map((f) => f.kind)).toEqual(["permission", "translation"]);
  });
});
