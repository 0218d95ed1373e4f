import { Device, errnoOf, PciHostBridge, pciDevId, SZ_4K } from "@dmakit/core";
import { describe, expect, it } from "vitest";
import {
  IOMMU_DOMAIN_DMA,
  IOMMU_DOMAIN_DMA_FQ,
  IOMMU_DOMAIN_IDENTITY,
  IOMMU_READ,
  IOMMU_RESV_DIRECT,
  IOMMU_RESV_MSI,
  IOMMU_RESV_RESERVED,
  IOMMU_WRITE,
  type IommuSubsystemOptions,
  iommuAttachDevice,
  iommuAttachGroup,
  iommuDetachDevice,
  iommuDetachGroup,
  iommuDeviceClaimDmaOwner,
  iommuDeviceReleaseDmaOwner,
  iommuDeviceUnuseDefaultDomain,
  iommuDeviceUseDefaultDomain,
  iommuDomainFree,
  iommuFwspecAddIds,
  iommuFwspecInit,
  iommuGetDmaDomain,
  iommuGetDomainForDev,
  iommuGetGroupResvRegions,
  iommuGroupClaimDmaOwner,
  iommuGroupDmaOwnerClaimed,
  iommuGroupForEachDev,
  iommuGroupGet,
  iommuGroupId,
  iommuGroupReleaseDmaOwner,
  iommuGroupReplaceDomain,
  iommuGroupStoreType,
  iommuIovaToPhys,
  iommuPagingDomainAlloc,
  iommuProbeDevice,
  iommuReleaseDevice,
} from "../src/index.js";
import { type FakeMachine, makeFakeMachine, FAKE_RAM_BASE as RAM } from "./support/fakeIommu.js";

function platformDev(m: FakeMachine, name: string, sid: number, opts: { untrusted?: boolean } = {}): Device {
  const dev = new Device({ name, bus: "platform", log: m.log, untrusted: opts.untrusted ?? false });
  iommuFwspecInit(dev, m.fake.inst);
  iommuFwspecAddIds(dev, [sid]);
  return dev;
}

/** Root port (ACS) → switch with two downstream ports without ACS → two endpoints, plus an ACS port with one. */
function pciTopology(m: FakeMachine) {
  const hb = new PciHostBridge({ log: m.log });
  const rp = hb.addRootPort({ acs: true });
  const sw = hb.addSwitch(rp, [{ acs: false }, { acs: false }]);
  // A two-function NIC without ACS: its functions can talk to each other, one group.
  const a = hb.addEndpoint(sw.downstream[0] ?? null, { name: "nic0", slot: 0, fn: 0 });
  const b = hb.addEndpoint(sw.downstream[0] ?? null, { name: "nic1", slot: 0, fn: 1 });
  const lone = hb.addEndpoint(sw.downstream[1] ?? null, { name: "ssd0" });
  const rp2 = hb.addRootPort({ acs: true });
  const c = hb.addEndpoint(rp2, { name: "nvme0" });
  for (const d of [a, b, c, lone]) {
    iommuFwspecInit(d, m.fake.inst);
    iommuFwspecAddIds(d, [pciDevId(d)]);
    iommuProbeDevice(m.iommu, d);
  }
  return { a, b, c, lone };
}

describe("groups", () => {
  it("devices behind a switch port without ACS share a group; an ACS-isolated one has its own", () => {
    const m = makeFakeMachine();
    const { a, b, c, lone } = pciTopology(m);
    const ga = iommuGroupGet(a);
    expect(iommuGroupGet(lone)).not.toBe(ga);
    expect(ga).not.toBeNull();
    expect(iommuGroupGet(b)).toBe(ga);
    expect(iommuGroupGet(c)).not.toBe(ga);
    const names: string[] = [];
    expect(
      iommuGroupForEachDev(ga!, names, (d, acc) => {
        acc.push(d.name);
        return 0;
      }),
    ).toBe(0);
    expect(names).toEqual(["nic0", "nic1"]);
    expect(iommuGroupForEachDev(ga!, null, (d) => (d.name === "nic0" ? 7 : 0))).toBe(7);
    expect(iommuGroupId(ga!)).not.toBe(iommuGroupId(iommuGroupGet(c)!));
    // One default domain shared by the group (translated: the fake machine's policy is strict).
    expect(iommuGetDmaDomain(a)?.type).toBe(IOMMU_DOMAIN_DMA);
    expect(iommuGetDmaDomain(a)).toBe(iommuGetDmaDomain(b));
    expect(m.log.find({ message: /Adding device nic1 to group/ }).length).toBe(1);
  });

  it("iommu_attach_device needs a singleton group (EINVAL), iommu_attach_group takes the whole group", () => {
    const m = makeFakeMachine();
    const { a, b, c } = pciTopology(m);
    const d = iommuPagingDomainAlloc(a);
    const before = iommuGetDomainForDev(a);
    expect(errnoOf(() => iommuAttachDevice(d, a))).toBe("EINVAL");
    expect(iommuGetDomainForDev(a)).toBe(before);
    iommuAttachGroup(d, iommuGroupGet(a)!);
    expect(iommuGetDomainForDev(b)).toBe(d);
    // A second non-default domain cannot replace it through attach: EBUSY.
    const d2 = iommuPagingDomainAlloc(a);
    expect(errnoOf(() => iommuAttachGroup(d2, iommuGroupGet(a)!))).toBe("EBUSY");
    // replace_domain switches directly.
    iommuGroupReplaceDomain(iommuGroupGet(a)!, d2);
    expect(iommuGetDomainForDev(a)).toBe(d2);
    iommuDetachGroup(d2, iommuGroupGet(a)!);
    expect(iommuGetDomainForDev(a)).toBe(iommuGetDmaDomain(a));
    iommuDomainFree(d);
    iommuDomainFree(d2);
    // Singleton: fine.
    const d3 = iommuPagingDomainAlloc(c);
    iommuAttachDevice(d3, c);
    expect(iommuGetDomainForDev(c)).toBe(d3);
    iommuDetachDevice(d3, c);
    expect(iommuGetDomainForDev(c)).toBe(iommuGetDmaDomain(c));
  });

  it("a failed attach leaves every device on the old domain", () => {
    const m = makeFakeMachine();
    const { a, b } = pciTopology(m);
    const group = iommuGroupGet(a)!;
    const d = iommuPagingDomainAlloc(a);
    const ops = d.ops as { attachDev: (dom: typeof d, dev: Device) => void };
    const orig = ops.attachDev;
    ops.attachDev = (dom, dev) => {
      if (dev === b) throw new (class extends Error {})("boom");
      orig(dom, dev);
    };
    expect(() => iommuAttachGroup(d, group)).toThrow("boom");
    ops.attachDev = orig;
    expect(group.domain).toBe(iommuGetDmaDomain(a));
    // The fake's stream table says where each device's DMA goes: a was moved back.
    expect(m.fake.streams.get(pciDevId(a))?.domain).toBe(iommuGetDmaDomain(a));
  });
});

describe("DMA ownership", () => {
  it("claim with a bound driver is EPERM; a driver cannot use the default domain of an owned group (EBUSY)", () => {
    const m = makeFakeMachine();
    const { a, b } = pciTopology(m);
    const group = iommuGroupGet(a)!;
    iommuDeviceUseDefaultDomain(a); // driver bound to nic0
    expect(errnoOf(() => iommuGroupClaimDmaOwner(group, "vfio"))).toBe("EPERM");
    expect(errnoOf(() => iommuDeviceClaimDmaOwner(b, "vfio"))).toBe("EPERM");
    iommuDeviceUnuseDefaultDomain(a);
    iommuGroupClaimDmaOwner(group, "vfio");
    expect(iommuGroupDmaOwnerClaimed(group)).toBe(true);
    // DMA is blocked while owned and no owner domain is attached.
    expect(group.domain).toBe(m.fake.ops.blockedDomain);
    expect(errnoOf(() => iommuDeviceUseDefaultDomain(b))).toBe("EBUSY");
    expect(errnoOf(() => iommuGroupClaimDmaOwner(group, "other"))).toBe("EPERM");
    // The owner attaches its domain; detach goes back to blocking, release to the default domain.
    const d = iommuPagingDomainAlloc(a);
    iommuAttachGroup(d, group);
    expect(iommuGetDomainForDev(b)).toBe(d);
    iommuDetachGroup(d, group);
    expect(group.domain).toBe(m.fake.ops.blockedDomain);
    iommuGroupReleaseDmaOwner(group);
    expect(group.domain).toBe(iommuGetDmaDomain(a));
    expect(iommuGroupDmaOwnerClaimed(group)).toBe(false);
    iommuDeviceUseDefaultDomain(b);
    iommuDeviceUnuseDefaultDomain(b);
  });

  it("claim while a non-default domain is attached is EBUSY; device claims by the same owner count", () => {
    const m = makeFakeMachine();
    const { c } = pciTopology(m);
    const d = iommuPagingDomainAlloc(c);
    iommuAttachDevice(d, c);
    expect(errnoOf(() => iommuDeviceClaimDmaOwner(c, "iommufd"))).toBe("EBUSY");
    iommuDetachDevice(d, c);
    iommuDeviceClaimDmaOwner(c, "iommufd");
    iommuDeviceClaimDmaOwner(c, "iommufd");
    expect(iommuGroupGet(c)?.ownerCnt).toBe(2);
    expect(errnoOf(() => iommuDeviceClaimDmaOwner(c, null))).toBe("EINVAL");
    iommuDeviceReleaseDmaOwner(c);
    expect(iommuGroupGet(c)?.domain).toBe(m.fake.ops.blockedDomain);
    iommuDeviceReleaseDmaOwner(c);
    expect(iommuGroupGet(c)?.domain).toBe(iommuGetDmaDomain(c));
  });

  it("a device with IOMMU_RESV_DIRECT cannot be blocked (EINVAL), and its region is identity-mapped", () => {
    const m = makeFakeMachine();
    const dev = platformDev(m, "gfx0", 3);
    m.fake.resv.set("gfx0", [
      { start: 0x7f000000, length: 3 * SZ_4K, prot: IOMMU_READ | IOMMU_WRITE, type: IOMMU_RESV_DIRECT },
    ]);
    iommuProbeDevice(m.iommu, dev);
    const dd = iommuGetDmaDomain(dev)!;
    expect(iommuIovaToPhys(dd, 0x7f002000)).toBe(0x7f002000);
    expect(errnoOf(() => iommuGroupClaimDmaOwner(iommuGroupGet(dev)!, "vfio"))).toBe("EINVAL");
    expect(m.log.find({ message: /requested this device have a 1:1 IOMMU mapping/ }).length).toBe(1);
    expect(iommuGroupGet(dev)?.domain).toBe(dd);
  });
});

describe("default domain policy", () => {
  const typeFor = (
    opts: Partial<IommuSubsystemOptions>,
    devOpts: { untrusted?: boolean } = {},
    deferred = true,
  ) => {
    const m = makeFakeMachine(opts);
    m.fake.deferredFlush = deferred;
    const dev = platformDev(m, "dev0", 1, devOpts);
    iommuProbeDevice(m.iommu, dev);
    return { type: iommuGetDmaDomain(dev)?.type, m, dev };
  };

  it("strict → DMA, lazy → DMA-FQ (only with IOMMU_CAP_DEFERRED_FLUSH), passthrough → identity", () => {
    expect(typeFor({ config: "strict" }).type).toBe(IOMMU_DOMAIN_DMA);
    expect(typeFor({ config: "lazy" }).type).toBe(IOMMU_DOMAIN_DMA_FQ);
    expect(typeFor({ config: "lazy" }, {}, false).type).toBe(IOMMU_DOMAIN_DMA);
    expect(typeFor({ config: "passthrough" }).type).toBe(IOMMU_DOMAIN_IDENTITY);
    expect(typeFor({ config: "strict", passthrough: true }).type).toBe(IOMMU_DOMAIN_IDENTITY);
    expect(typeFor({ config: "passthrough", passthrough: false, strict: false }).type).toBe(
      IOMMU_DOMAIN_DMA_FQ,
    );
    // Encryption turns passthrough into translated; iommu_dma_strict stays off, so lazy.
    expect(typeFor({ config: "passthrough", memEncrypt: true }).type).toBe(IOMMU_DOMAIN_DMA_FQ);
    const { m } = typeFor({ config: "lazy", strict: true });
    expect(m.log.find({ message: "Default domain type: Translated " }).length).toBe(1);
    expect(
      m.log.find({ message: "DMA domain TLB invalidation policy: strict mode (set via kernel command line)" })
        .length,
    ).toBe(1);
  });

  it("untrusted devices are forced to strict DMA even under passthrough; a driver overriding that refuses the probe", () => {
    expect(typeFor({ config: "passthrough" }, { untrusted: true }).type).toBe(IOMMU_DOMAIN_DMA);
    const m = makeFakeMachine({ config: "passthrough" });
    const dev = platformDev(m, "tb0", 9, { untrusted: true });
    m.fake.wantIdentity.add("tb0");
    expect(errnoOf(() => iommuProbeDevice(m.iommu, dev))).toBe("EINVAL");
    expect(iommuGroupGet(dev)).toBeNull();
    expect(
      m.log.find({ message: /Device is not trusted, but driver is overriding group \d+ to Passthrough/ })
        .length,
    ).toBe(1);
  });

  it("the driver's def_domain_type wins over the policy; sysfs type switches DMA → DMA-FQ live", () => {
    const m = makeFakeMachine({ config: "strict" });
    m.fake.wantIdentity.add("isp0");
    const isp = platformDev(m, "isp0", 4);
    iommuProbeDevice(m.iommu, isp);
    expect(iommuGetDmaDomain(isp)?.type).toBe(IOMMU_DOMAIN_IDENTITY);
    const cam = platformDev(m, "cam0", 5);
    iommuProbeDevice(m.iommu, cam);
    const dd = iommuGetDmaDomain(cam)!;
    iommuGroupStoreType(iommuGroupGet(cam)!, "DMA-FQ");
    expect(iommuGetDmaDomain(cam)).toBe(dd);
    expect(dd.type).toBe(IOMMU_DOMAIN_DMA_FQ);
    iommuDeviceUseDefaultDomain(cam);
    expect(errnoOf(() => iommuGroupStoreType(iommuGroupGet(cam)!, "identity"))).toBe("EPERM");
    iommuDeviceUnuseDefaultDomain(cam);
    iommuGroupStoreType(iommuGroupGet(cam)!, "identity");
    expect(iommuGetDomainForDev(cam)?.type).toBe(IOMMU_DOMAIN_IDENTITY);
  });

  it("release drops the device from its group and frees the default domain's tables", () => {
    const m = makeFakeMachine();
    const dev = platformDev(m, "dev0", 1);
    const pages = m.mem.pagesInUse;
    iommuProbeDevice(m.iommu, dev);
    const group = iommuGroupGet(dev)!;
    // Map into the default domain directly to give it table pages.
    const dd = iommuGetDmaDomain(dev)!;
    dd.ops.mapPages?.(dd, 0x1000, RAM, SZ_4K, 1, IOMMU_READ, 0);
    expect(m.mem.pagesInUse).toBe(pages + 1);
    iommuReleaseDevice(dev);
    expect(iommuGroupGet(dev)).toBeNull();
    expect(m.iommu.groupGetById(group.id)).toBeNull();
    expect(m.mem.pagesInUse).toBe(pages);
  });
});

describe("reserved regions", () => {
  it("merges overlapping regions of one type per group and keeps types apart", () => {
    const m = makeFakeMachine();
    const { a, b } = pciTopology(m);
    m.fake.resv.set("nic0", [
      { start: 0x8000000, length: 0x100000, prot: IOMMU_WRITE, type: IOMMU_RESV_MSI },
      { start: 0x1000, length: 0x1000, prot: 0, type: IOMMU_RESV_RESERVED },
    ]);
    m.fake.resv.set("nic1", [
      { start: 0x80f0000, length: 0x20000, prot: IOMMU_WRITE, type: IOMMU_RESV_MSI },
      { start: 0x1800, length: 0x1000, prot: 0, type: IOMMU_RESV_RESERVED },
      { start: 0x80f0000, length: 0x1000, prot: 0, type: IOMMU_RESV_RESERVED },
    ]);
    void b;
    const regions = iommuGetGroupResvRegions(iommuGroupGet(a)!).map((r) => [r.start, r.length, r.type]);
    expect(regions).toEqual([
      [0x1000, 0x1800, IOMMU_RESV_RESERVED],
      [0x8000000, 0x110000, IOMMU_RESV_MSI],
      [0x80f0000, 0x1000, IOMMU_RESV_RESERVED],
    ]);
  });
});
