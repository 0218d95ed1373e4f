// The quick example of README.md, verbatim, with assertions on the values its comments show.

import { Device, KernelLog, SimClock, SZ_256M } from "@dmakit/core";
import {
  DMA_FROM_DEVICE,
  DmaEngine,
  DmaSystem,
  dmaConfigure,
  dmaDebugInit,
  dmaMappingError,
  dmaMapSingle,
  dmaSyncSingleForCpu,
  dmaUnmapSingle,
} from "@dmakit/dma-mapping";
import { bootMemory, CpuCache, GFP_KERNEL, KernelVm } from "@dmakit/mm-pages";
import { describe, expect, it } from "vitest";

describe("README quick example", () => {
  it("runs as written in README.md", () => {
    // A small arm64-like machine: 256 MiB of RAM at 2 GiB, a CPU cache devices do not snoop, no IOMMU.
    const clock = new SimClock();
    const log = new KernelLog({ now: () => clock.now() });
    const mem = bootMemory({ banks: [{ start: 0x8000_0000, size: SZ_256M }] }, { log });
    const cache = new CpuCache(mem.phys, { coherent: false });
    const vm = new KernelVm({ mem: mem.phys, cache, pages: mem.pages });
    const system = new DmaSystem({ mem, cache, vm, log, clock });
    const debug = dmaDebugInit(system); // CONFIG_DMA_API_DEBUG
    const cam = new Device({ name: "cam0", bus: "platform", log });
    dmaConfigure(cam, system); // no IOMMU domain: dma-direct
    cam.bindDriver("camdrv");

    // The driver zeroes a frame buffer (its lines stay cached), maps it, the camera writes a frame.
    const buf = vm.pageAddress(mem.pages.allocPage(GFP_KERNEL)!);
    vm.cpuWriteVirt(buf, new Uint8Array(4096));
    const dma = dmaMapSingle(cam, buf, 4096, DMA_FROM_DEVICE); // 0x8fc00000 (dma-direct: the phys)
    if (dmaMappingError(cam, dma)) throw new Error("cam0: DMA mapping failed");
    const xfer = new DmaEngine(cam).write(dma, new Uint8Array(4096).fill(0x5a)); // xfer.bytes: 4096

    // Bug: the CPU reads the frame without dma_sync_single_for_cpu().
    const px = new Uint8Array(1);
    vm.cpuReadVirt(buf, px);
    const stale = px[0]; // 0: a stale cache line, not the camera's 0x5a
    const warned = log.find({ prefix: "DMA-API", warn: true }).map((r) => r.message);
    // ["camdrv cam0: CPU read a buffer owned by the device at 0x000000008fc00000 (after
    //   dma_map_single()), mapping [device address=0x000000008fc00000] [size=4096 bytes]
    //   DMA_FROM_DEVICE — missing dma_sync_single_for_cpu() or dma_unmap_single() before the CPU access"]
    const kinds = debug.reports().map((r) => r.kind); // ["cpu-touched-device-owned", "cpu-read-stale"]

    // The fix: hand the buffer back to the CPU first.
    dmaSyncSingleForCpu(cam, dma, 4096, DMA_FROM_DEVICE);
    vm.cpuReadVirt(buf, px);
    const fresh = px[0]; // 0x5a
    dmaUnmapSingle(cam, dma, 4096, DMA_FROM_DEVICE);

    // The values the README's comments show.
    expect(dma).toBe(0x8fc0_0000);
    expect(xfer).toEqual({ ok: true, bytes: 4096, event: null });
    expect(stale).toBe(0);
    expect(warned).toEqual([
      "camdrv cam0: CPU read a buffer owned by the device at 0x000000008fc00000 (after dma_map_single()), mapping [device address=0x000000008fc00000] [size=4096 bytes] DMA_FROM_DEVICE — missing dma_sync_single_for_cpu() or dma_unmap_single() before the CPU access",
    ]);
    expect(kinds).toEqual(["cpu-touched-device-owned", "cpu-read-stale"]);
    expect(debug.errorCount).toBe(2);
    expect(fresh).toBe(0x5a);
    expect(debug.liveEntries).toBe(0);
  });
});
