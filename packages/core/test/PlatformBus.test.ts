import { describe, expect, it } from "vitest";
import {
  BUS_NOTIFY_ADD_DEVICE,
  BUS_NOTIFY_DEL_DEVICE,
  BUS_NOTIFY_REMOVED_DEVICE,
  BUS_NOTIFY_UNBOUND_DRIVER,
  isKernelError,
  KernelLog,
  PlatformBus,
} from "../src/index.js";

describe("PlatformBus", () => {
  it("registers devices with stream IDs and notifies", () => {
    const log = new KernelLog();
    const bus = new PlatformBus({ log });
    const seen: number[] = [];
    bus.notifier.register((a) => seen.push(a));
    const cam = bus.addDevice({
      name: "cam0",
      streamIds: [0x10, 0x11],
      iommu: "smmu0",
      dmaMask: 2 ** 40 - 1,
    });
    expect(cam.bus).toBe("platform");
    expect(cam.streamIds).toEqual([0x10, 0x11]);
    expect(cam.iommu).toBe("smmu0");
    expect(cam.dmaMask).toBe(2 ** 40 - 1);
    expect(cam.log).toBe(log);
    expect(bus.find("cam0")).toBe(cam);
    expect(bus.addDevice({ name: "disp0" }).streamIds).toEqual([]);
    try {
      bus.addDevice({ name: "cam0" });
      expect.unreachable();
    } catch (e) {
      expect(isKernelError(e, "EEXIST")).toBe(true);
    }
    expect(bus.devices().map((d) => d.name)).toEqual(["cam0", "disp0"]);
    cam.bindDriver("camera");
    seen.length = 0;
    expect(bus.removeDevice(cam)).toBe(true);
    expect(seen).toContain(BUS_NOTIFY_UNBOUND_DRIVER);
    expect(seen[0]).toBe(BUS_NOTIFY_DEL_DEVICE);
    expect(seen.at(-1)).toBe(BUS_NOTIFY_REMOVED_DEVICE);
    expect(cam.driver).toBeNull();
    expect(bus.find("cam0")).toBeUndefined();
    expect(bus.removeDevice(cam)).toBe(false);
    expect(seen.includes(BUS_NOTIFY_ADD_DEVICE)).toBe(false);
  });
});
