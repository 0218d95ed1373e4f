import { describe, expect, it } from "vitest";
import {
  Device,
  DMA_MAPPING_ERROR,
  dmaRangeMapMax,
  dmaRangeMapMin,
  dmaToPhys,
  hex,
  physToDma,
  translateDmaToPhys,
  ULONG_MAX,
} from "../src/index.js";

describe("dma_range_map", () => {
  // Two windows as a DT dma-ranges might give: RAM at 0x8000_0000 seen at 0, and a high window.
  const map = [
    { cpuStart: 0x8000_0000, dmaStart: 0, size: 0x4000_0000 },
    { cpuStart: 0x8_0000_0000, dmaStart: 0x4000_0000, size: 0x1000_0000 },
  ];
  const dev = new Device({ name: "soc-dma", dmaRangeMap: map });

  it("identity without a map", () => {
    const plain = new Device({ name: "p" });
    expect(physToDma(plain, 0x1234_5000)).toBe(0x1234_5000);
    expect(dmaToPhys(plain, 0x1234_5000)).toBe(0x1234_5000);
  });

  it("translates through the covering region", () => {
    expect(physToDma(dev, 0x8000_0000)).toBe(0);
    expect(physToDma(dev, 0xbfff_ffff)).toBe(0x3fff_ffff);
    expect(physToDma(dev, 0x8_0000_1000)).toBe(0x4000_1000);
    expect(dmaToPhys(dev, 0x4000_1000)).toBe(0x8_0000_1000);
    expect(dmaToPhys(dev, 0x10)).toBe(0x8000_0010);
  });

  it("returns the sentinels outside every region", () => {
    expect(physToDma(dev, 0x7fff_ffff)).toBe(DMA_MAPPING_ERROR);
    expect(physToDma(dev, 0xc000_0000)).toBe(DMA_MAPPING_ERROR);
    expect(hex(physToDma(dev, 0))).toBe("0xffffffffffffffff");
    expect(translateDmaToPhys(dev, 0x5000_0000)).toBe(ULONG_MAX);
  });

  it("a zero-size entry ends the walk like the kernel's sentinel", () => {
    const d = new Device({
      name: "s",
      dmaRangeMap: [{ cpuStart: 0, dmaStart: 0, size: 0 }, ...map],
    });
    expect(physToDma(d, 0x8000_0000)).toBe(DMA_MAPPING_ERROR);
  });

  it("min/max over the regions", () => {
    expect(dmaRangeMapMin(map)).toBe(0);
    expect(dmaRangeMapMax(map)).toBe(0x4fff_ffff);
    expect(dmaRangeMapMin([])).toBe(ULONG_MAX);
    expect(dmaRangeMapMax([])).toBe(0);
  });
});
