import {
  type Device,
  PAGE_SIZE,
  type PciDev,
  PciHostBridge,
  type PciHostBridgeWindow,
  PlatformBus,
  pciDevId,
  SZ_4K,
  SZ_64K,
} from "@dmakit/core";
import {
  type IommuDevice,
  type IommuSubsystem,
  iommuFwspecAddIds,
  iommuFwspecInit,
  iommuGetDmaDomain,
  iommuProbeDevice,
  pgtableMemoryFromAllocator,
} from "@dmakit/iommu";
import { ArmSmmuV3 } from "@dmakit/iommu-arm-smmu-v3";
import type { IntelIommu } from "@dmakit/iommu-intel-vtd";
import { GFP_KERNEL, MemoryBackedMmio } from "@dmakit/mm-pages";
import { SgPool, SgTable, sgAllocTableFromPages, sgDmaAddress, sgDmaLen } from "@dmakit/scatterlist";
import { describe, expect, it } from "vitest";
import {
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DmaEngine,
  dmaConfigure,
  dmaMapPhys,
  dmaMapSgtable,
  dmaUnmapPhys,
} from "../src/index.js";
import { makeMachine, pattern, RAM_BASE } from "./helpers/machine.js";

const RAM = RAM_BASE;

/**
 * A machine with 256 MiB of RAM at 2 GiB, the DMA layer, a platform bus and an IOMMU core; no IOMMU
 * unit unless `vtd` (an Intel VT-d unit, with host bridge `windows`) or a test registers one.
 */
function machine(
  coherent: boolean,
  iommuMode: "strict" | "passthrough" = "strict",
  o: { vtd?: boolean; windows?: PciHostBridgeWindow[] } = {},
) {
  const m = makeMachine({ coherent, iommu: iommuMode, vtd: o.vtd ?? false, windows: o.windows ?? [] });
  const iommu = m.iommu as IommuSubsystem;
  const platform = new PlatformBus({ log: m.log });
  const probe = (dev: Device, inst: IommuDevice, ids: number[]) => {
    iommuFwspecInit(dev, inst);
    iommuFwspecAddIds(dev, ids);
    iommuProbeDevice(iommu, dev);
    dmaConfigure(dev, m.system, { domain: iommuGetDmaDomain(dev) });
  };
  const page = () => (m.mem.pages.allocPages(GFP_KERNEL, 0) as number) * PAGE_SIZE;
  const ram = (phys: number, n: number) => {
    const b = new Uint8Array(n);
    m.mem.phys.read(phys, b);
    return b;
  };
  return { ...m, iommu, platform, probe, page, bytes: pattern, ram };
}

function smmuMachine(coherent = false, mode: "strict" | "passthrough" = "strict") {
  const m = machine(coherent, mode);
  const smmu = new ArmSmmuV3({
    name: "smmu0",
    mem: pgtableMemoryFromAllocator(m.mem.phys, m.mem.pages),
    log: m.log,
    clock: m.clock,
  });
  m.iommu.iommuDeviceRegister(smmu.iommu);
  const gpu = m.platform.addDevice({
    name: "gpu0",
    dmaMask: 2 ** 48,
    dmaCoherent: coherent,
    streamIds: [0x20],
  });
  m.probe(gpu, smmu.iommu, [0x20]);
  return { ...m, smmu, gpu };
}

function vtdMachine(windows: PciHostBridgeWindow[] = []) {
  const m = machine(true, "strict", { vtd: true, windows });
  return { ...m, vtd: m.vtd as IntelIommu };
}

describe("DmaEngine, direct (no IOMMU)", () => {
  it("writes land at the bus address = physical address; reads return RAM", () => {
    const m = machine(true);
    const dev = m.platform.addDevice({ name: "cam0", dmaMask: 2 ** 32 - 1, dmaCoherent: true });
    dmaConfigure(dev, m.system);
    const e = new DmaEngine(dev);
    const p = m.page();
    const data = m.bytes(3000, 1);
    expect(e.write(p + 100, data)).toEqual({ ok: true, bytes: 3000, event: null });
    expect(m.ram(p + 100, 3000)).toEqual(data);
    const back = new Uint8Array(3000);
    expect(e.read(p + 100, back).ok).toBe(true);
    expect(back).toEqual(data);
    expect(e.stats).toMatchObject({ bytesWritten: 3000, bytesRead: 3000, faults: 0, unreachable: 0 });
  });

  it("a non-coherent device misses dirty CPU lines and leaves stale ones; a coherent one snoops", () => {
    for (const coherent of [false, true]) {
      const m = machine(coherent);
      const dev = m.platform.addDevice({ name: "dev", dmaMask: 2 ** 40, dmaCoherent: coherent });
      dmaConfigure(dev, m.system);
      const e = new DmaEngine(dev);
      const p = m.page();
      // The CPU writes a line (dirty in its cache) and the device reads it.
      m.cache.cpuWrite(p, m.bytes(64, 9));
      const seen = new Uint8Array(64);
      e.read(p, seen);
      expect(seen[1], `coherent=${coherent}`).toBe(coherent ? 16 : 0);
      // The CPU caches a second line, the device overwrites it, the CPU reads it back.
      const cpu = new Uint8Array(64);
      m.cache.cpuRead(p + 64, cpu);
      e.write(p + 64, new Uint8Array(64).fill(0xee));
      m.cache.cpuRead(p + 64, cpu);
      expect(cpu[0], `coherent=${coherent}`).toBe(coherent ? 0xee : 0);
      expect(m.cache.findings().map((f) => f.kind)).toEqual(
        coherent ? [] : ["device-read-dirty", "cpu-read-stale"],
      );
      expect(m.cache.findings()[0]?.device ?? "dev").toBe("dev");
    }
  });

  it("a hole, or an address beyond the DMA mask, is an event and a log line, never an exception", () => {
    const m = machine(true);
    const dev = m.platform.addDevice({ name: "cam0", dmaMask: 2 ** 32 - 1, dmaCoherent: true });
    dmaConfigure(dev, m.system);
    const e = new DmaEngine(dev);
    // The last page of RAM, then the hole behind it: the first 4 KiB land, the rest fails.
    const end = RAM + 256 * 2 ** 20;
    const r = e.write(end - SZ_4K, new Uint8Array(2 * SZ_4K).fill(5));
    expect(r.ok).toBe(false);
    expect(r.bytes).toBe(SZ_4K);
    expect(r.event).toMatchObject({ kind: "unreachable", dmaAddr: end, size: SZ_4K, phys: end, fault: null });
    expect(m.ram(end - 1, 1)[0]).toBe(5);
    expect(m.log.find({ prefix: "cam0" }).map((x) => x.message)).toEqual([
      "DMA write at 0x90000000 (phys 0x90000000) failed: nothing at physical 0x90000000 (bus decode error)",
    ]);
    const high = e.read(0x1_0000_0000, new Uint8Array(16));
    expect(high.event).toMatchObject({
      kind: "unreachable",
      reason: "beyond the device's 0xffffffff DMA mask",
    });
    expect(e.events().map((x) => x.seq)).toEqual([0, 1]);
    expect(e.stats.unreachable).toBe(2);
    expect(() => e.read(-4, new Uint8Array(1))).toThrow(/EINVAL|not an address/);
  });

  it("dma-ranges: bus addresses are offset from physical ones", () => {
    const m = machine(false);
    const dev = m.platform.addDevice({ name: "dev", dmaMask: 2 ** 32 - 1 });
    dev.dmaRangeMap = [{ cpuStart: RAM, dmaStart: 0, size: 256 * 2 ** 20 }];
    dmaConfigure(dev, m.system);
    const e = new DmaEngine(dev);
    const p = m.page();
    expect(e.write(p - RAM, m.bytes(10, 3)).ok).toBe(true);
    expect(m.ram(p, 10)).toEqual(m.bytes(10, 3));
    expect(e.write(0x2000_0000, new Uint8Array(4)).event?.reason).toBe("outside the bus's dma-ranges");
  });
});

describe("DmaEngine through an SMMUv3", () => {
  it("bytes land where the page tables say; the second access to a page hits the IOTLB", () => {
    const m = smmuMachine();
    const e = new DmaEngine(m.gpu, { burst: 256 });
    const p = m.page();
    const iova = dmaMapPhys(m.gpu, p, SZ_4K, DMA_BIDIRECTIONAL);
    expect(iova).not.toBe(p);
    const data = m.bytes(SZ_4K, 2);
    expect(e.write(iova, data).ok).toBe(true);
    expect(m.ram(p, SZ_4K)).toEqual(data);
    // 16 bursts of 256 bytes: one walk, fifteen hits.
    expect([e.stats.transactions, e.stats.iotlbMisses, e.stats.iotlbHits]).toEqual([16, 1, 15]);
    dmaUnmapPhys(m.gpu, iova, SZ_4K, DMA_BIDIRECTIONAL);
  });

  it("splits at translation boundaries: a contiguous IOVA over scattered pages", () => {
    const m = smmuMachine();
    const pages = [m.page(), m.page(), m.page()].map((p) => p / PAGE_SIZE);
    // Make them non-adjacent: free nothing, but map them in reverse order.
    const order = [pages[2], pages[0], pages[1]] as number[];
    const sgt = new SgTable(new SgPool({ mem: m.mem.phys }));
    sgAllocTableFromPages(sgt, order, 3, 0, 3 * SZ_4K);
    dmaMapSgtable(m.gpu, sgt, DMA_FROM_DEVICE);
    expect(sgt.nents).toBe(1);
    const iova = sgDmaAddress(sgt.sgl as NonNullable<typeof sgt.sgl>);
    expect(sgDmaLen(sgt.sgl as NonNullable<typeof sgt.sgl>)).toBe(3 * SZ_4K);
    const e = new DmaEngine(m.gpu);
    const data = m.bytes(3 * SZ_4K - 200, 4);
    expect(e.write(iova + 100, data).ok).toBe(true);
    for (let i = 0; i < 3; i++) {
      const from = Math.max(0, i * SZ_4K - 100);
      const to = Math.min(data.length, (i + 1) * SZ_4K - 100);
      const at = (order[i] as number) * PAGE_SIZE + (i === 0 ? 100 : 0);
      expect(m.ram(at, to - from), `page ${i}`).toEqual(data.subarray(from, to));
    }
  });

  it("an unmapped IOVA is an iommu-fault event carrying the SMMU's record; the driver logs it", () => {
    const m = smmuMachine();
    const faults: string[] = [];
    const e = new DmaEngine(m.gpu, { onIommuFault: (f) => faults.push(f.code) });
    const r = e.write(0x4000_0000, new Uint8Array(64));
    expect(r.ok).toBe(false);
    expect(r.bytes).toBe(0);
    expect(r.event?.kind).toBe("iommu-fault");
    expect(r.event?.fault).toMatchObject({
      kind: "translation",
      code: "F_TRANSLATION",
      streamId: 0x20,
      write: true,
    });
    expect(faults).toEqual(["F_TRANSLATION"]);
    expect(e.stats.faults).toBe(1);
    // The engine logs nothing itself; the SMMU driver's event thread does.
    expect(m.log.find({ prefix: "gpu0" })).toEqual([]);
    expect(m.smmu.evtqThread()).toBe(1);
    expect(m.log.dmesg()).toMatch(/F_TRANSLATION|0x10/);
  });

  it("a read-only (TO_DEVICE) mapping refuses device writes with a permission fault", () => {
    const m = smmuMachine();
    const p = m.page();
    const iova = dmaMapPhys(m.gpu, p, SZ_4K, 1 /* DMA_TO_DEVICE */);
    const e = new DmaEngine(m.gpu);
    expect(e.read(iova, new Uint8Array(8)).ok).toBe(true);
    expect(e.write(iova, new Uint8Array(8)).event?.fault?.kind).toBe("permission");
  });

  it("identity (passthrough) default domain: the SMMU bypasses, DMA address = physical", () => {
    const m = smmuMachine(false, "passthrough");
    const p = m.page();
    expect(dmaMapPhys(m.gpu, p, 64, DMA_FROM_DEVICE)).toBe(p);
    const e = new DmaEngine(m.gpu);
    expect(e.write(p, m.bytes(64, 8)).ok).toBe(true);
    expect(m.ram(p, 64)).toEqual(m.bytes(64, 8));
  });
});

describe("DmaEngine through VT-d and over PCIe", () => {
  it("a PCI device's requester id selects its context; bytes land where VT-d translates", () => {
    const m = vtdMachine();
    const rp = m.hb.addRootPort({ acs: true });
    const nvme = m.hb.addEndpoint(rp, { name: "nvme0", dmaMask: 2 ** 64 });
    m.probe(nvme, m.vtd.iommuDevice, [pciDevId(nvme)]);
    const e = new DmaEngine(nvme);
    const p = m.page();
    const iova = dmaMapPhys(nvme, p, SZ_4K, DMA_FROM_DEVICE);
    expect(iova).not.toBe(p);
    expect(e.write(iova, m.bytes(SZ_4K, 6)).ok).toBe(true);
    expect(m.ram(p, SZ_4K)).toEqual(m.bytes(SZ_4K, 6));
    expect(e.write(iova + SZ_64K * 16, new Uint8Array(4)).event?.fault?.code).toMatch(/DMAR|0x06|06/);
  });

  it("peer-to-peer: below a switch without ACS a bus address reaches the peer's BAR, never the IOMMU", () => {
    const win = { cpuStart: 0x40_0000_0000, busStart: 0x10_0000_0000, size: 2 ** 30 };
    const m = vtdMachine([win]);
    const rp = m.hb.addRootPort({ acs: true });
    const sw = m.hb.addSwitch(rp, [{ acs: false }, { acs: false }]);
    const cmbCpu = win.cpuStart;
    const nvme = m.hb.addEndpoint(sw.downstream[0] as PciDev, {
      name: "nvme0",
      dmaMask: 2 ** 64,
      bars: [{ bar: 2, cpuAddr: cmbCpu, size: SZ_64K, prefetchable: true }],
    });
    const gpu = m.hb.addEndpoint(sw.downstream[1] as PciDev, { name: "gpu1", dmaMask: 2 ** 48 });
    m.mem.phys.addMmioRegion({
      name: "nvme0 BAR2",
      start: cmbCpu,
      size: SZ_64K,
      handler: new MemoryBackedMmio(SZ_64K),
    });
    for (const d of [nvme, gpu]) m.probe(d, m.vtd.iommuDevice, [pciDevId(d)]);
    const bus = nvme.bars[0]?.busAddr as number;
    expect(bus).toBe(win.busStart);
    const e = new DmaEngine(gpu);
    expect(e.write(bus + 8, m.bytes(100, 1)).ok).toBe(true);
    const got = new Uint8Array(100);
    m.mem.phys.read(cmbCpu + 8, got);
    expect(got).toEqual(m.bytes(100, 1));
    expect(e.stats).toMatchObject({ peerBytes: 100, iotlbHits: 0, iotlbMisses: 0, faults: 0 });
  });

  it("without an IOMMU, a peer BAR through a host bridge that does not forward P2P is unreachable", () => {
    const win = { cpuStart: 0x40_0000_0000, busStart: 0x40_0000_0000, size: 2 ** 30 };
    const m = machine(true);
    const hb = new PciHostBridge({ log: m.log, windows: [win], dmaCoherent: true, p2pdmaAllowlisted: false });
    const a = hb.addEndpoint(hb.addRootPort({ acs: true }), { name: "a", dmaMask: 2 ** 64 });
    const b = hb.addEndpoint(hb.addRootPort({ acs: true }), {
      name: "b",
      dmaMask: 2 ** 64,
      bars: [{ bar: 0, cpuAddr: win.cpuStart, size: SZ_64K, prefetchable: true }],
    });
    m.mem.phys.addMmioRegion({
      name: "b BAR0",
      start: win.cpuStart,
      size: SZ_64K,
      handler: new MemoryBackedMmio(SZ_64K),
    });
    for (const d of [a, b]) dmaConfigure(d, m.system);
    const r = new DmaEngine(a).write(win.busStart, new Uint8Array(4));
    expect(r.event?.reason).toBe("a peer BAR the root complex does not forward peer-to-peer traffic to");
    hb.p2pdmaAllowlisted = true;
    const ok = new DmaEngine(a).write(win.busStart, new Uint8Array([1, 2, 3, 4]));
    expect(ok).toMatchObject({ ok: true, bytes: 4 });
  });
});

describe("DmaEngine timing and tracing", () => {
  it("with a rate, a transfer advances the clock by its duration", () => {
    const m = machine(true);
    const dev = m.platform.addDevice({ name: "d", dmaMask: 2 ** 64, dmaCoherent: true });
    dmaConfigure(dev, m.system);
    const e = new DmaEngine(dev, { bytesPerNs: 4 });
    e.write(m.page(), new Uint8Array(4096));
    expect(m.clock.now()).toBe(1024);
  });
});
