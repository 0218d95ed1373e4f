import { bitMask, Device, PAGE_SIZE, SZ_1M, SZ_16K, SZ_64K, SZ_256K, SZ_256M, ULONG_MAX } from "@dmakit/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DMA_TO_DEVICE,
  devDmaState,
  dmaAddressingLimited,
  dmaCoerceMaskAndCoherent,
  dmaGetCacheAlignment,
  dmaGetMask,
  dmaGetMaxSegSize,
  dmaGetMergeBoundary,
  dmaGetRequiredMask,
  dmaMapDirect,
  dmaMapPhys,
  dmaMaxMappingSize,
  dmaNeedUnmap,
  dmaOptMappingSize,
  dmaPciP2pdmaSupported,
  dmaSetCoherentMask,
  dmaSetMask,
  dmaSetMaskAndCoherent,
  dmaSetMaxSegSize,
  dmaSetMinAlignMask,
  dmaSupported,
  swiotlbInit,
} from "../src/index.js";
import {
  HIGH_RAM,
  LOW_RAM,
  type MachineOptions,
  makeMachine,
  SPLIT_RAM,
  type TestMachine,
} from "./helpers/machine.js";

/** The streaming-map tests' machine: RAM below and above 4 GiB, no IOMMU. */
const machine = (o: MachineOptions = {}): TestMachine => makeMachine({ layout: SPLIT_RAM, ...o });

describe("dma_set_mask and friends", () => {
  it("sets the mask and re-runs dma_setup_need_sync (dma_skip_sync back to the device's coherence)", () => {
    const m = machine({ coherent: true });
    swiotlbInit(m.system, { size: 4 * 1024 * 1024 });
    const dev = m.device("dev0");
    dmaMapPhys(dev, HIGH_RAM, 64, DMA_TO_DEVICE); // bounces: skip_sync cleared
    expect(devDmaState(dev).dmaSkipSync).toBe(false);
    expect(dmaSetMask(dev, bitMask(64))).toBe(0);
    expect(dev.dmaMask).toBe(bitMask(64));
    expect(devDmaState(dev).dmaSkipSync).toBe(true);
  });

  it("EIO without a dma_mask; dma_coerce_mask_and_coherent gives the device one", () => {
    const m = machine();
    const dev = m.device("dev0", { dmaMask: null, coherentDmaMask: bitMask(32) });
    expect(() => dmaSetMask(dev, bitMask(40))).toThrow(expect.objectContaining({ errno: "EIO" }));
    expect(dev.dmaMask).toBeNull();
    expect(dmaGetMask(dev)).toBe(bitMask(32));
    expect(dmaCoerceMaskAndCoherent(dev, bitMask(40))).toBe(0);
    expect([dev.dmaMask, dev.coherentDmaMask]).toEqual([bitMask(40), bitMask(40)]);
  });

  it("dma_direct_supported: 32-bit and wider always; smaller must reach the end of ZONE_DMA or of RAM", () => {
    const m = machine({ layout: { banks: [{ start: 0, size: 64 * SZ_1M }], zones: { dma: 16 * SZ_1M } } });
    const dev = m.device("isa0");
    expect(dmaSetMask(dev, bitMask(24))).toBe(0);
    expect(() => dmaSetMask(dev, bitMask(23))).toThrow(/mask 0x7fffff not supported.*\(EIO\)/);
    expect(dev.dmaMask).toBe(bitMask(24));
    expect(() => dmaSetCoherentMask(dev, bitMask(20))).toThrow(expect.objectContaining({ errno: "EIO" }));
    expect(dev.coherentDmaMask).toBe(bitMask(32));

    // Without ZONE_DMA the mask must cover the last page of RAM (64 MiB - 4 KiB → 26 bits).
    const m2 = machine({ layout: { banks: [{ start: 0, size: 64 * SZ_1M }], zones: { dma: 0 } } });
    const d2 = m2.device("dev");
    expect(dmaSupported(d2, bitMask(26))).toBe(true);
    expect(dmaSupported(d2, bitMask(25))).toBe(false);
    expect(dmaSupported(d2, bitMask(32))).toBe(true);
  });

  it("dma_set_mask_and_coherent sets both, or neither when the mask fails", () => {
    const m = machine({ layout: { banks: [{ start: 0, size: 64 * SZ_1M }], zones: { dma: 0 } } });
    const dev = m.device("dev0");
    expect(dmaSetMaskAndCoherent(dev, bitMask(36))).toBe(0);
    expect([dev.dmaMask, dev.coherentDmaMask]).toEqual([bitMask(36), bitMask(36)]);
    expect(() => dmaSetMaskAndCoherent(dev, bitMask(16))).toThrow(expect.objectContaining({ errno: "EIO" }));
    expect([dev.dmaMask, dev.coherentDmaMask]).toEqual([bitMask(36), bitMask(36)]);
  });

  it("dma_get_mask defaults to 32 bits for a zero or missing mask", () => {
    const dev = machine().device("dev0", { dmaMask: 0 });
    expect(dmaGetMask(dev)).toBe(bitMask(32));
    dev.dmaMask = bitMask(48);
    expect(dmaGetMask(dev)).toBe(bitMask(48));
  });
});

describe("dma_get_required_mask / dma_addressing_limited", () => {
  it("covers the last RAM page, through dma-ranges when the device has them", () => {
    const m = machine(); // RAM ends at 0x8_9000_0000
    const dev = m.device("dev0");
    expect(dmaGetRequiredMask(dev)).toBe(bitMask(36));
    const ranged = m.device("dev1", {
      dmaRangeMap: [
        { cpuStart: LOW_RAM, dmaStart: 0, size: SZ_256M },
        { cpuStart: HIGH_RAM, dmaStart: SZ_256M, size: SZ_256M },
      ],
    });
    expect(dmaGetRequiredMask(ranged)).toBe(bitMask(29));
  });

  it("is the smallest all-ones mask above the last page's address (vs a BigInt reference)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 20 }),
        fc.integer({ min: 1, max: 64 }),
        (startPage, pages) => {
          const start = startPage * PAGE_SIZE * 256;
          const m = machine({
            layout: { banks: [{ start, size: pages * PAGE_SIZE }], zones: { dma: 0, dma32: 0 } },
          });
          const last = BigInt(start + (pages - 1) * PAGE_SIZE);
          let ref = 1n;
          while (ref - 1n < last) ref <<= 1n;
          expect(BigInt(dmaGetRequiredMask(m.device("d")))).toBe(ref - 1n);
        },
      ),
      { numRuns: 40 },
    );
  });

  it("dma_addressing_limited: by mask or bus limit, or by RAM outside dma-ranges; dev_dbg when limited", () => {
    const m = machine();
    const dev = m.device("dev0");
    expect(dmaAddressingLimited(dev)).toBe(true);
    expect(m.log.find({ level: "debug", message: "device is DMA addressing limited" })).toHaveLength(1);
    dev.dmaMask = bitMask(64);
    expect(dmaAddressingLimited(dev)).toBe(false);
    dev.busDmaLimit = bitMask(35);
    expect(dmaAddressingLimited(dev)).toBe(true);
    const holes = m.device("dev1", {
      dmaMask: bitMask(64),
      dmaRangeMap: [{ cpuStart: LOW_RAM, dmaStart: LOW_RAM, size: SZ_256M }],
    });
    // The required mask comes from the last RAM page, which has no translation: 64 bits, and the
    // high bank is not in the map.
    expect(dmaAddressingLimited(holes)).toBe(true);
    const all = m.device("dev2", {
      dmaMask: bitMask(64),
      dmaRangeMap: [
        { cpuStart: LOW_RAM, dmaStart: LOW_RAM, size: SZ_256M },
        { cpuStart: HIGH_RAM, dmaStart: HIGH_RAM, size: SZ_256M },
      ],
    });
    expect(dmaAddressingLimited(all)).toBe(false);
  });
});

describe("mapping-size limits", () => {
  it("dma-direct: SIZE_MAX without swiotlb; the swiotlb limit when a pool is active and the device is limited or forced", () => {
    const m = machine();
    const limited = m.device("dev0");
    expect(dmaMaxMappingSize(limited)).toBe(ULONG_MAX);
    swiotlbInit(m.system, { size: 4 * 1024 * 1024 });
    expect(dmaMaxMappingSize(limited)).toBe(SZ_256K);
    expect(dmaOptMappingSize(limited)).toBe(SZ_256K);
    dmaSetMinAlignMask(limited, SZ_16K - 1);
    expect(dmaMaxMappingSize(limited)).toBe(SZ_256K - SZ_16K);
    const wide = m.device("dev1", { dmaMask: bitMask(64) });
    expect(dmaMaxMappingSize(wide)).toBe(ULONG_MAX);
    const forced = m.device("dev2", { dmaMask: bitMask(64) }, { forceSwiotlb: true });
    expect(dmaMaxMappingSize(forced)).toBe(SZ_256K);
    expect(dmaGetMergeBoundary(wide)).toBe(0);
  });

  it("iommu-dma devices: merge boundary = granule - 1, opt size 128 KiB, 32-bit required mask, any mask supported", () => {
    const im = makeMachine({ coherent: true, iommu: "strict" });
    const dev = im.endpoint("nvme0");
    expect(dmaMapDirect(dev)).toBe(false);
    expect(dmaGetMergeBoundary(dev)).toBe(4095);
    expect(dmaOptMappingSize(dev)).toBe(128 * 1024);
    expect(dmaGetRequiredMask(dev)).toBe(bitMask(32));
    expect(dmaSupported(dev, bitMask(12))).toBe(true);
    expect(dmaNeedUnmap(dev)).toBe(true);
    const h = dmaMapPhys(dev, 0x8000_3000, 64, DMA_TO_DEVICE);
    expect(h).not.toBe(0x8000_3000); // an IOVA, not the physical address
    expect(h % PAGE_SIZE).toBe(0);
  });

  it("passthrough (identity) default domains map directly", () => {
    const im = makeMachine({ coherent: true, iommu: "passthrough" });
    const dev = im.endpoint("nic0");
    expect(dmaMapDirect(dev)).toBe(true);
    expect(dmaMapPhys(dev, 0x8000_3000, 64, DMA_TO_DEVICE)).toBe(0x8000_3000);
    expect(dmaGetMergeBoundary(dev)).toBe(0);
  });
});

describe("misc device limits", () => {
  it("dma_get_cache_alignment: ARCH_DMA_MINALIGN (128) non-coherent, 1 coherent; by machine or device", () => {
    const nc = machine();
    expect(dmaGetCacheAlignment(nc.system)).toBe(128);
    expect(dmaGetCacheAlignment(nc.device("d"))).toBe(128);
    expect(dmaGetCacheAlignment(machine({ coherent: true }).system)).toBe(1);
  });

  it("dma_pci_p2pdma_supported: true for configured devices, ENODEV otherwise", () => {
    const m = machine();
    expect(dmaPciP2pdmaSupported(m.device("d"))).toBe(true);
    expect(() => dmaPciP2pdmaSupported(new Device({ name: "x" }))).toThrow(
      expect.objectContaining({ errno: "ENODEV" }),
    );
  });

  it("re-exports the dma_parms accessors (dma_set_max_seg_size WARNs without dma_parms)", () => {
    const m = machine();
    const dev = m.device("d");
    expect(dmaGetMaxSegSize(dev)).toBe(SZ_64K);
    dmaSetMaxSegSize(dev, SZ_1M);
    expect(dmaGetMaxSegSize(dev)).toBe(SZ_1M);
    const bare = m.device("e", { dmaParms: null });
    dmaSetMaxSegSize(bare, SZ_1M);
    expect(dmaGetMaxSegSize(bare)).toBe(SZ_64K);
    expect(m.log.find({ warn: true, message: "dma_set_max_seg_size" })).toHaveLength(1);
  });
});
