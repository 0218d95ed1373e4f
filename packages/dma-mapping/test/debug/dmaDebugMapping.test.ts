import { PAGE_SIZE } from "@dmakit/core";
import { describe, expect, it } from "vitest";
import {
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  dmaConfigure,
  dmaMappingError,
  dmaMapSg,
  dmaMapSingleAttrs,
  dmaSyncSingleForCpu,
  dmaSyncSingleForDevice,
  dmaUnmapSg,
  dmaUnmapSingleAttrs,
  swiotlbInit,
} from "../../src/index.js";
import { debugMachine, RAM } from "./debugMachine.js";

const BUF = RAM + 0x20_0000;

/** End to end: the DMA API (dispatch + dma-direct + arm64 cache maintenance) calling dma-debug's hooks. */
describe("dma-debug through the DMA API", () => {
  function setup(opts: { coherent?: boolean } = {}) {
    const m = debugMachine({ allErrors: true, ...opts });
    const dev = m.device("cam0");
    const va = m.vm.pageAddress(BUF / PAGE_SIZE);
    return { ...m, dev, va };
  }

  it("a clean map/check/sync/unmap cycle is silent", () => {
    const { dev, va, vm, cache, warns, debug, bytes } = setup();
    vm.cpuWriteVirt(va, bytes(512, 7));
    const h = dmaMapSingleAttrs(dev, va, 512, DMA_TO_DEVICE);
    expect(dmaMappingError(dev, h)).toBe(0);
    const seen = new Uint8Array(512);
    cache.deviceRead(h, seen, { device: "cam0" });
    expect(seen[511]).toBe(7);
    dmaSyncSingleForCpu(dev, h, 512, DMA_TO_DEVICE);
    vm.cpuWriteVirt(va, bytes(512, 8));
    dmaSyncSingleForDevice(dev, h, 512, DMA_TO_DEVICE);
    cache.deviceRead(h, seen, { device: "cam0" });
    expect(seen[0]).toBe(8);
    dmaUnmapSingleAttrs(dev, h, 512, DMA_TO_DEVICE);
    dev.releaseDriver();
    expect(warns()).toEqual([]);
    expect([debug.errorCount, debug.liveEntries]).toEqual([0, 0]);
  });

  it("CPU writes after dma_map_single, device reads: stale read naming dma_sync_single_for_device", () => {
    const { dev, va, vm, cache, warns, debug, bytes } = setup();
    vm.cpuWriteVirt(va, bytes(256, 1));
    const h = dmaMapSingleAttrs(dev, va, 256, DMA_TO_DEVICE);
    dmaMappingError(dev, h);
    vm.cpuWriteVirt(va + 128, bytes(64, 2));
    const seen = new Uint8Array(256);
    cache.deviceRead(h, seen, { device: "cam0" });
    expect(seen[128]).toBe(1);
    expect(warns()).toEqual([
      "DMA-API: camdrv cam0: CPU wrote a buffer owned by the device at 0x0000000080200080 (after dma_map_single()), mapping [device address=0x0000000080200000] [size=256 bytes] DMA_TO_DEVICE — missing dma_sync_single_for_cpu() or dma_unmap_single() before the CPU access",
      "DMA-API: camdrv cam0: device read stale data: CPU cache line 0x0000000080200080 dirty, mapping [device address=0x0000000080200000] [size=256 bytes] DMA_TO_DEVICE — missing dma_sync_single_for_device() or buffer written after dma_map_single()",
    ]);
    expect(debug.reports().map((r) => r.missingCall)).toEqual([
      "dma_sync_single_for_cpu",
      "dma_sync_single_for_device",
    ]);
  });

  it("device writes a FROM_DEVICE buffer the CPU had cached, CPU reads without sync_for_cpu: stale, then fixed by the sync", () => {
    const { dev, va, vm, cache, warns, bytes } = setup();
    vm.cpuWriteVirt(va, bytes(4096, 0)); // the driver zeroes the buffer: lines cached
    const h = dmaMapSingleAttrs(dev, va, 4096, DMA_FROM_DEVICE);
    dmaMappingError(dev, h);
    cache.deviceWrite(h, bytes(4096, 0x5a), { device: "cam0" });
    const got = new Uint8Array(16);
    vm.cpuReadVirt(va + 64, got);
    expect(got[0]).toBe(0);
    expect(warns()).toEqual([
      "DMA-API: camdrv cam0: CPU read a buffer owned by the device at 0x0000000080200040 (after dma_map_single()), mapping [device address=0x0000000080200000] [size=4096 bytes] DMA_FROM_DEVICE — missing dma_sync_single_for_cpu() or dma_unmap_single() before the CPU access",
      "DMA-API: camdrv cam0: CPU read stale data: cache line 0x0000000080200040 was cached before cam0 wrote RAM, mapping [device address=0x0000000080200000] [size=4096 bytes] DMA_FROM_DEVICE — missing dma_sync_single_for_cpu() or dma_unmap_single() before the CPU read",
    ]);
    dmaSyncSingleForCpu(dev, h, 4096, DMA_FROM_DEVICE);
    vm.cpuReadVirt(va + 64, got);
    expect(got[0]).toBe(0x5a);
    dmaUnmapSingleAttrs(dev, h, 4096, DMA_FROM_DEVICE);
    expect(warns()).toHaveLength(2);
  });

  it("CPU writes while the device owns a FROM_DEVICE buffer: reported, and the unmap's invalidate drops them", () => {
    const { dev, va, vm, warns, debug, bytes } = setup();
    const h = dmaMapSingleAttrs(dev, va, 256, DMA_FROM_DEVICE);
    dmaMappingError(dev, h);
    vm.cpuWriteVirt(va, bytes(64, 3));
    dmaUnmapSingleAttrs(dev, h, 256, DMA_FROM_DEVICE);
    expect(debug.reports().map((r) => r.kind)).toEqual(["cpu-touched-device-owned", "invalidate-dirty"]);
    expect(warns()[1]).toBe(
      "DMA-API: camdrv cam0: CPU writes discarded: invalidating mapping [device address=0x0000000080200000] [size=256 bytes] DMA_FROM_DEVICE dropped dirty CPU cache line 0x0000000080200000 — the CPU wrote the buffer while the device owned it (missing dma_sync_single_for_cpu() before the CPU write)",
    );
  });

  it("the kernel checks fire through the API: unchecked map error, wrong size, leak at unbind", () => {
    const { dev, va, warns } = setup();
    const a = dmaMapSingleAttrs(dev, va, 256, DMA_TO_DEVICE);
    dmaUnmapSingleAttrs(dev, a, 128, DMA_TO_DEVICE);
    const b = dmaMapSingleAttrs(dev, va + 0x1000, 64, DMA_FROM_DEVICE);
    dmaMappingError(dev, b);
    dev.releaseDriver();
    expect(warns()).toEqual([
      "DMA-API: camdrv cam0: device driver frees DMA memory with different size [device address=0x0000000080200000] [map size=256 bytes] [unmap size=128 bytes]",
      "DMA-API: camdrv cam0: device driver failed to check map error[device address=0x0000000080200000] [size=128 bytes] [mapped as phy]",
      "DMA-API: platform cam0: device driver has pending DMA allocations while released from device [count=1]\nOne of leaked entries details: [device address=0x0000000080201000] [size=64 bytes] [mapped with DMA_FROM_DEVICE] [mapped as phy]",
    ]);
  });

  it("dma_map_sg / dma_unmap_sg with the wrong count", () => {
    const { dev, warns, sgList, debug } = setup();
    const sgt = sgList([
      [BUF, 4096],
      [BUF + 0x4000, 4096],
    ]);
    expect(dmaMapSg(dev, sgt.sgl!, 2, DMA_TO_DEVICE)).toBe(2);
    expect(debug.deviceEntries(dev)).toBe(2);
    dmaUnmapSg(dev, sgt.sgl!, 1, DMA_TO_DEVICE);
    expect(warns()).toEqual([
      "DMA-API: camdrv cam0: device driver frees DMA sg list with different entry count [map count=2] [unmap count=1]",
    ]);
  });

  it("on a coherent machine there are no cacheline-overlap errors (dma_get_cache_alignment() is 1)", () => {
    const { dev, va, warns } = setup({ coherent: true });
    const a = dmaMapSingleAttrs(dev, va, 16, DMA_FROM_DEVICE);
    const b = dmaMapSingleAttrs(dev, va + 16, 16, DMA_FROM_DEVICE);
    dmaMappingError(dev, a);
    dmaMappingError(dev, b);
    expect(warns()).toEqual([]);
  });
});

describe("dma-debug with swiotlb bouncing", () => {
  it("the bounce copy-back at unmap is the kernel's, not the driver's; a driver write is still reported", () => {
    const m = debugMachine({ allErrors: true });
    swiotlbInit(m.system, {});
    const dev = m.device("cam0");
    dmaConfigure(dev, m.system, { forceSwiotlb: true });
    const va = m.vm.pageAddress(BUF / PAGE_SIZE);
    const h = dmaMapSingleAttrs(dev, va, 256, DMA_FROM_DEVICE);
    expect(dmaMappingError(dev, h)).toBe(0);
    expect(h).not.toBe(BUF); // bounced
    m.cache.deviceWrite(h, m.bytes(256, 1), { device: "cam0" });
    dmaSyncSingleForCpu(dev, h, 256, DMA_FROM_DEVICE);
    dmaSyncSingleForDevice(dev, h, 256, DMA_FROM_DEVICE);
    dmaUnmapSingleAttrs(dev, h, 256, DMA_FROM_DEVICE);
    expect(m.warns()).toEqual([]);
    const h2 = dmaMapSingleAttrs(dev, va, 256, DMA_FROM_DEVICE);
    dmaMappingError(dev, h2);
    m.vm.cpuWriteVirt(va, m.bytes(8, 2));
    expect(m.debug.reports().map((r) => r.kind)).toEqual(["cpu-touched-device-owned"]);
    dmaUnmapSingleAttrs(dev, h2, 256, DMA_FROM_DEVICE);
  });
});
