import { bitMask, PAGE_SIZE, type PciDev, SZ_1M, SZ_2M, SZ_4G, SZ_64K } from "@dmakit/core";
import { GFP_ATOMIC, GFP_KERNEL } from "@dmakit/mm-pages";
import { type Sg, sgDmaAddress, sgDmaLen, sgLength, sgNext, sgPage } from "@dmakit/scatterlist";
import { describe, expect, it } from "vitest";
import {
  DMA_ATTR_ALLOC_SINGLE_PAGES,
  DMA_ATTR_FORCE_CONTIGUOUS,
  DMA_BIDIRECTIONAL,
  type DmaAlloc,
  dmaAllocAttrs,
  dmaAllocCoherent,
  dmaAllocNoncontiguous,
  dmaAllocPages,
  dmaFreeAttrs,
  dmaFreeCoherent,
  dmaFreeNoncontiguous,
  dmaFreePages,
  dmaVmapNoncontiguous,
  dmaVunmapNoncontiguous,
  iommuDmaSgtPages,
} from "../src/index.js";
import {
  ALLOC_CMA,
  type AllocSnapshot,
  IOMMU_ALLOC_RAM,
  type MachineOptions,
  makeMachine,
  type TestMachine,
} from "./helpers/machine.js";

/** An x86-like machine with one VT-d unit (strict) for iommu-dma allocations; devices coherent unless told. */
function iommuAllocMachine(o: MachineOptions = {}) {
  const m = makeMachine({
    layout: IOMMU_ALLOC_RAM,
    cma: [ALLOC_CMA[0]!],
    coherent: true,
    iommu: "strict",
    atomicPools: true,
    userMemory: true,
    ...o,
  });
  return { ...m, um: m.um! };
}

/**
 * The boot state after one allocation and free, so the I/O page-table pages the domain keeps for
 * the low IOVA range (never freed on unmap) are part of it.
 */
function warmSnapshot(m: TestMachine, dev: PciDev): AllocSnapshot {
  const a = dmaAllocCoherent(dev, SZ_2M + SZ_64K, GFP_KERNEL) as DmaAlloc;
  dmaFreeCoherent(dev, SZ_2M + SZ_64K, a.cpuAddr, a.dmaHandle);
  return m.snapshot();
}

describe("iommu-dma coherent allocations", () => {
  it("blocking: a page array mapped at one IOVA and vmapped; everything returns on free", () => {
    const m = iommuAllocMachine();
    const dev = m.endpoint("nvme0");
    const boot = warmSnapshot(m, dev);
    const size = SZ_64K + 3 * PAGE_SIZE;
    const a = dmaAllocCoherent(dev, size, GFP_KERNEL) as DmaAlloc;
    expect(m.vm.isVmallocAddr(a.cpuAddr)).toBe(true);
    // The PCI 32-bit-first workaround puts the IOVA below 4 GiB even for a 64-bit device.
    expect(a.dmaHandle + size).toBeLessThanOrEqual(SZ_4G);
    for (let off = 0; off < size; off += PAGE_SIZE) {
      const phys = m.vm.translate(a.cpuAddr + off);
      expect(m.translate(dev, a.dmaHandle + off)).toBe(phys);
    }
    const data = new Uint8Array(size).map((_, i) => (i * 13) & 0xff);
    m.vm.cpuWriteVirt(a.cpuAddr, data);
    const back = new Uint8Array(size);
    for (let off = 0; off < size; off += PAGE_SIZE)
      m.cache.deviceRead(m.translate(dev, a.dmaHandle + off) as number, back.subarray(off, off + PAGE_SIZE));
    expect(back).toEqual(data);
    dmaFreeCoherent(dev, size, a.cpuAddr, a.dmaHandle);
    expect(m.translate(dev, a.dmaHandle)).toBeNull();
    expect(m.snapshot()).toEqual(boot);
  });

  it("zeroes recycled pages, through the cache on a coherent device", () => {
    const m = iommuAllocMachine();
    const dev = m.endpoint("nvme0");
    const a = dmaAllocCoherent(dev, 2 * PAGE_SIZE, GFP_KERNEL) as DmaAlloc;
    m.vm.cpuWriteVirt(a.cpuAddr, new Uint8Array(2 * PAGE_SIZE).fill(0xee));
    dmaFreeCoherent(dev, 2 * PAGE_SIZE, a.cpuAddr, a.dmaHandle);
    const b = dmaAllocCoherent(dev, 2 * PAGE_SIZE, GFP_KERNEL) as DmaAlloc;
    const seen = new Uint8Array(2 * PAGE_SIZE);
    m.vm.cpuReadVirt(b.cpuAddr, seen);
    expect(seen.every((x) => x === 0)).toBe(true);
    dmaFreeCoherent(dev, 2 * PAGE_SIZE, b.cpuAddr, b.dmaHandle);
  });

  it("FORCE_CONTIGUOUS and GFP_ATOMIC on a coherent device: one block (CMA for large), single map, linear map", () => {
    const m = iommuAllocMachine();
    const dev = m.endpoint("nic0");
    const boot = warmSnapshot(m, dev);
    const cma = m.mem.cma[0];
    // The atomic pools took their 256 KiB from the default CMA area at boot (cma_in_zone).
    const cmaBoot = cma?.used as number;
    expect(cmaBoot).toBe(64);
    const a = dmaAllocAttrs(dev, SZ_1M, GFP_KERNEL, DMA_ATTR_FORCE_CONTIGUOUS) as DmaAlloc;
    expect(m.vm.isVmallocAddr(a.cpuAddr)).toBe(false);
    const phys = m.vm.virtToPhys(a.cpuAddr);
    expect(cma?.used).toBe(cmaBoot + SZ_1M / PAGE_SIZE);
    expect(m.translate(dev, a.dmaHandle + SZ_1M - 1)).toBe(phys + SZ_1M - 1);
    const b = dmaAllocCoherent(dev, PAGE_SIZE, GFP_ATOMIC) as DmaAlloc;
    expect(m.vm.isVmallocAddr(b.cpuAddr)).toBe(false);
    expect(m.translate(dev, b.dmaHandle)).toBe(m.vm.virtToPhys(b.cpuAddr));
    dmaFreeAttrs(dev, SZ_1M, a.cpuAddr, a.dmaHandle, DMA_ATTR_FORCE_CONTIGUOUS);
    dmaFreeCoherent(dev, PAGE_SIZE, b.cpuAddr, b.dmaHandle);
    expect(m.snapshot()).toEqual(boot);
  });

  it("GFP_ATOMIC on a non-coherent device comes from the atomic pool, mapped through the IOMMU", () => {
    const m = iommuAllocMachine({ coherent: false });
    const dev = m.endpoint("dsp0");
    const boot = warmSnapshot(m, dev);
    const kernelPool = boot.pools.find((p) => p.name === "atomic_pool_kernel");
    const a = dmaAllocCoherent(dev, 3 * PAGE_SIZE, GFP_ATOMIC) as DmaAlloc;
    expect(m.vm.isVmallocAddr(a.cpuAddr)).toBe(true);
    const pool = m.snapshot().pools.find((p) => p.name === "atomic_pool_kernel");
    expect(pool?.avail).toBe((kernelPool?.avail as number) - 3 * PAGE_SIZE);
    expect(m.translate(dev, a.dmaHandle + PAGE_SIZE)).toBe(m.vm.translate(a.cpuAddr + PAGE_SIZE));
    dmaFreeCoherent(dev, 3 * PAGE_SIZE, a.cpuAddr, a.dmaHandle);
    expect(m.snapshot()).toEqual(boot);
  });

  it("the IOVA respects a 32-bit coherent mask; dma_alloc_pages maps one block", () => {
    const m = iommuAllocMachine();
    const dev = m.endpoint("old0", { mask: bitMask(32) });
    const boot = warmSnapshot(m, dev);
    const a = dmaAllocCoherent(dev, SZ_64K, GFP_KERNEL) as DmaAlloc;
    expect(a.dmaHandle + SZ_64K).toBeLessThanOrEqual(SZ_4G);
    const p = dmaAllocPages(dev, 2 * PAGE_SIZE, DMA_BIDIRECTIONAL, GFP_KERNEL);
    expect(p).not.toBeNull();
    if (p === null) return;
    expect(m.translate(dev, p.dmaHandle + PAGE_SIZE)).toBe((p.page + 1) * PAGE_SIZE);
    dmaFreePages(dev, 2 * PAGE_SIZE, p.page, p.dmaHandle, DMA_BIDIRECTIONAL);
    dmaFreeCoherent(dev, SZ_64K, a.cpuAddr, a.dmaHandle);
    expect(m.snapshot()).toEqual(boot);
  });
});

describe("dma_alloc_noncontiguous on iommu-dma", () => {
  it("nents = 1: one contiguous IOVA over the pages; 2 MiB blocks where the IOMMU maps them", () => {
    const m = iommuAllocMachine();
    const dev = m.endpoint("gpu0");
    const boot = warmSnapshot(m, dev);
    const size = SZ_2M + 5 * PAGE_SIZE;
    const sgt = dmaAllocNoncontiguous(dev, size, DMA_BIDIRECTIONAL, GFP_KERNEL);
    expect(sgt).not.toBeNull();
    if (sgt === null) return;
    expect(sgt.nents).toBe(1);
    const sgl = sgt.sgl as Sg;
    const iova = sgDmaAddress(sgl);
    expect(sgDmaLen(sgl)).toBe(size);
    const pages = iommuDmaSgtPages(m.system, sgt) as Float64Array;
    expect(pages.length).toBe(size / PAGE_SIZE);
    // VT-d maps 4K|2M|1G: the first 512 pages are one naturally aligned 2 MiB block.
    expect(((pages[0] as number) * PAGE_SIZE) % SZ_2M).toBe(0);
    for (let k = 1; k < 512; k++) expect(pages[k]).toBe((pages[0] as number) + k);
    for (let k = 0; k < pages.length; k++)
      expect(m.translate(dev, iova + k * PAGE_SIZE)).toBe((pages[k] as number) * PAGE_SIZE);
    // orig_nents counts the physically contiguous runs of the page array.
    let runs = 1;
    for (let k = 1; k < pages.length; k++) if (pages[k] !== (pages[k - 1] as number) + 1) runs++;
    expect(sgt.origNents).toBe(runs);
    let total = 0;
    for (let sg: Sg | null = sgl; sg !== null; sg = sgNext(sg)) total += sgLength(sg);
    expect(total).toBe(size);
    const va = dmaVmapNoncontiguous(dev, size, sgt) as number;
    expect(m.vm.translate(va + SZ_2M)).toBe((pages[512] as number) * PAGE_SIZE);
    dmaVunmapNoncontiguous(dev, va);
    dmaFreeNoncontiguous(dev, size, sgt, DMA_BIDIRECTIONAL);
    expect(m.translate(dev, iova)).toBeNull();
    expect(m.snapshot()).toEqual(boot);
  });

  it("DMA_ATTR_ALLOC_SINGLE_PAGES takes order-0 pages; scattered pages still get one IOVA", () => {
    const m = iommuAllocMachine();
    const dev = m.endpoint("gpu0");
    // Fragment memory: hold every other page of a run so free pages are scattered.
    const held: number[] = [];
    for (let i = 0; i < 64; i++) {
      const p = m.mem.pages.allocPage(GFP_KERNEL) as number;
      held.push(p);
    }
    for (let i = 0; i < held.length; i += 2) m.mem.pages.freePage(held[i] as number);
    const boot = warmSnapshot(m, dev);
    const size = 16 * PAGE_SIZE;
    const sgt = dmaAllocNoncontiguous(dev, size, DMA_BIDIRECTIONAL, GFP_KERNEL, DMA_ATTR_ALLOC_SINGLE_PAGES);
    if (sgt === null) throw new Error("allocation failed");
    const pages = iommuDmaSgtPages(m.system, sgt) as Float64Array;
    expect(sgt.nents).toBe(1);
    expect(sgt.origNents).toBeGreaterThan(1);
    const iova = sgDmaAddress(sgt.sgl as Sg);
    for (let k = 0; k < 16; k++)
      expect(m.translate(dev, iova + k * PAGE_SIZE)).toBe((pages[k] as number) * PAGE_SIZE);
    expect(sgPage(sgt.sgl as Sg)).toBe(pages[0]);
    dmaFreeNoncontiguous(dev, size, sgt, DMA_BIDIRECTIONAL);
    expect(m.snapshot()).toEqual(boot);
    for (let i = 1; i < held.length; i += 2) m.mem.pages.freePage(held[i] as number);
  });

  it("refuses other attributes with a WARN", () => {
    const m = iommuAllocMachine();
    const dev = m.endpoint("gpu0");
    expect(
      dmaAllocNoncontiguous(dev, SZ_1M, DMA_BIDIRECTIONAL, GFP_KERNEL, DMA_ATTR_FORCE_CONTIGUOUS),
    ).toBeNull();
    expect(m.log.find({ warn: true, message: "attrs & ~DMA_ATTR_ALLOC_SINGLE_PAGES" })).toHaveLength(1);
  });
});
