import { DMA_MAPPING_ERROR, ERRNO, NSEC_PER_MSEC, SZ_4G } from "@dmakit/core";
import {
  IOMMU_CACHE,
  IOMMU_DOMAIN_DMA,
  IOMMU_DOMAIN_DMA_FQ,
  IOMMU_MMIO,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  iommuGetDmaDomain,
  iommuIovaToPhys,
} from "@dmakit/iommu";
import { sgDmaIsSwiotlb } from "@dmakit/scatterlist";
import { describe, expect, it } from "vitest";
import {
  DMA_ATTR_MMIO,
  DMA_ATTR_PRIVILEGED,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_NONE,
  DMA_TO_DEVICE,
  devDmaState,
  dmaInfoToProt,
  iommuDmaAllocIova,
  iommuDmaCookie,
  iommuDmaGetMergeBoundary,
  iommuDmaInitDomain,
  iommuDmaMapPhys,
  iommuDmaMapSg,
  iommuDmaMaxMappingSize,
  iommuDmaOptMappingSize,
  iommuDmaUnmapPhys,
  iommuDmaUnmapSg,
  isSwiotlbBuffer,
  SWIOTLB,
} from "../src/index.js";
import { type MachineOptions, makeMachine, RAM_BASE, type TestMachine } from "./helpers/machine.js";
import { p2pMachine } from "./helpers/p2p.js";
import { cpuFields, dmaSegments, makeSgTable } from "./helpers/sgTables.js";

/** An x86-like machine: RAM at {@link RAM_BASE}, coherent devices, one VT-d unit with a strict DMA domain. */
const machine = (o: MachineOptions = {}): TestMachine =>
  makeMachine({ coherent: true, iommu: "strict", ...o });

const PFN0 = RAM_BASE / 4096;

describe("dma_info_to_prot", () => {
  it("maps directions to READ/WRITE and adds CACHE, PRIV, MMIO", () => {
    expect(dmaInfoToProt(DMA_TO_DEVICE, false, 0)).toBe(IOMMU_READ);
    expect(dmaInfoToProt(DMA_FROM_DEVICE, false, 0)).toBe(IOMMU_WRITE);
    expect(dmaInfoToProt(DMA_BIDIRECTIONAL, true, 0)).toBe(IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE);
    expect(dmaInfoToProt(DMA_TO_DEVICE, false, DMA_ATTR_PRIVILEGED | DMA_ATTR_MMIO)).toBe(
      IOMMU_READ | IOMMU_PRIV | IOMMU_MMIO,
    );
    expect(dmaInfoToProt(DMA_NONE, true, 0)).toBe(0);
  });
});

describe("iommu_dma_init_domain", () => {
  it("granule from the smallest page size, IOVA 0 never handed out, PCI windows reserved", () => {
    const m = machine({
      windows: [{ cpuStart: 0xe000_0000, busStart: 0xe000_0000, size: 0x1000_0000 }],
    });
    const dev = m.endpoint("nvme0");
    const cookie = iommuDmaCookie(dev);
    expect(cookie.iovad.granule).toBe(4096);
    expect(cookie.iovad.startPfn).toBe(1);
    expect(cookie.reserved).toEqual([{ start: 0xe000_0000, end: 0xefff_ffff, why: "pci-window" }]);
    expect(cookie.iovad.ranges()).toContainEqual({ pfnLo: 0xe0000, pfnHi: 0xeffff });
    expect(iommuDmaGetMergeBoundary(dev)).toBe(0xfff);
    expect(iommuDmaOptMappingSize()).toBe(128 * 1024);
    expect(iommuDmaMaxMappingSize(dev)).toBe(2 ** 64);
    // A second init for the same domain is compatible and returns the same cookie.
    expect(iommuDmaInitDomain(cookie.domain, dev)).toBe(cookie);
  });

  it("DMA_FQ gets a flush queue only with IOMMU_CAP_DEFERRED_FLUSH, else silently strict", () => {
    const lazy = machine({ iommu: "lazy" });
    const a = lazy.endpoint("a");
    expect(iommuDmaCookie(a).domain.type).toBe(IOMMU_DOMAIN_DMA_FQ);
    // iommu_dma_init_fq: per-CPU rings of IOVA_DEFAULT_FQ_SIZE (256) flushed after 10 ms (VT-d not in caching mode).
    expect(iommuDmaCookie(a).fq).toMatchObject({ fqSize: 256, fqTimeoutMs: 10, numRings: 1 });

    const m = machine({ iommu: "lazy" });
    const ops = m.vtd!.iommuDevice.ops as { capable?: (d: unknown, c: number) => boolean };
    const b = m.endpoint("b");
    const domain = iommuGetDmaDomain(b);
    if (domain === null) throw new Error("no domain");
    ops.capable = () => false;
    domain.type = IOMMU_DOMAIN_DMA_FQ;
    const cookie = iommuDmaCookie(b);
    expect(cookie.fq).toBeNull();
    expect(domain.type).toBe(IOMMU_DOMAIN_DMA);
  });
});

describe("iommu_dma_map_phys / unmap_phys (strict)", () => {
  it("returns IOVA + offset that the domain and the hardware translate back to phys", () => {
    const m = machine();
    const dev = m.endpoint("nvme0");
    const phys = RAM_BASE + 0x1234_5ff0;
    const h = iommuDmaMapPhys(dev, phys, 0x20, DMA_BIDIRECTIONAL, 0);
    // Top-down below 4 GiB first; the 0x20 bytes straddle two granules: two pages of IOVA.
    expect(h).toBe(0xffff_eff0);
    const domain = iommuDmaCookie(dev).domain;
    expect(iommuIovaToPhys(domain, h)).toBe(phys);
    expect(iommuIovaToPhys(domain, h + 0x10)).toBe(phys + 0x10);
    expect(m.translate(dev, h + 0x1f, true)).toBe(phys + 0x1f);
    iommuDmaUnmapPhys(dev, h, 0x20, DMA_BIDIRECTIONAL, 0);
    expect(iommuIovaToPhys(domain, h)).toBe(0);
  });

  it("TO_DEVICE mappings are read-only for the device", () => {
    const m = machine();
    const dev = m.endpoint("nvme0");
    const h = iommuDmaMapPhys(dev, RAM_BASE + 0x4000, 512, DMA_TO_DEVICE, 0);
    expect(m.translate(dev, h, false)).toBe(RAM_BASE + 0x4000);
    expect(m.translate(dev, h, true)).toBeNull();
  });

  it("strict unmap invalidates the IOTLB at once and the IOVA is reused", () => {
    const m = machine();
    const dev = m.endpoint("nvme0");
    const h = iommuDmaMapPhys(dev, RAM_BASE + 0x8000, 4096, DMA_BIDIRECTIONAL, 0);
    expect(m.translate(dev, h)).toBe(RAM_BASE + 0x8000); // fills the IOTLB
    iommuDmaUnmapPhys(dev, h, 4096, DMA_BIDIRECTIONAL, 0);
    expect(m.translate(dev, h)).toBeNull();
    expect(iommuDmaMapPhys(dev, RAM_BASE + 0x9000, 4096, DMA_BIDIRECTIONAL, 0)).toBe(h);
  });

  it("rejects a min_align_mask larger than the granule mask", () => {
    const m = machine();
    const dev = m.endpoint("nvme0");
    if (dev.dmaParms) dev.dmaParms.minAlignMask = 0x1fff;
    expect(iommuDmaMapPhys(dev, RAM_BASE, 4096, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(m.log.dmesg()).toContain("Unsupported alignment constraint");
  });
});

describe("lazy invalidation (DMA_FQ)", () => {
  it("leaves a stale IOTLB window and holds the IOVA until the 10 ms flush-queue timer", () => {
    const m = machine({ iommu: "lazy" });
    const dev = m.endpoint("nvme0");
    const cookie = iommuDmaCookie(dev);
    const fq = cookie.fq;
    if (fq === null) throw new Error("no flush queue");
    const phys = RAM_BASE + 0x10_0000;
    const h = iommuDmaMapPhys(dev, phys, 4096, DMA_FROM_DEVICE, 0);
    expect(m.translate(dev, h, true)).toBe(phys);
    iommuDmaUnmapPhys(dev, h, 4096, DMA_FROM_DEVICE, 0);
    // The table entry is gone, but the device still reaches the page through its IOTLB.
    expect(iommuIovaToPhys(cookie.domain, h)).toBe(0);
    expect(m.translate(dev, h, true)).toBe(phys);
    expect(fq.pendingCount).toBe(1);
    // The IOVA is not reusable while queued.
    const h2 = iommuDmaMapPhys(dev, RAM_BASE + 0x20_0000, 4096, DMA_FROM_DEVICE, 0);
    expect(h2).not.toBe(h);
    m.clock.advance(10 * NSEC_PER_MSEC - 1);
    expect(m.translate(dev, h, true)).toBe(phys);
    m.clock.advance(1);
    expect(m.translate(dev, h, true)).toBeNull();
    const st = fq.stats();
    expect(st.pending).toBe(0);
    expect(st.flushesTimeout).toBe(1);
    expect(st.maxStaleNs).toBe(10 * NSEC_PER_MSEC);
    // The freed IOVA goes back to the rcache and is handed out again.
    iommuDmaUnmapPhys(dev, h2, 4096, DMA_FROM_DEVICE, 0);
    expect(iommuDmaMapPhys(dev, RAM_BASE + 0x30_0000, 4096, DMA_FROM_DEVICE, 0)).toBe(h);
  });
});

describe("iommu_dma_alloc_iova: the PCI 32-bit-first rule", () => {
  it("tries below 4 GiB first, then notices once and stays above", () => {
    const m = machine();
    const dev = m.endpoint("nvme0");
    const domain = iommuDmaCookie(dev).domain;
    expect(devDmaState(dev).pci32bitWorkaround).toBe(true);
    const small = iommuDmaAllocIova(domain, 4096, 2 ** 64, dev);
    expect(small).toBeLessThan(SZ_4G);
    const big = iommuDmaAllocIova(domain, SZ_4G, 2 ** 64, dev);
    expect(big).toBeGreaterThanOrEqual(SZ_4G);
    // The aperture (48-bit VT-d) clips the limit, so the notice says 48.
    expect(m.log.find({ level: "notice", prefix: "nvme0" }).map((r) => r.message)).toEqual([
      "Using 48-bit DMA addresses",
    ]);
    expect(devDmaState(dev).pci32bitWorkaround).toBe(false);
    const after = iommuDmaAllocIova(domain, 4096, 2 ** 64, dev);
    expect(after).toBeGreaterThanOrEqual(SZ_4G);
    expect(m.log.find({ message: "-bit DMA addresses" })).toHaveLength(1);
  });

  it("a 32-bit mask never tries the workaround, and an exhausted space is 0", () => {
    const m = machine();
    const dev = m.endpoint("nvme0", { dmaMask: 0x3fff });
    const domain = iommuDmaCookie(dev).domain;
    // pfns 1..3 are usable: a 2-page request is 2-page aligned and fits at pfn 2.
    expect(iommuDmaAllocIova(domain, 8192, 0x3fff, dev)).toBe(0x2000);
    expect(iommuDmaAllocIova(domain, 8192, 0x3fff, dev)).toBe(0);
    expect(m.log.dmesg()).not.toContain("DMA addresses");
  });
});

describe("iommu_dma_map_sg / __finalise_sg", () => {
  function setup(o: MachineOptions = {}) {
    const m = machine(o);
    const dev = m.endpoint("gpu0");
    return { m, dev, domain: iommuDmaCookie(dev).domain };
  }

  it("page-aligned scattered pages merge into one segment mapping each page in order", () => {
    const { m, dev, domain } = setup();
    const pfns = [PFN0 + 7, PFN0 + 3, PFN0 + 100, PFN0 + 4];
    const sgt = makeSgTable(
      m,
      pfns.map((pfn) => ({ pfn, len: 4096 })),
    );
    const n = iommuDmaMapSg(dev, sgt.sgl!, 4, DMA_BIDIRECTIONAL, 0);
    expect(n).toBe(1);
    const [seg] = dmaSegments(sgt, 1);
    expect(seg?.len).toBe(4 * 4096);
    for (let i = 0; i < 4; i++) expect(iommuIovaToPhys(domain, seg!.addr + i * 4096)).toBe(pfns[i]! * 4096);
    // The CPU side is restored exactly.
    expect(cpuFields(sgt)).toEqual(pfns.map(() => ({ off: 0, len: 4096 })));
    iommuDmaUnmapSg(dev, sgt.sgl!, 4, DMA_BIDIRECTIONAL, 0);
    expect(iommuIovaToPhys(domain, seg!.addr)).toBe(0);
  });

  it("unaligned offsets do not merge; each segment keeps its sub-page offset", () => {
    const { m, dev, domain } = setup();
    const sgt = makeSgTable(m, [
      { pfn: PFN0 + 1, off: 0x100, len: 0x800 },
      { pfn: PFN0 + 9, off: 0x100, len: 0x800 },
      { pfn: PFN0 + 5, off: 0, len: 0x1000 },
    ]);
    const n = iommuDmaMapSg(dev, sgt.sgl!, 3, DMA_TO_DEVICE, 0);
    // Entry 1 starts mid-granule; entry 2 is aligned but entry 1 ended mid-granule.
    expect(n).toBe(3);
    const segs = dmaSegments(sgt, 3);
    expect(segs.map((s) => s.addr % 4096)).toEqual([0x100, 0x100, 0]);
    expect(segs.map((s) => s.len)).toEqual([0x800, 0x800, 0x1000]);
    expect(segs[1]!.addr).toBe(segs[0]!.addr + 0x1000);
    expect(iommuIovaToPhys(domain, segs[1]!.addr)).toBe((PFN0 + 9) * 4096 + 0x100);
    expect(cpuFields(sgt)).toEqual([
      { off: 0x100, len: 0x800 },
      { off: 0x100, len: 0x800 },
      { off: 0, len: 0x1000 },
    ]);
  });

  it("respects max_segment_size", () => {
    const { m, dev } = setup();
    dev.dmaParms!.maxSegmentSize = 8192;
    const sgt = makeSgTable(
      m,
      [1, 5, 9, 13].map((k) => ({ pfn: PFN0 + k, len: 4096 })),
    );
    expect(iommuDmaMapSg(dev, sgt.sgl!, 4, DMA_TO_DEVICE, 0)).toBe(2);
    expect(dmaSegments(sgt, 2).map((s) => s.len)).toEqual([8192, 8192]);
  });

  it("pads to the segment boundary and never merges across it", () => {
    const { m, dev, domain } = setup();
    dev.dmaParms!.segmentBoundaryMask = 0x1fff;
    const sgt = makeSgTable(m, [
      { pfn: PFN0 + 1, len: 0x1000 },
      { pfn: PFN0 + 20, len: 0x2000 },
      { pfn: PFN0 + 40, len: 0x1000 },
    ]);
    const n = iommuDmaMapSg(dev, sgt.sgl!, 3, DMA_TO_DEVICE, 0);
    const segs = dmaSegments(sgt, n);
    // Entry 1 (8 KiB) would cross the 8 KiB boundary at +0x1000: 4 KiB of padding moves it to +0x2000.
    expect(n).toBe(3);
    expect(segs[1]!.addr - segs[0]!.addr).toBe(0x2000);
    expect(segs[2]!.addr - segs[0]!.addr).toBe(0x4000);
    for (const s of segs) expect(Math.floor(s.addr / 0x2000)).toBe(Math.floor((s.addr + s.len - 1) / 0x2000));
    expect(iommuIovaToPhys(domain, segs[1]!.addr + 0x1000)).toBe((PFN0 + 21) * 4096);
    expect(cpuFields(sgt).map((f) => f.len)).toEqual([0x1000, 0x2000, 0x1000]);
  });

  it("a full IOVA space is -ENOMEM and restores the list", () => {
    const { m, dev } = setup();
    dev.dmaMask = 0x1fff; // only pfn 1 is usable
    const sgt = makeSgTable(m, [
      { pfn: PFN0 + 1, off: 0x10, len: 0x100 },
      { pfn: PFN0 + 2, len: 0x1000 },
    ]);
    expect(iommuDmaMapSg(dev, sgt.sgl!, 2, DMA_TO_DEVICE, 0)).toBe(-ERRNO.ENOMEM);
    expect(cpuFields(sgt)).toEqual([
      { off: 0x10, len: 0x100 },
      { off: 0, len: 0x1000 },
    ]);
    expect(dmaSegments(sgt, 2).map((s) => s.addr)).toEqual([DMA_MAPPING_ERROR, DMA_MAPPING_ERROR]);
  });
});

describe("iommu_dma_map_sg with P2PDMA pages", () => {
  it("through a switch: bus address, marked, not mapped in the IOMMU; RAM around it mapped", () => {
    const { m, client, bar, busOffset } = p2pMachine(false);
    const domain = iommuDmaCookie(client).domain;
    const sgt = makeSgTable(m, [
      { pfn: PFN0 + 1, len: 4096 },
      { pfn: bar / 4096 + 2, off: 0x80, len: 0x200 },
      { pfn: PFN0 + 2, len: 4096 },
    ]);
    const n = iommuDmaMapSg(client, sgt.sgl!, 3, DMA_BIDIRECTIONAL, 0);
    expect(n).toBe(3);
    const segs = dmaSegments(sgt, 3);
    expect(segs[1]).toEqual({ addr: bar + 0x2080 + busOffset, len: 0x200, bus: true });
    expect(segs[0]!.bus).toBe(false);
    // One IOVA range of two pages for the RAM entries only.
    expect(segs[2]!.addr).toBe(segs[0]!.addr + 4096);
    expect(iommuIovaToPhys(domain, segs[2]!.addr)).toBe((PFN0 + 2) * 4096);
    iommuDmaUnmapSg(client, sgt.sgl!, 3, DMA_BIDIRECTIONAL, 0);
    expect(dmaSegments(sgt, 3).some((s) => s.bus)).toBe(false);
    expect(iommuIovaToPhys(domain, segs[0]!.addr)).toBe(0);
  });

  it("not reachable (no common switch, host bridge not allowlisted): -EREMOTEIO, list restored", () => {
    const { m, far, bar } = p2pMachine(false);
    const sgt = makeSgTable(m, [
      { pfn: PFN0 + 1, off: 0x40, len: 0x100 },
      { pfn: bar / 4096, len: 4096 },
    ]);
    expect(iommuDmaMapSg(far, sgt.sgl!, 2, DMA_TO_DEVICE, 0)).toBe(-ERRNO.EREMOTEIO);
    expect(cpuFields(sgt)).toEqual([
      { off: 0x40, len: 0x100 },
      { off: 0, len: 4096 },
    ]);
  });

  it("through an allowlisted host bridge: mapped through the IOMMU like RAM", () => {
    const { m, far, bar } = p2pMachine(true);
    const sgt = makeSgTable(m, [{ pfn: bar / 4096 + 1, len: 4096 }]);
    expect(iommuDmaMapSg(far, sgt.sgl!, 1, DMA_TO_DEVICE, 0)).toBe(1);
    const [seg] = dmaSegments(sgt, 1);
    expect(seg?.bus).toBe(false);
    expect(m.translate(far, seg!.addr)).toBe(bar + 0x1000);
  });
});

describe("untrusted devices bounce sub-granule buffers through swiotlb", () => {
  function setup() {
    const m = machine({ swiotlb: { size: 1 << 20, verbose: false } });
    const dev = m.endpoint("tbt0", { untrusted: true });
    const pool = m.system.get(SWIOTLB);
    if (!pool) throw new Error("no swiotlb");
    // Stale data everywhere in the pool: padding must not show it.
    m.cache.cpuFill(pool.start, pool.end - pool.start, 0xaa);
    return { m, dev, pool };
  }

  it("map_phys bounces, zeroes the rest of the granule, copies back at unmap", () => {
    const { m, dev } = setup();
    const orig = RAM_BASE + 0x5100;
    m.cache.cpuWrite(orig, new Uint8Array(0x80).fill(0x5a));
    const h = iommuDmaMapPhys(dev, orig, 0x80, DMA_BIDIRECTIONAL, 0);
    const tlb = iommuIovaToPhys(iommuDmaCookie(dev).domain, h);
    expect(isSwiotlbBuffer(dev, tlb)).toBe(true);
    expect(m.translate(dev, h)).toBe(tlb);
    const granule = new Uint8Array(4096);
    m.cache.cpuRead(tlb - (tlb % 4096), granule);
    const inBuf = (tlb % 4096) + 0x80;
    expect(granule.subarray(tlb % 4096, inBuf).every((b) => b === 0x5a)).toBe(true);
    expect(granule.subarray(inBuf).every((b) => b === 0)).toBe(true);
    expect(granule.subarray(0, tlb % 4096).every((b) => b === 0)).toBe(true);
    m.cache.deviceWrite(tlb, new Uint8Array([1, 2, 3]));
    iommuDmaUnmapPhys(dev, h, 0x80, DMA_BIDIRECTIONAL, 0);
    const back = new Uint8Array(4);
    m.cache.cpuRead(orig, back);
    expect([...back]).toEqual([1, 2, 3, 0x5a]);
    expect(m.system.get(SWIOTLB)?.mappings()).toHaveLength(0);
  });

  it("granule-aligned buffers map directly; map_sg goes per entry and is marked SG_DMA_SWIOTLB", () => {
    const { m, dev } = setup();
    const h = iommuDmaMapPhys(dev, RAM_BASE + 0x6000, 0x2000, DMA_TO_DEVICE, 0);
    expect(iommuIovaToPhys(iommuDmaCookie(dev).domain, h)).toBe(RAM_BASE + 0x6000);
    expect(iommuDmaMaxMappingSize(dev)).toBe(256 * 1024);
    const sgt = makeSgTable(m, [
      { pfn: PFN0 + 1, len: 4096 },
      { pfn: PFN0 + 2, len: 4096 },
    ]);
    expect(iommuDmaMapSg(dev, sgt.sgl!, 2, DMA_TO_DEVICE, 0)).toBe(2);
    expect(sgDmaIsSwiotlb(sgt.sgl!)).toBe(true);
    iommuDmaUnmapSg(dev, sgt.sgl!, 2, DMA_TO_DEVICE, 0);
  });
});
