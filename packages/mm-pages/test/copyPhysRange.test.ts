import { KernelLog, Prng, SZ_1M } from "@dmakit/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { copyPhysRange, MemoryBackedMmio, PhysMem } from "../src/index.js";

const RAM = 0x8000_0000;

describe("copyPhysRange", () => {
  it("property: equals a memmove on a flat array, overlaps included", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 300_000 }),
        fc.integer({ min: 0, max: 300_000 }),
        fc.integer({ min: 0, max: 200_000 }),
        (src, dst, len) => {
          const mem = new PhysMem({ banks: [{ start: RAM, size: SZ_1M }] }, { log: new KernelLog() });
          const init = new Prng(src + 1).fill(new Uint8Array(600_000));
          mem.write(RAM, init);
          copyPhysRange(mem, RAM + dst, RAM + src, len);
          const want = init.slice();
          want.copyWithin(dst, src, src + len);
          const got = new Uint8Array(600_000);
          mem.read(RAM, got);
          expect(Buffer.compare(got, want)).toBe(0);
        },
      ),
      { numRuns: 40 },
    );
  });

  it("copies between RAM and MMIO, and faults on holes", () => {
    const mem = new PhysMem({ banks: [{ start: RAM, size: SZ_1M }] }, { log: new KernelLog() });
    mem.addMmioRegion({
      start: 0x1000_0000,
      size: 0x10000,
      name: "bar",
      handler: new MemoryBackedMmio(0x10000),
    });
    mem.write(RAM + 5, new Uint8Array([1, 2, 3]));
    copyPhysRange(mem, 0x1000_0010, RAM + 5, 3);
    const b = new Uint8Array(3);
    mem.read(0x1000_0010, b);
    expect([...b]).toEqual([1, 2, 3]);
    expect(() => copyPhysRange(mem, 0x2000_0000, RAM, 16)).toThrow(/EFAULT/);
  });
});
