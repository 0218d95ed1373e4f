import {
  bitMask,
  devIsPci,
  dmaGetMaxSegSize,
  dmaGetSegBoundary,
  isKernelError,
  PAGE_SIZE,
  PCI_EXP_TYPE_DOWNSTREAM,
  PCI_P2PDMA_MAP_BUS_ADDR,
  PlatformDevice,
  pciDeviceGroupKey,
  pciName,
  pciP2pdmaMapType,
  pciP2pdmaSetup,
} from "@dmakit/core";
import { cmaAlloc, ZONE_DMA, ZONE_DMA32, ZONE_NORMAL } from "@dmakit/mm-pages";
import { describe, expect, it } from "vitest";
import { loadBuiltinMachine, parseMachine } from "../src/loadMachine.js";
import { Machine } from "../src/Machine.js";
import { machineReport } from "../src/report.js";

describe("Machine.boot", () => {
  it("arm64-soc: RAM, reserved pages and zones match the description", () => {
    const m = Machine.boot(loadBuiltinMachine("arm64-soc"));
    expect(m.mem.totalRam).toBe(4 * 2 ** 30);
    expect(m.mem.isRam(0x8000_0000)).toBe(true);
    expect(m.mem.isRam(0x7fff_ffff)).toBe(false);
    expect(m.mem.isRam(0x1_7fff_ffff)).toBe(true);
    expect(m.mem.isRam(0x1_8000_0000)).toBe(false);
    // arm64: no ZONE_DMA here, DMA32 up to 4 GiB, Normal above.
    expect(m.mem.pageZonenum(0x8000_0000 / PAGE_SIZE)).toBe(ZONE_DMA32);
    expect(m.mem.pageZonenum(0xffff_f000 / PAGE_SIZE)).toBe(ZONE_DMA32);
    expect(m.mem.pageZonenum(0x1_0000_0000 / PAGE_SIZE)).toBe(ZONE_NORMAL);
    const r = machineReport(m);
    expect(r.zones.map((z) => [z.name, z.presentPages, z.reservedPages])).toEqual([
      ["DMA32", 2 ** 31 / PAGE_SIZE, (2 * 2 ** 20) / PAGE_SIZE],
      ["Normal", 2 ** 31 / PAGE_SIZE, 0],
    ]);
    expect(r.zones.reduce((s, z) => s + z.presentPages, 0) * PAGE_SIZE).toBe(r.memory.totalRam);
    // The buddy allocator got every non-reserved page; after boot the DMA layer holds some: the
    // 32 MiB swiotlb pool (below the CMA area, under 4 GiB), the two 512 KiB atomic pools (from the
    // default CMA area), and the SMMU's stream table and queues.
    for (const z of r.zones) {
      expect(z.managedPages).toBe(z.presentPages - z.reservedPages);
      expect(z.freeArea.reduce((s, n, order) => s + n * 2 ** order, 0)).toBe(z.freePages);
    }
    const held = (name: string) => {
      const z = r.zones.find((x) => x.name === name);
      return (z?.managedPages ?? 0) - (z?.freePages ?? 0);
    };
    const smmuPages = m.iommuUnits.get("smmu0")?.tables.pagesInUse ?? 0;
    expect(smmuPages).toBeGreaterThan(0);
    expect(held("Normal")).toBe(smmuPages);
    expect(held("DMA32")).toBe((32 * 2 ** 20) / PAGE_SIZE + 256);
    expect(m.swiotlb?.report()).toMatchObject({ start: 0xee00_0000, end: 0xf000_0000 });
    expect(r.memory.reserved).toBe(2 * 2 ** 20);
    // The default CMA area goes top-down below its 4 GiB limit (no room above 4 GiB under the limit).
    // The atomic pools are carved from the default CMA area.
    expect(r.cma).toEqual([
      {
        name: "reserved",
        base: 0xf000_0000,
        size: 256 * 2 ** 20,
        zone: "DMA32",
        usedPages: 256,
        freePages: 65536 - 256,
      },
    ]);
    expect(r.memory.map.find((e) => e.kind === "cma")).toMatchObject({
      start: 0xf000_0000,
      name: "CMA reserved",
    });
  });

  it("x86-pc: 16 GiB around the PCI hole, ZONE_DMA at 16 MiB by default, low 1 MiB reserved", () => {
    const m = Machine.boot(loadBuiltinMachine("x86-pc"));
    expect(m.mem.totalRam).toBe(16 * 2 ** 30);
    expect(m.mem.regionKind(0x9000_0000)).toBe("hole");
    expect(m.mem.regionKind(0xfed9_0000)).toBe("mmio");
    const r = machineReport(m);
    expect(r.zones.map((z) => [z.name, z.start, z.end, z.presentPages, z.reservedPages])).toEqual([
      ["DMA", 0, 16 * 2 ** 20, 4096, 256],
      ["DMA32", 16 * 2 ** 20, 2 ** 31, 2 ** 31 / PAGE_SIZE - 4096, 0],
      ["Normal", 2 ** 32, 2 ** 32 + 14 * 2 ** 30, (14 * 2 ** 30) / PAGE_SIZE, 0],
    ]);
    expect(m.mem.pageZonenum(0)).toBe(ZONE_DMA);
    // The map covers every byte from the first to the last range, in order, without overlaps.
    const map = r.memory.map;
    for (let i = 1; i < map.length; i++) expect(map[i]?.start).toBe(map[i - 1]?.end);
    expect(map.filter((e) => e.kind === "ram" || e.kind === "reserved").reduce((s, e) => s + e.size, 0)).toBe(
      16 * 2 ** 30,
    );
  });

  it("platform devices get the described DMA constraints", () => {
    const m = Machine.boot(loadBuiltinMachine("arm64-soc"));
    const cam = m.device("cam0");
    expect(cam.bus).toBe("platform");
    expect(cam.dmaMask).toBe(bitMask(32));
    expect(cam.coherentDmaMask).toBe(bitMask(32));
    expect(cam.dmaCoherent).toBe(false);
    expect(dmaGetMaxSegSize(cam)).toBe(64 * 1024);
    expect(m.device("gpu0").dmaMask).toBe(bitMask(48));
    expect(cam.log).toBe(m.log);
    expect(() => m.device("nvme0")).toThrow(/no device "nvme0" \(devices: cam0, disp0, gpu0\)/);
  });

  it("per-device coherency and segment boundary override the machine's defaults", () => {
    const m = Machine.boot(
      parseMachine(`name: t
arch: arm64
coherent: false
memory: { banks: [{ start: 0x80000000, size: 256M }] }
platform:
  devices:
    - { name: a, dmaMask: 36, coherent: true, segmentBoundary: 64K, coherentDmaMask: 32 }
    - { name: b, dmaMask: 64 }
`),
    );
    const a = m.device("a");
    expect(a.dmaCoherent).toBe(true);
    expect(a.dmaMask).toBe(bitMask(36));
    expect(a.coherentDmaMask).toBe(bitMask(32));
    expect(dmaGetSegBoundary(a)).toBe(0xffff);
    expect(m.device("b").dmaCoherent).toBe(false);
  });

  it("two machines share no state; the seed drives the PRNG", () => {
    const c = loadBuiltinMachine("arm64-soc");
    const a = Machine.boot(c, { seed: 7 });
    const b = Machine.boot(c, { seed: 7 });
    const d = Machine.boot(c, { seed: 8 });
    expect(a.log).not.toBe(b.log);
    expect(a.device("cam0")).not.toBe(b.device("cam0"));
    const seq = (x: Machine): number[] => [x.prng.u32(), x.prng.u32(), x.prng.u32()];
    const sa = seq(a);
    expect(seq(b)).toEqual(sa);
    expect(seq(d)).not.toEqual(sa);
    expect(a.log.dmesg()).toBe(b.log.dmesg());
  });

  it("hardware the memory model rejects fails with a KernelError", () => {
    // The schema would reject this; a hand-built config reaches the memory model, which must refuse too.
    const config = parseMachine(`name: t
arch: arm64
coherent: false
memory: { banks: [{ start: 0x80000000, size: 256M }] }
`);
    const bad = {
      ...config,
      memory: { ...config.memory, reserved: [{ name: "r", start: 0x1000, size: 0x1000 }] },
    };
    let err: unknown;
    try {
      Machine.boot(bad);
    } catch (e) {
      err = e;
    }
    expect(isKernelError(err)).toBe(true);
    expect(String((err as Error).message)).toMatch(/reserved range "r"/);
  });

  it("platform devices sit on the machine's platform bus with their IOMMU stream IDs", () => {
    const m = Machine.boot(loadBuiltinMachine("arm64-soc"));
    expect(m.platform.devices().map((d) => d.name)).toEqual(["cam0", "disp0", "gpu0"]);
    const gpu = m.device("gpu0");
    expect(gpu).toBeInstanceOf(PlatformDevice);
    expect((gpu as PlatformDevice).iommu).toBe("smmu0");
    expect((gpu as PlatformDevice).streamIds).toEqual([0x20]);
    expect((m.device("cam0") as PlatformDevice).iommu).toBeNull();
    expect(m.mem.mmioAt(0x1000_0000)?.name).toBe("cam0");
  });

  it("x86-pc: PCI hierarchy, BARs placed in the host bridge windows, peer-to-peer through the switch", () => {
    const m = Machine.boot(loadBuiltinMachine("x86-pc"));
    expect(m.pciHostBridges.map((h) => h.name)).toEqual(["pci0000:00"]);
    const nvme = m.device("nvme0");
    const gpu = m.device("gpu1");
    if (!devIsPci(nvme) || !devIsPci(gpu)) throw new Error("expected PCI devices");
    expect(nvme.upstream?.pcieType).toBe(PCI_EXP_TYPE_DOWNSTREAM);
    expect(nvme.upstream?.upstream?.name).toBe("sw0");
    expect(nvme.upstream?.upstream?.upstream?.name).toBe("rp0");
    expect(pciName(nvme)).toBe("0000:03:00.0");
    expect(nvme.dmaMask).toBe(bitMask(64));
    expect(nvme.dmaCoherent).toBe(true);

    // Natural alignment; non-prefetchable BARs in the 32-bit window, prefetchable in the 64-bit one.
    expect(nvme.bars.map((b) => [b.bar, b.cpuAddr, b.size, b.prefetchable])).toEqual([
      [0, 0x8000_0000, 16 * 1024, false],
      [2, 0x40_0000_0000, 64 * 2 ** 20, true],
    ]);
    expect(gpu.bars.map((b) => [b.bar, b.cpuAddr, b.size])).toEqual([
      [0, 0x8100_0000, 16 * 2 ** 20],
      [1, 0x42_0000_0000, 8 * 2 ** 30],
    ]);
    for (const b of [...nvme.bars, ...gpu.bars]) {
      expect(m.mem.regionKind(b.cpuAddr)).toBe("mmio");
      expect(b.cpuAddr % b.size).toBe(0);
    }
    // Prefetchable BAR memory holds what is written; register BARs read as zero.
    const cmb = nvme.bars[1]?.cpuAddr as number;
    m.mem.write(cmb + 8, new Uint8Array([1, 2, 3]));
    const back = new Uint8Array(3);
    m.mem.read(cmb + 8, back);
    expect([...back]).toEqual([1, 2, 3]);
    m.mem.write(0x8000_0000, new Uint8Array([9]));
    m.mem.read(0x8000_0000, back);
    expect([...back]).toEqual([0, 0, 0]);

    // The switch has no ACS: peer traffic between its ports stays in the switch (bus addresses).
    pciP2pdmaSetup(nvme);
    expect(pciP2pdmaMapType(nvme, gpu)).toBe(PCI_P2PDMA_MAP_BUS_ADDR);
    expect(pciDeviceGroupKey(nvme)).not.toBe(pciDeviceGroupKey(gpu));
    expect([...m.devices.keys()]).toEqual(["nvme0", "gpu1", "cap0"]);
  });

  it("a BAR that fits no window fails the boot with ENOSPC", () => {
    const config = parseMachine(`name: t
arch: x86_64
coherent: true
memory: { banks: [{ start: 0, size: 256M }] }
pci:
  hostBridges:
    - { name: hb, windows: [{ start: 0x80000000, size: 16M }], rootPorts: [{ name: rp0 }] }
  endpoints:
    - { name: big, parent: rp0, dmaMask: 64, bars: [{ size: 8M }, { size: 16M }] }
`);
    expect(() => Machine.boot(config)).toThrow(/pci hb: no room for big BAR2 \(16 MiB, 64-bit\)/);
  });

  it("the CPU cache follows the machine's coherency: arm64-soc devices miss dirty lines, x86-pc devices snoop", () => {
    for (const [name, expected] of [
      ["arm64-soc", [0, 0]],
      ["x86-pc", [7, 7]],
    ] as const) {
      const m = Machine.boot(loadBuiltinMachine(name));
      const phys = m.mem.banks[m.mem.banks.length - 1]?.start as number;
      m.cache.cpuWrite(phys, new Uint8Array([7, 7]));
      const seen = new Uint8Array(2);
      m.cache.deviceRead(phys, seen);
      expect([...seen], name).toEqual(expected);
    }
  });

  it("CMA areas are real: cma_alloc takes pages from them and the report shows it", () => {
    const m = Machine.boot(loadBuiltinMachine("arm64-soc"));
    const area = m.cma[0];
    if (area === undefined) throw new Error("no CMA area");
    const pfn = cmaAlloc(area, 1024, 8, false);
    expect(pfn).not.toBeNull();
    expect((pfn as number) * PAGE_SIZE).toBeGreaterThanOrEqual(area.base);
    // 256 pages are the atomic pools carved at boot.
    expect(machineReport(m).cma[0]).toMatchObject({ usedPages: 1024 + 256, freePages: 65536 - 1024 - 256 });
  });

  it("a CMA area that cannot fit fails the boot with ENOMEM", () => {
    const config = parseMachine(`name: t
arch: arm64
coherent: false
memory:
  banks: [{ start: 0x80000000, size: 1G }]
  reserved: [{ name: fw, start: 0x80000000, size: 2M }]
  cma: [{ name: big, size: 1G }]
`);
    expect(() => Machine.boot(config)).toThrow(/cma: big: no free 1 GiB range/);
  });
});
