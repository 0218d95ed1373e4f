import { errnoOf, PAGE_SIZE, SZ_64K } from "@dmakit/core";
import { GFP_KERNEL, PROT_READ, PROT_WRITE, VM_PFNMAP, type VmAreaStruct } from "@dmakit/mm-pages";
import { type Sg, SgTable, sgDmaAddress, sgDmaLen, sgLength, sgNext, sgPage } from "@dmakit/scatterlist";
import { describe, expect, it } from "vitest";
import {
  DMA_ATTR_WRITE_COMBINE,
  DMA_BIDIRECTIONAL,
  type DmaAlloc,
  dmaAllocAttrs,
  dmaAllocCoherent,
  dmaAllocNoncontiguous,
  dmaAllocPages,
  dmaCanMmap,
  dmaFreeAttrs,
  dmaFreeCoherent,
  dmaFreeNoncontiguous,
  dmaFreePages,
  dmaGetSgtable,
  dmaGetSgtableAttrs,
  dmaMmapAttrs,
  dmaMmapCoherent,
  dmaMmapNoncontiguous,
  dmaMmapPages,
  dmaPgprot,
  dmaSgPool,
  dmaVmapNoncontiguous,
} from "../src/index.js";
import {
  ALLOC_CMA,
  ALLOC_RAM,
  IOMMU_ALLOC_RAM,
  type MachineOptions,
  makeMachine,
} from "./helpers/machine.js";

/** The allocation tests' arm64-like machine: ZONE_DMA, DMA32 and NORMAL RAM, two CMA areas, atomic pools. */
function allocMachine(o: MachineOptions = {}) {
  const m = makeMachine({ layout: ALLOC_RAM, cma: ALLOC_CMA, atomicPools: true, userMemory: true, ...o });
  return { ...m, um: m.um! };
}

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

const RW = PROT_READ | PROT_WRITE;

function pattern(n: number, seed: number): Uint8Array {
  return new Uint8Array(n).map((_, i) => (i * 29 + seed) & 0xff);
}

describe("dma_mmap_attrs on dma-direct", () => {
  it("maps the buffer's pages from vm_pgoff with remap_pfn_range; user and kernel see the same bytes", () => {
    const m = allocMachine({ coherent: true });
    const dev = m.device("cam0", { dmaCoherent: true });
    const size = 4 * PAGE_SIZE;
    const buf = dmaAllocCoherent(dev, size, GFP_KERNEL) as DmaAlloc;
    const data = pattern(size, 5);
    m.vm.cpuWriteVirt(buf.cpuAddr, data);
    const mm = m.um.mmAlloc("app");
    let vma: VmAreaStruct | undefined;
    const va = mm.mmapDevice(2 * PAGE_SIZE, RW, PAGE_SIZE, (v) => {
      vma = v;
      expect(dmaMmapCoherent(dev, v, buf.cpuAddr, buf.dmaHandle, size)).toBe(0);
    });
    expect(((vma as VmAreaStruct).flags & VM_PFNMAP) !== 0).toBe(true);
    expect(vma?.pageProt).toBe("cached");
    const seen = new Uint8Array(2 * PAGE_SIZE);
    mm.cpuRead(va, seen);
    expect(seen).toEqual(data.subarray(PAGE_SIZE, 3 * PAGE_SIZE));
    mm.munmap(va, 2 * PAGE_SIZE);
    dmaFreeCoherent(dev, size, buf.cpuAddr, buf.dmaHandle);
    expect(dmaCanMmap(dev)).toBe(true);
  });

  it("ENXIO when vm_pgoff is at or past the buffer or the VMA is larger than what remains", () => {
    const m = allocMachine();
    const dev = m.device("dsp0");
    const size = 4 * PAGE_SIZE;
    const buf = dmaAllocCoherent(dev, size - 100, GFP_KERNEL) as DmaAlloc;
    const mm = m.um.mmAlloc("app");
    const map = (pages: number, pgoff: number) =>
      errnoOf(() =>
        mm.mmapDevice(pages * PAGE_SIZE, RW, pgoff * PAGE_SIZE, (v) =>
          dmaMmapAttrs(dev, v, buf.cpuAddr, buf.dmaHandle, size - 100, 0),
        ),
      );
    expect(map(1, 4)).toBe("ENXIO");
    expect(map(2, 3)).toBe("ENXIO");
    expect(map(5, 0)).toBe("ENXIO");
    expect(mm.mappings()).toHaveLength(0);
    expect(map(1, 3)).toBeNull();
    expect(map(4, 0)).toBeNull();
    dmaFreeCoherent(dev, size - 100, buf.cpuAddr, buf.dmaHandle);
  });

  it("dma_pgprot: cached for coherent devices, write-combine or noncached otherwise", () => {
    const m = allocMachine();
    const nc = m.device("dsp0");
    const c = m.device("nic0", { dmaCoherent: true });
    expect(dmaPgprot(c, "cached", DMA_ATTR_WRITE_COMBINE)).toBe("cached");
    expect(dmaPgprot(nc, "cached", DMA_ATTR_WRITE_COMBINE)).toBe("writecombine");
    expect(dmaPgprot(nc, "cached", 0)).toBe("noncached");
    const buf = dmaAllocAttrs(nc, PAGE_SIZE, GFP_KERNEL, DMA_ATTR_WRITE_COMBINE) as DmaAlloc;
    const mm = m.um.mmAlloc("app");
    const va = mm.mmapDevice(PAGE_SIZE, RW, 0, (v) =>
      dmaMmapAttrs(nc, v, buf.cpuAddr, buf.dmaHandle, PAGE_SIZE, DMA_ATTR_WRITE_COMBINE),
    );
    expect(mm.vmaLookup(va)?.pageProt).toBe("writecombine");
    expect(mm.followPage(va)?.pfn).toBe(buf.dmaHandle / PAGE_SIZE);
    mm.munmap(va, PAGE_SIZE);
    dmaFreeAttrs(nc, PAGE_SIZE, buf.cpuAddr, buf.dmaHandle, DMA_ATTR_WRITE_COMBINE);
  });

  it("dma_mmap_pages maps a dma_alloc_pages allocation", () => {
    const m = allocMachine();
    const dev = m.device("dsp0");
    const p = dmaAllocPages(dev, 2 * PAGE_SIZE, DMA_BIDIRECTIONAL, GFP_KERNEL);
    if (p === null) throw new Error("alloc");
    const mm = m.um.mmAlloc("app");
    expect(
      errnoOf(() =>
        mm.mmapDevice(PAGE_SIZE, RW, 2 * PAGE_SIZE, (v) => dmaMmapPages(dev, v, 2 * PAGE_SIZE, p.page)),
      ),
    ).toBe("ENXIO");
    const va = mm.mmapDevice(PAGE_SIZE, RW, PAGE_SIZE, (v) => dmaMmapPages(dev, v, 2 * PAGE_SIZE, p.page));
    expect(mm.followPage(va)?.pfn).toBe(p.page + 1);
    mm.munmap(va, PAGE_SIZE);
    dmaFreePages(dev, 2 * PAGE_SIZE, p.page, p.dmaHandle, DMA_BIDIRECTIONAL);
  });
});

describe("dma_get_sgtable_attrs", () => {
  it("dma-direct: one entry of PAGE_ALIGN(size) from the buffer's first page", () => {
    const m = allocMachine();
    const dev = m.device("dsp0");
    const buf = dmaAllocCoherent(dev, 3 * PAGE_SIZE - 10, GFP_KERNEL) as DmaAlloc;
    const sgt = new SgTable(dmaSgPool(m.system));
    expect(dmaGetSgtable(dev, sgt, buf.cpuAddr, buf.dmaHandle, 3 * PAGE_SIZE - 10)).toBe(0);
    expect(sgt.origNents).toBe(1);
    expect(sgPage(sgt.sgl as Sg)).toBe(buf.dmaHandle / PAGE_SIZE);
    expect(sgLength(sgt.sgl as Sg)).toBe(3 * PAGE_SIZE);
    dmaFreeCoherent(dev, 3 * PAGE_SIZE - 10, buf.cpuAddr, buf.dmaHandle);
  });

  it("iommu-dma: the remapped page array; a contiguous buffer gives one entry", () => {
    const m = iommuAllocMachine();
    const dev = m.endpoint("nvme0");
    const size = SZ_64K;
    const buf = dmaAllocCoherent(dev, size, GFP_KERNEL) as DmaAlloc;
    const sgt = new SgTable(dmaSgPool(m.system));
    expect(dmaGetSgtableAttrs(dev, sgt, buf.cpuAddr, buf.dmaHandle, size, 0)).toBe(0);
    let off = 0;
    for (let sg: Sg | null = sgt.sgl; sg !== null; sg = sgNext(sg)) {
      expect(sgPage(sg) * PAGE_SIZE).toBe(m.vm.translate(buf.cpuAddr + off));
      off += sgLength(sg);
    }
    expect(off).toBe(size);
    const atomic = dmaAllocCoherent(dev, 2 * PAGE_SIZE, 0) as DmaAlloc;
    const one = new SgTable(dmaSgPool(m.system));
    dmaGetSgtable(dev, one, atomic.cpuAddr, atomic.dmaHandle, 2 * PAGE_SIZE);
    expect(one.origNents).toBe(1);
    expect(sgPage(one.sgl as Sg) * PAGE_SIZE).toBe(m.vm.virtToPhys(atomic.cpuAddr));
    dmaFreeCoherent(dev, size, buf.cpuAddr, buf.dmaHandle);
    dmaFreeCoherent(dev, 2 * PAGE_SIZE, atomic.cpuAddr, atomic.dmaHandle);
  });
});

describe("iommu-dma mmap", () => {
  it("a remapped buffer is mapped page by page with references held until munmap", () => {
    const m = iommuAllocMachine();
    const dev = m.endpoint("nvme0");
    const size = 4 * PAGE_SIZE;
    const buf = dmaAllocCoherent(dev, size, GFP_KERNEL) as DmaAlloc;
    const data = pattern(size, 9);
    m.vm.cpuWriteVirt(buf.cpuAddr, data);
    const mm = m.um.mmAlloc("app");
    const va = mm.mmapDevice(3 * PAGE_SIZE, RW, PAGE_SIZE, (v) =>
      dmaMmapAttrs(dev, v, buf.cpuAddr, buf.dmaHandle, size),
    );
    const pfn = m.vm.translate(buf.cpuAddr + PAGE_SIZE) / PAGE_SIZE;
    expect(mm.followPage(va)?.pfn).toBe(pfn);
    expect(m.mem.pages.pageRefCount(pfn)).toBe(2);
    const seen = new Uint8Array(3 * PAGE_SIZE);
    mm.cpuRead(va, seen);
    expect(seen).toEqual(data.subarray(PAGE_SIZE));
    expect(
      errnoOf(() =>
        mm.mmapDevice(PAGE_SIZE, RW, 4 * PAGE_SIZE, (v) =>
          dmaMmapAttrs(dev, v, buf.cpuAddr, buf.dmaHandle, size),
        ),
      ),
    ).toBe("ENXIO");
    mm.munmap(va, 3 * PAGE_SIZE);
    expect(m.mem.pages.pageRefCount(pfn)).toBe(1);
    dmaFreeCoherent(dev, size, buf.cpuAddr, buf.dmaHandle);
  });
});

describe("dma_alloc_noncontiguous on dma-direct", () => {
  it("one contiguous dma_alloc_pages block in a one-entry table; vmap is the linear map; mmap and free", () => {
    const m = allocMachine();
    const dev = m.device("isp0");
    const boot = m.snapshot();
    const size = 3 * PAGE_SIZE + 1;
    const sgt = dmaAllocNoncontiguous(dev, size, DMA_BIDIRECTIONAL, GFP_KERNEL);
    if (sgt === null) throw new Error("alloc");
    expect([sgt.nents, sgt.origNents]).toEqual([1, 1]);
    const sgl = sgt.sgl as Sg;
    expect(sgDmaAddress(sgl)).toBe(sgPage(sgl) * PAGE_SIZE);
    expect(sgDmaLen(sgl)).toBe(4 * PAGE_SIZE);
    expect(dmaVmapNoncontiguous(dev, size, sgt)).toBe(m.vm.pageAddress(sgPage(sgl)));
    const mm = m.um.mmAlloc("app");
    const va = mm.mmapDevice(PAGE_SIZE, RW, 3 * PAGE_SIZE, (v) => dmaMmapNoncontiguous(dev, v, size, sgt));
    expect(mm.followPage(va)?.pfn).toBe(sgPage(sgl) + 3);
    mm.munmap(va, PAGE_SIZE);
    dmaFreeNoncontiguous(dev, size, sgt, DMA_BIDIRECTIONAL);
    expect(m.snapshot()).toEqual(boot);
    expect(m.system.stats.allocations).toBe(1);
    expect(m.system.stats.frees).toBe(1);
  });
});
