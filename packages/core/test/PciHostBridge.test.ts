import { errnoOf } from "@dmakit/core";
import { describe, expect, it } from "vitest";
import {
  BUS_NOTIFY_ADD_DEVICE,
  BusNotifier,
  Device,
  devIsPci,
  findParentPciDev,
  PCI_DEVFN,
  PCI_FUNC,
  PCI_SLOT,
  PciHostBridge,
  pciBusAddress,
  pciDevId,
  pciFindHostBridge,
  pciIsBridge,
  pciIsOnRootBus,
  pciResourceLen,
  pciResourceStart,
  pciUpstreamBridge,
} from "../src/index.js";

describe("PciHostBridge topology", () => {
  it("devfn macros", () => {
    expect(PCI_DEVFN(0x1c, 4)).toBe(0xe4);
    expect(PCI_SLOT(0xe4)).toBe(0x1c);
    expect(PCI_FUNC(0xe4)).toBe(4);
  });

  it("builds devices that are Devices on the pci bus with requester IDs", () => {
    const nb = new BusNotifier();
    const added: string[] = [];
    nb.register((a, d) => a === BUS_NOTIFY_ADD_DEVICE && added.push(d.name));
    const host = new PciHostBridge({ notifier: nb, busStart: 0x10 });
    const rp = host.addRootPort({ acs: true, slot: 3 });
    const ep = host.addEndpoint(rp, { name: "nvme0", dmaMask: 2 ** 48 - 1 });
    expect(ep).toBeInstanceOf(Device);
    expect(devIsPci(ep)).toBe(true);
    expect(devIsPci(host)).toBe(false);
    expect(ep.bus).toBe("pci");
    expect(ep.parent).toBe(rp);
    expect(rp.parent).toBe(host);
    expect(pciUpstreamBridge(ep)).toBe(rp);
    expect(pciUpstreamBridge(rp)).toBeNull();
    expect(pciIsOnRootBus(rp)).toBe(true);
    expect(pciIsBridge(rp)).toBe(true);
    expect(pciIsBridge(ep)).toBe(false);
    expect(pciDevId(rp)).toBe((0x10 << 8) | PCI_DEVFN(3, 0));
    expect(pciDevId(ep)).toBe(0x11 << 8);
    expect(pciFindHostBridge(ep)).toBe(host);
    expect(ep.dmaMask).toBe(2 ** 48 - 1);
    expect(ep.dmaCoherent).toBe(true);
    expect(ep.log).toBe(host.log);
    expect(added).toEqual(["0000:10:03.0", "nvme0"]);
    const child = new Device({ name: "nvme0n1", parent: ep });
    expect(findParentPciDev(child)).toBe(ep);
    expect(findParentPciDev(host)).toBeNull();
  });

  it("rejects impossible placements and leaves the topology unchanged", () => {
    const host = new PciHostBridge();
    const rp = host.addRootPort();
    const ep = host.addEndpoint(rp);
    const n = host.devices().length;
    expect(errnoOf(() => host.addEndpoint(rp, { slot: 1 }))).toBe("EINVAL");
    expect(errnoOf(() => host.addEndpoint(rp))).toBe("EEXIST");
    expect(errnoOf(() => host.addEndpoint(ep))).toBe("EINVAL");
    expect(errnoOf(() => host.addRootPort({ slot: 32 }))).toBe("EINVAL");
    expect(errnoOf(() => host.addRootPort({ slot: 0 }))).toBe("EEXIST");
    expect(errnoOf(() => new PciHostBridge().addEndpoint(rp))).toBe("EINVAL");
    expect(host.devices().length).toBe(n);
  });

  it("BARs: bus addresses through host bridge windows", () => {
    const host = new PciHostBridge({
      windows: [{ cpuStart: 0x40_0000_0000, busStart: 0x8000_0000, size: 0x1_0000_0000 }],
    });
    const rp = host.addRootPort();
    const gpu = host.addEndpoint(rp, {
      bars: [
        { bar: 0, cpuAddr: 0x40_1000_0000, size: 0x100_0000 },
        { bar: 2, cpuAddr: 0x40_2000_0000, size: 0x1000_0000, busAddr: 0x1234_0000, prefetchable: false },
      ],
    });
    expect(pciResourceStart(gpu, 0)).toBe(0x40_1000_0000);
    expect(pciBusAddress(gpu, 0)).toBe(0x9000_0000);
    expect(pciResourceLen(gpu, 0)).toBe(0x100_0000);
    expect(pciBusAddress(gpu, 2)).toBe(0x1234_0000);
    expect(gpu.getBar(2)?.prefetchable).toBe(false);
    expect(pciResourceStart(gpu, 4)).toBe(0);
    expect(
      errnoOf(() =>
        host.addEndpoint(host.addRootPort(), { bars: [{ bar: 0, cpuAddr: 0x1000, size: 0x1000 }] }),
      ),
    ).toBe("EINVAL");
    expect(
      errnoOf(() =>
        host.addEndpoint(host.addRootPort(), { bars: [{ bar: 6, cpuAddr: 0x40_0000_0000, size: 1 }] }),
      ),
    ).toBe("EINVAL");
  });

  it("devices below an external-facing port are untrusted", () => {
    const host = new PciHostBridge();
    const tb = host.addRootPort({ externalFacing: true });
    const sw = host.addSwitch(tb, [{}]);
    const ext = host.addEndpoint(sw.downstream[0]!);
    const inside = host.addEndpoint(host.addRootPort());
    expect(ext.untrusted).toBe(true);
    expect(inside.untrusted).toBe(false);
    expect(tb.untrusted).toBe(false);
  });

  it("allowlist defaults from the kernel table", () => {
    expect(new PciHostBridge({ vendor: 0x8086, device: 0x2f00 }).p2pdmaReqSameHostBridge).toBe(true);
    expect(new PciHostBridge({ vendor: 0x8086, device: 0x2f00 }).p2pdmaAllowlisted).toBe(true);
    expect(new PciHostBridge({ vendor: 0x1ae0, device: 0x42 }).p2pdmaAllowlisted).toBe(true);
    expect(new PciHostBridge({ vendor: 0x8086, device: 0x1234 }).p2pdmaAllowlisted).toBe(false);
    expect(
      new PciHostBridge({ vendor: 0x8086, device: 0x1234, p2pdmaAllowlisted: true }).p2pdmaAllowlisted,
    ).toBe(true);
  });
});
