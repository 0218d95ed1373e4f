import {
  DMA_MAPPING_ERROR,
  dmaSetMinAlignMask,
  Prng,
  SZ_1G,
  SZ_1M,
  SZ_4G,
  SZ_64M,
  ULONG_MAX,
} from "@dmakit/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DMA_ATTR_NO_WARN,
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_BIDIRECTIONAL,
  DMA_BIT_MASK,
  DMA_FROM_DEVICE,
  DMA_NONE,
  DMA_TO_DEVICE,
  devDmaState,
  IO_TLB_SIZE,
  isSwiotlbActive,
  isSwiotlbBuffer,
  isSwiotlbForceBounce,
  SWIOTLB,
  type SwiotlbInitOptions,
  setupIoTlbNpages,
  swiotlbExit,
  swiotlbInit,
  swiotlbInitRestricted,
  swiotlbMap,
  swiotlbMaxMappingSize,
  swiotlbRestrictedAttach,
  swiotlbSyncSingleForCpu,
  swiotlbSyncSingleForDevice,
  swiotlbTblMapSingle,
  swiotlbTblUnmapSingle,
} from "../src/index.js";
import { type MachineOptions, makeMachine, type TestMachine } from "./helpers/machine.js";
import { SwiotlbRef } from "./helpers/swiotlbRef.js";

const RAM = 0x8000_0000;
const BUF = 0x9000_0000;

/** The swiotlb tests' machine: 2 GiB of RAM at 2 GiB (ZONE_DMA32 up to 4 GiB), coherent, a 1 MiB pool (null: none). */
function machine(
  o: Omit<MachineOptions, "swiotlb"> & { swiotlb?: SwiotlbInitOptions | null } = {},
): TestMachine {
  const { swiotlb = { size: SZ_1M }, ...rest } = o;
  const m = makeMachine({
    layout: { banks: [{ start: RAM, size: 2 * SZ_1G }] },
    coherent: true,
    ...(swiotlb !== null ? { swiotlb } : {}),
    ...rest,
  });
  // Bus-less devices that do not snoop unless a test says so: bouncing must work either way.
  return {
    ...m,
    device: (name, opts = {}, dma = {}) => m.device(name, { bus: null, dmaCoherent: false, ...opts }, dma),
  };
}

function bytes(seed: number, n: number): Uint8Array {
  return new Prng(seed).fill(new Uint8Array(n));
}

function read(m: TestMachine, phys: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  m.cache.cpuRead(phys, b);
  return b;
}

function devRead(m: TestMachine, phys: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  m.cache.deviceRead(phys, b, { coherent: true });
  return b;
}

describe("swiotlbInit", () => {
  it("claims 64 MiB at the top of the 32-bit space and reports it", () => {
    const m = machine({ swiotlb: null });
    const before = m.system.pages.allocated();
    const mem = swiotlbInit(m.system);
    expect(mem).not.toBeNull();
    expect(mem?.start).toBe(SZ_4G - SZ_64M);
    expect(mem?.end).toBe(SZ_4G);
    expect(mem?.nslabs).toBe(32768);
    expect(m.system.pages.allocated() - before).toBe(SZ_64M / 4096);
    expect(m.system.get(SWIOTLB)).toBe(mem);
    expect(m.log.find({ prefix: "software IO TLB" }).map((r) => r.message)).toEqual([
      "area num 1.",
      "mapped [mem 0x00000000fc000000-0x0000000100000000] (64MB)",
    ]);
    expect(() => swiotlbInit(m.system)).toThrow(/already has a default pool/);
  });

  it("rounds areas and slots to powers of two, as swiotlb_adjust_nareas does", () => {
    const m = machine({ swiotlb: { size: 3 * SZ_1M, nareas: 3 } });
    expect(m.swiotlb?.nareas).toBe(4);
    expect(m.swiotlb?.nslabs).toBe(2048);
    expect(
      m.log.find({ message: /^(area num|SWIOTLB bounce buffer size roundup)/ }).map((r) => r.message),
    ).toEqual(["area num 4.", "SWIOTLB bounce buffer size roundup to 4MB"]);
  });

  it("halves the pool until it fits, logging each failure", () => {
    const m = machine({ layout: { banks: [{ start: RAM, size: 40 * SZ_1M }] }, swiotlb: {} });
    expect(m.swiotlb?.nslabs).toBe(16384);
    expect(m.swiotlb?.end).toBe(RAM + 40 * SZ_1M);
    expect(m.log.find({ prefix: "software IO TLB", level: "warning" }).map((r) => r.message)).toEqual([
      "swiotlb_memblock_alloc: Failed to allocate 67108864 bytes tlb structure",
    ]);
    expect(m.log.find({ message: "adjusted 32768 -> 16384 slabs" })).toHaveLength(1);
  });

  it("parses swiotlb= and honours noforce", () => {
    expect(setupIoTlbNpages("1000,3,force")).toEqual({ nslabs: 1024, nareas: 3, force: true });
    expect(setupIoTlbNpages("noforce")).toEqual({ noforce: true });
    const m = machine({ swiotlb: { noforce: true } });
    expect(m.swiotlb).toBeNull();
    const dev = m.device("d0");
    expect(isSwiotlbActive(dev)).toBe(false);
    expect(swiotlbMap(dev, BUF, 64, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(m.log.find({ prefix: "d0" }).map((r) => r.message)).toEqual([
      "Can not allocate SWIOTLB buffer earlier and can't now provide you with the DMA bounce buffer",
    ]);
  });

  it("exit returns the pages; refuses while mapped", () => {
    const m = machine();
    const dev = m.device("d0");
    const before = m.system.pages.allocated();
    const a = swiotlbMap(dev, BUF, 100, DMA_TO_DEVICE, 0);
    expect(() => swiotlbExit(m.system)).toThrow(/1 slots still mapped/);
    swiotlbTblUnmapSingle(dev, a, 100, DMA_TO_DEVICE, 0);
    swiotlbExit(m.system);
    expect(before - m.system.pages.allocated()).toBe(SZ_1M / 4096);
    expect(isSwiotlbActive(dev)).toBe(false);
  });
});

describe("bouncing", () => {
  it("copies the original into the bounce buffer at map even for DMA_FROM_DEVICE (CVE-2022-0854)", () => {
    const m = machine();
    const dev = m.device("d0", { dmaCoherent: true });
    const data = bytes(1, 1000);
    m.cache.cpuWrite(BUF + 5, data);
    const a = swiotlbMap(dev, BUF + 5, 1000, DMA_FROM_DEVICE, 0);
    expect(isSwiotlbBuffer(dev, a)).toBe(true);
    expect(devRead(m, a, 1000)).toEqual(data);
    // The device writes only the middle; the unmap copy-back must not clobber the rest.
    const dw = bytes(2, 100);
    m.cache.deviceWrite(a + 300, dw, { coherent: true });
    swiotlbTblUnmapSingle(dev, a, 1000, DMA_FROM_DEVICE, 0);
    const want = data.slice();
    want.set(dw, 300);
    expect(read(m, BUF + 5, 1000)).toEqual(want);
    expect(m.system.stats.bytesBounced).toBe(2000);
    expect(m.swiotlb?.used).toBe(0);
  });

  it("TO_DEVICE does not copy back; SKIP_CPU_SYNC suppresses the FROM_DEVICE copy-back", () => {
    const m = machine();
    const dev = m.device("d0", { dmaCoherent: true });
    m.cache.cpuWrite(BUF, bytes(3, 64));
    const a = swiotlbMap(dev, BUF, 64, DMA_TO_DEVICE, 0);
    m.cache.deviceWrite(a, new Uint8Array(64).fill(0xee), { coherent: true });
    swiotlbTblUnmapSingle(dev, a, 64, DMA_TO_DEVICE, 0);
    expect(read(m, BUF, 64)).toEqual(bytes(3, 64));
    const b = swiotlbMap(dev, BUF, 64, DMA_BIDIRECTIONAL, 0);
    m.cache.deviceWrite(b, new Uint8Array(64).fill(0xee), { coherent: true });
    swiotlbTblUnmapSingle(dev, b, 64, DMA_BIDIRECTIONAL, DMA_ATTR_SKIP_CPU_SYNC);
    expect(read(m, BUF, 64)).toEqual(bytes(3, 64));
    expect(m.system.stats.bytesBounced).toBe(128);
  });

  it("sync_for_cpu copies bounce → original, sync_for_device original → bounce, by direction and sub-range", () => {
    const m = machine();
    const dev = m.device("d0", { dmaCoherent: true });
    m.cache.cpuWrite(BUF, new Uint8Array(8192).fill(1));
    const a = swiotlbMap(dev, BUF, 8192, DMA_BIDIRECTIONAL, 0);
    m.cache.deviceWrite(a + 4000, new Uint8Array(200).fill(7), { coherent: true });
    swiotlbSyncSingleForCpu(dev, a + 4100, 50, DMA_BIDIRECTIONAL);
    const got = read(m, BUF + 4000, 200);
    expect(Array.from(got.subarray(0, 100)).every((x) => x === 1)).toBe(true);
    expect(Array.from(got.subarray(100, 150)).every((x) => x === 7)).toBe(true);
    expect(Array.from(got.subarray(150)).every((x) => x === 1)).toBe(true);
    swiotlbSyncSingleForCpu(dev, a, 8192, DMA_TO_DEVICE);
    expect(read(m, BUF + 4000, 1)[0]).toBe(1);
    m.cache.cpuWrite(BUF + 6000, new Uint8Array(10).fill(9));
    swiotlbSyncSingleForDevice(dev, a + 6000, 10, DMA_FROM_DEVICE);
    expect(devRead(m, a + 6000, 1)[0]).toBe(1);
    swiotlbSyncSingleForDevice(dev, a + 6000, 10, DMA_TO_DEVICE);
    expect(devRead(m, a + 6000, 10)).toEqual(new Uint8Array(10).fill(9));
    expect(() => swiotlbSyncSingleForCpu(dev, a, 10, DMA_NONE)).toThrow(/invalid DMA direction/);
    swiotlbTblUnmapSingle(dev, a, 8192, DMA_BIDIRECTIONAL, 0);
  });

  it("resets dma_skip_sync on the first bounce of a coherent device", () => {
    const m = machine();
    const dev = m.device("d0", { dmaCoherent: true });
    expect(devDmaState(dev).dmaSkipSync).toBe(true);
    swiotlbMap(dev, BUF, 64, DMA_TO_DEVICE, DMA_ATTR_NO_WARN);
    expect(devDmaState(dev).dmaSkipSync).toBe(false);
  });

  it("cleans the bounce buffer for a non-coherent device unless SKIP_CPU_SYNC", () => {
    const m = machine({ coherent: false });
    const dev = m.device("nc0");
    m.cache.cpuWrite(BUF, bytes(4, 256));
    const a = swiotlbMap(dev, BUF, 256, DMA_TO_DEVICE, 0);
    const seen = new Uint8Array(256);
    expect(m.cache.deviceRead(a, seen, { coherent: false, device: "nc0" })).toBe(0);
    expect(seen).toEqual(bytes(4, 256));
    const b = swiotlbMap(dev, BUF, 256, DMA_TO_DEVICE, DMA_ATTR_SKIP_CPU_SYNC);
    expect(m.cache.deviceRead(b, seen, { coherent: false, device: "nc0" })).toBe(1);
    expect(m.cache.findings()[0]?.kind).toBe("device-read-dirty");
  });

  it("fails and frees the slots when the device cannot reach the pool", () => {
    const m = machine({ swiotlb: {} });
    const dev = m.device("d31", { dmaMask: DMA_BIT_MASK(31) });
    expect(swiotlbMap(dev, BUF, 4096, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(m.swiotlb?.used).toBe(0);
    expect(m.log.find({ prefix: "d31", warn: true }).map((r) => r.message)).toEqual([
      "swiotlb addr 0x00000000fc000000+4096 overflow (mask 7fffffff, bus limit 0).",
    ]);
  });

  it("force bounce: per device, per pool (swiotlb=force), restricted pools", () => {
    const m = machine();
    const plain = m.device("p0");
    const forced = m.device("f0", {}, { forceSwiotlb: true });
    expect(isSwiotlbForceBounce(plain)).toBe(false);
    expect(isSwiotlbForceBounce(forced)).toBe(true);
    const m2 = machine({ swiotlb: { size: SZ_1M, force: true } });
    expect(isSwiotlbForceBounce(m2.device("p1"))).toBe(true);

    const rmem = swiotlbInitRestricted(m.system, { name: "restricted", size: SZ_1M, limit: 0xc000_0000 });
    expect(rmem.end).toBe(0xc000_0000);
    const r0 = m.device("r0", { dmaCoherent: true });
    swiotlbRestrictedAttach(r0, rmem);
    expect(isSwiotlbForceBounce(r0)).toBe(true);
    const a = swiotlbMap(r0, BUF, 100, DMA_TO_DEVICE, 0);
    expect(a).toBe(rmem.start);
    expect(isSwiotlbBuffer(r0, a)).toBe(true);
    expect(isSwiotlbBuffer(plain, a)).toBe(false);
    expect(m.swiotlb?.used).toBe(0);
    swiotlbTblUnmapSingle(r0, a, 100, DMA_TO_DEVICE, 0);
    expect(rmem.used).toBe(0);
    expect(
      m.log.find({
        message: /^Reserved memory: created restricted DMA pool at 0x00000000bff00000, size 1 MiB$/,
      }),
    ).toHaveLength(1);
  });
});

describe("limits and failures", () => {
  it("swiotlb_max_mapping_size subtracts roundup(min_align_mask, IO_TLB_SIZE)", () => {
    const m = machine();
    const dev = m.device("d0");
    expect(swiotlbMaxMappingSize(dev)).toBe(262144);
    dmaSetMinAlignMask(dev, 0xfff);
    expect(swiotlbMaxMappingSize(dev)).toBe(262144 - 4096);
    dmaSetMinAlignMask(dev, 0x7ff);
    expect(swiotlbMaxMappingSize(dev)).toBe(262144 - 2048);
  });

  it("a max-size mapping fits for every min_align offset; one segment more never does", () => {
    const m = machine({ swiotlb: { size: 4 * SZ_1M } });
    const dev = m.device("nvme0", { dmaCoherent: true });
    dmaSetMinAlignMask(dev, 0xfff);
    const max = swiotlbMaxMappingSize(dev);
    for (const off of [0, 0x7ff, 0x800, 0xfff, 0x123]) {
      const a = swiotlbMap(dev, BUF + off, max, DMA_TO_DEVICE, 0);
      expect(a).not.toBe(DMA_MAPPING_ERROR);
      expect(a & 0xfff).toBe(off);
      swiotlbTblUnmapSingle(dev, a, max, DMA_TO_DEVICE, 0);
    }
    // 256 KiB at an offset with bit 11 set needs 129 slots: "full", though the pool is empty.
    expect(swiotlbMap(dev, BUF + 0xfff, 262144, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(m.log.find({ prefix: "nvme0" }).map((r) => r.message)).toEqual([
      "swiotlb buffer is full (sz: 264191 bytes), total 2048 (slots), used 0 (slots)",
    ]);
  });

  it("'swiotlb buffer is full' with the pool's numbers, NO_WARN, and the ratelimit", () => {
    const m = machine({ swiotlb: { nslabs: 256 } });
    const dev = m.device("d0");
    const a = swiotlbTblMapSingle(dev, BUF, 200_000, 0, DMA_TO_DEVICE, 0);
    const b = swiotlbTblMapSingle(dev, BUF + SZ_1M, 200_000, 0, DMA_TO_DEVICE, 0);
    expect(b - a).toBe(128 * IO_TLB_SIZE);
    expect(swiotlbTblMapSingle(dev, BUF, 100_000, 0, DMA_TO_DEVICE, DMA_ATTR_NO_WARN)).toBe(
      DMA_MAPPING_ERROR,
    );
    expect(m.log.records()).toHaveLength(2);
    for (let i = 0; i < 12; i++)
      expect(swiotlbTblMapSingle(dev, BUF, 100_000, 0, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    const full = m.log.find({ prefix: "d0", message: /^swiotlb buffer is full/ });
    expect(full).toHaveLength(10);
    expect(full[0]?.message).toBe(
      "swiotlb buffer is full (sz: 100000 bytes), total 256 (slots), used 196 (slots)",
    );
    m.clock.advance(6e9);
    swiotlbTblMapSingle(dev, BUF, 100_000, 0, DMA_TO_DEVICE, 0);
    expect(
      m.log
        .records()
        .slice(-2)
        .map((r) => r.message),
    ).toEqual([
      "swiotlb_tbl_map_single: 2 callbacks suppressed",
      "swiotlb buffer is full (sz: 100000 bytes), total 256 (slots), used 196 (slots)",
    ]);
  });

  it("bad unmaps: outside the pool ignored, double unmap WARNs without touching state, long unmap clamps", () => {
    const m = machine();
    const dev = m.device("d0", { dmaCoherent: true });
    const mem = m.swiotlb;
    if (mem === null) throw new Error("no pool");
    m.cache.cpuWrite(BUF, new Uint8Array(3000).fill(5));
    const a = swiotlbTblMapSingle(dev, BUF, 3000, 0, DMA_FROM_DEVICE, 0);
    const keep = swiotlbTblMapSingle(dev, BUF + 8192, 100, 0, DMA_TO_DEVICE, 0);
    swiotlbTblUnmapSingle(dev, BUF, 3000, DMA_FROM_DEVICE, 0);
    expect(m.log.records().filter((r) => r.warn)).toHaveLength(0);
    // Into the middle of a live buffer: the kernel would free the wrong slots.
    const lists = Array.from(mem.slotList.subarray(0, 8));
    swiotlbTblUnmapSingle(dev, a + IO_TLB_SIZE, 100, DMA_FROM_DEVICE, 0);
    expect(Array.from(mem.slotList.subarray(0, 8))).toEqual(lists);
    expect(mem.used).toBe(3);
    // Too long: the copy-back stops at the allocation (3000 bytes) with the kernel's WARN_ONCE.
    m.cache.deviceWrite(a, new Uint8Array(3000).fill(6), { coherent: true });
    m.cache.cpuWrite(BUF + 3000, new Uint8Array(100).fill(8));
    swiotlbTblUnmapSingle(dev, a, 3100, DMA_FROM_DEVICE, 0);
    expect(read(m, BUF + 2999, 2)).toEqual(new Uint8Array([6, 8]));
    swiotlbTblUnmapSingle(dev, a, 3000, DMA_FROM_DEVICE, 0);
    expect(mem.used).toBe(1);
    expect(m.log.find({ warn: true }).map((r) => r.message)).toEqual([
      `swiotlb_tbl_unmap_single: 0x${(a + IO_TLB_SIZE).toString(16).padStart(16, "0")} is not a mapped bounce buffer (size 100)`,
      "Buffer overflow detected. Allocation size: 3000. Mapping size: 3100.",
      `swiotlb_tbl_unmap_single: 0x${a.toString(16).padStart(16, "0")} is not a mapped bounce buffer (size 3000)`,
    ]);
    swiotlbTblUnmapSingle(dev, keep, 100, DMA_TO_DEVICE, 0);
    expect(mem.used).toBe(0);
    expect(mem.mappings()).toEqual([]);
  });

  it("alloc_align_mask: pad slots keep min_align bits above IO_TLB_SIZE, and unmap finds the start", () => {
    const m = machine();
    const dev = m.device("u0");
    dmaSetMinAlignMask(dev, 0xfff);
    const mem = m.swiotlb;
    if (mem === null) throw new Error("no pool");
    swiotlbTblMapSingle(dev, BUF, 10, 0, DMA_TO_DEVICE, 0);
    // iommu-dma style: 4 KiB granule alignment, orig offset 0xa00 → one pad slot.
    const a = swiotlbTblMapSingle(dev, BUF + 0xa00, 0x1000, 0xfff, DMA_TO_DEVICE, 0);
    expect(a & 0xfff).toBe(0xa00);
    const [, second] = mem.mappings(0xfff);
    expect(second).toMatchObject({ index: 2, nslots: 4, padSlots: 1, tlbAddr: a, origAddr: BUF + 0xa00 });
    expect(m.log.find({ warn: true })).toHaveLength(0);
    swiotlbTblUnmapSingle(dev, a, 0x1000, DMA_TO_DEVICE, 0);
    expect(mem.used).toBe(1);
    expect(mem.slotList[2]).toBe(126);
    swiotlbTblMapSingle(dev, BUF, 10, 0x1fff, DMA_TO_DEVICE, 0);
    expect(m.log.find({ warn: true }).map((r) => r.message)).toEqual([
      "Alloc alignment may prevent fulfilling requests with max mapping_size",
    ]);
  });
});

describe("property: random map / device write / sync / unmap sequences", () => {
  it("match the reference: slots, alignment, data round trips, pool returns to empty", () => {
    const op = fc.oneof(
      {
        weight: 4,
        arbitrary: fc.record({
          kind: fc.constant("map" as const),
          dev: fc.nat(3),
          off: fc.nat(0x1fff),
          size: fc.oneof(
            { weight: 4, arbitrary: fc.integer({ min: 1, max: 5000 }) },
            { weight: 1, arbitrary: fc.integer({ min: 1, max: 270_000 }) },
          ),
          dir: fc.constantFrom(DMA_TO_DEVICE, DMA_FROM_DEVICE, DMA_BIDIRECTIONAL),
          noWarn: fc.boolean(),
          seed: fc.nat(),
        }),
      },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant("unmap" as const), pick: fc.nat() }) },
      {
        weight: 3,
        arbitrary: fc.record({
          kind: fc.constant("devwrite" as const),
          pick: fc.nat(),
          at: fc.nat(),
          len: fc.integer({ min: 1, max: 3000 }),
          seed: fc.nat(),
          sync: fc.boolean(),
        }),
      },
      {
        weight: 2,
        arbitrary: fc.record({
          kind: fc.constant("cpuwrite" as const),
          pick: fc.nat(),
          at: fc.nat(),
          len: fc.integer({ min: 1, max: 3000 }),
          seed: fc.nat(),
        }),
      },
    );
    const masks = [0, 0x7ff, 0xfff, 0x3fff];
    fc.assert(
      fc.property(fc.constantFrom(512, 1024), fc.array(op, { maxLength: 40 }), (nslabs, ops) => {
        const m = machine({
          layout: { banks: [{ start: RAM, size: 512 * SZ_1M }] },
          swiotlb: { nslabs },
        });
        const mem = m.swiotlb;
        if (mem === null) throw new Error("no pool");
        const devs = masks.map((mask, i) => {
          const d = m.device(`d${i}`, { dmaCoherent: true, dmaMask: ULONG_MAX });
          dmaSetMinAlignMask(d, mask);
          return d;
        });
        const ref = new SwiotlbRef(nslabs, 1);
        interface Live {
          dev: number;
          orig: number;
          tlb: number;
          size: number;
          dir: number;
          first: number;
          origData: Uint8Array;
          bounce: Uint8Array;
        }
        const live: Live[] = [];
        let region = 0;
        let warnsExpected = 0;
        const check = (l: Live): void => {
          expect(read(m, l.orig, l.size)).toEqual(l.origData);
          expect(devRead(m, l.tlb, l.size)).toEqual(l.bounce);
        };
        for (const o of ops) {
          m.clock.advance(1e9);
          if (o.kind === "map") {
            const dev = devs[o.dev] ?? devs[0];
            if (dev === undefined) throw new Error("no device");
            const mask = masks[o.dev] as number;
            const orig = BUF + region++ * SZ_1M + o.off;
            const data = bytes(o.seed, o.size);
            m.cache.cpuWrite(orig, data);
            const offset = orig & mask & (IO_TLB_SIZE - 1);
            const want = ref.search(0, orig, mem.start, o.size + offset, 0, mask, ULONG_MAX);
            const tlb = swiotlbMap(dev, orig, o.size, o.dir, o.noWarn ? DMA_ATTR_NO_WARN : 0);
            if (want < 0) {
              expect(tlb).toBe(DMA_MAPPING_ERROR);
              if (!o.noWarn) warnsExpected++;
              continue;
            }
            expect(tlb).toBe(mem.start + want * IO_TLB_SIZE + offset);
            expect(tlb & mask).toBe(orig & mask);
            const l: Live = {
              dev: o.dev,
              orig,
              tlb,
              size: o.size,
              dir: o.dir,
              first: want,
              origData: data.slice(),
              bounce: data.slice(),
            };
            check(l);
            live.push(l);
          } else if (o.kind === "unmap") {
            const l = live.splice(o.pick % Math.max(1, live.length), 1)[0];
            if (l === undefined) continue;
            swiotlbTblUnmapSingle(devs[l.dev] ?? (devs[0] as never), l.tlb, l.size, l.dir, 0);
            ref.release(l.first);
            if (l.dir !== DMA_TO_DEVICE) l.origData = l.bounce;
            expect(read(m, l.orig, l.size)).toEqual(l.origData);
          } else {
            const l = live[o.pick % Math.max(1, live.length)];
            if (l === undefined) continue;
            const at = o.at % l.size;
            const chunk = bytes(o.seed, Math.min(o.len, l.size - at));
            const dev = devs[l.dev] ?? (devs[0] as never);
            if (o.kind === "devwrite") {
              m.cache.deviceWrite(l.tlb + at, chunk, { coherent: true });
              l.bounce.set(chunk, at);
              if (o.sync) {
                swiotlbSyncSingleForCpu(dev, l.tlb + at, chunk.length, l.dir);
                if (l.dir !== DMA_TO_DEVICE) l.origData.set(chunk, at);
              }
            } else {
              m.cache.cpuWrite(l.orig + at, chunk);
              l.origData.set(chunk, at);
              swiotlbSyncSingleForDevice(dev, l.tlb + at, chunk.length, l.dir);
              if (l.dir !== DMA_FROM_DEVICE) l.bounce.set(chunk, at);
            }
            const n = chunk.length;
            expect(read(m, l.orig + at, n)).toEqual(l.origData.subarray(at, at + n));
            expect(devRead(m, l.tlb + at, n)).toEqual(l.bounce.subarray(at, at + n));
          }
          expect(mem.used).toBe(ref.usedSlots);
        }
        expect(m.log.find({ message: /^swiotlb buffer is full/ })).toHaveLength(warnsExpected);
        for (const l of live.splice(0)) {
          swiotlbTblUnmapSingle(devs[l.dev] ?? (devs[0] as never), l.tlb, l.size, l.dir, 0);
          if (l.dir !== DMA_TO_DEVICE) l.origData = l.bounce;
          expect(read(m, l.orig, l.size)).toEqual(l.origData);
        }
        expect(mem.used).toBe(0);
        expect(mem.mappings()).toEqual([]);
        for (let i = 0; i < nslabs; i++) expect(mem.slotList[i]).toBe(128 - (i % 128));
        expect(m.log.find({ warn: true })).toHaveLength(0);
      }),
      { numRuns: 8 },
    );
  });
});

describe("swiotlbInit placement next to CMA", () => {
  it("never carves the pool out of a CMA area (a memblock reservation of its own)", async () => {
    const { KernelLog, SimClock, SZ_1G } = await import("@dmakit/core");
    const { bootMemory, CpuCache, KernelVm } = await import("@dmakit/mm-pages");
    const { DmaSystem, swiotlbInit } = await import("../src/index.js");
    const clock = new SimClock();
    const log = new KernelLog({ now: () => clock.now() });
    // 2 GiB at 2 GiB; a 64 MiB CMA area at the very top of the 32-bit space.
    const memory = bootMemory(
      { banks: [{ start: 0x8000_0000, size: 2 * SZ_1G }] },
      { log, cma: [{ name: "reserved", size: 0x400_0000, base: 0xfc00_0000 }] },
    );
    const cache = new CpuCache(memory.phys, { coherent: true });
    const vm = new KernelVm({ mem: memory.phys, cache, pages: memory.pages });
    const system = new DmaSystem({ mem: memory, cache, vm, log, clock });
    const pool = swiotlbInit(system, { size: 0x100_0000 });
    expect(pool).not.toBeNull();
    const cma = memory.cma[0]!;
    const start = pool!.start;
    const end = start + pool!.nslabs * 2048;
    // Top-down below 4 GiB, but under the CMA area rather than inside it.
    expect(end).toBe(cma.base);
    expect(start).toBe(cma.base - 0x100_0000);
  });
});
