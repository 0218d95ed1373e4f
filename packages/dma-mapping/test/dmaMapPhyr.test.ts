import { isKernelError, PciHostBridge } from "@dmakit/core";
import { iommuIovaToPhys } from "@dmakit/iommu";
import { PHYR_F_BUS_ADDR, PhysRangeList } from "@dmakit/phyr";
import { describe, expect, it } from "vitest";
import {
  DMA_BIDIRECTIONAL,
  DMA_TO_DEVICE,
  dmaConfigure,
  dmaMapPhyr,
  dmaUnmapPhyr,
  iommuDmaCookie,
  iommuDmaMapSg,
  iommuDmaUnmapSg,
} from "../src/index.js";
import { type MachineOptions, makeMachine, RAM_BASE, type TestMachine } from "./helpers/machine.js";
import { p2pMachine } from "./helpers/p2p.js";
import { dmaSegments, makeSgTable } from "./helpers/sgTables.js";

/** An x86-like machine: RAM at {@link RAM_BASE}, coherent devices, one VT-d unit with a strict DMA domain. */
const machine = (o: MachineOptions = {}): TestMachine =>
  makeMachine({ coherent: true, iommu: "strict", ...o });

const PFN0 = RAM_BASE / 4096;

describe("dmaMapPhyr", () => {
  it("through the IOMMU: one DMA range, translating exactly like the sg path", () => {
    const m = machine();
    const dev = m.endpoint("nvme0");
    const pfns = [PFN0 + 9, PFN0 + 2, PFN0 + 3, PFN0 + 50];
    const phyr = PhysRangeList.fromPfns(pfns, 0x200, 4 * 4096 - 0x300);
    expect(phyr.count).toBe(3);
    const dma = dmaMapPhyr(dev, phyr, DMA_BIDIRECTIONAL, 0);
    expect(dma.count).toBe(1);
    expect(dma.len(0)).toBe(4 * 4096 - 0x300);
    expect(dma.addr(0) % 4096).toBe(0x200);

    const sgt = makeSgTable(m, [
      { pfn: pfns[0]!, off: 0x200, len: 0xe00 },
      { pfn: pfns[1]!, len: 0x2000 },
      { pfn: pfns[3]!, len: 0xf00 },
    ]);
    expect(iommuDmaMapSg(dev, sgt.sgl!, 3, DMA_BIDIRECTIONAL, 0)).toBe(1);
    const [seg] = dmaSegments(sgt, 1);
    expect(seg?.len).toBe(dma.len(0));
    for (let off = 0; off < dma.len(0); off += 0x700)
      expect(m.translate(dev, dma.addr(0) + off)).toBe(m.translate(dev, seg!.addr + off));
    expect(m.translate(dev, dma.addr(0) + 0xe00)).toBe((PFN0 + 2) * 4096);
    iommuDmaUnmapSg(dev, sgt.sgl!, 3, DMA_BIDIRECTIONAL, 0);

    dmaUnmapPhyr(dev, dma, DMA_BIDIRECTIONAL, 0);
    expect(iommuIovaToPhys(iommuDmaCookie(dev).domain, dma.addr(0))).toBe(0);
    let err = "";
    try {
      dmaUnmapPhyr(dev, dma, DMA_BIDIRECTIONAL, 0);
    } catch (e) {
      if (isKernelError(e)) err = e.errno;
    }
    expect(err).toBe("EINVAL");
  });

  it("unaligned interior boundaries fall back to one mapping per range", () => {
    const m = machine();
    const dev = m.endpoint("nvme0");
    const phyr = PhysRangeList.from([
      { addr: RAM_BASE + 0x1000, len: 0x800, flags: 0 },
      { addr: RAM_BASE + 0x5400, len: 0x200, flags: 0 },
    ]);
    const dma = dmaMapPhyr(dev, phyr, DMA_TO_DEVICE, 0);
    expect(dma.count).toBe(2);
    expect(m.translate(dev, dma.addr(1))).toBe(RAM_BASE + 0x5400);
    dmaUnmapPhyr(dev, dma, DMA_TO_DEVICE, 0);
    expect(m.translate(dev, dma.addr(1))).toBeNull();
  });

  it("dma-direct: one DMA range per physical range", () => {
    const m = machine();
    const hb = new PciHostBridge({ log: m.log });
    const dev = hb.addEndpoint(hb.addRootPort(), { name: "plain", dmaMask: 2 ** 64 });
    dmaConfigure(dev, m.system);
    const phyr = PhysRangeList.fromPfns([PFN0 + 4, PFN0 + 8], 0, 0x2000);
    const dma = dmaMapPhyr(dev, phyr, DMA_TO_DEVICE, 0);
    expect(dma.toArray()).toEqual([
      { addr: (PFN0 + 4) * 4096, len: 0x1000, flags: 0 },
      { addr: (PFN0 + 8) * 4096, len: 0x1000, flags: 0 },
    ]);
    dmaUnmapPhyr(dev, dma, DMA_TO_DEVICE, 0);
  });

  it("P2P through a switch: a bus-address range between IOVA ranges", () => {
    const { m, client, bar, busOffset } = p2pMachine(false);
    const phyr = PhysRangeList.from([
      { addr: RAM_BASE + 0x1000, len: 0x1000, flags: 0 },
      { addr: bar + 0x3000, len: 0x1000, flags: 0 },
      { addr: RAM_BASE + 0x4000, len: 0x1000, flags: 0 },
    ]);
    const dma = dmaMapPhyr(client, phyr, DMA_TO_DEVICE, 0);
    expect(dma.count).toBe(3);
    expect(dma.toArray()[1]).toEqual({ addr: bar + 0x3000 + busOffset, len: 0x1000, flags: PHYR_F_BUS_ADDR });
    expect(dma.addr(2)).toBe(dma.addr(0) + 0x1000);
    expect(m.translate(client, dma.addr(2))).toBe(RAM_BASE + 0x4000);
    dmaUnmapPhyr(client, dma, DMA_TO_DEVICE, 0);
    expect(m.translate(client, dma.addr(0))).toBeNull();
  });
});
