import { bitMask, DMA_MAPPING_ERROR, dmaToPhys, PAGE_SIZE, SZ_4G, SZ_256M } from "@dmakit/core";
import { MemoryBackedMmio } from "@dmakit/mm-pages";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DMA_ATTR_MMIO,
  DMA_ATTR_REQUIRE_COHERENT,
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  devDmaState,
  dmaCapable,
  dmaMapPhys,
  dmaMapResource,
  dmaUnmapPhys,
  dmaUnmapResource,
  isSwiotlbBuffer,
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

describe("dma_capable", () => {
  it("agrees with an exact BigInt reference of addr+size-1 <= min_not_zero(mask, bus limit)", () => {
    const m = machine();
    const dev = m.device("dev0");
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.integer({ min: 1, max: 2 ** 20 }),
        fc.integer({ min: 20, max: 64 }),
        fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 2 ** 40 })),
        fc.option(fc.integer({ min: -2, max: 2 })),
        (random, size, bits, limit, nearEdge) => {
          // Half the cases sit within two bytes of the effective limit.
          const edge = Math.min(bits >= 53 ? 2 ** 53 : 2 ** bits - 1, limit === 0 ? 2 ** 53 : limit);
          const addr = nearEdge === null ? random : Math.max(0, edge - size + 1 + nearEdge);
          // Addresses are numbers below 2^53 (MAX_PHYS_ADDR): a last byte beyond it is not a model input.
          fc.pre(addr <= Number.MAX_SAFE_INTEGER - (size - 1));
          dev.dmaMask = bitMask(bits);
          dev.busDmaLimit = limit;
          const mask = (1n << BigInt(bits)) - 1n;
          const lim = BigInt(limit);
          const eff = lim === 0n ? mask : mask === 0n ? lim : mask < lim ? mask : lim;
          const expected = BigInt(addr) + BigInt(size) - 1n <= eff;
          expect(dmaCapable(dev, addr, size, true)).toBe(expected);
        },
      ),
    );
  });

  it("is false for DMA_MAPPING_ERROR whatever the mask", () => {
    const dev = machine().device("dev0", { dmaMask: bitMask(64) });
    expect(dmaCapable(dev, DMA_MAPPING_ERROR, 1, true)).toBe(false);
    expect(dmaCapable(dev, 2 ** 52, 1, true)).toBe(true);
  });

  it("accepts the last byte exactly at the mask and rejects one past it", () => {
    const dev = machine().device("dev0");
    expect(dmaCapable(dev, SZ_4G - PAGE_SIZE, PAGE_SIZE, true)).toBe(true);
    expect(dmaCapable(dev, SZ_4G - PAGE_SIZE + 1, PAGE_SIZE, true)).toBe(false);
  });
});

describe("dma_direct_map_phys: addresses", () => {
  it("returns phys for a device without dma-ranges, counts the mapping", () => {
    const m = machine();
    const dev = m.device("dev0");
    const addr = dmaMapPhys(dev, LOW_RAM + 0x1234, 100, DMA_TO_DEVICE, 0);
    expect(addr).toBe(LOW_RAM + 0x1234);
    expect(m.system.stats.mappings).toBe(1);
    expect(m.system.stats.mapErrors).toBe(0);
  });

  it("translates through dmaRangeMap and maps back on unmap", () => {
    const m = machine();
    const dev = m.device("dev0", {
      dmaRangeMap: [
        { cpuStart: LOW_RAM, dmaStart: 0x1000_0000, size: SZ_256M },
        { cpuStart: HIGH_RAM, dmaStart: 0x4000_0000, size: SZ_256M },
      ],
    });
    expect(dmaMapPhys(dev, LOW_RAM + 0x2040, 64, DMA_TO_DEVICE)).toBe(0x1000_2040);
    const buf = HIGH_RAM + 0x5000;
    // A 32-bit device reaches high RAM through the window: no bounce, no overflow.
    m.cpuRead(buf, 64);
    const h = dmaMapPhys(dev, buf, 64, DMA_FROM_DEVICE);
    expect(h).toBe(0x4000_5000);
    expect(dmaToPhys(dev, h)).toBe(buf);
    m.devWrite(buf, pattern(64, 9));
    dmaUnmapPhys(dev, h, 64, DMA_FROM_DEVICE);
    // The unmap invalidated the right CPU lines: the CPU sees what the device wrote at `buf`.
    expect(m.cpuRead(buf, 64)).toEqual(pattern(64, 9));
    expect(m.log.warnCount).toBe(0);
  });

  it("a physical address outside every window is DMA_MAPPING_ERROR with the overflow warning", () => {
    const m = machine();
    const dev = m.device("dev0", { dmaRangeMap: [{ cpuStart: LOW_RAM, dmaStart: 0, size: SZ_256M }] });
    expect(dmaMapPhys(dev, HIGH_RAM, 16, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
    const w = m.log.find({ warn: true });
    expect(w.map((r) => `${r.prefix}: ${r.message}`)).toEqual([
      "platform dev0: DMA addr 0xffffffffffffffff+16 overflow (mask ffffffff, bus limit 0).",
    ]);
    expect(m.system.stats.mapErrors).toBe(1);
  });
});

describe("dma_direct_map_phys: overflow without a swiotlb pool", () => {
  it("a 32-bit device mapping RAM above 4 GiB fails with dev_WARN_ONCE naming address, size, mask, bus limit", () => {
    const m = machine();
    const dev = m.device("cam0", { busDmaLimit: 0xffff_ffff });
    dev.bindDriver("camdrv");
    expect(dmaMapPhys(dev, HIGH_RAM + 0x10, 4096, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
    expect(dmaMapPhys(dev, HIGH_RAM + 0x2000, 8, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
    const w = m.log.find({ warn: true });
    expect(w).toHaveLength(1);
    expect(w[0]?.prefix).toBe("camdrv cam0");
    expect(w[0]?.message).toBe(
      "DMA addr 0x0000000880000010+4096 overflow (mask ffffffff, bus limit ffffffff).",
    );
    expect(m.system.stats.mapErrors).toBe(2);
  });

  it("the bus limit alone makes a 64-bit device fail", () => {
    const m = machine();
    const dev = m.device("dev0", { dmaMask: bitMask(64), busDmaLimit: bitMask(34) });
    expect(dmaMapPhys(dev, HIGH_RAM, 4096, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
    expect(m.log.find({ warn: true })[0]?.message).toBe(
      "DMA addr 0x0000000880000000+4096 overflow (mask ffffffffffffffff, bus limit 3ffffffff).",
    );
    dev.busDmaLimit = 0;
    expect(dmaMapPhys(dev, HIGH_RAM, 4096, DMA_TO_DEVICE)).toBe(HIGH_RAM);
  });
});

describe("dma-direct cache maintenance on a non-coherent machine", () => {
  const buf = LOW_RAM + 0x40_0000;

  it("TO_DEVICE: CPU data written before the map reaches RAM for the device; SKIP_CPU_SYNC leaves it in the cache", () => {
    const m = machine();
    const dev = m.device("dev0");
    m.cpuWrite(buf, pattern(256, 1));
    expect(m.devRead(buf, 256)).toEqual(new Uint8Array(256)); // still only in the cache
    const h = dmaMapPhys(dev, buf, 256, DMA_TO_DEVICE);
    expect(m.devRead(buf, 256)).toEqual(pattern(256, 1));
    dmaUnmapPhys(dev, h, 256, DMA_TO_DEVICE);

    m.cpuWrite(buf + 4096, pattern(256, 2));
    const h2 = dmaMapPhys(dev, buf + 4096, 256, DMA_TO_DEVICE, DMA_ATTR_SKIP_CPU_SYNC);
    expect(h2).toBe(buf + 4096);
    expect(m.devRead(buf + 4096, 256)).toEqual(new Uint8Array(256));
    // Both device reads while the CPU held the lines dirty, and only those: the read after the
    // cleaning map sees RAM up to date.
    expect(m.cache.findings().map((f) => [f.kind, f.phys])).toEqual([
      ["device-read-dirty", buf],
      ["device-read-dirty", buf + 4096],
    ]);
  });

  it("FROM_DEVICE: after the device writes RAM and the unmap, the CPU sees it; with SKIP_CPU_SYNC it reads its stale line", () => {
    const m = machine();
    const dev = m.device("dev0");
    m.cpuRead(buf, 128); // the CPU caches zeros
    const h = dmaMapPhys(dev, buf, 128, DMA_FROM_DEVICE);
    m.devWrite(buf, pattern(128, 5));
    dmaUnmapPhys(dev, h, 128, DMA_FROM_DEVICE);
    expect(m.cpuRead(buf, 128)).toEqual(pattern(128, 5));

    const b2 = buf + 8192;
    m.cpuRead(b2, 128);
    const h2 = dmaMapPhys(dev, b2, 128, DMA_FROM_DEVICE);
    m.devWrite(b2, pattern(128, 6));
    dmaUnmapPhys(dev, h2, 128, DMA_FROM_DEVICE, DMA_ATTR_SKIP_CPU_SYNC);
    expect(m.cpuRead(b2, 128)).toEqual(new Uint8Array(128));
    // Only the read after the SKIP_CPU_SYNC unmap is stale: the first unmap invalidated the lines.
    expect(m.cache.findings().map((f) => [f.kind, f.phys])).toEqual([["cpu-read-stale", b2]]);
  });

  it("TO_DEVICE unmap does not invalidate (arm64 arch_sync_dma_for_cpu returns early)", () => {
    const m = machine();
    const dev = m.device("dev0");
    m.cpuWrite(buf, pattern(64, 3));
    const h = dmaMapPhys(dev, buf, 64, DMA_TO_DEVICE);
    const before = m.cache.stats().linesInvalidated;
    dmaUnmapPhys(dev, h, 64, DMA_TO_DEVICE);
    expect(m.cache.stats().linesInvalidated).toBe(before);
    expect(m.cache.lineState(buf)).toBe("clean");
  });

  it("FROM_DEVICE map cleans dirty lines first, so an eviction cannot clobber the device's data", () => {
    const m = machine();
    const dev = m.device("dev0");
    m.cpuWrite(buf, pattern(64, 7));
    const h = dmaMapPhys(dev, buf, 64, DMA_FROM_DEVICE);
    expect(m.cache.lineState(buf)).toBe("clean");
    m.devWrite(buf, pattern(64, 8));
    dmaUnmapPhys(dev, h, 64, DMA_FROM_DEVICE);
    expect(m.cpuRead(buf, 64)).toEqual(pattern(64, 8));
    expect(m.cache.findings()).toHaveLength(0);
  });

  it("BIDIRECTIONAL: the device reads the CPU's data and the CPU then reads the device's", () => {
    const m = machine();
    const dev = m.device("dev0");
    m.cpuWrite(buf, pattern(512, 11));
    const h = dmaMapPhys(dev, buf, 512, DMA_BIDIRECTIONAL);
    expect(m.devRead(buf, 512)).toEqual(pattern(512, 11));
    m.devWrite(buf, pattern(512, 12));
    dmaUnmapPhys(dev, h, 512, DMA_BIDIRECTIONAL);
    expect(m.cpuRead(buf, 512)).toEqual(pattern(512, 12));
  });

  it("a dma-coherent device gets no maintenance at all", () => {
    const m = machine();
    const dev = m.device("dev0", { dmaCoherent: true });
    m.cpuWrite(buf, pattern(64, 1));
    const h = dmaMapPhys(dev, buf, 64, DMA_BIDIRECTIONAL);
    dmaUnmapPhys(dev, h, 64, DMA_BIDIRECTIONAL);
    expect(m.cache.stats().maintenanceOps).toBe(0);
    expect(m.cache.lineState(buf)).toBe("dirty");
  });
});

describe("MMIO (dma_map_resource / DMA_ATTR_MMIO)", () => {
  const BAR = 0x4000_0000;
  function withBar() {
    const m = machine();
    m.mem.phys.addMmioRegion({
      start: BAR,
      size: 0x10_0000,
      name: "bar",
      handler: new MemoryBackedMmio(0x10_0000),
    });
    return m;
  }

  it("returns the physical address untranslated, with no cache maintenance and no-op unmap", () => {
    const m = withBar();
    const dev = m.device("dev0", { dmaRangeMap: [{ cpuStart: 0, dmaStart: 0x1_0000_0000, size: SZ_4G }] });
    dev.dmaMask = bitMask(64);
    const h = dmaMapResource(dev, BAR + 0x100, 0x100, DMA_TO_DEVICE, 0);
    expect(h).toBe(BAR + 0x100);
    dmaUnmapResource(dev, h, 0x100, DMA_TO_DEVICE, 0);
    expect(m.cache.stats().maintenanceOps).toBe(0);
    expect(m.system.stats.mappings).toBe(1);
    expect(m.system.stats.unmappings).toBe(1);
  });

  it("MMIO beyond the mask overflows (never bounced, even with a swiotlb pool)", () => {
    const m = machine();
    swiotlbInit(m.system, { size: 4 * 1024 * 1024 });
    m.mem.phys.addMmioRegion({
      start: 0x10_0000_0000,
      size: 0x10_0000,
      name: "bar64",
      handler: new MemoryBackedMmio(0x10_0000),
    });
    const dev = m.device("dev0");
    expect(dmaMapResource(dev, 0x10_0000_0000, 64, DMA_FROM_DEVICE)).toBe(DMA_MAPPING_ERROR);
    expect(m.log.find({ warn: true, message: "overflow" })).toHaveLength(1);
  });
});

describe("bouncing through swiotlb", () => {
  it("a 32-bit device's buffer above 4 GiB bounces below 4 GiB; data flows both ways", () => {
    const m = machine();
    const pool = swiotlbInit(m.system, { size: 4 * 1024 * 1024 });
    expect(pool).not.toBeNull();
    const dev = m.device("dev0");
    const buf = HIGH_RAM + 0x3000;
    m.cpuWrite(buf, pattern(300, 21));
    const h = dmaMapPhys(dev, buf, 300, DMA_BIDIRECTIONAL);
    expect(h).not.toBe(DMA_MAPPING_ERROR);
    expect(h + 300 - 1).toBeLessThanOrEqual(0xffff_ffff);
    expect(isSwiotlbBuffer(dev, dmaToPhys(dev, h))).toBe(true);
    expect(m.devRead(h, 300)).toEqual(pattern(300, 21));
    m.devWrite(h, pattern(300, 22));
    dmaUnmapPhys(dev, h, 300, DMA_BIDIRECTIONAL);
    expect(m.cpuRead(buf, 300)).toEqual(pattern(300, 22));
    expect(m.log.find({ warn: true })).toHaveLength(0);
    // 300 bytes in at the map (swiotlb_tbl_map_single always bounces), 300 back in the unmap's
    // sync for the CPU, and none in swiotlb_tbl_unmap_single (called with SKIP_CPU_SYNC).
    expect(m.system.stats.bytesBounced).toBe(600);
  });

  it("a coherent device's first bounce clears dma_skip_sync", () => {
    const m = machine();
    swiotlbInit(m.system, { size: 4 * 1024 * 1024 });
    const dev = m.device("dev0", { dmaCoherent: true });
    expect(devDmaState(dev).dmaSkipSync).toBe(true);
    dmaMapPhys(dev, LOW_RAM, 64, DMA_TO_DEVICE);
    expect(devDmaState(dev).dmaSkipSync).toBe(true);
    dmaMapPhys(dev, HIGH_RAM, 64, DMA_TO_DEVICE);
    expect(devDmaState(dev).dmaSkipSync).toBe(false);
  });

  it("forced bouncing bounces even capable addresses; MMIO then fails without a warning", () => {
    const m = machine();
    swiotlbInit(m.system, { size: 4 * 1024 * 1024 });
    m.mem.phys.addMmioRegion({
      start: 0x4000_0000,
      size: 0x1000,
      name: "regs",
      handler: new MemoryBackedMmio(0x1000),
    });
    const dev = m.device("dev0", {}, { forceSwiotlb: true });
    const h = dmaMapPhys(dev, LOW_RAM + 0x8000, 64, DMA_TO_DEVICE);
    expect(h).not.toBe(LOW_RAM + 0x8000);
    expect(isSwiotlbBuffer(dev, h)).toBe(true);
    expect(dmaMapResource(dev, 0x4000_0000, 64, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
    expect(m.log.find({ warn: true })).toHaveLength(0);
  });
});

describe("DMA_ATTR_REQUIRE_COHERENT", () => {
  it("fails on a non-coherent device before any path, without a warning", () => {
    const m = machine();
    const dev = m.device("dev0");
    expect(dmaMapPhys(dev, LOW_RAM, 64, DMA_TO_DEVICE, DMA_ATTR_REQUIRE_COHERENT)).toBe(DMA_MAPPING_ERROR);
    expect(m.log.find({ warn: true })).toHaveLength(0);
    expect(m.cache.stats().maintenanceOps).toBe(0);
  });

  it("refuses to bounce a coherent device (overflow warning) and refuses forced bouncing", () => {
    const m = machine({ coherent: true });
    swiotlbInit(m.system, { size: 4 * 1024 * 1024 });
    const dev = m.device("dev0");
    expect(dmaMapPhys(dev, LOW_RAM, 64, DMA_TO_DEVICE, DMA_ATTR_REQUIRE_COHERENT)).toBe(LOW_RAM);
    expect(dmaMapPhys(dev, HIGH_RAM, 64, DMA_TO_DEVICE, DMA_ATTR_REQUIRE_COHERENT)).toBe(DMA_MAPPING_ERROR);
    expect(m.log.find({ warn: true, message: "overflow" })).toHaveLength(1);
    const forced = m.device("dev1", {}, { forceSwiotlb: true });
    expect(dmaMapPhys(forced, LOW_RAM, 64, DMA_TO_DEVICE, DMA_ATTR_REQUIRE_COHERENT)).toBe(DMA_MAPPING_ERROR);
    expect(dmaMapPhys(forced, LOW_RAM, 64, DMA_TO_DEVICE, DMA_ATTR_MMIO)).toBe(DMA_MAPPING_ERROR);
  });
});
