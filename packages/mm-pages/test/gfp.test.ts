import { describe, expect, it } from "vitest";
import {
  __GFP_COMP,
  __GFP_DIRECT_RECLAIM,
  __GFP_DMA,
  __GFP_DMA32,
  __GFP_HIGHMEM,
  __GFP_MOVABLE,
  __GFP_NOWARN,
  __GFP_ZERO,
  formatGfp,
  GFP_ATOMIC,
  GFP_DMA,
  GFP_DMA32,
  GFP_HIGHUSER,
  GFP_HIGHUSER_MOVABLE,
  GFP_KERNEL,
  GFP_NOWAIT,
  GFP_USER,
  gfpflagsAllowBlocking,
  gfpZone,
  ZONE_DMA,
  ZONE_DMA32,
  ZONE_MOVABLE,
  ZONE_NORMAL,
} from "../src/index.js";

describe("gfp flags", () => {
  it("have the kernel's bit values (include/linux/gfp_types.h)", () => {
    expect(GFP_KERNEL).toBe(0xcc0);
    expect(GFP_ATOMIC).toBe(0x820);
    expect(GFP_NOWAIT).toBe(0x2800);
    expect(GFP_USER).toBe(0x100cc0);
    expect(GFP_HIGHUSER).toBe(0x100cc2);
    expect(GFP_HIGHUSER_MOVABLE).toBe(0x100cca);
    expect(GFP_DMA).toBe(0x1);
    expect(GFP_DMA32).toBe(0x4);
    expect(__GFP_ZERO).toBe(0x100);
    expect(__GFP_COMP).toBe(0x40000);
    expect(__GFP_NOWARN).toBe(0x2000);
  });

  it("gfpflagsAllowBlocking is true exactly with __GFP_DIRECT_RECLAIM", () => {
    expect(gfpflagsAllowBlocking(GFP_KERNEL)).toBe(true);
    expect(gfpflagsAllowBlocking(GFP_ATOMIC)).toBe(false);
    expect(gfpflagsAllowBlocking(GFP_NOWAIT)).toBe(false);
    expect(gfpflagsAllowBlocking(__GFP_DIRECT_RECLAIM)).toBe(true);
  });

  it("gfp_zone follows GFP_ZONE_TABLE", () => {
    expect(gfpZone(GFP_KERNEL)).toBe(ZONE_NORMAL);
    expect(gfpZone(GFP_KERNEL | GFP_DMA)).toBe(ZONE_DMA);
    expect(gfpZone(GFP_KERNEL | GFP_DMA32)).toBe(ZONE_DMA32);
    expect(gfpZone(GFP_HIGHUSER)).toBe(ZONE_NORMAL);
    expect(gfpZone(GFP_HIGHUSER_MOVABLE)).toBe(ZONE_MOVABLE);
    // __GFP_MOVABLE alone stays in ZONE_NORMAL; ZONE_MOVABLE needs __GFP_HIGHMEM too.
    expect(gfpZone(GFP_KERNEL | __GFP_MOVABLE)).toBe(ZONE_NORMAL);
    expect(gfpZone(__GFP_MOVABLE | __GFP_DMA32)).toBe(ZONE_DMA32);
    expect(() => gfpZone(__GFP_DMA | __GFP_DMA32)).toThrow(/EINVAL/);
    expect(() => gfpZone(__GFP_DMA32 | __GFP_HIGHMEM)).toThrow(/contradictory/);
  });

  it("formats modes like %#x(%pGg)", () => {
    expect(formatGfp(GFP_KERNEL)).toBe("0xcc0(GFP_KERNEL)");
    expect(formatGfp(GFP_KERNEL | __GFP_COMP | __GFP_ZERO)).toBe("0x40dc0(GFP_KERNEL|__GFP_COMP|__GFP_ZERO)");
    expect(formatGfp(GFP_HIGHUSER_MOVABLE)).toBe("0x100cca(GFP_HIGHUSER_MOVABLE)");
    expect(formatGfp(GFP_ATOMIC | GFP_DMA32)).toBe("0x824(GFP_ATOMIC|GFP_DMA32)");
    expect(formatGfp(0)).toBe("0x0()");
  });
});
