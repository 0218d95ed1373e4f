import { SZ_2M, SZ_4K } from "@dmakit/core";
import {
  IOMMU_READ,
  IOMMU_WRITE,
  IommuIotlbGather,
  iommuAttachDevice,
  iommuDetachDevice,
  iommuDomainFree,
  iommuIotlbSync,
  iommuMap,
  iommuPagingDomainAlloc,
  iommuUnmap,
  iommuUnmapFast,
} from "@dmakit/iommu";
import { describe, expect, it } from "vitest";
import {
  DMA_FECTL_IM,
  DMA_FRCD_F,
  DMA_FSTS_PFO,
  DMA_FSTS_PPF,
  DMA_GSTS_RTPS,
  DMA_GSTS_TES,
  DMA_TLB_IVT_HI,
  DMA_TLB_PSI_FLUSH_HI,
  DMAR_FECTL_REG,
  DMAR_FR_BEYOND_MGAW,
  DMAR_FR_CONTEXT_NOT_PRESENT,
  DMAR_FR_PTE_READ,
  DMAR_FR_PTE_WRITE,
  DMAR_FR_ROOT_NOT_PRESENT,
  DMAR_FSTS_REG,
  DMAR_GSTS_REG,
  dmaFstsFaultRecordIndex,
} from "../src/index.js";
import { addDevice, asDmar, makeVtdMachine, RAM_BASE, type VtdMachine } from "./support/vtdMachine.js";

function withDomain(m: VtdMachine) {
  const domain = iommuPagingDomainAlloc(m.dev);
  iommuAttachDevice(domain, m.dev);
  return domain;
}

const rd = (m: VtdMachine, iova: number, sid = m.sid) =>
  m.hw.translate({ streamId: sid, iova, size: 8, write: false });
const wr = (m: VtdMachine, iova: number, sid = m.sid) =>
  m.hw.translate({ streamId: sid, iova, size: 8, write: true });

/** The four dwords of fault recording register `i`. */
function frcd(m: VtdMachine, i: number): number[] {
  const at = m.hw.faultRegOffset + i * 16;
  return [0, 4, 8, 12].map((o) => m.hw.readl(at + o));
}

describe("DmarHardware", () => {
  it("comes up with the root table set and translation enabled", () => {
    const m = makeVtdMachine();
    const gsts = m.hw.readl(DMAR_GSTS_REG);
    expect((gsts & DMA_GSTS_TES) !== 0).toBe(true);
    expect(gsts & DMA_GSTS_RTPS).toBe(DMA_GSTS_RTPS);
    expect(m.hw.ndoms).toBe(65536);
    expect(m.vtd.agaw).toBe(2);
    expect(makeVtdMachine({ fiveLevel: true }).vtd.agaw).toBe(3);
  });

  it("records a read of an unmapped IOVA in FRCD 0: F, read type, reason 6, source id, page address", () => {
    const m = makeVtdMachine();
    const d = withDomain(m);
    iommuMap(d, 0x10_0000, RAM_BASE, SZ_4K, IOMMU_READ | IOMMU_WRITE);
    const t = rd(m, 0x1_2345_6789);
    expect(t.ok).toBe(false);
    if (t.ok) return;
    expect(t.fault.kind).toBe("translation");
    expect(t.fault.reason).toBe(DMAR_FR_PTE_READ);
    expect(t.fault.code).toBe("DMAR:0x06");
    expect(t.fault.message).toBe(
      "[DMA Read] Request device [01:00.0] PASID ffffffff fault addr 123456000 [fault reason 06] PTE Read access is not set",
    );
    const [lo, hi, sid, top] = frcd(m, 0) as [number, number, number, number];
    expect(lo).toBe(0x2345_6000);
    expect(hi).toBe(1);
    expect(sid & 0xffff).toBe(0x0100);
    expect(top >>> 0).toBe((DMA_FRCD_F | (1 << 30) | 6) >>> 0);
    const fsts = m.hw.readl(DMAR_FSTS_REG);
    expect(fsts & DMA_FSTS_PPF).toBe(DMA_FSTS_PPF);
    expect(dmaFstsFaultRecordIndex(fsts)).toBe(0);
    // A write to an unmapped IOVA is reason 5 (a non-present entry has neither R nor W).
    const m2 = makeVtdMachine();
    withDomain(m2);
    const w = wr(m2, 0x5000);
    expect(!w.ok && w.fault.reason).toBe(DMAR_FR_PTE_WRITE);
    expect((frcd(m2, 0)[3] as number) & 0x400000ff).toBe(5);
  });

  it("faults a write to a read-only mapping (reason 5, permission) but serves reads, from the IOTLB too", () => {
    const m = makeVtdMachine();
    const d = withDomain(m);
    iommuMap(d, 0x20_0000, RAM_BASE + 0x3000, SZ_4K, IOMMU_READ);
    expect(rd(m, 0x20_0010)).toMatchObject({ ok: true, phys: RAM_BASE + 0x3010, iotlbHit: false });
    const w = wr(m, 0x20_0010);
    expect(w.ok).toBe(false);
    if (!w.ok) {
      expect(w.fault.kind).toBe("permission");
      expect(w.fault.reason).toBe(DMAR_FR_PTE_WRITE);
      expect(w.fault.message).toContain("[DMA Write]");
    }
    expect(rd(m, 0x20_0018)).toMatchObject({ ok: true, iotlbHit: true });
    expect(m.hw.counters()["iommu.translate.iotlb-hit"]).toBe(2);
  });

  it("collapses faults per source id while F is set, then records again once software clears F", () => {
    const m = makeVtdMachine();
    withDomain(m);
    const other = addDevice(m, "gpu0");
    iommuAttachDevice(iommuPagingDomainAlloc(other), other);
    const sid2 = (other.busNr << 8) | other.devfn;
    rd(m, 0x1000);
    rd(m, 0x2000); // same source: not recorded
    wr(m, 0x3000); // still the same source
    expect((frcd(m, 1)[3] as number) & DMA_FRCD_F).toBe(0);
    expect(m.hw.counters()["vtd.fault.collapsed"]).toBe(2);
    rd(m, 0x4000, sid2); // another source takes FRCD 1
    expect((frcd(m, 1)[2] as number) & 0xffff).toBe(sid2);
    expect(m.hw.faults().map((f) => f.iova)).toEqual([0x1000, 0x4000]);
    // Software clears F of FRCD 0: the first source's next fault goes to FRCD 2.
    m.hw.writel(m.hw.faultRegOffset + 12, DMA_FRCD_F);
    rd(m, 0x5000);
    expect((frcd(m, 2)[0] as number) >>> 0).toBe(0x5000);
    expect(m.hw.counters()["vtd.fault.recorded"]).toBe(3);
  });

  it("sets PFO when the FRCD at the index is still full, and drops faults while PFO is set", () => {
    const m = makeVtdMachine({ nfr: 2, faultCollapsing: false });
    withDomain(m);
    rd(m, 0x1000);
    rd(m, 0x2000);
    expect(m.hw.readl(DMAR_FSTS_REG) & DMA_FSTS_PFO).toBe(0);
    rd(m, 0x3000); // index wrapped to FRCD 0, still F: overflow
    expect(m.hw.readl(DMAR_FSTS_REG) & (DMA_FSTS_PFO | DMA_FSTS_PPF)).toBe(DMA_FSTS_PFO | DMA_FSTS_PPF);
    m.hw.writel(m.hw.faultRegOffset + 12, DMA_FRCD_F); // FRCD 0 free again, but PFO still set
    rd(m, 0x4000);
    expect((frcd(m, 0)[3] as number) & DMA_FRCD_F).toBe(0);
    const c = m.hw.counters();
    expect([
      c["vtd.fault.recorded"],
      c["vtd.fault.overflow"],
      c["vtd.fault.dropped-pfo"],
      c["iommu.translate.fault"],
    ]).toEqual([2, 1, 1, 4]);
    m.hw.writel(DMAR_FSTS_REG, DMA_FSTS_PFO);
    rd(m, 0x5000);
    expect((frcd(m, 0)[0] as number) >>> 0).toBe(0x5000);
  });

  it("runs dmar_fault from the fault event: logs each record, clears F and PFO", () => {
    const m = makeVtdMachine({ nfr: 2 }, true);
    withDomain(m);
    rd(m, 0x70_0000);
    rd(m, 0x80_0000); // collapsed
    expect(m.hw.faults().length).toBe(1);
    m.clock.runUntilIdle();
    expect(m.hw.faults().length).toBe(0);
    expect(m.hw.readl(DMAR_FSTS_REG)).toBe(0);
    const lines = m.log
      .records()
      .filter((r) => r.prefix === "DMAR")
      .map((r) => r.message);
    expect(lines).toEqual([
      "DRHD: handling fault status reg 2",
      "[DMA Read] Request device [01:00.0] PASID ffffffff fault addr 700000 [fault reason 06] PTE Read access is not set",
    ]);
    // Masked: the event stays pending (IP) until software unmasks.
    m.hw.writel(DMAR_FECTL_REG, DMA_FECTL_IM);
    rd(m, 0x90_0000);
    m.clock.runUntilIdle();
    expect(m.hw.faults().length).toBe(1);
    m.hw.writel(DMAR_FECTL_REG, 0);
    m.clock.runUntilIdle();
    expect(m.hw.faults().length).toBe(0);
  });

  it("context and root faults, and accesses beyond the address width", () => {
    const m = makeVtdMachine();
    const d = withDomain(m);
    const beyond = rd(m, 2 ** 48);
    expect(!beyond.ok && [beyond.fault.kind, beyond.fault.reason]).toEqual([
      "address-size",
      DMAR_FR_BEYOND_MGAW,
    ]);
    // No context table for bus 0x77 at all: root entry not present.
    const root = rd(m, 0x1000, 0x7700);
    expect(!root.ok && [root.fault.kind, root.fault.reason]).toEqual(["config", DMAR_FR_ROOT_NOT_PRESENT]);
    // Bus 1 has a context table, devfn 8 has no entry.
    const ctx = rd(m, 0x1000, 0x0108);
    expect(!ctx.ok && ctx.fault.reason).toBe(DMAR_FR_CONTEXT_NOT_PRESENT);
    // Blocking the device clears its context entry and flushes the context cache.
    iommuMap(d, 0x1000, RAM_BASE, SZ_4K, IOMMU_READ);
    expect(rd(m, 0x1000).ok).toBe(true);
    m.vtd.blockedDomain.ops.attachDev(m.vtd.blockedDomain, m.dev);
    const blocked = rd(m, 0x1000);
    expect(!blocked.ok && blocked.fault.reason).toBe(DMAR_FR_CONTEXT_NOT_PRESENT);
  });

  it("identity domain: pass-through context, DMA untranslated", () => {
    const m = makeVtdMachine();
    m.vtd.identityDomain.ops.attachDev(m.vtd.identityDomain, m.dev);
    expect(rd(m, 0x1234_5678)).toMatchObject({ ok: true, phys: 0x1234_5678 });
  });

  it("a stale IOTLB entry translates until the invalidation command completes", () => {
    const m = makeVtdMachine();
    const d = asDmar(withDomain(m));
    iommuMap(d, 0x40_0000, RAM_BASE + 0x9000, SZ_4K, IOMMU_READ | IOMMU_WRITE);
    expect(rd(m, 0x40_0000).ok).toBe(true);
    const gather = new IommuIotlbGather();
    expect(iommuUnmapFast(d, 0x40_0000, SZ_4K, gather)).toBe(SZ_4K);
    expect(rd(m, 0x40_0008)).toMatchObject({ ok: true, phys: RAM_BASE + 0x9008, iotlbHit: true });
    // Issue the page-selective invalidation by hand, as __iommu_flush_iotlb does, without polling.
    const did = m.vtd.domainId(d);
    const off = m.hw.iotlbRegOffset;
    m.hw.writel(off, 0x40_0000);
    m.hw.writel(off + 4, 0);
    m.hw.writel(off + 8, 0);
    m.hw.writel(off + 12, DMA_TLB_IVT_HI | DMA_TLB_PSI_FLUSH_HI | did);
    expect(m.hw.invalidationPending).toBe(true);
    expect(rd(m, 0x40_0008).ok).toBe(true); // not yet complete: still stale
    const status = m.hw.readl(off + 12); // the poll completes it
    expect(status & DMA_TLB_IVT_HI).toBe(0);
    expect((status >>> 25) & 3).toBe(3); // IAIG: page-selective performed
    expect(rd(m, 0x40_0008).ok).toBe(false);
    iommuIotlbSync(d, gather);
  });

  it("page-selective invalidation covers only the aligned block; DSI when the mask exceeds MAMV", () => {
    const m = makeVtdMachine();
    const d = withDomain(m);
    iommuMap(d, 0x100_0000, RAM_BASE, 8 * SZ_4K, IOMMU_READ);
    for (let i = 0; i < 8; i++) rd(m, 0x100_0000 + i * SZ_4K);
    expect(iommuUnmap(d, 0x100_2000, 2 * SZ_4K)).toBe(2 * SZ_4K);
    // Pages 2 and 3 invalidated (PSI, mask 1); page 5 still cached though still mapped anyway.
    expect(m.hw.iotlb.peek(m.vtd.domainId(asDmar(d)), 0x100_2000)).toBe(-1);
    const did = m.vtd.domainId(asDmar(d));
    expect(m.hw.iotlb.peek(did, 0x100_5000)).toBeGreaterThanOrEqual(0);
    expect(m.hw.iotlb.physOf(m.hw.iotlb.peek(did, 0x100_5000), 0x100_5000)).toBe(RAM_BASE + 5 * SZ_4K);
    // The PSI block is 0x100_2000..0x100_3fff: its neighbours stay cached.
    expect(m.hw.iotlb.peek(did, 0x100_3000)).toBe(-1);
    expect(m.hw.iotlb.peek(did, 0x100_1000)).toBeGreaterThanOrEqual(0);
    expect(m.hw.iotlb.peek(did, 0x100_4000)).toBeGreaterThanOrEqual(0);
    expect((m.hw.readl(m.hw.iotlbRegOffset + 12) >>> 25) & 3).toBe(3);

    const n = makeVtdMachine({ mamv: 0 });
    const e = withDomain(n);
    iommuMap(e, 0x100_0000, RAM_BASE, 8 * SZ_4K, IOMMU_READ);
    for (let i = 0; i < 8; i++) rd(n, 0x100_0000 + i * SZ_4K);
    expect(iommuUnmap(e, 0x100_2000, 2 * SZ_4K)).toBe(2 * SZ_4K);
    expect((n.hw.readl(n.hw.iotlbRegOffset + 12) >>> 25) & 3).toBe(2); // domain-selective
    expect(n.hw.iotlb.peek(n.vtd.domainId(asDmar(e)), 0x100_5000)).toBe(-1);
  });

  it("IOTLB entries are tagged by domain id: invalidating one domain keeps the other's", () => {
    const m = makeVtdMachine();
    const d1 = asDmar(withDomain(m));
    const other = addDevice(m, "gpu0");
    const d2 = asDmar(iommuPagingDomainAlloc(other));
    iommuAttachDevice(d2, other);
    const sid2 = (other.busNr << 8) | other.devfn;
    expect(m.vtd.domainId(d2)).not.toBe(m.vtd.domainId(d1));
    iommuMap(d1, SZ_2M, RAM_BASE, SZ_2M, IOMMU_READ);
    iommuMap(d2, SZ_2M, RAM_BASE + SZ_2M, SZ_2M, IOMMU_READ);
    expect(rd(m, SZ_2M + 8)).toMatchObject({ phys: RAM_BASE + 8 });
    expect(rd(m, SZ_2M + 8, sid2)).toMatchObject({ phys: RAM_BASE + SZ_2M + 8 });
    m.vtd.flushIotlb(m.vtd.domainId(d1), 0, 0, "dsi");
    expect(rd(m, SZ_2M + 8)).toMatchObject({ iotlbHit: false });
    expect(rd(m, SZ_2M + 8, sid2)).toMatchObject({ iotlbHit: true });
    iommuDetachDevice(d2, other);
    iommuDomainFree(d2);
  });
});
