import {
  PHYR_F_BUS_ADDR,
  PHYR_F_MASK,
  PHYR_F_MMIO,
  PHYR_F_PINNED,
  PHYR_F_SWIOTLB,
  phyrFlagsToString,
} from "@dmakit/phyr";
import { describe, expect, it } from "vitest";

describe("phyr flags", () => {
  it("are distinct single bits fitting the 4 spare bits", () => {
    const bits = [PHYR_F_BUS_ADDR, PHYR_F_SWIOTLB, PHYR_F_MMIO, PHYR_F_PINNED];
    expect(bits).toEqual([1, 2, 4, 8]);
    expect(PHYR_F_MASK).toBe(0xf);
  });

  it("print as names", () => {
    expect(phyrFlagsToString(0)).toBe("0");
    expect(phyrFlagsToString(PHYR_F_BUS_ADDR | PHYR_F_MMIO)).toBe("BUS_ADDR|MMIO");
    expect(phyrFlagsToString(PHYR_F_SWIOTLB | PHYR_F_PINNED | 0x20)).toBe("SWIOTLB|PINNED|0x20");
  });
});
