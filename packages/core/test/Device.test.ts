import { describe, expect, it } from "vitest";
import {
  BUS_NOTIFY_BIND_DRIVER,
  BUS_NOTIFY_BOUND_DRIVER,
  BUS_NOTIFY_UNBIND_DRIVER,
  BUS_NOTIFY_UNBOUND_DRIVER,
  BusNotifier,
  Device,
  DeviceKey,
  devmAddAction,
  dmaGetMask,
  dmaGetMaxSegSize,
  dmaGetMinAlignMask,
  dmaGetSegBoundary,
  dmaGetSegBoundaryNrPages,
  dmaSetMaxSegSize,
  dmaSetMinAlignMask,
  dmaSetSegBoundary,
  isKernelError,
  KernelLog,
  SZ_64K,
  ULONG_MAX,
} from "../src/index.js";

describe("Device", () => {
  it("has the kernel's DMA defaults", () => {
    const dev = new Device({ name: "cam0", bus: "platform" });
    expect(dev.dmaMask).toBe(0xffffffff);
    expect(dev.coherentDmaMask).toBe(0xffffffff);
    expect(dev.busDmaLimit).toBe(0);
    expect(dev.dmaRangeMap).toBeNull();
    expect(dev.dmaCoherent).toBe(false);
    expect(dev.untrusted).toBe(false);
    expect(dev.driver).toBeNull();
    expect(dev.bus).toBe("platform");
    expect(dmaGetMaxSegSize(dev)).toBe(65536);
    expect(dmaGetSegBoundary(dev)).toBe(ULONG_MAX);
    expect(dmaGetMinAlignMask(dev)).toBe(0);
  });

  it("dma_get_mask falls back to 32 bits when the mask is unset or zero", () => {
    expect(dmaGetMask(new Device({ name: "a", dmaMask: null }))).toBe(0xffffffff);
    expect(dmaGetMask(new Device({ name: "b", dmaMask: 0 }))).toBe(0xffffffff);
    expect(dmaGetMask(new Device({ name: "c", dmaMask: 2 ** 40 - 1 }))).toBe(2 ** 40 - 1);
  });

  it("getters treat 0 as unset, like the kernel", () => {
    const dev = new Device({
      name: "d",
      dmaParms: { maxSegmentSize: 0, segmentBoundaryMask: 0, minAlignMask: 0 },
    });
    expect(dmaGetMaxSegSize(dev)).toBe(SZ_64K);
    expect(dmaGetSegBoundary(dev)).toBe(ULONG_MAX);
    dmaSetMaxSegSize(dev, 1 << 20);
    dmaSetSegBoundary(dev, 0xffff);
    dmaSetMinAlignMask(dev, 0xfff);
    expect(dmaGetMaxSegSize(dev)).toBe(1 << 20);
    expect(dmaGetSegBoundary(dev)).toBe(0xffff);
    expect(dmaGetMinAlignMask(dev)).toBe(0xfff);
  });

  it("dma_get_seg_boundary_nr_pages", () => {
    const dev = new Device({ name: "d" });
    expect(dmaGetSegBoundaryNrPages(dev, 12)).toBe(2 ** 52);
    dmaSetSegBoundary(dev, 0xffff);
    expect(dmaGetSegBoundaryNrPages(dev, 12)).toBe(16);
    dmaSetSegBoundary(dev, 0xffffffff);
    expect(dmaGetSegBoundaryNrPages(dev, 12)).toBe(0x100000);
    expect(dmaGetSegBoundaryNrPages(null, 12)).toBe(0x100000);
    expect(dmaGetSegBoundaryNrPages(null, 16)).toBe(0x10000);
  });

  it("setters WARN_ON_ONCE and change nothing without dma_parms", () => {
    const log = new KernelLog();
    const dev = new Device({ name: "noparms", log, dmaParms: null });
    dmaSetMaxSegSize(dev, 4096);
    dmaSetMaxSegSize(dev, 8192);
    expect(dev.dmaParms).toBeNull();
    expect(dmaGetMaxSegSize(dev)).toBe(SZ_64K);
    expect(log.warnCount).toBe(1);
    expect(log.find({ warn: true })[0]?.message).toContain("dma_set_max_seg_size");
    dmaSetSegBoundary(dev, 0xffff);
    expect(log.warnCount).toBe(2);
  });

  it("keeps typed per-device state per key identity", () => {
    const A = new DeviceKey<{ domain: number }>("iommu");
    const B = new DeviceKey<{ domain: number }>("iommu");
    const dev = new Device({ name: "d" });
    expect(dev.get(A)).toBeUndefined();
    dev.set(A, { domain: 1 });
    expect(dev.get(A)?.domain).toBe(1);
    expect(dev.get(B)).toBeUndefined();
    expect(dev.has(A)).toBe(true);
    expect(dev.getOrInit(B, () => ({ domain: 7 })).domain).toBe(7);
    expect(dev.getOrInit(B, () => ({ domain: 9 })).domain).toBe(7);
    expect(dev.delete(A)).toBe(true);
    expect(dev.has(A)).toBe(false);
    // Two devices never share state.
    const other = new Device({ name: "e" });
    expect(other.get(B)).toBeUndefined();
  });

  it("bind/unbind notify in the kernel's order and run devres last-first", () => {
    const nb = new BusNotifier();
    const events: string[] = [];
    nb.register((action, dev) => events.push(`${action}:${dev.name}:${dev.driver}`));
    const dev = new Device({ name: "nvme0", notifier: nb });
    dev.onUnbind((d) => events.push(`unbind-cb:${d.driver}`));
    dev.bindDriver("nvme");
    devmAddAction(dev, () => events.push("devres1"));
    devmAddAction(dev, () => events.push("devres2"));
    expect(dev.devresCount).toBe(2);
    expect(() => dev.bindDriver("other")).toThrowError(/already bound/);
    dev.releaseDriver();
    expect(events).toEqual([
      `${BUS_NOTIFY_BIND_DRIVER}:nvme0:null`,
      `${BUS_NOTIFY_BOUND_DRIVER}:nvme0:nvme`,
      `${BUS_NOTIFY_UNBIND_DRIVER}:nvme0:nvme`,
      "devres2",
      "devres1",
      `${BUS_NOTIFY_UNBOUND_DRIVER}:nvme0:null`,
      "unbind-cb:null",
    ]);
    expect(dev.driver).toBeNull();
    expect(dev.devresCount).toBe(0);
    // Releasing again is a no-op.
    dev.releaseDriver();
    expect(events.length).toBe(7);
  });

  it("devm_add_action needs a bound driver", () => {
    const dev = new Device({ name: "x" });
    try {
      devmAddAction(dev, () => {});
      expect.unreachable();
    } catch (e) {
      expect(isKernelError(e, "EINVAL")).toBe(true);
    }
  });

  it("bus notifier unregister", () => {
    const nb = new BusNotifier();
    let n = 0;
    const off = nb.register(() => n++);
    const dev = new Device({ name: "x", notifier: nb });
    dev.bindDriver("d");
    expect(n).toBe(2);
    off();
    expect(nb.size).toBe(0);
    dev.releaseDriver();
    expect(n).toBe(2);
  });
});
