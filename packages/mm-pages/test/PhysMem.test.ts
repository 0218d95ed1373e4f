import { isKernelError, KernelLog, PAGE_SIZE, SZ_1G, SZ_4G } from "@dmakit/core";
import {
  MEMORY_DEVICE_PCI_P2PDMA,
  Memmap,
  MemoryBackedMmio,
  PAGES_PER_SECTION,
  PG_reserved,
  PhysMem,
  ZONE_DEVICE,
  ZONE_DMA,
  ZONE_DMA32,
  ZONE_MOVABLE,
  ZONE_NORMAL,
} from "@dmakit/mm-pages";
import { describe, expect, it } from "vitest";

const log = () => new KernelLog();

function x86Like(): PhysMem {
  // Low 2 GiB, the PCI hole, then RAM from 4 GiB; ZONE_DMA 16 MiB, MOVABLE from 5 GiB.
  return new PhysMem(
    {
      banks: [
        { start: 0, size: 2 * SZ_1G },
        { start: SZ_4G, size: 2 * SZ_1G },
      ],
      reserved: [{ start: 0, size: 0x100000, name: "low 1M" }],
      zones: { dma: 0x1000000, dma32: SZ_4G, movableStart: SZ_4G + SZ_1G },
    },
    { log: log() },
  );
}

describe("PhysMem", () => {
  it("places pages in zones by address limits", () => {
    const m = x86Like();
    expect(m.pageZonenum(0x1000000 / PAGE_SIZE - 1)).toBe(ZONE_DMA);
    expect(m.pageZonenum(0x1000000 / PAGE_SIZE)).toBe(ZONE_DMA32);
    expect(m.pageZonenum((2 * SZ_1G) / PAGE_SIZE - 1)).toBe(ZONE_DMA32);
    expect(m.pageZonenum(SZ_4G / PAGE_SIZE)).toBe(ZONE_NORMAL);
    expect(m.pageZonenum((SZ_4G + SZ_1G) / PAGE_SIZE)).toBe(ZONE_MOVABLE);
  });

  it("pfn_valid is exact: RAM yes, the PCI hole no, even inside a present section", () => {
    const m = x86Like();
    expect(m.pfnValid(0)).toBe(true);
    expect(m.pfnValid((2 * SZ_1G) / PAGE_SIZE - 1)).toBe(true);
    expect(m.pfnValid((2 * SZ_1G) / PAGE_SIZE)).toBe(false);
    expect(m.pfnValid(SZ_4G / PAGE_SIZE - 1)).toBe(false);
    expect(m.pfnValid(SZ_4G / PAGE_SIZE)).toBe(true);
    expect(m.totalRam).toBe(4 * SZ_1G);
  });

  it("marks memblock-reserved pages and section holes PG_reserved", () => {
    const m = new PhysMem(
      {
        banks: [{ start: 0x80000000, size: 0x100000 }],
        reserved: [{ start: 0x80001000, size: 0x1000, name: "fw" }],
      },
      { log: log() },
    );
    const mm = m.memmap;
    expect((mm.flags[mm.idx(0x80001)] as number) & PG_reserved).toBe(PG_reserved);
    expect((mm.flags[mm.idx(0x80000)] as number) & PG_reserved).toBe(0);
    // The bank is 1 MiB of a 128 MiB section: the rest of the section is a hole.
    expect((mm.flags[mm.idx(0x80100)] as number) & PG_reserved).toBe(PG_reserved);
    expect(m.pfnValid(0x80100)).toBe(false);
  });

  it("reads and writes across adjacent banks and rejects holes with EFAULT", () => {
    const m = new PhysMem(
      {
        banks: [
          { start: 0x1000_0000, size: 0x1000 },
          { start: 0x1000_1000, size: 0x1000 },
        ],
      },
      { log: log() },
    );
    const src = Uint8Array.from({ length: 16 }, (_, i) => i);
    m.write(0x1000_0ff8, src);
    const back = new Uint8Array(16);
    m.read(0x1000_0ff8, back);
    expect([...back]).toEqual([...src]);
    m.fill(0x1000_0ffc, 8, 0x5a);
    m.read(0x1000_0ff8, back);
    expect([...back.subarray(0, 12)]).toEqual([0, 1, 2, 3, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a]);
    let err: unknown;
    try {
      m.write(0x1000_1ffc, new Uint8Array(8));
    } catch (e) {
      err = e;
    }
    expect(isKernelError(err, "EFAULT")).toBe(true);
    expect((err as Error).message).toContain("0x10002000");
    expect(() => m.fill(0x1000_1ff0, 0x20, 0)).toThrow(/not RAM/);
    // The failed fill wrote nothing.
    const tail = new Uint8Array(4);
    m.read(0x1000_0ffc, tail);
    expect([...tail]).toEqual([0x5a, 0x5a, 0x5a, 0x5a]);
  });

  it("routes MMIO accesses to the region's handler and refuses overlaps", () => {
    const m = x86Like();
    const bar = new MemoryBackedMmio(0x10000);
    m.addMmioRegion({ start: 0xe000_0000, size: 0x10000, name: "bar0", handler: bar });
    m.writeU32(0xe000_0010, 0xcafef00d);
    expect(bar.store.readU32(0x10)).toBe(0xcafef00d);
    expect(m.regionKind(0xe000_0010)).toBe("mmio");
    expect(m.pfnValid(0xe000_0000 / PAGE_SIZE)).toBe(false);
    expect(() => m.addMmioRegion({ start: 0x7fff_0000, size: 0x20000, name: "bad", handler: bar })).toThrow(
      /overlaps RAM/,
    );
    expect(() => m.addMmioRegion({ start: 0xe000_8000, size: 0x1000, name: "dup", handler: bar })).toThrow(
      /overlaps "bar0"/,
    );
  });

  it("memremap_pages gives a BAR struct pages in ZONE_DEVICE with one pgmap", () => {
    const m = x86Like();
    m.addMmioRegion({
      start: 0x38_0000_0000,
      size: 0x400000,
      name: "gpu.bar2",
      handler: new MemoryBackedMmio(0x400000),
    });
    const a = m.memremapPages({
      start: 0x38_0000_0000,
      size: 0x200000,
      type: MEMORY_DEVICE_PCI_P2PDMA,
      owner: "gpu",
      busOffset: -0x30_0000_0000,
    });
    const b = m.memremapPages({
      start: 0x38_0020_0000,
      size: 0x200000,
      type: MEMORY_DEVICE_PCI_P2PDMA,
      owner: "gpu",
    });
    const pa = 0x38_0000_0000 / PAGE_SIZE;
    const pb = 0x38_0020_0000 / PAGE_SIZE;
    expect(m.pfnValid(pa)).toBe(true);
    expect(m.isZoneDevicePage(pa)).toBe(true);
    expect(m.pageZonenum(pa)).toBe(ZONE_DEVICE);
    expect(m.isPciP2pdmaPage(pa)).toBe(true);
    expect(m.pagePgmap(pa)?.busOffset).toBe(-0x30_0000_0000);
    expect(m.zoneDevicePagesHaveSamePgmap(pa, pa + 1)).toBe(true);
    expect(m.zoneDevicePagesHaveSamePgmap(pa, pb)).toBe(false);
    expect(m.zoneDevicePagesHaveSamePgmap(pa, 0x100)).toBe(false);
    expect(m.zoneDevicePagesHaveSamePgmap(0x100, 0x101)).toBe(true);
    expect(() =>
      m.memremapPages({ start: 0x38_0010_0000, size: 0x1000, type: MEMORY_DEVICE_PCI_P2PDMA, owner: "x" }),
    ).toThrow(/overlaps pgmap/);
    m.memunmapPages(b);
    expect(m.pfnValid(pb)).toBe(false);
    expect(a.id).not.toBe(b.id);
  });

  it("boots a 64 GiB machine with 16 bytes of memmap per page", () => {
    const m = new PhysMem({ banks: [{ start: 0x8000_0000, size: 64 * SZ_1G }] }, { log: log() });
    expect(Memmap.BYTES_PER_PAGE).toBe(16);
    expect(m.memmap.byteLength / m.memmap.pages).toBe(16);
    expect(m.memmap.pages).toBe((64 * SZ_1G) / PAGE_SIZE);
    expect(m.memmap.pages % PAGES_PER_SECTION).toBe(0);
    expect(m.ram.residentBytes).toBe(0);
  });

  it("rejects unaligned and overlapping banks", () => {
    expect(() => new PhysMem({ banks: [{ start: 0x800, size: 0x1000 }] }, { log: log() })).toThrow(
      /page-aligned/,
    );
    expect(
      () =>
        new PhysMem(
          {
            banks: [
              { start: 0, size: 0x2000 },
              { start: 0x1000, size: 0x1000 },
            ],
          },
          { log: log() },
        ),
    ).toThrow(/overlaps/);
  });
});

describe("__GFP_ZERO is a CPU store", () => {
  it("zeroes through the machine's CPU cache, so the previous owner's dirty lines do not survive", async () => {
    const { bootMemory, CpuCache, GFP_KERNEL, __GFP_ZERO } = await import("@dmakit/mm-pages");
    const mem = bootMemory({ banks: [{ start: 0x8000_0000, size: 0x100_0000 }] }, { log: new KernelLog() });
    const cache = new CpuCache(mem.phys, { coherent: false });
    expect(mem.phys.cpuStore).toBe(cache);
    const pfn = mem.pages.allocPages(GFP_KERNEL, 0)!;
    cache.cpuWrite(pfn * PAGE_SIZE, new Uint8Array(64).fill(0xee)); // dirty, never cleaned
    mem.pages.freePages(pfn, 0);
    const again = mem.pages.allocPages(GFP_KERNEL | __GFP_ZERO, 0)!;
    expect(again).toBe(pfn); // the per-CPU list hands the same page back
    const seen = new Uint8Array(64);
    cache.cpuRead(pfn * PAGE_SIZE, seen);
    expect(seen.every((b) => b === 0)).toBe(true);
  });
});
