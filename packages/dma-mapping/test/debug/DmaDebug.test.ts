import { DMA_MAPPING_ERROR, PAGE_SIZE } from "@dmakit/core";
import { describe, expect, it } from "vitest";
import {
  DMA_ATTR_DEBUGGING_IGNORE_CACHELINES,
  DMA_ATTR_MMIO,
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  dmaDebugInit,
  dmaDebugKernelAccess,
} from "../../src/index.js";
import { debugMachine, RAM } from "./debugMachine.js";

const BUF = RAM + 0x10_0000;

describe("dma-debug: init and the entry pool", () => {
  it("logs the preallocation like dma_debug_init and exposes the debugfs counters", () => {
    const { log, debug, system } = debugMachine();
    expect(log.find({ prefix: "DMA-API" }).map((r) => r.message)).toEqual([
      "preallocated 65536 debug entries",
      "debugging enabled by kernel config",
    ]);
    expect(system.debug).toBe(debug);
    expect([debug.nrTotalEntries, debug.numFreeEntries, debug.minFreeEntries, debug.errorCount]).toEqual([
      65536, 65536, 65536, 0,
    ]);
    expect(() => dmaDebugInit(system)).toThrow(/EBUSY|already enabled/);
  });

  it("rounds the pool to whole pages of 32 entries and grows by a page, shouting at each multiple", () => {
    expect(debugMachine({ entries: 40 }).debug.nrTotalEntries).toBe(64);
    const { log, debug, device } = debugMachine({ entries: 64 });
    const dev = device("cam0");
    for (let i = 0; i < 128; i++) debug.debugDmaMapPhys(dev, BUF, 64, DMA_TO_DEVICE, 0x10_0000 + i * 64, 0);
    expect(debug.nrTotalEntries).toBe(128);
    expect([debug.numFreeEntries, debug.minFreeEntries]).toEqual([0, 0]);
    expect(log.find({ message: "pool grown" }).map((r) => r.message)).toEqual([
      "dma_debug_entry pool grown to 128 (200%)",
    ]);
    for (let i = 0; i < 128; i++) {
      debug.debugDmaMappingError(dev, 0x10_0000 + i * 64);
      debug.debugDmaUnmapPhys(dev, 0x10_0000 + i * 64, 64, DMA_TO_DEVICE);
    }
    expect([debug.numFreeEntries, debug.minFreeEntries, debug.liveEntries, debug.errorCount]).toEqual([
      128, 0, 0, 0,
    ]);
  });

  it("measures growth against the requested count, as the kernel does (40 requested: 96 and 128 both shout)", () => {
    const { log, debug, device } = debugMachine({ entries: 40 });
    const dev = device("cam0");
    for (let i = 0; i < 128; i++) debug.debugDmaMapPhys(dev, BUF, 64, DMA_TO_DEVICE, i * 64, 0);
    expect(log.find({ message: "pool grown" }).map((r) => r.message)).toEqual([
      "dma_debug_entry pool grown to 96 (200%)",
      "dma_debug_entry pool grown to 128 (300%)",
    ]);
  });

  it("refuses fewer than one preallocated entry", () => {
    expect(() => debugMachine({ entries: 0 })).toThrow(/EINVAL|at least 1/);
  });
});

describe("dma-debug: check_unmap", () => {
  it("reports an unmap of an address never mapped, and of DMA_MAPPING_ERROR", () => {
    const { debug, device, warns } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    debug.debugDmaUnmapPhys(dev, 0x1000, 64, DMA_TO_DEVICE);
    debug.debugDmaUnmapPhys(dev, DMA_MAPPING_ERROR, 64, DMA_TO_DEVICE);
    expect(warns()).toEqual([
      "DMA-API: camdrv cam0: device driver tries to free DMA memory it has not allocated [device address=0x0000000000001000] [size=64 bytes]",
      "DMA-API: camdrv cam0: device driver tries to free an invalid DMA memory address",
    ]);
    expect(debug.reports().map((r) => r.kind)).toEqual(["free-not-allocated", "free-invalid-address"]);
  });

  it("a mapping of another device does not match", () => {
    const { debug, device, warns } = debugMachine({ allErrors: true });
    const a = device("cam0");
    const b = device("isp0", "ispdrv");
    debug.debugDmaMapPhys(a, BUF, 256, DMA_TO_DEVICE, 0x4000, 0);
    debug.debugDmaUnmapPhys(b, 0x4000, 256, DMA_TO_DEVICE);
    expect(warns()).toEqual([
      "DMA-API: ispdrv isp0: device driver tries to free DMA memory it has not allocated [device address=0x0000000000004000] [size=256 bytes]",
    ]);
    expect(debug.deviceEntries(a)).toBe(1);
  });

  it("reports size, direction and the unchecked map error in the kernel's order, then frees the entry", () => {
    const { debug, device, warns } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    debug.debugDmaMapPhys(dev, BUF, 4096, DMA_TO_DEVICE, 0x20_0000, 0);
    debug.debugDmaUnmapPhys(dev, 0x20_0000, 2048, DMA_FROM_DEVICE);
    expect(warns()).toEqual([
      "DMA-API: camdrv cam0: device driver frees DMA memory with different size [device address=0x0000000000200000] [map size=4096 bytes] [unmap size=2048 bytes]",
      "DMA-API: camdrv cam0: device driver frees DMA memory with different direction [device address=0x0000000000200000] [size=2048 bytes] [mapped with DMA_TO_DEVICE] [unmapped with DMA_FROM_DEVICE]",
      "DMA-API: camdrv cam0: device driver failed to check map error[device address=0x0000000000200000] [size=2048 bytes] [mapped as phy]",
    ]);
    expect(debug.reports()[2]).toMatchObject({
      kind: "map-error-not-checked",
      missingCall: "dma_mapping_error",
    });
    expect(debug.liveEntries).toBe(0);
    expect(debug.errorCount).toBe(3);
  });

  it("dma_mapping_error marks one entry checked: two identical mappings, one check, one report", () => {
    const { debug, device, warns } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    debug.debugDmaMapPhys(dev, BUF, 512, DMA_TO_DEVICE, 0x8000, 0);
    debug.debugDmaMapPhys(dev, BUF, 512, DMA_TO_DEVICE, 0x8000, 0);
    debug.debugDmaMappingError(dev, 0x8000);
    debug.debugDmaUnmapPhys(dev, 0x8000, 512, DMA_TO_DEVICE);
    debug.debugDmaUnmapPhys(dev, 0x8000, 512, DMA_TO_DEVICE);
    expect(warns()).toEqual([
      "DMA-API: camdrv cam0: device driver failed to check map error[device address=0x0000000000008000] [size=512 bytes] [mapped as phy]",
    ]);
  });

  it("best fit: the same address mapped with two sizes is unmapped without a false size error", () => {
    const { debug, device, warns } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    debug.debugDmaMapPhys(dev, BUF, 100, DMA_TO_DEVICE, 0x9000, 0);
    debug.debugDmaMapPhys(dev, BUF, 300, DMA_TO_DEVICE, 0x9000, 0);
    debug.debugDmaMappingError(dev, 0x9000);
    debug.debugDmaMappingError(dev, 0x9000);
    debug.debugDmaUnmapPhys(dev, 0x9000, 300, DMA_TO_DEVICE);
    debug.debugDmaUnmapPhys(dev, 0x9000, 100, DMA_TO_DEVICE);
    expect(warns()).toEqual([]);
    // Two imperfect candidates: the kernel refuses to guess.
    debug.debugDmaMapPhys(dev, BUF, 100, DMA_TO_DEVICE, 0x9000, 0);
    debug.debugDmaMapPhys(dev, BUF, 300, DMA_TO_DEVICE, 0x9000, 0);
    debug.debugDmaUnmapPhys(dev, 0x9000, 200, DMA_TO_DEVICE);
    expect(warns()).toEqual([
      "DMA-API: camdrv cam0: device driver tries to free DMA memory it has not allocated [device address=0x0000000000009000] [size=200 bytes]",
    ]);
  });

  it("reports the wrong function and a coherent free with another CPU address (0x printed twice, as 6.18 does)", () => {
    const { debug, device, warns, vm } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    const pfn = BUF / PAGE_SIZE;
    debug.debugDmaMapPhys(dev, BUF, 4096, DMA_BIDIRECTIONAL, 0x30_0000, 0);
    debug.debugDmaMappingError(dev, 0x30_0000);
    debug.debugDmaFreeCoherent(dev, 4096, vm.pageAddress(pfn), 0x30_0000);
    debug.debugDmaAllocCoherent(dev, 8192, 0x40_0000, vm.pageAddress(pfn + 4), 0);
    debug.debugDmaFreeCoherent(dev, 8192, vm.pageAddress(pfn + 5), 0x40_0000);
    expect(warns()).toEqual([
      "DMA-API: camdrv cam0: device driver frees DMA memory with wrong function [device address=0x0000000000300000] [size=4096 bytes] [mapped as phy] [unmapped as coherent]",
      "DMA-API: camdrv cam0: device driver frees DMA memory with different CPU address [device address=0x0000000000400000] [size=8192 bytes] [cpu alloc address=0x0x0000000080104000] [cpu free address=0x0x0000000080105000]",
    ]);
  });

  it("noncoherent pages: alloc/free pairs silently; a wrong pfn is a CPU address mismatch", () => {
    const { debug, device, warns } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    const pfn = BUF / PAGE_SIZE;
    debug.debugDmaAllocPages(dev, pfn, 8192, DMA_BIDIRECTIONAL, 0x50_0000, 0);
    debug.debugDmaFreePages(dev, pfn, 8192, DMA_BIDIRECTIONAL, 0x50_0000);
    debug.debugDmaAllocPages(dev, pfn, 8192, DMA_BIDIRECTIONAL, 0x50_0000, 0);
    debug.debugDmaFreePages(dev, pfn + 1, 8192, DMA_BIDIRECTIONAL, 0x50_0000);
    expect(warns()).toEqual([
      "DMA-API: camdrv cam0: device driver frees DMA memory with different CPU address [device address=0x0000000000500000] [size=8192 bytes] [cpu alloc address=0x0x0000000080100000] [cpu free address=0x0x0000000080101000]",
    ]);
  });

  it("scatterlists: one entry per mapped segment; unmap with another count reports each segment", () => {
    const { debug, device, warns, sgList } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    const sgt = sgList([
      [BUF, 4096],
      [BUF + 0x3000, 4096],
      [BUF + 0x8000, 4096],
    ]);
    debug.debugDmaMapSg(dev, sgt.sgl!, 3, 3, DMA_TO_DEVICE, 0);
    expect(debug.deviceEntries(dev)).toBe(3);
    debug.debugDmaUnmapSg(dev, sgt.sgl!, 2, DMA_TO_DEVICE);
    expect(warns()).toEqual([
      "DMA-API: camdrv cam0: device driver frees DMA sg list with different entry count [map count=3] [unmap count=2]",
      "DMA-API: camdrv cam0: device driver frees DMA sg list with different entry count [map count=3] [unmap count=2]",
    ]);
    expect(debug.deviceEntries(dev)).toBe(1);
  });

  it("unmapping an sg mapping with dma_unmap_phys is the wrong function", () => {
    const { debug, device, warns, sgList } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    const sgt = sgList([[BUF, 4096]]);
    debug.debugDmaMapSg(dev, sgt.sgl!, 1, 1, DMA_TO_DEVICE, 0);
    debug.debugDmaUnmapPhys(dev, BUF, 4096, DMA_TO_DEVICE);
    expect(warns()).toEqual([
      "DMA-API: camdrv cam0: device driver frees DMA memory with wrong function [device address=0x0000000080100000] [size=4096 bytes] [mapped as scatter-gather] [unmapped as phy]",
    ]);
  });
});

describe("dma-debug: dma_map_single address checks", () => {
  it("rejects vmalloc (also not a valid linear address) and non-linear addresses", () => {
    const { debug, device, warns, vm } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    const va = vm.vmalloc(8192);
    expect(va).not.toBeNull();
    debug.debugDmaMapSingle(dev, va as number, 100);
    debug.debugDmaMapSingle(dev, vm.pageAddress(BUF / PAGE_SIZE) + 8, 100);
    const hexva = (va as number).toString(16).padStart(16, "0");
    expect(warns()).toEqual([
      `DMA-API: camdrv cam0: device driver maps memory from invalid area [addr=${hexva}] [len=100]`,
      `DMA-API: camdrv cam0: device driver maps memory from vmalloc area [addr=${hexva}] [len=100]`,
    ]);
  });

  it("kernel text/rodata, when the machine says where it is", () => {
    const { debug, device, warns, vm } = debugMachine({
      allErrors: true,
      kernelText: [{ start: RAM, size: 0x10_0000 }],
    });
    const dev = device("cam0");
    debug.debugDmaMapPhys(dev, RAM + 0x2000, 64, DMA_TO_DEVICE, 0x2000, 0);
    debug.debugDmaMapPhys(dev, BUF, 64, DMA_TO_DEVICE, 0x3000, 0);
    debug.debugDmaMapPhys(dev, RAM, 64, DMA_TO_DEVICE, 0x4000, DMA_ATTR_MMIO);
    const va = vm
      .physToVirt(RAM + 0x2000)
      .toString(16)
      .padStart(16, "0");
    expect(warns()).toEqual([
      `DMA-API: camdrv cam0: device driver maps memory from kernel text or rodata [addr=${va}] [len=64]`,
    ]);
  });
});

describe("dma-debug: check_sync", () => {
  it("finds the containing mapping by walking back buckets, and checks directions", () => {
    const { debug, device, warns } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    debug.debugDmaMapPhys(dev, BUF, 0x10000, DMA_FROM_DEVICE, 0x10000, 0);
    // 0x1e000 hashes 7 buckets after the mapping's start: found by walking back.
    debug.debugDmaSyncSingleForCpu(dev, 0x1e000, 0x100, DMA_FROM_DEVICE);
    debug.debugDmaSyncSingleForDevice(dev, 0x10000, 0x10000, DMA_FROM_DEVICE);
    expect(warns()).toEqual([]);
    debug.debugDmaSyncSingleForCpu(dev, 0x1ff00, 0x200, DMA_FROM_DEVICE);
    debug.debugDmaSyncSingleForDevice(dev, 0x10000, 64, DMA_TO_DEVICE);
    expect(warns()).toEqual([
      "DMA-API: camdrv cam0: device driver tries to sync DMA memory it has not allocated [device address=0x000000000001ff00] [size=512 bytes]",
      "DMA-API: camdrv cam0: device driver syncs DMA memory with different direction [device address=0x0000000000010000] [size=65536 bytes] [mapped with DMA_FROM_DEVICE] [synced with DMA_TO_DEVICE]",
      "DMA-API: camdrv cam0: device driver syncs device write-only DMA memory to device [device address=0x0000000000010000] [size=65536 bytes] [mapped with DMA_FROM_DEVICE] [synced with DMA_TO_DEVICE]",
    ]);
  });

  it("for_cpu on a TO_DEVICE mapping is a sync of device read-only memory; BIDIRECTIONAL mappings accept any direction", () => {
    const { debug, device, warns } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    debug.debugDmaMapPhys(dev, BUF, 4096, DMA_TO_DEVICE, 0x6000, 0);
    debug.debugDmaSyncSingleForCpu(dev, 0x6000, 4096, DMA_FROM_DEVICE);
    debug.debugDmaMapPhys(dev, BUF + 0x4000, 4096, DMA_BIDIRECTIONAL, 0xa000, 0);
    debug.debugDmaSyncSingleForCpu(dev, 0xa000, 4096, DMA_TO_DEVICE);
    debug.debugDmaSyncSingleForDevice(dev, 0xa000, 4096, DMA_FROM_DEVICE);
    expect(warns()).toEqual([
      "DMA-API: camdrv cam0: device driver syncs DMA memory with different direction [device address=0x0000000000006000] [size=4096 bytes] [mapped with DMA_TO_DEVICE] [synced with DMA_FROM_DEVICE]",
      "DMA-API: camdrv cam0: device driver syncs device read-only DMA memory for cpu [device address=0x0000000000006000] [size=4096 bytes] [mapped with DMA_TO_DEVICE] [synced with DMA_FROM_DEVICE]",
    ]);
  });

  it("sg syncs check each mapped segment and the entry count", () => {
    const { debug, device, warns, sgList } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    const sgt = sgList([
      [BUF, 4096],
      [BUF + 0x2000, 4096],
    ]);
    debug.debugDmaMapSg(dev, sgt.sgl!, 2, 2, DMA_FROM_DEVICE, 0);
    debug.debugDmaSyncSgForCpu(dev, sgt.sgl!, 2, DMA_FROM_DEVICE);
    expect(warns()).toEqual([]);
    debug.debugDmaSyncSgForDevice(dev, sgt.sgl!, 1, DMA_FROM_DEVICE);
    expect(warns()).toEqual([
      "DMA-API: camdrv cam0: device driver syncs DMA sg list with different entry count [map count=2] [sync count=1]",
    ]);
  });
});

describe("dma-debug: leaks at driver unbind", () => {
  it("reports the count and the last entry found, with the bus name once the driver is gone", () => {
    const { debug, device, warns } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    const other = device("isp0", "ispdrv");
    debug.debugDmaMapPhys(dev, BUF, 4096, DMA_TO_DEVICE, 0x1000, 0);
    debug.debugDmaMapPhys(dev, BUF + 0x8000, 8192, DMA_FROM_DEVICE, 0x40000, 0);
    debug.debugDmaMapPhys(other, BUF, 64, DMA_TO_DEVICE, 0x80000, 0);
    other.releaseDriver();
    expect(warns()).toHaveLength(1);
    dev.releaseDriver();
    expect(warns()[1]).toBe(
      "DMA-API: platform cam0: device driver has pending DMA allocations while released from device [count=2]\nOne of leaked entries details: [device address=0x0000000000040000] [size=8192 bytes] [mapped with DMA_FROM_DEVICE] [mapped as phy]",
    );
    expect(debug.reports()[1]).toMatchObject({
      kind: "leak-at-unbind",
      device: "cam0",
      missingCall: "dma_unmap_page",
    });
    expect(debug.deviceCounts()).toEqual(
      new Map([
        ["cam0", 2],
        ["isp0", 1],
      ]),
    );
  });

  it("a driver that unmapped everything unbinds silently", () => {
    const { debug, device, warns } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    debug.debugDmaMapPhys(dev, BUF, 4096, DMA_TO_DEVICE, 0x1000, 0);
    debug.debugDmaMappingError(dev, 0x1000);
    debug.debugDmaUnmapPhys(dev, 0x1000, 4096, DMA_TO_DEVICE);
    dev.releaseDriver();
    expect(warns()).toEqual([]);
  });
});

describe("dma-debug: overlapping cachelines", () => {
  const EEXIST = "DMA-API: camdrv cam0: cacheline tracking EEXIST, overlapping mappings aren't supported";

  it("two device-writable mappings starting in one cache line are an error; TO_DEVICE and SKIP_CPU_SYNC are not", () => {
    const { debug, device, warns } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    debug.debugDmaMapPhys(dev, BUF, 32, DMA_FROM_DEVICE, 0x1000, 0);
    debug.debugDmaMapPhys(dev, BUF + 8, 32, DMA_TO_DEVICE, 0x2000, 0);
    debug.debugDmaMapPhys(dev, BUF + 32, 32, DMA_FROM_DEVICE, 0x3000, DMA_ATTR_SKIP_CPU_SYNC);
    expect(warns()).toEqual([]);
    debug.debugDmaMapPhys(dev, BUF + 63, 1, DMA_BIDIRECTIONAL, 0x4000, 0);
    debug.debugDmaMapPhys(dev, BUF + 64, 1, DMA_BIDIRECTIONAL, 0x5000, 0);
    expect(warns()).toEqual([EEXIST]);
    expect(debug.reports()[0]).toMatchObject({ kind: "cacheline-overlap", phys: BUF + 63, dmaAddr: 0x4000 });
  });

  it("DMA_ATTR_DEBUGGING_IGNORE_CACHELINES on both mappings silences it, on one does not", () => {
    const { debug, device, warns } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    const I = DMA_ATTR_DEBUGGING_IGNORE_CACHELINES;
    debug.debugDmaMapPhys(dev, BUF, 16, DMA_FROM_DEVICE, 0x1000, I);
    debug.debugDmaMapPhys(dev, BUF + 16, 16, DMA_FROM_DEVICE, 0x2000, I);
    expect(warns()).toEqual([]);
    debug.debugDmaMapPhys(dev, BUF + 128, 16, DMA_FROM_DEVICE, 0x3000, 0);
    debug.debugDmaMapPhys(dev, BUF + 144, 16, DMA_FROM_DEVICE, 0x4000, I);
    expect(warns()).toEqual([EEXIST]);
  });

  it("unmaps balance maps before the line is free again; past 7 overlaps the kernel WARNs once", () => {
    const { debug, device, warns, log } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    debug.debugDmaMapPhys(dev, BUF, 16, DMA_FROM_DEVICE, 0x1000, DMA_ATTR_SKIP_CPU_SYNC);
    debug.debugDmaMapPhys(dev, BUF, 16, DMA_FROM_DEVICE, 0x2000, DMA_ATTR_SKIP_CPU_SYNC);
    debug.debugDmaMappingError(dev, 0x1000);
    debug.debugDmaUnmapPhys(dev, 0x1000, 16, DMA_FROM_DEVICE);
    debug.debugDmaMapPhys(dev, BUF, 16, DMA_FROM_DEVICE, 0x3000, 0);
    expect(warns()).toEqual([EEXIST]); // line still held by 0x2000
    for (let i = 0; i < 8; i++)
      debug.debugDmaMapPhys(dev, BUF, 16, DMA_FROM_DEVICE, 0x10000 + i * 0x100, DMA_ATTR_SKIP_CPU_SYNC);
    expect(log.find({ message: "overlapping mappings of cacheline" }).map((r) => r.message)).toEqual([
      `exceeded 7 overlapping mappings of cacheline 0x${(BUF / 64).toString(16).padStart(16, "0")}`,
    ]);
  });
});

describe("dma-debug: CONFIG_DMA_API_DEBUG_SG segment checks", () => {
  it("reports segments longer than max_segment_size and crossing the segment boundary", () => {
    const { debug, device, warns, sgList } = debugMachine({ allErrors: true, sg: true });
    const dev = device("cam0");
    dev.dmaParms!.segmentBoundaryMask = 0xffff;
    const sgt = sgList(
      [
        [BUF, 0x20000],
        [BUF + 0x40000, 0x2000],
      ],
      [
        [0x100000, 0x20000],
        [0xf000, 0x2000],
      ],
    );
    debug.debugDmaMapSg(dev, sgt.sgl!, 2, 2, DMA_TO_DEVICE, 0);
    expect(warns()).toEqual([
      "DMA-API: camdrv cam0: mapping sg segment longer than device claims to support [len=131072] [max=65536]",
      "DMA-API: camdrv cam0: mapping sg segment across boundary [start=0x0000000000100000] [end=0x000000000011ffff] [boundary=0x000000000000ffff]",
      "DMA-API: camdrv cam0: mapping sg segment across boundary [start=0x000000000000f000] [end=0x0000000000010fff] [boundary=0x000000000000ffff]",
    ]);
  });

  it("are off without the sg option, as with Kconfig's default", () => {
    const { debug, device, warns, sgList } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    const sgt = sgList([[BUF, 0x20000]]);
    debug.debugDmaMapSg(dev, sgt.sgl!, 1, 1, DMA_TO_DEVICE, 0);
    expect(warns()).toEqual([]);
  });
});

describe("dma-debug: err_printk accounting", () => {
  it("prints only the first error by default but counts them all", () => {
    const { debug, device, warns } = debugMachine();
    const dev = device("cam0");
    debug.debugDmaUnmapPhys(dev, 0x1000, 64, DMA_TO_DEVICE);
    debug.debugDmaUnmapPhys(dev, 0x2000, 64, DMA_TO_DEVICE);
    expect(warns()).toHaveLength(1);
    expect([debug.errorCount, debug.numErrors]).toEqual([2, 0]);
    expect(debug.reports().map((r) => r.printed)).toEqual([true, false]);
    debug.numErrors = 1;
    debug.debugDmaUnmapPhys(dev, 0x3000, 64, DMA_TO_DEVICE);
    expect(warns()).toHaveLength(2);
  });

  it("the driver filter hides other drivers' errors, which still use up num_errors", () => {
    const { debug, device, warns, log } = debugMachine({ numErrors: 2, driverFilter: "ispdrv" });
    expect(log.find({ message: "enable driver filter for driver [ispdrv]" })).toHaveLength(1);
    const cam = device("cam0");
    const isp = device("isp0", "ispdrv");
    debug.debugDmaUnmapPhys(cam, 0x1000, 64, DMA_TO_DEVICE);
    debug.debugDmaUnmapPhys(isp, 0x1000, 64, DMA_TO_DEVICE);
    debug.debugDmaUnmapPhys(isp, 0x2000, 64, DMA_TO_DEVICE);
    expect(warns()).toEqual([
      "DMA-API: ispdrv isp0: device driver tries to free DMA memory it has not allocated [device address=0x0000000000001000] [size=64 bytes]",
    ]);
    expect(debug.errorCount).toBe(3);
    debug.driverFilter = " ";
    expect(log.find({ message: "switching off dma-debug driver filter" })).toHaveLength(1);
    expect(debug.driverFilter).toBe("");
  });
});

describe("dma-debug: dump", () => {
  it("lists live entries bucket by bucket like debugfs dump, and dev_info lines for debug_dma_dump_mappings", () => {
    const { debug, device, log } = debugMachine();
    const dev = device("cam0");
    debug.debugDmaMapPhys(dev, BUF + 0x40, 0x1000, DMA_FROM_DEVICE, 0x4000, DMA_ATTR_SKIP_CPU_SYNC);
    debug.debugDmaMapPhys(dev, BUF, 0x100, DMA_TO_DEVICE, 0x2000, 0);
    debug.debugDmaMappingError(dev, 0x2000);
    expect(debug.dump()).toEqual([
      "camdrv cam0 phy idx 1 P=0x0000000080100000 D=2000 L=100 cln=0x0000000002004000 DMA_TO_DEVICE dma map error checked attrs=0x0",
      "camdrv cam0 phy idx 2 P=0x0000000080100040 D=4000 L=1000 cln=0x0000000002004001 DMA_FROM_DEVICE dma map error not checked attrs=0x20",
    ]);
    expect(debug.dumpMappings(dev)).toBe(2);
    expect(log.find({ prefix: "camdrv cam0" }).map((r) => r.message)[0]).toBe(
      "phy idx 1 P=0x0000000080100000 D=2000 L=100 cln=0x0000000002004000 DMA_TO_DEVICE dma map error checked attrs=0x0",
    );
  });
});

describe("dma-debug beyond the kernel: cache model and buffer ownership", () => {
  it("a non-coherent device reading a buffer written after dma_map: names the mapping and dma_sync_single_for_device", () => {
    const { debug, device, cache, bytes, warns } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    cache.cpuWrite(BUF, bytes(256, 1));
    // dma_map_single(TO_DEVICE) on a non-coherent device: clean to PoC, then the debug hook.
    debug.debugDmaMapSingle(dev, 0x10_0000_0000_0000 + BUF, 256);
    cache.cleanRange(BUF, 256);
    debug.debugDmaMapPhys(dev, BUF, 256, DMA_TO_DEVICE, 0x7000, 0);
    debug.debugDmaMappingError(dev, 0x7000);
    cache.cpuWrite(BUF + 64, bytes(16, 2)); // no sync
    const seen = new Uint8Array(256);
    cache.deviceRead(BUF, seen, { device: "cam0" });
    expect(seen[64]).toBe(1); // the device read the old bytes
    expect(warns()).toEqual([
      "DMA-API: camdrv cam0: CPU wrote a buffer owned by the device at 0x0000000080100040 (after dma_map_single()), mapping [device address=0x0000000000007000] [size=256 bytes] DMA_TO_DEVICE — missing dma_sync_single_for_cpu() or dma_unmap_single() before the CPU access",
      "DMA-API: camdrv cam0: device read stale data: CPU cache line 0x0000000080100040 dirty, mapping [device address=0x0000000000007000] [size=256 bytes] DMA_TO_DEVICE — missing dma_sync_single_for_device() or buffer written after dma_map_single()",
    ]);
    expect(debug.reports()[1]).toEqual({
      seq: 1,
      kind: "device-read-stale",
      device: "cam0",
      driver: "camdrv",
      dmaAddr: 0x7000,
      size: 256,
      phys: BUF + 64,
      dir: DMA_TO_DEVICE,
      message: expect.stringContaining("device read stale data"),
      missingCall: "dma_sync_single_for_device",
      printed: true,
    });
  });

  it("after sync_for_cpu the CPU may write; the device reading without sync_for_device is the missing call", () => {
    const { debug, device, cache, bytes, warns } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    debug.debugDmaMapPhys(dev, BUF, 128, DMA_BIDIRECTIONAL, 0x7000, 0);
    debug.debugDmaSyncSingleForCpu(dev, 0x7000, 128, DMA_BIDIRECTIONAL);
    cache.cpuWrite(BUF, bytes(128, 5));
    expect(warns()).toEqual([]);
    cache.deviceRead(BUF, new Uint8Array(128), { device: "cam0" });
    expect(warns()).toEqual([
      "DMA-API: camdrv cam0: device read stale data: CPU cache line 0x0000000080100000 dirty, mapping [device address=0x0000000000007000] [size=128 bytes] DMA_BIDIRECTIONAL — missing dma_sync_single_for_device()",
    ]);
    // The right sequence: clean + sync_for_device, then the device reads clean data, no report.
    cache.cleanRange(BUF, 128);
    debug.debugDmaSyncSingleForDevice(dev, 0x7000, 128, DMA_BIDIRECTIONAL);
    cache.deviceRead(BUF, new Uint8Array(128), { device: "cam0" });
    expect(warns()).toHaveLength(1);
  });

  it("the CPU reading what a device wrote without sync_for_cpu reads stale data, and is told so", () => {
    const { debug, device, cache, bytes, warns } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    cache.invalidateRange(BUF, 4096);
    debug.debugDmaMapPhys(dev, BUF, 4096, DMA_FROM_DEVICE, 0x20000, 0);
    debug.debugDmaMappingError(dev, 0x20000);
    const peek = new Uint8Array(64);
    cache.cpuRead(BUF + 128, peek); // caches the line while the device owns it
    cache.deviceWrite(BUF, bytes(4096, 9), { device: "cam0" });
    cache.cpuRead(BUF + 128, peek);
    expect(peek[0]).toBe(0);
    expect(warns()).toEqual([
      "DMA-API: camdrv cam0: CPU read a buffer owned by the device at 0x0000000080100080 (after dma_map_page()), mapping [device address=0x0000000000020000] [size=4096 bytes] DMA_FROM_DEVICE — missing dma_sync_single_for_cpu() or dma_unmap_page() before the CPU access",
      "DMA-API: camdrv cam0: CPU read stale data: cache line 0x0000000080100080 was cached before cam0 wrote RAM, mapping [device address=0x0000000000020000] [size=4096 bytes] DMA_FROM_DEVICE — missing dma_sync_single_for_cpu() or dma_unmap_page() before the CPU read",
    ]);
    expect(debug.reports()[1]).toMatchObject({
      kind: "cpu-read-stale",
      missingCall: "dma_sync_single_for_cpu",
      phys: BUF + 128,
    });
    // Done right: sync_for_cpu invalidates, then the CPU sees the device's bytes and nothing is reported.
    cache.invalidateRange(BUF, 4096);
    debug.debugDmaSyncSingleForCpu(dev, 0x20000, 4096, DMA_FROM_DEVICE);
    cache.cpuRead(BUF + 128, peek);
    expect(peek[0]).toBe(9);
    expect(warns()).toHaveLength(2);
  });

  it("a CPU write while the device owns the buffer is reported once per ownership period", () => {
    const { debug, device, cache, bytes, warns } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    debug.debugDmaMapPhys(dev, BUF, 4096, DMA_FROM_DEVICE, 0x20000, 0);
    cache.cpuWrite(BUF + 8, bytes(4, 1));
    cache.cpuWrite(BUF + 16, bytes(4, 1));
    expect(warns()).toHaveLength(1);
    expect(debug.reports()[0]).toMatchObject({
      kind: "cpu-touched-device-owned",
      phys: BUF + 8,
      missingCall: "dma_sync_single_for_cpu",
    });
    debug.debugDmaSyncSingleForCpu(dev, 0x20000, 4096, DMA_FROM_DEVICE);
    cache.cpuWrite(BUF + 8, bytes(4, 1));
    expect(warns()).toHaveLength(1);
    debug.debugDmaSyncSingleForDevice(dev, 0x20000, 4096, DMA_FROM_DEVICE);
    cache.cpuWrite(BUF + 8, bytes(4, 1));
    expect(warns()[1]).toContain(
      "CPU wrote a buffer owned by the device at 0x0000000080100008 (after dma_sync_single_for_device())",
    );
    // Reading a TO_DEVICE buffer the device owns is harmless and not reported.
    debug.debugDmaMapPhys(dev, BUF + 0x2000, 64, DMA_TO_DEVICE, 0x30000, 0);
    cache.cpuRead(BUF + 0x2000, new Uint8Array(64));
    expect(warns()).toHaveLength(2);
    // Kernel-internal accesses (swiotlb bounce copies) can be excused.
    debug.debugDmaMapPhys(dev, BUF + 0x3000, 64, DMA_FROM_DEVICE, 0x31000, 0);
    dmaDebugKernelAccess(debug.system, () => cache.cpuWrite(BUF + 0x3000, bytes(64, 3)));
    expect(warns()).toHaveLength(2);
  });

  it("invalidating a buffer the CPU wrote while the device owned it loses the writes, and names the mapping", () => {
    const { debug, device, cache, bytes, warns } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    debug.debugDmaMapPhys(dev, BUF, 256, DMA_FROM_DEVICE, 0x20000, 0);
    dmaDebugKernelAccess(debug.system, () => cache.cpuWrite(BUF, bytes(256, 4)));
    cache.invalidateRange(BUF, 256); // what dma_unmap does for FROM_DEVICE on a non-coherent device
    expect(warns()).toEqual([
      "DMA-API: camdrv cam0: CPU writes discarded: invalidating mapping [device address=0x0000000000020000] [size=256 bytes] DMA_FROM_DEVICE dropped dirty CPU cache line 0x0000000080100000 — the CPU wrote the buffer while the device owned it (missing dma_sync_single_for_cpu() before the CPU write)",
    ]);
  });

  it("scatterlist ownership follows the merged DMA segments", () => {
    const { debug, device, cache, bytes, warns, sgList } = debugMachine({ allErrors: true });
    const dev = device("cam0");
    // Two CPU segments merged by an IOMMU into one DMA segment.
    const sgt = sgList(
      [
        [BUF, 4096],
        [BUF + 0x10000, 4096],
      ],
      [[0x100000, 8192]],
    );
    debug.debugDmaMapSg(dev, sgt.sgl!, 2, 1, DMA_FROM_DEVICE, 0);
    cache.cpuWrite(BUF + 0x10000, bytes(8, 1));
    expect(warns()).toEqual([
      "DMA-API: camdrv cam0: CPU wrote a buffer owned by the device at 0x0000000080110000 (after dma_map_sg()), mapping [device address=0x0000000000100000] [size=8192 bytes] DMA_FROM_DEVICE — missing dma_sync_sg_for_cpu() or dma_unmap_sg() before the CPU access",
    ]);
    debug.debugDmaUnmapSg(dev, sgt.sgl!, 2, DMA_FROM_DEVICE);
    cache.cpuWrite(BUF + 0x10000, bytes(8, 1));
    expect(warns()).toHaveLength(1);
    expect(debug.liveEntries).toBe(0);
  });

  it("on a coherent machine the cache finds nothing, but touching a device-owned buffer is still misuse", () => {
    const { debug, device, cache, bytes, warns } = debugMachine({ allErrors: true, coherent: true });
    const dev = device("nic0", "nicdrv");
    debug.debugDmaMapPhys(dev, BUF, 256, DMA_TO_DEVICE, 0x7000, 0);
    cache.cpuWrite(BUF, bytes(16, 1));
    cache.deviceRead(BUF, new Uint8Array(256), { device: "nic0" });
    expect(warns()).toHaveLength(1);
    expect(debug.reports()[0]?.kind).toBe("cpu-touched-device-owned");
  });

  it("cacheChecks: false and disable() leave the cache alone", () => {
    const a = debugMachine({ allErrors: true, cacheChecks: false });
    const dev = a.device("cam0");
    a.debug.debugDmaMapPhys(dev, BUF, 256, DMA_FROM_DEVICE, 0x7000, 0);
    a.cache.cpuWrite(BUF, a.bytes(16, 1));
    expect(a.warns()).toEqual([]);
    const b = debugMachine({ allErrors: true });
    const d2 = b.device("cam0");
    b.debug.debugDmaMapPhys(d2, BUF, 256, DMA_FROM_DEVICE, 0x7000, 0);
    b.debug.disable();
    b.cache.cpuWrite(BUF, b.bytes(16, 1));
    b.debug.debugDmaUnmapPhys(d2, 0x1234, 1, DMA_TO_DEVICE);
    d2.releaseDriver();
    expect([b.warns(), b.debug.disabled]).toEqual([[], true]);
  });
});
