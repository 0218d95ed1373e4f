import { PAGE_SIZE } from "@dmakit/core";
import { type Sg, SgTable, sgAllocTableFromPages } from "@dmakit/scatterlist";
import { describe, expect, it } from "vitest";
import {
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_NONE,
  DMA_TO_DEVICE,
  type DmaDebugHooks,
  devDmaState,
  dmaMapPhys,
  dmaMapSgtable,
  dmaNeedSync,
  dmaNeedUnmap,
  dmaSyncSgForCpu,
  dmaSyncSgtableForCpu,
  dmaSyncSgtableForDevice,
  dmaSyncSingleForCpu,
  dmaSyncSingleForDevice,
  dmaSyncSingleRangeForCpu,
  dmaSyncSingleRangeForDevice,
  dmaUnmapPhys,
  swiotlbInit,
} from "../src/index.js";
import {
  HIGH_RAM,
  LOW_RAM,
  type MachineOptions,
  makeMachine,
  pattern,
  SPLIT_RAM,
  type TestMachine,
} from "./helpers/machine.js";

/** The streaming-map tests' machine: RAM below and above 4 GiB, no IOMMU. */
const machine = (o: MachineOptions = {}): TestMachine => makeMachine({ layout: SPLIT_RAM, ...o });

const buf = LOW_RAM + 0x10_0000;

function countingDebug(): { hooks: DmaDebugHooks; syncs: string[] } {
  const syncs: string[] = [];
  const nop = () => {};
  return {
    syncs,
    hooks: {
      debugDmaMapPhys: nop,
      debugDmaUnmapPhys: nop,
      debugDmaMapSingle: nop,
      debugDmaMappingError: nop,
      debugDmaMapSg: nop,
      debugDmaUnmapSg: nop,
      debugDmaAllocCoherent: nop,
      debugDmaFreeCoherent: nop,
      debugDmaAllocPages: nop,
      debugDmaFreePages: nop,
      debugDmaSyncSingleForCpu: (_d, a, s, dir) => syncs.push(`cpu ${a.toString(16)}+${s} ${dir}`),
      debugDmaSyncSingleForDevice: (_d, a, s, dir) => syncs.push(`dev ${a.toString(16)}+${s} ${dir}`),
      debugDmaSyncSgForCpu: (_d, _sg, n, dir) => syncs.push(`sg cpu ${n} ${dir}`),
      debugDmaSyncSgForDevice: (_d, _sg, n, dir) => syncs.push(`sg dev ${n} ${dir}`),
      kernelAccess: (fn) => fn(),
    },
  };
}

describe("dma_sync_single_* on a non-coherent device", () => {
  it("for_cpu makes the device's writes visible; for_device makes the CPU's writes visible", () => {
    const m = machine({ trace: true });
    const dev = m.device("dev0");
    m.cpuRead(buf, 256);
    const h = dmaMapPhys(dev, buf, 256, DMA_BIDIRECTIONAL);
    m.devWrite(buf, pattern(256, 1));
    dmaSyncSingleForCpu(dev, h, 256, DMA_BIDIRECTIONAL);
    expect(m.cpuRead(buf, 256)).toEqual(pattern(256, 1));
    m.cpuWrite(buf, pattern(256, 2));
    dmaSyncSingleForDevice(dev, h, 256, DMA_BIDIRECTIONAL);
    expect(m.devRead(buf, 256)).toEqual(pattern(256, 2));
    expect(m.system.stats.syncs).toBe(2);
    expect(m.events.filter((e) => e.name.startsWith("dma_sync")).map((e) => `${e.name} ${e.text}`)).toEqual([
      "dma_sync_single_for_cpu dev0 dir=BIDIRECTIONAL dma_addr=80100000 size=256",
      "dma_sync_single_for_device dev0 dir=BIDIRECTIONAL dma_addr=80100000 size=256",
    ]);
    dmaUnmapPhys(dev, h, 256, DMA_BIDIRECTIONAL);
  });

  it("for_cpu with TO_DEVICE invalidates nothing", () => {
    const m = machine();
    const dev = m.device("dev0");
    m.cpuRead(buf, 64);
    const h = dmaMapPhys(dev, buf, 64, DMA_TO_DEVICE);
    m.devWrite(buf, pattern(64, 4)); // (a misbehaving device)
    dmaSyncSingleForCpu(dev, h, 64, DMA_TO_DEVICE);
    expect(m.cpuRead(buf, 64)).toEqual(new Uint8Array(64));
  });

  it("range variants sync exactly addr+offset .. +size", () => {
    const m = machine();
    const dev = m.device("dev0");
    m.cpuRead(buf, 1024);
    const h = dmaMapPhys(dev, buf, 1024, DMA_FROM_DEVICE);
    m.devWrite(buf, pattern(1024, 3));
    dmaSyncSingleRangeForCpu(dev, h, 512, 256, DMA_FROM_DEVICE);
    expect(m.cpuRead(buf + 512, 256)).toEqual(pattern(1024, 3).subarray(512, 768));
    expect(m.cpuRead(buf, 256)).toEqual(new Uint8Array(256)); // outside the range: still the stale line
    m.cpuWrite(buf + 768, pattern(64, 9));
    dmaSyncSingleRangeForDevice(dev, h, 768, 64, DMA_FROM_DEVICE);
    expect(m.devRead(buf + 768, 64)).toEqual(pattern(64, 9));
  });

  it("bounce buffers: for_cpu copies the bounce buffer back, for_device copies the original in", () => {
    const m = machine({ coherent: true });
    swiotlbInit(m.system, { size: 4 * 1024 * 1024 });
    const dev = m.device("dev0");
    const orig = HIGH_RAM + 0x1000;
    const h = dmaMapPhys(dev, orig, 128, DMA_BIDIRECTIONAL);
    expect(h).toBeLessThan(2 ** 32);
    m.devWrite(h, pattern(128, 5));
    expect(m.cpuRead(orig, 128)).toEqual(new Uint8Array(128));
    dmaSyncSingleForCpu(dev, h, 128, DMA_BIDIRECTIONAL);
    expect(m.cpuRead(orig, 128)).toEqual(pattern(128, 5));
    m.cpuWrite(orig, pattern(128, 6));
    dmaSyncSingleForDevice(dev, h, 128, DMA_BIDIRECTIONAL);
    expect(m.devRead(h, 128)).toEqual(pattern(128, 6));
  });
});

describe("dma_skip_sync", () => {
  it("a coherent device that never bounced skips syncs entirely, even an invalid direction (the check is inside)", () => {
    const m = machine({ coherent: true, trace: true });
    const dev = m.device("dev0");
    dmaSyncSingleForCpu(dev, LOW_RAM, 64, DMA_FROM_DEVICE);
    dmaSyncSingleForDevice(dev, LOW_RAM, 64, DMA_NONE);
    expect(m.system.stats.syncs).toBe(0);
    expect(m.events).toHaveLength(0);
  });

  it("with dma-debug every sync is made and reported, and BUG_ON(dir) applies", () => {
    const m = machine({ coherent: true });
    const dev = m.device("dev0");
    const { hooks, syncs } = countingDebug();
    m.system.debug = hooks;
    dmaSyncSingleForCpu(dev, LOW_RAM, 64, DMA_FROM_DEVICE);
    dmaSyncSingleRangeForDevice(dev, LOW_RAM, 0x40, 32, DMA_TO_DEVICE);
    expect(syncs).toEqual(["cpu 80000000+64 2", "dev 80000040+32 1"]);
    expect(m.system.stats.syncs).toBe(2);
    expect(() => dmaSyncSingleForDevice(dev, LOW_RAM, 64, DMA_NONE)).toThrow(
      /dma_sync_single_for_device: BUG/,
    );
  });
});

describe("dma_sync_sg / dma_sync_sgtable", () => {
  it("syncs orig_nents CPU entries with their lengths", () => {
    const m = machine({ trace: true });
    const dev = m.device("dev0");
    const base = LOW_RAM / PAGE_SIZE + 0x200;
    const sgt = new SgTable(m.pool);
    sgAllocTableFromPages(sgt, [base, base + 2, base + 4], 3, 0, 3 * PAGE_SIZE);
    const { hooks, syncs } = countingDebug();
    m.system.debug = hooks;
    m.cpuRead(base * PAGE_SIZE, 3 * PAGE_SIZE);
    m.cpuRead((base + 4) * PAGE_SIZE, PAGE_SIZE);
    dmaMapSgtable(dev, sgt, DMA_FROM_DEVICE);
    m.devWrite((base + 4) * PAGE_SIZE, pattern(64, 7));
    m.devWrite(base * PAGE_SIZE, pattern(64, 8));
    dmaSyncSgtableForCpu(dev, sgt, DMA_FROM_DEVICE);
    expect(m.cpuRead((base + 4) * PAGE_SIZE, 64)).toEqual(pattern(64, 7));
    expect(m.cpuRead(base * PAGE_SIZE, 64)).toEqual(pattern(64, 8));
    dmaSyncSgtableForDevice(dev, sgt, DMA_FROM_DEVICE);
    dmaSyncSgForCpu(dev, sgt.sgl as Sg, 1, DMA_FROM_DEVICE);
    expect(syncs).toEqual(["sg cpu 3 2", "sg dev 3 2", "sg cpu 1 2"]);
    const text = m.events.find((e) => e.name === "dma_sync_sg_for_cpu")?.text;
    expect(text).toBe(
      "dev0 dir=FROM_DEVICE dma_addrs={0x80200000,0x80202000,0x80204000} sizes={0x1000,0x1000,0x1000}",
    );
  });
});

describe("dma_need_sync / dma_need_unmap", () => {
  it("non-coherent: both true; coherent without debug: both false; coherent with debug: true", () => {
    const m = machine();
    const nc = m.device("nc");
    const coh = m.device("coh", { dmaCoherent: true });
    expect([dmaNeedSync(nc, LOW_RAM), dmaNeedUnmap(nc)]).toEqual([true, true]);
    expect([dmaNeedSync(coh, LOW_RAM), dmaNeedUnmap(coh)]).toEqual([false, false]);
    m.system.debug = countingDebug().hooks;
    expect([dmaNeedSync(coh, LOW_RAM), dmaNeedUnmap(coh)]).toEqual([false, true]);
  });

  it("after a coherent device bounced: need_sync is per address (bounce slot yes, direct address no)", () => {
    const m = machine({ coherent: true });
    swiotlbInit(m.system, { size: 4 * 1024 * 1024 });
    const dev = m.device("dev0");
    const bounced = dmaMapPhys(dev, HIGH_RAM, 64, DMA_TO_DEVICE);
    expect(devDmaState(dev).dmaSkipSync).toBe(false);
    expect(dmaNeedSync(dev, bounced)).toBe(true);
    expect(dmaNeedSync(dev, LOW_RAM)).toBe(false);
    expect(dmaNeedUnmap(dev)).toBe(true);
  });
});
