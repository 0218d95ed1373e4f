import { errnoOf, PciHostBridge } from "@dmakit/core";
import { iommuIovaToPhys } from "@dmakit/iommu";
import { describe, expect, it } from "vitest";
import {
  DMA_ATTR_MMIO,
  DMA_ATTR_REQUIRE_COHERENT,
  DMA_BIDIRECTIONAL,
  DMA_IOVA_USE_SWIOTLB,
  DMA_TO_DEVICE,
  DmaIovaState,
  dmaConfigure,
  dmaIovaDestroy,
  dmaIovaLink,
  dmaIovaSize,
  dmaIovaSync,
  dmaIovaTryAlloc,
  dmaIovaUnlink,
  dmaUseIova,
  iommuDmaCookie,
  isSwiotlbBuffer,
} from "../src/index.js";
import { type MachineOptions, makeMachine, RAM_BASE, type TestMachine } from "./helpers/machine.js";

/** An x86-like machine: RAM at {@link RAM_BASE}, coherent devices, one VT-d unit with a strict DMA domain. */
const machine = (o: MachineOptions = {}): TestMachine =>
  makeMachine({ coherent: true, iommu: "strict", ...o });

describe("dma_iova_try_alloc", () => {
  it("false for dma-direct and identity devices; the state stays zeroed", () => {
    const m = machine();
    const hb = new PciHostBridge({ log: m.log });
    const plain = hb.addEndpoint(hb.addRootPort(), { name: "plain" });
    dmaConfigure(plain, m.system);
    const st = new DmaIovaState();
    st.addr = 123;
    expect(dmaIovaTryAlloc(plain, st, RAM_BASE, 4096)).toBe(false);
    expect([st.addr, st.__size, dmaUseIova(st)]).toEqual([0, 0, false]);
    const pt = machine({ iommu: "passthrough" });
    const idev = pt.endpoint("nic0");
    expect(dmaIovaTryAlloc(idev, st, RAM_BASE, 4096)).toBe(false);
  });

  it("WARNs and fails for size 0 and for bit 63; keeps phys's sub-granule offset", () => {
    const m = machine();
    const dev = m.endpoint("nvme0");
    const st = new DmaIovaState();
    expect(dmaIovaTryAlloc(dev, st, RAM_BASE, 0)).toBe(false);
    expect(m.log.find({ warn: true, message: "WARN_ON_ONCE(!size)" })).toHaveLength(1);
    expect(dmaIovaTryAlloc(dev, st, RAM_BASE, DMA_IOVA_USE_SWIOTLB)).toBe(false);
    expect(dmaIovaTryAlloc(dev, st, RAM_BASE + 0x234, 0x3000)).toBe(true);
    expect(st.addr % 4096).toBe(0x234);
    expect(dmaIovaSize(st)).toBe(0x3000);
    expect(dmaUseIova(st)).toBe(true);
  });
});

describe("dma_iova_link / sync / unlink / destroy", () => {
  it("links scattered pages at consecutive offsets of one IOVA", () => {
    const m = machine();
    const dev = m.endpoint("nvme0");
    const domain = iommuDmaCookie(dev).domain;
    const pages = [RAM_BASE + 0x7000, RAM_BASE + 0x2000, RAM_BASE + 0x9000];
    const st = new DmaIovaState();
    expect(dmaIovaTryAlloc(dev, st, 0, 3 * 4096)).toBe(true);
    for (const [i, p] of pages.entries()) dmaIovaLink(dev, st, p, i * 4096, 4096, DMA_BIDIRECTIONAL, 0);
    expect(dmaIovaSync(dev, st, 0, 3 * 4096)).toBe(0);
    for (const [i, p] of pages.entries()) expect(m.translate(dev, st.addr + i * 4096 + 8)).toBe(p + 8);
    // Linking the same offset again is the IOMMU's EEXIST.
    expect(errnoOf(() => dmaIovaLink(dev, st, RAM_BASE, 0, 4096, DMA_BIDIRECTIONAL, 0))).toBe("EEXIST");
    // Unlink is strict: gone at once, and the IOVA can be linked again.
    dmaIovaUnlink(dev, st, 4096, 4096, DMA_BIDIRECTIONAL, 0);
    expect(m.translate(dev, st.addr + 4096)).toBeNull();
    expect(iommuIovaToPhys(domain, st.addr)).toBe(pages[0]);
    dmaIovaLink(dev, st, RAM_BASE + 0xa000, 4096, 4096, DMA_BIDIRECTIONAL, 0);
    expect(iommuIovaToPhys(domain, st.addr + 4096)).toBe(RAM_BASE + 0xa000);
    dmaIovaDestroy(dev, st, 3 * 4096, DMA_BIDIRECTIONAL, 0);
    expect(iommuIovaToPhys(domain, st.addr)).toBe(0);
  });

  it("error codes: EIO for an unaligned phys past offset 0, EOPNOTSUPP, EPERM", () => {
    const m = machine({ swiotlb: { size: 1 << 20, verbose: false } });
    const dev = m.endpoint("nvme0");
    const st = new DmaIovaState();
    dmaIovaTryAlloc(dev, st, RAM_BASE + 0x10, 0x4000);
    expect(errnoOf(() => dmaIovaLink(dev, st, RAM_BASE + 0x10, 0x1000, 0x100, DMA_TO_DEVICE, 0))).toBe("EIO");
    expect(m.log.find({ warn: true, message: "iova_start_pad && offset > 0" })).toHaveLength(1);
    // The first link may start mid-granule.
    expect(dmaIovaLink(dev, st, RAM_BASE + 0x10, 0, 0x100, DMA_TO_DEVICE, 0)).toBe(0);

    const nc = machine({ coherent: false });
    const ncdev = nc.endpoint("cam0");
    const st2 = new DmaIovaState();
    dmaIovaTryAlloc(ncdev, st2, 0, 0x1000);
    expect(
      errnoOf(() => dmaIovaLink(ncdev, st2, RAM_BASE, 0, 0x1000, DMA_TO_DEVICE, DMA_ATTR_REQUIRE_COHERENT)),
    ).toBe("EOPNOTSUPP");

    const u = m.endpoint("tbt0", { untrusted: true });
    const st3 = new DmaIovaState();
    dmaIovaTryAlloc(u, st3, 0x40, 0x1000);
    expect(errnoOf(() => dmaIovaLink(u, st3, 0x40_0000_0040, 0, 0x100, DMA_TO_DEVICE, DMA_ATTR_MMIO))).toBe(
      "EPERM",
    );
    // Aligned MMIO needs no bounce: allowed.
    const st4 = new DmaIovaState();
    dmaIovaTryAlloc(u, st4, 0, 0x1000);
    expect(dmaIovaLink(u, st4, RAM_BASE, 0, 0x1000, DMA_TO_DEVICE, DMA_ATTR_MMIO)).toBe(0);
  });

  it("untrusted: head and tail granules bounce, the middle maps in place", () => {
    const m = machine({ swiotlb: { size: 1 << 20, verbose: false } });
    const dev = m.endpoint("tbt0", { untrusted: true });
    // As NVMe does (NVME_CTRL_PAGE_SIZE - 1): the bounce slot keeps the offset in the granule,
    // which the head link (bounce_phys - iova_start_pad) relies on.
    dev.dmaParms!.minAlignMask = 0xfff;
    const phys = RAM_BASE + 0x2f00; // 0x100 head, one whole granule, 0x100 tail
    const st = new DmaIovaState();
    expect(dmaIovaTryAlloc(dev, st, phys, 0x1200)).toBe(true);
    dmaIovaLink(dev, st, phys, 0, 0x1200, DMA_BIDIRECTIONAL, 0);
    dmaIovaSync(dev, st, 0, 0x1200);
    expect(st.useSwiotlb).toBe(true);
    const head = m.translate(dev, st.addr);
    const mid = m.translate(dev, st.addr + 0x100);
    const tail = m.translate(dev, st.addr + 0x1100);
    expect(isSwiotlbBuffer(dev, head ?? 0)).toBe(true);
    expect(mid).toBe(phys + 0x100);
    expect(isSwiotlbBuffer(dev, tail ?? 0)).toBe(true);
    m.cache.deviceWrite(tail ?? 0, new Uint8Array([7, 7]));
    dmaIovaDestroy(dev, st, 0x1200, DMA_BIDIRECTIONAL, 0);
    const back = new Uint8Array(2);
    m.cache.cpuRead(phys + 0x1100, back);
    expect([...back]).toEqual([7, 7]);
    expect(m.translate(dev, st.addr + 0x100)).toBeNull();
  });

  it("destroy on a DMA_FQ domain goes through the flush queue; unlink does not", () => {
    const m = machine({ iommu: "lazy" });
    const dev = m.endpoint("nvme0");
    const fq = iommuDmaCookie(dev).fq;
    const st = new DmaIovaState();
    dmaIovaTryAlloc(dev, st, 0, 0x2000);
    dmaIovaLink(dev, st, RAM_BASE, 0, 0x2000, DMA_BIDIRECTIONAL, 0);
    dmaIovaSync(dev, st, 0, 0x2000);
    expect(m.translate(dev, st.addr + 0x1000)).toBe(RAM_BASE + 0x1000);
    dmaIovaUnlink(dev, st, 0x1000, 0x1000, DMA_BIDIRECTIONAL, 0);
    expect(m.translate(dev, st.addr + 0x1000)).toBeNull();
    expect(fq?.pendingCount).toBe(0);
    expect(m.translate(dev, st.addr)).toBe(RAM_BASE);
    dmaIovaDestroy(dev, st, 0x1000, DMA_BIDIRECTIONAL, 0);
    expect(fq?.pendingCount).toBe(1);
    expect(m.translate(dev, st.addr)).toBe(RAM_BASE);
    m.clock.advance(10_000_000);
    expect(m.translate(dev, st.addr)).toBeNull();
  });
});
