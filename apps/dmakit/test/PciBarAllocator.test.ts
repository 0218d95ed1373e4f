import { isKernelError } from "@dmakit/core";
import { describe, expect, it } from "vitest";
import { PciBarAllocator } from "../src/PciBarAllocator.js";

const M = 2 ** 20;
const G = 2 ** 30;

describe("PciBarAllocator", () => {
  it("aligns each BAR to its size, in request order", () => {
    const a = new PciBarAllocator("hb", [{ start: 0x8000_0000, size: 256 * M, prefetch: false }]);
    expect(a.place("x", 16 * 1024, false, 64)).toBe(0x8000_0000);
    expect(a.place("y", M, false, 64)).toBe(0x8010_0000);
    expect(a.place("z", 4096, false, 64)).toBe(0x8020_0000);
    expect(a.place("w", 64 * M, false, 64)).toBe(0x8400_0000);
  });

  it("prefers prefetchable windows for prefetchable BARs, never for plain ones", () => {
    const a = new PciBarAllocator("hb", [
      { start: 0x8000_0000, size: 256 * M, prefetch: false },
      { start: 64 * G, size: 64 * G, prefetch: true },
    ]);
    expect(a.place("pref", G, true, 64)).toBe(64 * G);
    expect(a.place("regs", M, false, 64)).toBe(0x8000_0000);
    // A 32-bit prefetchable BAR cannot use the window above 4 GiB.
    expect(a.place("pref32", 16 * M, true, 32)).toBe(0x8100_0000);
  });

  it("falls back to a plain window when no prefetchable one has room", () => {
    const a = new PciBarAllocator("hb", [
      { start: 0xc000_0000, size: 32 * M, prefetch: false },
      { start: 0xe000_0000, size: 16 * M, prefetch: true },
    ]);
    expect(a.place("a", 16 * M, true, 64)).toBe(0xe000_0000);
    expect(a.place("b", 16 * M, true, 64)).toBe(0xc000_0000);
  });

  it("ENOSPC names the BAR and leaves the windows usable", () => {
    const a = new PciBarAllocator("hb", [{ start: 0x8000_0000, size: 16 * M, prefetch: false }]);
    let err: unknown;
    try {
      a.place("gpu BAR1", 32 * M, false, 64);
    } catch (e) {
      err = e;
    }
    expect(isKernelError(err) && err.errno).toBe("ENOSPC");
    expect(String((err as Error).message)).toContain("no room for gpu BAR1 (32 MiB, 64-bit)");
    expect(a.place("small", 16 * M, false, 64)).toBe(0x8000_0000);
  });
});
