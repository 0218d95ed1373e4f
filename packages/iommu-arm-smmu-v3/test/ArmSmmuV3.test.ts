import { KernelLog, PlatformBus, SZ_2M, SZ_4K } from "@dmakit/core";
import { IOMMU_READ, IOMMU_WRITE, IommuIotlbGather, IommuSubsystem, iommuIotlbSync } from "@dmakit/iommu";
import { GFP_KERNEL } from "@dmakit/mm-pages";
import { describe, expect, it } from "vitest";
import {
  type ArmSmmuDomain,
  ArmSmmuV3,
  type ArmSmmuV3Options,
  CMDQ_OP_CMD_SYNC,
  CMDQ_OP_TLBI_NH_VA,
  EVT_ID_BAD_STREAMID_CONFIG,
  EVT_ID_PERMISSION_FAULT,
  EVT_ID_TRANSLATION_FAULT,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
} from "../src/index.js";
import { smallMachine } from "./helpers.js";

const RAM = 0x4000_0000;

function setup(opts: Partial<ArmSmmuV3Options> = {}) {
  const m = smallMachine();
  const smmu = new ArmSmmuV3({ name: "smmu0", mem: m.mem, log: m.log, ...opts });
  const bus = new PlatformBus({ log: m.log });
  const dev = bus.addDevice({ name: "cam0", streamIds: [0x12], iommu: "smmu0" });
  const iommu = new IommuSubsystem({ log: new KernelLog() });
  smmu.ops.probeDevice(dev);
  smmu.ops.deviceGroup(dev, iommu);
  return { ...m, smmu, dev, hw: smmu.hw };
}

function mapOne(d: ArmSmmuDomain, iova: number, pa: number, size: number, prot: number): void {
  expect(d.ops.mapPages?.(d, iova, pa, size, 1, prot, GFP_KERNEL)).toBe(size);
}

describe("ArmSmmuV3: stage-1 translation through STE → CD → tables in RAM", () => {
  it("translates a mapped page, then hits the IOTLB", () => {
    const { smmu, dev, hw } = setup();
    const d = smmu.domainAllocPagingFlags(dev, 0);
    d.ops.attachDev(d, dev);
    mapOne(d, 0x10_0000, RAM + 0x20_0000, SZ_4K, IOMMU_READ | IOMMU_WRITE);
    const a = hw.translate({ streamId: 0x12, iova: 0x10_0123, size: 0x2000, write: false });
    expect(a).toEqual({
      ok: true,
      phys: RAM + 0x20_0123,
      len: SZ_4K - 0x123,
      prot: IOMMU_READ | IOMMU_WRITE,
      iotlbHit: false,
    });
    const b = hw.translate({ streamId: 0x12, iova: 0x10_0ff0, size: 8, write: true });
    expect(b.ok && b.iotlbHit && b.phys).toBe(RAM + 0x20_0ff0);
    expect(hw.counters()["iommu.translate.walk"]).toBe(1);
    // STE and CD were written to RAM with the kernel's encodings.
    const ste = hw.strtabBase + 0x12 * 64;
    expect(hw.phys.readU32(ste) & 0xf).toBe(1 | (5 << 1));
    expect(hw.commandCounts.CFGI_STE).toBeGreaterThanOrEqual(1);
    expect(hw.commandCounts.CFGI_CD).toBe(1);
  });

  it("a 2M block translates every 4K inside it with one IOTLB entry", () => {
    const { smmu, dev, hw } = setup();
    const d = smmu.domainAllocPagingFlags(dev, 0);
    d.ops.attachDev(d, dev);
    mapOne(d, 0x20_0000, RAM + 0x40_0000, SZ_2M, IOMMU_READ);
    for (let off = 0; off < SZ_2M; off += 0x3_1000) {
      const t = hw.translate({ streamId: 0x12, iova: 0x20_0000 + off, size: 4, write: false });
      expect(t.ok && t.phys).toBe(RAM + 0x40_0000 + off);
    }
    expect(hw.iotlb.size).toBe(1);
  });

  it("unmapped IOVA → F_TRANSLATION event with stream id and address, in RAM and as data", () => {
    const { smmu, dev, hw } = setup();
    const d = smmu.domainAllocPagingFlags(dev, 0);
    d.ops.attachDev(d, dev);
    const t = hw.translate({ streamId: 0x12, iova: 0xdead_b000, size: 64, write: true });
    expect(t.ok).toBe(false);
    if (t.ok) return;
    expect(t.fault).toMatchObject({
      kind: "translation",
      code: "F_TRANSLATION",
      reason: 0x10,
      streamId: 0x12,
      iova: 0xdead_b000,
      write: true,
    });
    // The 32-byte record in the event queue: id, SID, RnW=0 (write), input address.
    const at = hw.evtqBase;
    expect(hw.phys.readU32(at) & 0xff).toBe(EVT_ID_TRANSLATION_FAULT);
    expect(hw.phys.readU32(at + 4)).toBe(0x12);
    expect(hw.phys.readU32(at + 12) & (1 << 3)).toBe(0);
    expect(hw.phys.readU32(at + 16)).toBe(0xdead_b000);
    expect(hw.faults().map((f) => f.code)).toEqual(["F_TRANSLATION"]);
    expect(hw.drainFaults()).toHaveLength(1);
    expect(hw.faults()).toHaveLength(0);
  });

  it("write to a read-only mapping → F_PERMISSION (the read succeeds)", () => {
    const { smmu, dev, hw } = setup();
    const d = smmu.domainAllocPagingFlags(dev, 0);
    d.ops.attachDev(d, dev);
    mapOne(d, 0x5000, RAM + 0x9000, SZ_4K, IOMMU_READ);
    expect(hw.translate({ streamId: 0x12, iova: 0x5008, size: 8, write: false }).ok).toBe(true);
    const w = hw.translate({ streamId: 0x12, iova: 0x5008, size: 8, write: true });
    expect(!w.ok && w.fault.code).toBe("F_PERMISSION");
    expect(hw.phys.readU32(hw.evtqBase) & 0xff).toBe(EVT_ID_PERMISSION_FAULT);
  });

  it("unknown stream → C_BAD_STREAMID; probed but unattached stream aborts silently", () => {
    const { hw } = setup();
    const t = hw.translate({ streamId: 0x400, iova: 0x1000, size: 4, write: false });
    expect(!t.ok && [t.fault.code, t.fault.kind, t.fault.streamId]).toEqual([
      "C_BAD_STREAMID",
      "config",
      0x400,
    ]);
    expect(hw.phys.readU32(hw.evtqBase) & 0xff).toBe(EVT_ID_BAD_STREAMID_CONFIG);
    const a = hw.translate({ streamId: 0x12, iova: 0x1000, size: 4, write: false });
    expect(!a.ok && a.fault.kind).toBe("blocked");
    expect(hw.faults()).toHaveLength(1);
  });

  it("identity domain bypasses; blocked domain aborts", () => {
    const { smmu, dev, hw } = setup();
    smmu.identityDomain.ops.attachDev(smmu.identityDomain, dev);
    const t = hw.translate({ streamId: 0x12, iova: 0x1234_5000, size: 16, write: true });
    expect(t.ok && t.phys).toBe(0x1234_5000);
    smmu.blockedDomain.ops.attachDev(smmu.blockedDomain, dev);
    expect(hw.translate({ streamId: 0x12, iova: 0x1234_5000, size: 16, write: true }).ok).toBe(false);
  });

  it("an output address beyond the CD's IPS → F_ADDR_SIZE; a clear access flag → F_ACCESS", () => {
    const { smmu, dev, hw, phys } = setup({ ias: 40, oas: 40 });
    const d = smmu.domainAllocPagingFlags(dev, 0);
    d.ops.attachDev(d, dev);
    mapOne(d, 0x1000, RAM, SZ_4K, IOMMU_READ);
    mapOne(d, 0x2000, RAM, SZ_4K, IOMMU_READ);
    const pt = d.pgtbl;
    if (pt === null) throw new Error("no table");
    // Poke the leaf descriptors in RAM as a buggy driver would.
    const leafAddr = (iova: number) => {
      const pte = pt.readPte(iova, 2) as [number, number];
      const tablePa = (pte[0] & 0xfffff000) >>> 0;
      return tablePa + (Math.floor(iova / 4096) % 512) * 8;
    };
    phys.writeU32(leafAddr(0x1000) + 4, phys.readU32(leafAddr(0x1000) + 4) | 0x100);
    phys.writeU32(leafAddr(0x2000), phys.readU32(leafAddr(0x2000)) & ~(1 << 10));
    const a = hw.translate({ streamId: 0x12, iova: 0x1000, size: 4, write: false });
    expect(!a.ok && a.fault.code).toBe("F_ADDR_SIZE");
    const b = hw.translate({ streamId: 0x12, iova: 0x2000, size: 4, write: false });
    expect(!b.ok && b.fault.code).toBe("F_ACCESS");
  });
});

describe("event queue", () => {
  it("overflow sets OVFLG, loses events, and the driver reports and acknowledges it", () => {
    const { smmu, dev, hw, log } = setup({ evtqLog2Size: 2 });
    const d = smmu.domainAllocPagingFlags(dev, 0);
    d.ops.attachDev(d, dev);
    for (let i = 0; i < 6; i++)
      hw.translate({ streamId: 0x12, iova: 0x100_0000 + i * SZ_4K, size: 4, write: false });
    expect(hw.faults().map((f) => f.iova)).toEqual([0x100_0000, 0x100_1000, 0x100_2000, 0x100_3000]);
    expect(hw.evtqOverflowed()).toBe(true);
    expect(hw.eventsLost).toBe(2);
    expect(smmu.evtqThread()).toBe(4);
    expect(log.find({ level: "err", message: "EVTQ overflow detected" })).toHaveLength(1);
    expect(log.dmesg()).toContain("EVTQ overflow detected -- events lost");
    expect(hw.evtqOverflowed()).toBe(false);
    // After the acknowledgement new events are queued again.
    hw.translate({ streamId: 0x12, iova: 0x200_0000, size: 4, write: false });
    expect(hw.faults().map((f) => f.iova)).toEqual([0x200_0000]);
  });

  it("the event thread passes translation faults to the domain's fault handler", () => {
    const { smmu, dev, hw } = setup();
    const d = smmu.domainAllocPagingFlags(dev, 0);
    d.ops.attachDev(d, dev);
    const seen: Array<[string, number, number]> = [];
    d.handler = (_dom, dv, iova, flags) => {
      seen.push([dv.name, iova, flags]);
      return 0;
    };
    hw.translate({ streamId: 0x12, iova: 0x7000, size: 4, write: true });
    hw.translate({ streamId: 0x12, iova: 0x8000, size: 4, write: false });
    expect(smmu.evtqThread()).toBe(2);
    expect(seen).toEqual([
      ["cam0", 0x7000, 1],
      ["cam0", 0x8000, 0],
    ]);
  });
});

describe("command queue and the stale IOTLB window", () => {
  it("an unmapped page keeps translating from the IOTLB until TLBI + CMD_SYNC are consumed", () => {
    const { smmu, dev, hw } = setup();
    const d = smmu.domainAllocPagingFlags(dev, 0);
    d.ops.attachDev(d, dev);
    mapOne(d, 0x4000, RAM + 0x8000, SZ_4K, IOMMU_READ | IOMMU_WRITE);
    expect(hw.translate({ streamId: 0x12, iova: 0x4000, size: 4, write: false }).ok).toBe(true);
    const gather = new IommuIotlbGather();
    expect(d.ops.unmapPages?.(d, 0x4000, SZ_4K, 1, gather)).toBe(SZ_4K);
    expect(d.ops.iovaToPhys?.(d, 0x4000)).toBe(0);
    // The table no longer maps it, but the IOTLB still does: the device can still reach the page.
    const stale = hw.translate({ streamId: 0x12, iova: 0x4000, size: 4, write: true });
    expect(stale.ok && stale.iotlbHit && stale.phys).toBe(RAM + 0x8000);
    const before = hw.commandCounts.TLBI_NH_VA ?? 0;
    iommuIotlbSync(d, gather);
    expect(hw.commandCounts.TLBI_NH_VA).toBe(before + 1);
    const after = hw.translate({ streamId: 0x12, iova: 0x4000, size: 4, write: true });
    expect(!after.ok && after.fault.code).toBe("F_TRANSLATION");
  });

  it("a TLBI in the queue does nothing until the SMMU consumes it", () => {
    const { smmu, dev, hw, phys } = setup();
    const d = smmu.domainAllocPagingFlags(dev, 0);
    d.ops.attachDev(d, dev);
    mapOne(d, 0x4000, RAM + 0x8000, SZ_4K, IOMMU_READ);
    hw.translate({ streamId: 0x12, iova: 0x4000, size: 4, write: false });
    expect(d.ops.unmapPages?.(d, 0x4000, SZ_4K, 1, new IommuIotlbGather())).toBe(SZ_4K);
    // Queue TLBI_NH_VA(asid, 0x4000) and CMD_SYNC by hand, without letting the SMMU run.
    const size = 2 ** hw.cmdqLog2Size;
    const push = (w0: number, w1: number, w2: number, w3: number) => {
      const p = hw.cmdqProd & (2 * size - 1);
      const at = hw.cmdqBase + (p & (size - 1)) * 16;
      phys.writeU32(at, w0);
      phys.writeU32(at + 4, w1);
      phys.writeU32(at + 8, w2);
      phys.writeU32(at + 12, w3);
      hw.cmdqProd = (p + 1) & (2 * size - 1);
    };
    push(CMDQ_OP_TLBI_NH_VA, d.asid << 16, 0x4000 | 1, 0);
    push(CMDQ_OP_CMD_SYNC, 0, 0, 0);
    expect(hw.translate({ streamId: 0x12, iova: 0x4000, size: 4, write: false }).ok).toBe(true);
    expect(hw.processCmdq()).toBe(2);
    expect(hw.translate({ streamId: 0x12, iova: 0x4000, size: 4, write: false }).ok).toBe(false);
  });

  it("an STE change is not seen until CMD_CFGI_STE is consumed", () => {
    const { smmu, dev, hw, phys } = setup();
    const d = smmu.domainAllocPagingFlags(dev, 0);
    d.ops.attachDev(d, dev);
    mapOne(d, 0x4000, RAM + 0x8000, SZ_4K, IOMMU_READ);
    expect(hw.translate({ streamId: 0x12, iova: 0x4000, size: 4, write: false }).ok).toBe(true);
    const ste = hw.strtabBase + 0x12 * 64;
    phys.writeU32(ste, 1 | (4 << 1)); // bypass, without invalidation
    expect(hw.translate({ streamId: 0x12, iova: 0x9000, size: 4, write: false }).ok).toBe(false);
  });
});

describe("nested stage 1 + stage 2", () => {
  it("translates IOVA → IPA → PA, walking stage-1 tables through stage 2, and reports S2 faults", () => {
    const { smmu, dev, hw, phys } = setup();
    const s2 = smmu.domainAllocPagingFlags(dev, IOMMU_HWPT_ALLOC_NEST_PARENT);
    expect(s2.stage).toBe("s2");
    const s1 = smmu.domainAllocPagingFlags(dev, 0);
    const nested = smmu.domainAllocNested(s2, s1);
    // Stage 2 identity-maps guest RAM (where the guest's tables and CD live) with 2M blocks ...
    for (let off = 0; off < 256 * 1024 * 1024; off += SZ_2M)
      mapOne(s2, RAM + off, RAM + off, SZ_2M, IOMMU_READ | IOMMU_WRITE);
    // ... and puts IPA 4G at a different physical page.
    mapOne(s2, 0x1_0000_0000, RAM + 0x0ff0_0000, SZ_4K, IOMMU_READ | IOMMU_WRITE);
    mapOne(s1, 0x10000, 0x1_0000_0000, SZ_4K, IOMMU_READ | IOMMU_WRITE);
    mapOne(s1, 0x20000, 0x2_0000_0000, SZ_4K, IOMMU_READ | IOMMU_WRITE);
    nested.ops.attachDev(nested, dev);
    expect(phys.readU32(hw.strtabBase + 0x12 * 64) & 0xf).toBe(1 | (7 << 1));
    const t = hw.translate({ streamId: 0x12, iova: 0x10010, size: 4, write: true });
    expect(t.ok && t.phys).toBe(RAM + 0x0ff0_0010);
    // 4 stage-1 reads, each table address through a 3-read stage-2 walk (2M blocks), then the
    // output IPA through a 4-read stage-2 walk (4K page).
    expect(hw.counters()["iommu.translate.walk-reads"]).toBe(4 + 4 * 3 + 4);
    const f = hw.translate({ streamId: 0x12, iova: 0x20000, size: 4, write: false });
    expect(!f.ok && f.fault.code).toBe("F_TRANSLATION");
    const at = hw.evtqBase;
    expect(phys.readU32(at + 12) & (1 << 7)).not.toBe(0); // EVTQ_1_S2
    expect(phys.readU32(at + 28)).toBe(2); // IPA bits [51:32]
  });
});

describe("arm_smmu_capable", () => {
  it("reports deferred flush, NOEXEC and coherency like the kernel's driver, not the unmodelled caps", async () => {
    const {
      IOMMU_CAP_DEFERRED_FLUSH,
      IOMMU_CAP_NOEXEC,
      IOMMU_CAP_CACHE_COHERENCY,
      IOMMU_CAP_ENFORCE_CACHE_COHERENCY,
      IOMMU_CAP_DIRTY_TRACKING,
    } = await import("@dmakit/iommu");
    const { smmu, dev } = setup();
    const cap = (c: Parameters<NonNullable<typeof smmu.ops.capable>>[1]) => smmu.ops.capable?.(dev, c);
    expect([cap(IOMMU_CAP_DEFERRED_FLUSH), cap(IOMMU_CAP_NOEXEC), cap(IOMMU_CAP_CACHE_COHERENCY)]).toEqual([
      true,
      true,
      true,
    ]);
    expect([cap(IOMMU_CAP_ENFORCE_CACHE_COHERENCY), cap(IOMMU_CAP_DIRTY_TRACKING)]).toEqual([false, false]);
  });
});
