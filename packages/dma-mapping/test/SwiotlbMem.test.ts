import { ULONG_MAX } from "@dmakit/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { and64, IO_TLB_SEGSIZE, IO_TLB_SIZE, nrSlots, SwiotlbMem } from "../src/index.js";
import { SwiotlbRef } from "./helpers/swiotlbRef.js";

const START = 0xfc00_0000;

describe("SwiotlbMem", () => {
  it("starts with every segment free: list counts down 128..1 in each segment", () => {
    const mem = new SwiotlbMem({ start: START, nslabs: 256 });
    expect(mem.slotList[0]).toBe(128);
    expect(mem.slotList[127]).toBe(1);
    expect(mem.slotList[128]).toBe(128);
    expect(mem.slotList[200]).toBe(128 - 72);
    expect(mem.end).toBe(START + 256 * IO_TLB_SIZE);
    expect(mem.used).toBe(0);
    expect(mem.slotInUse(0)).toBe(false);
  });

  it("claims a run and recounts the free slots before it (kernel's list bookkeeping)", () => {
    const mem = new SwiotlbMem({ start: START, nslabs: 256 });
    // 3000 bytes, no alignment: 2 slots at index 0; area index moves to 2.
    expect(mem.findSlots(0, 0x1234_0000, START, 3000, 0, 0, ULONG_MAX)).toBe(0);
    expect(mem.areaIndex[0]).toBe(2);
    // 5000 bytes >= PAGE_SIZE without masks: page aligned, so slot 2 (0x...1000) is taken: 3 slots.
    expect(mem.findSlots(0, 0x1234_0000, START, 5000, 0, 0, ULONG_MAX)).toBe(2);
    expect(Array.from(mem.slotList.subarray(0, 6))).toEqual([0, 0, 0, 0, 0, 123]);
    expect(mem.slotAllocSize[2]).toBe(5000);
    expect(mem.slotAllocSize[4]).toBe(5000 - 2 * IO_TLB_SIZE);
    mem.releaseSlots(0, 2);
    expect(Array.from(mem.slotList.subarray(0, 3))).toEqual([2, 1, 0]);
    mem.releaseSlots(2, 3);
    expect(mem.slotList[0]).toBe(128);
    expect(mem.used).toBe(0);
    expect(mem.usedHiwater).toBe(5);
  });

  it("keeps min_align_mask bits above the slot size: bit 11 of the slot matches the original", () => {
    const mem = new SwiotlbMem({ start: START, nslabs: 256 });
    // NVMe-style min_align_mask 0xfff: orig has bit 11 set, so an odd slot is needed.
    const i = mem.findSlots(0, 0x4000_0a00, START, 512, 0, 0xfff, ULONG_MAX);
    expect(i).toBe(1);
    expect((mem.slotAddr(i) & 0x800) !== 0).toBe(true);
    // alloc_size is reduced by the in-slot offset (0x200).
    expect(mem.slotAllocSize[1]).toBe(512 - 0x200);
  });

  it("never lets a run cross the device's segment boundary", () => {
    const mem = new SwiotlbMem({ start: START, nslabs: 256 });
    // 64 KiB boundary = 32 slots; take slots 0..29, then 3 slots cannot start at 30.
    expect(mem.findSlots(0, 0, START, 30 * IO_TLB_SIZE, 0x7ff, 0, 0xffff)).toBe(0);
    expect(mem.findSlots(0, 0, START, 3 * IO_TLB_SIZE, 0x7ff, 0, 0xffff)).toBe(32);
  });

  it("and64 masks addresses above 4 GiB", () => {
    expect(and64(0x1_2345_6789, 0xffff_ffff)).toBe(0x2345_6789);
    expect(and64(0x1_2345_6789, 0xf_0000_ff00)).toBe(0x1_0000_6700);
    expect(and64(0x1_2345_6789, ULONG_MAX)).toBe(0x1_2345_6789);
    expect(nrSlots(2049)).toBe(2);
  });

  it("property: slot choices, run counters and area state match a naive reference", () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant("alloc" as const),
        cpu: fc.nat(7),
        orig: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 2 ** 40 })),
        size: fc.oneof(fc.integer({ min: 1, max: 8192 }), fc.integer({ min: 1, max: 300_000 })),
        alignMask: fc.constantFrom(0, 0x7ff, 0xfff, 0x3fff, 0xffff),
        minAlign: fc.constantFrom(0, 0x3ff, 0x7ff, 0xfff, 0x1fff),
        boundary: fc.constantFrom(ULONG_MAX, 0xffff, 0x3_ffff, 0xf_ffff),
      }),
      fc.record({ kind: fc.constant("free" as const), pick: fc.nat() }),
    );
    fc.assert(
      fc.property(
        fc.constantFrom(256, 512, 1024),
        fc.constantFrom(1, 2, 4),
        fc.constantFrom(START, 0x1_0000_0000, 0x8000_3000),
        fc.array(op, { maxLength: 80 }),
        (nslabs, nareas, start, ops) => {
          const mem = new SwiotlbMem({ start, nslabs, nareas });
          const ref = new SwiotlbRef(nslabs, nareas);
          for (const o of ops) {
            if (o.kind === "alloc") {
              const args = [o.cpu, o.orig, start, o.size, o.alignMask, o.minAlign, o.boundary] as const;
              const want = ref.search(...args);
              expect(mem.findSlots(...args)).toBe(want);
            } else {
              const live = [...ref.allocs.keys()];
              if (live.length === 0) continue;
              const first = live[o.pick % live.length] as number;
              mem.releaseSlots(first, ref.allocs.get(first) as number);
              ref.release(first);
            }
            expect(mem.used).toBe(ref.usedSlots);
            expect(Array.from(mem.areaIndex)).toEqual(ref.areaIndex);
            expect(Array.from(mem.areaUsed)).toEqual(ref.areaUsed);
            for (let i = 0; i < nslabs; i++)
              if (mem.slotList[i] !== ref.freeRun(i))
                expect([i, mem.slotList[i]]).toEqual([i, ref.freeRun(i)]);
          }
          for (const [first, n] of [...ref.allocs]) {
            mem.releaseSlots(first, n);
            ref.release(first);
          }
          expect(mem.used).toBe(0);
          for (let i = 0; i < nslabs; i++)
            expect(mem.slotList[i]).toBe(IO_TLB_SEGSIZE - (i % IO_TLB_SEGSIZE));
        },
      ),
      { numRuns: 150 },
    );
  });
});
