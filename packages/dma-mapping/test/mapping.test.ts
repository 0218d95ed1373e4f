import { bitMask, Device, DMA_MAPPING_ERROR, PAGE_SIZE, PciHostBridge, SZ_1M } from "@dmakit/core";
import { IOMMU_DOMAIN_IDENTITY, type IommuDomain } from "@dmakit/iommu";
import { MEMORY_DEVICE_PCI_P2PDMA, MemoryBackedMmio } from "@dmakit/mm-pages";
import {
  forEachSgtableSg,
  type Sg,
  SgTable,
  sgAllocTable,
  sgAllocTableFromPages,
  sgDmaAddress,
  sgDmaIsBusAddress,
  sgDmaLen,
  sgSetPage,
} from "@dmakit/scatterlist";
import { describe, expect, it } from "vitest";
import {
  DMA_ATTR_MMIO,
  DMA_ATTR_REQUIRE_COHERENT,
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_NONE,
  DMA_TO_DEVICE,
  type DmaDataDirection,
  type DmaDebugHooks,
  dmaConfigure,
  dmaMapDirect,
  dmaMapPage,
  dmaMapPageAttrs,
  dmaMapPhys,
  dmaMappingError,
  dmaMapResource,
  dmaMapSg,
  dmaMapSgAttrs,
  dmaMapSgtable,
  dmaMapSingle,
  dmaUnmapPageAttrs,
  dmaUnmapPhys,
  dmaUnmapSg,
  dmaUnmapSgtable,
  dmaUnmapSingle,
} from "../src/index.js";
import {
  HIGH_RAM,
  LOW_RAM,
  type MachineOptions,
  makeMachine,
  pattern,
  SPLIT_RAM,
  type TestMachine,
} from "./helpers/machine.js";
import { p2pdmaProvide } from "./helpers/p2p.js";

/** The streaming-map tests' machine: RAM below and above 4 GiB, no IOMMU. */
const machine = (o: MachineOptions = {}): TestMachine => makeMachine({ layout: SPLIT_RAM, ...o });

/** A dma-debug stand-in recording the hook calls. */
function recordingDebug(): { hooks: DmaDebugHooks; calls: string[] } {
  const calls: string[] = [];
  const rec =
    (name: string) =>
    (...args: unknown[]) => {
      calls.push(
        `${name}(${args
          .slice(1)
          .map((a) => (typeof a === "number" ? a.toString(16) : typeof a === "object" ? "sg" : String(a)))
          .join(",")})`,
      );
    };
  const hooks = {
    debugDmaMapPhys: rec("map_phys"),
    debugDmaUnmapPhys: rec("unmap_phys"),
    debugDmaMapSingle: rec("map_single"),
    debugDmaMappingError: rec("mapping_error"),
    debugDmaMapSg: rec("map_sg"),
    debugDmaUnmapSg: rec("unmap_sg"),
    debugDmaAllocCoherent: rec("alloc_coherent"),
    debugDmaFreeCoherent: rec("free_coherent"),
    debugDmaAllocPages: rec("alloc_pages"),
    debugDmaFreePages: rec("free_pages"),
    debugDmaSyncSingleForCpu: rec("sync_single_for_cpu"),
    debugDmaSyncSingleForDevice: rec("sync_single_for_device"),
    debugDmaSyncSgForCpu: rec("sync_sg_for_cpu"),
    debugDmaSyncSgForDevice: rec("sync_sg_for_device"),
    kernelAccess: <T>(fn: () => T): T => fn(),
  } satisfies DmaDebugHooks;
  return { hooks, calls };
}

/** An sg_table over the given pfns (one entry per non-contiguous run). */
function tableOf(m: TestMachine, pfns: number[], size = pfns.length * PAGE_SIZE, offset = 0): SgTable {
  const sgt = new SgTable(m.pool);
  sgAllocTableFromPages(sgt, pfns, pfns.length, offset, size);
  return sgt;
}

const pfn = (phys: number) => phys / PAGE_SIZE;

describe("dispatch", () => {
  it("no IOMMU and an identity domain both map directly (DMA address = physical address)", () => {
    const m = machine();
    const plain = m.device("dev0");
    const identity = m.device(
      "dev1",
      {},
      { domain: { type: IOMMU_DOMAIN_IDENTITY } as unknown as IommuDomain },
    );
    expect(dmaMapDirect(plain)).toBe(true);
    expect(dmaMapDirect(identity)).toBe(true);
    expect(dmaMapPhys(identity, LOW_RAM + 0x10, 8, DMA_TO_DEVICE)).toBe(LOW_RAM + 0x10);
  });

  it("an unconfigured device is refused with ENODEV", () => {
    const m = machine();
    const dev = new Device({ name: "stray", log: m.log });
    expect(() => dmaMapPhys(dev, LOW_RAM, 1, DMA_TO_DEVICE)).toThrow(
      expect.objectContaining({ errno: "ENODEV" }),
    );
  });

  it("an invalid direction is the kernel's BUG_ON: EINVAL before any state changes", () => {
    const m = machine();
    const dev = m.device("dev0");
    m.cpuWrite(LOW_RAM, pattern(64, 1));
    expect(() => dmaMapPhys(dev, LOW_RAM, 64, DMA_NONE)).toThrow(
      /dma_map_phys: BUG: invalid DMA direction DMA_NONE/,
    );
    expect(() => dmaUnmapPhys(dev, LOW_RAM, 64, 7 as DmaDataDirection)).toThrow(/EINVAL/);
    expect(m.cache.lineState(LOW_RAM)).toBe("dirty");
    expect(m.system.stats).toMatchObject({ mappings: 0, mapErrors: 0, unmappings: 0 });
  });
});

describe("dma_map_phys / page / single: contracts", () => {
  it("WARN_ON_ONCE(!dev->dma_mask) → DMA_MAPPING_ERROR, warned once", () => {
    const m = machine();
    const dev = m.device("dev0", { dmaMask: null });
    expect(dmaMapPhys(dev, LOW_RAM, 64, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
    expect(dmaMapPage(dev, pfn(LOW_RAM), 0, 64, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
    expect(m.log.find({ warn: true }).map((r) => r.message)).toEqual([
      "dma_map_phys: WARN_ON_ONCE(!dev->dma_mask)",
    ]);
    expect(m.system.stats.mapErrors).toBe(2);
  });

  it("dma_mapping_error: -ENOMEM for the error handle, 0 otherwise, and tells dma-debug", () => {
    const m = machine();
    const dev = m.device("dev0");
    const { hooks, calls } = recordingDebug();
    m.system.debug = hooks;
    expect(dmaMappingError(dev, DMA_MAPPING_ERROR)).toBe(-12);
    expect(dmaMappingError(dev, 0)).toBe(0);
    expect(dmaMappingError(dev, LOW_RAM)).toBe(0);
    expect(calls).toEqual([
      "mapping_error(10000000000000000)",
      "mapping_error(0)",
      "mapping_error(80000000)",
    ]);
  });

  it("dma_map_page_attrs: page + offset; DMA_ATTR_MMIO → error; unmap with MMIO is ignored", () => {
    const m = machine();
    const dev = m.device("dev0");
    const h = dmaMapPageAttrs(dev, pfn(LOW_RAM) + 3, 0x80, 0x100, DMA_FROM_DEVICE, 0);
    expect(h).toBe(LOW_RAM + 3 * PAGE_SIZE + 0x80);
    expect(dmaMapPageAttrs(dev, pfn(LOW_RAM), 0, 64, DMA_TO_DEVICE, DMA_ATTR_MMIO)).toBe(DMA_MAPPING_ERROR);
    m.cpuRead(h, 64);
    m.devWrite(h, pattern(64, 3));
    dmaUnmapPageAttrs(dev, h, 0x100, DMA_FROM_DEVICE, DMA_ATTR_MMIO);
    expect(m.system.stats.unmappings).toBe(0);
    expect(m.cpuRead(h, 64)).toEqual(new Uint8Array(64)); // nothing invalidated
  });

  it("dma_map_page_attrs of a ZONE_DEVICE page: refused only with dma-debug (WARN_ON_ONCE)", () => {
    const m = machine();
    m.mem.phys.addMmioRegion({
      start: 0x4000_0000,
      size: SZ_1M,
      name: "bar",
      handler: new MemoryBackedMmio(SZ_1M),
    });
    m.mem.phys.memremapPages({ start: 0x4000_0000, size: SZ_1M, type: MEMORY_DEVICE_PCI_P2PDMA, owner: "x" });
    const dev = m.device("dev0", { dmaCoherent: true });
    expect(dmaMapPage(dev, pfn(0x4000_0000), 0, 64, DMA_TO_DEVICE)).toBe(0x4000_0000);
    m.system.debug = recordingDebug().hooks;
    expect(dmaMapPage(dev, pfn(0x4000_0000), 0, 64, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
    expect(m.log.find({ warn: true }).map((r) => r.message)).toEqual([
      "dma_map_page_attrs: WARN_ON_ONCE(is_zone_device_page(page))",
    ]);
  });

  it("dma_map_single rejects vmalloc memory with dev_WARN_ONCE and maps linear-map memory", () => {
    const m = machine();
    const dev = m.device("dev0");
    dev.bindDriver("mydrv");
    const va = m.vm.vmalloc(2 * PAGE_SIZE);
    expect(va).not.toBeNull();
    expect(dmaMapSingle(dev, va as number, 64, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
    const w = m.log.find({ warn: true });
    expect(w.map((r) => `${r.prefix}: ${r.message}`)).toEqual([
      "mydrv dev0: rejecting DMA map of vmalloc memory",
    ]);

    const { hooks, calls } = recordingDebug();
    m.system.debug = hooks;
    const lin = m.vm.pageAddress(pfn(LOW_RAM) + 5) + 0x20;
    const h = dmaMapSingle(dev, lin, 0x40, DMA_TO_DEVICE);
    expect(h).toBe(LOW_RAM + 5 * PAGE_SIZE + 0x20);
    dmaUnmapSingle(dev, h, 0x40, DMA_TO_DEVICE);
    expect(calls).toEqual([
      `map_single(${lin.toString(16)},40)`,
      "map_phys(80005020,40,1,80005020,0)",
      "unmap_phys(80005020,40,1)",
    ]);
  });

  it("dma_map_resource refuses RAM under dma-debug (WARN_ON_ONCE(pfn_valid)), maps it without", () => {
    const m = machine();
    const dev = m.device("dev0");
    expect(dmaMapResource(dev, LOW_RAM, 64, DMA_TO_DEVICE)).toBe(LOW_RAM);
    m.system.debug = recordingDebug().hooks;
    expect(dmaMapResource(dev, LOW_RAM, 64, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
    expect(m.log.find({ warn: true }).map((r) => r.message)).toEqual([
      "dma_map_resource: WARN_ON_ONCE(pfn_valid(PHYS_PFN(phys_addr)))",
    ]);
  });
});

describe("dma_map_sg / dma_map_sgtable", () => {
  it("maps every entry at its physical address, never merges, and stores nents", () => {
    const m = machine();
    const dev = m.device("dev0");
    const base = pfn(LOW_RAM);
    // pages 0,1 contiguous (one entry), 5, 7 → 3 entries
    const sgt = tableOf(m, [base, base + 1, base + 5, base + 7], 4 * PAGE_SIZE - 0x100, 0x80);
    expect(sgt.origNents).toBe(3);
    sgt.nents = 99;
    expect(dmaMapSgtable(dev, sgt, DMA_TO_DEVICE)).toBe(0);
    expect(sgt.nents).toBe(3);
    const got = [...forEachSgtableSg(sgt)].map((s) => [sgDmaAddress(s), sgDmaLen(s)]);
    expect(got).toEqual([
      [LOW_RAM + 0x80, 2 * PAGE_SIZE - 0x80],
      [LOW_RAM + 5 * PAGE_SIZE, PAGE_SIZE],
      [LOW_RAM + 7 * PAGE_SIZE, PAGE_SIZE - 0x80],
    ]);
    dmaUnmapSgtable(dev, sgt, DMA_TO_DEVICE);
    expect(m.system.stats).toMatchObject({ mappings: 1, unmappings: 1, mapErrors: 0 });
  });

  it("dma_map_sg returns the count; a failing entry returns 0, unmaps the others and leaves the error handle", () => {
    const m = machine();
    const dev = m.device("dev0");
    const sgt = new SgTable(m.pool);
    sgAllocTable(sgt, 3);
    const sgl = sgt.sgl as Sg;
    sgSetPage(sgl, pfn(LOW_RAM), 256, 0);
    sgSetPage(sgl.add(1), pfn(LOW_RAM) + 1, 256, 0);
    sgSetPage(sgl.add(2), pfn(HIGH_RAM), 256, 0);
    expect(dmaMapSg(dev, sgl, 2, DMA_BIDIRECTIONAL)).toBe(2);
    dmaUnmapSg(dev, sgl, 2, DMA_BIDIRECTIONAL);
    expect(dmaMapSgAttrs(dev, sgl, 3, DMA_BIDIRECTIONAL, 0)).toBe(0);
    expect(sgDmaAddress(sgl.add(2))).toBe(DMA_MAPPING_ERROR);
    expect(m.log.find({ warn: true, message: "overflow" })).toHaveLength(1);
    // dma_map_sgtable reports the same failure as EIO and leaves nents alone.
    sgt.nents = 3;
    expect(() => dmaMapSgtable(dev, sgt, DMA_BIDIRECTIONAL)).toThrow(
      expect.objectContaining({
        errno: "EIO",
        message: expect.stringContaining("dma_map_sgtable of 3 entries (768 bytes) failed"),
      }),
    );
    expect(sgt.nents).toBe(3);
    expect(m.system.stats.mapErrors).toBe(2);
  });

  it("the error path unmaps already-mapped entries without CPU sync (SKIP_CPU_SYNC)", () => {
    const m = machine();
    const dev = m.device("dev0");
    const sgt = new SgTable(m.pool);
    sgAllocTable(sgt, 2);
    const sgl = sgt.sgl as Sg;
    sgSetPage(sgl, pfn(LOW_RAM), 128, 0);
    sgSetPage(sgl.add(1), pfn(HIGH_RAM), 128, 0);
    m.cpuRead(LOW_RAM, 128); // clean cached lines
    const inval = m.cache.stats().linesInvalidated;
    expect(dmaMapSgAttrs(dev, sgl, 2, DMA_FROM_DEVICE)).toBe(0);
    expect(m.cache.stats().linesInvalidated).toBe(inval);
  });

  it("WARN_ON_ONCE(!dev->dma_mask): dma_map_sg returns 0, dma_map_sgtable reports success with nents 0 (kernel quirk)", () => {
    const m = machine();
    const dev = m.device("dev0", { dmaMask: null });
    const sgt = tableOf(m, [pfn(LOW_RAM)]);
    expect(dmaMapSgAttrs(dev, sgt.sgl as Sg, 1, DMA_TO_DEVICE)).toBe(0);
    expect(dmaMapSgtable(dev, sgt, DMA_TO_DEVICE)).toBe(0);
    expect(sgt.nents).toBe(0);
    expect(m.log.find({ warn: true }).map((r) => r.message)).toEqual([
      "__dma_map_sg_attrs: WARN_ON_ONCE(!dev->dma_mask)",
    ]);
  });

  it("REQUIRE_COHERENT on a non-coherent device: dma_map_sgtable throws EOPNOTSUPP, dma_map_sg returns 0", () => {
    const m = machine();
    const dev = m.device("dev0");
    const sgt = tableOf(m, [pfn(LOW_RAM)]);
    expect(() => dmaMapSgtable(dev, sgt, DMA_TO_DEVICE, DMA_ATTR_REQUIRE_COHERENT)).toThrow(
      expect.objectContaining({ errno: "EOPNOTSUPP" }),
    );
    expect(dmaMapSgAttrs(dev, sgt.sgl as Sg, 1, DMA_TO_DEVICE, DMA_ATTR_REQUIRE_COHERENT)).toBe(0);
    expect(m.log.warnCount).toBe(0);
  });

  it("calls dma-debug with the original and mapped counts, and before unmapping", () => {
    const m = machine();
    const dev = m.device("dev0");
    const { hooks, calls } = recordingDebug();
    m.system.debug = hooks;
    const sgt = tableOf(m, [pfn(LOW_RAM), pfn(LOW_RAM) + 2]);
    dmaMapSgtable(dev, sgt, DMA_TO_DEVICE, DMA_ATTR_SKIP_CPU_SYNC);
    dmaUnmapSgtable(dev, sgt, DMA_TO_DEVICE);
    expect(calls).toEqual(["map_sg(sg,2,2,1,20)", "unmap_sg(sg,2,1)"]);
  });
});

describe("P2PDMA pages in scatterlists (dma_direct_map_sg)", () => {
  const BAR = 0x60_0000_0000;
  const BUS_OFFSET = -0x5f_0000_0000; // bus address 0x1_0000_0000

  function p2pSwitch(opts: { sameSwitch: boolean; allowlisted?: boolean }) {
    const m = machine();
    const hb = new PciHostBridge({
      log: m.log,
      vendor: 0x1d0f,
      device: 0x1,
      p2pdmaAllowlisted: opts.allowlisted ?? false,
    });
    const rp = hb.addRootPort({ acs: true });
    const sw = hb.addSwitch(rp, [{ acs: false }, { acs: false }]);
    const [d0, d1] = sw.downstream as [typeof rp, typeof rp];
    const provider = hb.addEndpoint(d0, {
      name: "gpu0",
      bars: [{ bar: 0, cpuAddr: BAR, size: SZ_1M, busAddr: BAR + BUS_OFFSET }],
    });
    const clientParent = opts.sameSwitch ? d1 : hb.addRootPort({ acs: true });
    const client = hb.addEndpoint(clientParent, { name: "nvme0", dmaMask: bitMask(64), dmaCoherent: false });
    p2pdmaProvide(m, provider, BAR, SZ_1M, BUS_OFFSET);
    dmaConfigure(client, m.system);
    return { m, client };
  }

  it("through a switch: the P2P entry gets its PCI bus address and the bus-address mark; RAM maps normally; nents kept", () => {
    const { m, client } = p2pSwitch({ sameSwitch: true });
    const sgt = tableOf(m, [pfn(LOW_RAM), pfn(BAR) + 2, pfn(BAR) + 3]);
    expect(sgt.origNents).toBe(2);
    dmaMapSgtable(client, sgt, DMA_BIDIRECTIONAL);
    expect(sgt.nents).toBe(2);
    const [ram, p2p] = [...forEachSgtableSg(sgt)] as [Sg, Sg];
    expect([sgDmaAddress(ram), sgDmaIsBusAddress(ram)]).toEqual([LOW_RAM, false]);
    expect([sgDmaAddress(p2p), sgDmaLen(p2p), sgDmaIsBusAddress(p2p)]).toEqual([
      BAR + 2 * PAGE_SIZE + BUS_OFFSET,
      2 * PAGE_SIZE,
      true,
    ]);
    expect(sgDmaAddress(p2p)).toBe(0x1_0000_2000);
    dmaUnmapSgtable(client, sgt, DMA_BIDIRECTIONAL);
    expect(sgDmaIsBusAddress(p2p)).toBe(false);
  });

  it("through an allowlisted host bridge: mapped at the CPU physical address, unmarked", () => {
    const { m, client } = p2pSwitch({ sameSwitch: false, allowlisted: true });
    const sgt = tableOf(m, [pfn(BAR)]);
    dmaMapSgtable(client, sgt, DMA_TO_DEVICE);
    const [p2p] = [...forEachSgtableSg(sgt)] as [Sg];
    expect([sgDmaAddress(p2p), sgDmaIsBusAddress(p2p)]).toEqual([BAR, false]);
  });

  it("not reachable: EREMOTEIO from dma_map_sgtable, 0 from dma_map_sg, no WARN (an allowed errno)", () => {
    const { m, client } = p2pSwitch({ sameSwitch: false, allowlisted: false });
    const sgt = tableOf(m, [pfn(LOW_RAM), pfn(BAR)]);
    expect(() => dmaMapSgtable(client, sgt, DMA_TO_DEVICE)).toThrow(
      expect.objectContaining({ errno: "EREMOTEIO" }),
    );
    expect(dmaMapSgAttrs(client, sgt.sgl as Sg, 2, DMA_TO_DEVICE)).toBe(0);
    expect(m.log.find({ warn: true })).toHaveLength(0);
    // Computed verbosely once, then cached by the provider.
    expect(
      m.log.find({ message: "do not share an upstream bridge or whitelisted host bridge" }),
    ).toHaveLength(1);
    const [ram] = [...forEachSgtableSg(sgt)] as [Sg];
    expect(sgDmaAddress(ram)).toBe(LOW_RAM);
  });
});

describe("tracepoints and stats", () => {
  it("emits dma_map_phys / dma_unmap_phys / dma_map_sg / dma_unmap_sg with the kernel's text", () => {
    const m = machine({ trace: true });
    const dev = m.device("dev0");
    const h = dmaMapPhys(dev, LOW_RAM + 0x1000, 4096, DMA_TO_DEVICE, DMA_ATTR_SKIP_CPU_SYNC | (1 << 20));
    dmaUnmapPhys(dev, h, 4096, DMA_TO_DEVICE, DMA_ATTR_SKIP_CPU_SYNC);
    dmaMapPhys(dev, HIGH_RAM, 16, DMA_FROM_DEVICE);
    const sgt = tableOf(m, [pfn(LOW_RAM), pfn(LOW_RAM) + 2]);
    dmaMapSgtable(dev, sgt, DMA_BIDIRECTIONAL);
    dmaUnmapSgtable(dev, sgt, DMA_BIDIRECTIONAL);
    expect(m.events.map((e) => `${e.system}:${e.name} ${e.text}`)).toEqual([
      "dma:dma_map_phys dev0 dir=TO_DEVICE dma_addr=80001000 size=4096 phys_addr=80001000 attrs=SKIP_CPU_SYNC|0x100000",
      "dma:dma_unmap_phys dev0 dir=TO_DEVICE dma_addr=80001000 size=4096 attrs=SKIP_CPU_SYNC",
      "dma:dma_map_phys dev0 dir=FROM_DEVICE dma_addr=ffffffffffffffff size=16 phys_addr=880000000 attrs=",
      "dma:dma_map_sg dev0 dir=BIDIRECTIONAL dma_addrs={0x80000000,0x80002000} sizes={0x1000,0x1000} phys_addrs={0x80000000,0x80002000} attrs=",
      "dma:dma_unmap_sg dev0 dir=BIDIRECTIONAL phys_addrs={0x80000000,0x80002000} attrs=",
    ]);
    expect(m.events.every((e) => e.lane === "dev0")).toBe(true);
  });

  it("emits dma_map_sg_err with the negative errno", () => {
    const m = machine({ trace: true });
    const dev = m.device("dev0");
    const sgt = tableOf(m, [pfn(HIGH_RAM)]);
    expect(dmaMapSgAttrs(dev, sgt.sgl as Sg, 1, DMA_TO_DEVICE)).toBe(0);
    expect(m.events.map((e) => e.text).filter((t) => t?.includes("err="))).toEqual([
      "dev0 dir=TO_DEVICE dma_addrs={0x880000000} err=-5 attrs=",
    ]);
  });
});
