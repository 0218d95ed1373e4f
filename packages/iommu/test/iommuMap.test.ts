import { Device, errnoOf, SZ_1G, SZ_2M, SZ_4K } from "@dmakit/core";
import { __GFP_DMA32 } from "@dmakit/mm-pages";
import { describe, expect, it } from "vitest";
import {
  IOMMU_DOMAIN_BLOCKED,
  IOMMU_DOMAIN_IDENTITY,
  IOMMU_READ,
  IOMMU_WRITE,
  IommuDomain,
  IommuIotlbGather,
  iommuAttachDevice,
  iommuFwspecAddIds,
  iommuFwspecInit,
  iommuIotlbGatherAddPage,
  iommuIotlbGatherAddRange,
  iommuIotlbGatherIsDisjoint,
  iommuIotlbSync,
  iommuIovaToPhys,
  iommuMap,
  iommuMapNosync,
  iommuMapSg,
  iommuPagingDomainAlloc,
  iommuProbeDevice,
  iommuSyncMap,
  iommuUnmap,
  iommuUnmapFast,
} from "../src/index.js";
import { type FakeMachine, makeFakeMachine, FAKE_RAM_BASE as RAM } from "./support/fakeIommu.js";

function setup(pgsizes?: number): { m: FakeMachine; dev: Device; domain: IommuDomain } {
  const m = makeFakeMachine({}, pgsizes);
  const dev = new Device({ name: "dma0", bus: "platform", log: m.log });
  iommuFwspecInit(dev, m.fake.inst);
  iommuFwspecAddIds(dev, [7]);
  iommuProbeDevice(m.iommu, dev);
  const domain = iommuPagingDomainAlloc(dev);
  iommuAttachDevice(domain, dev);
  return { m, dev, domain };
}

describe("iommuMap", () => {
  it("rejects an unaligned request with EINVAL, the kernel's pr_err text, and no state change", () => {
    const { m, domain } = setup();
    const pages = m.mem.pagesInUse;
    expect(errnoOf(() => iommuMap(domain, 0x10000, RAM + 0x800, SZ_4K, IOMMU_READ))).toBe("EINVAL");
    const rec = m.log.find({ level: "err", prefix: "iommu" });
    expect(rec.at(-1)?.message).toBe(
      "unaligned: iova 0x10000 pa 0x0000000080000800 size 0x1000 min_pagesz 0x1000",
    );
    expect(errnoOf(() => iommuMap(domain, 0x10200, RAM, SZ_4K, IOMMU_READ))).toBe("EINVAL");
    expect(errnoOf(() => iommuMap(domain, 0x10000, RAM, 0x1800, IOMMU_READ))).toBe("EINVAL");
    expect(m.mem.pagesInUse).toBe(pages);
    expect(iommuIovaToPhys(domain, 0x10000)).toBe(0);
  });

  it("EINVAL for non-paging domains, ENODEV (WARN) for a paging domain without map_pages", () => {
    const { m, domain } = setup();
    const ident = m.fake.ops.identityDomain as IommuDomain;
    expect(errnoOf(() => iommuMap(ident, 0, RAM, SZ_4K, IOMMU_READ))).toBe("EINVAL");
    const bare = new IommuDomain({
      type: domain.type,
      ops: { attachDev: () => {} },
      pgsizeBitmap: SZ_4K,
      log: m.log,
    });
    const warns = m.log.warnCount;
    expect(errnoOf(() => iommuMap(bare, 0, RAM, SZ_4K, IOMMU_READ))).toBe("ENODEV");
    expect(m.log.warnCount).toBe(warns + 1);
    expect(errnoOf(() => iommuMap(domain, 0, RAM, SZ_4K, IOMMU_READ, __GFP_DMA32))).toBe("EINVAL");
  });

  it("maps with the largest page sizes alignment allows", () => {
    const { domain } = setup();
    // 4K + 2M + 4K with iova and paddr congruent mod 2M: 4K page, one 2M block, 4K page.
    iommuMap(domain, SZ_2M - SZ_4K, RAM + SZ_2M - SZ_4K, SZ_2M + 2 * SZ_4K, IOMMU_READ);
    const pt = [
      ...(domain as unknown as { pgtbl: { leaves: Map<number, { size: number }> } }).pgtbl.leaves.entries(),
    ]
      .map(([iova, l]) => [iova, l.size])
      .sort((a, b) => (a[0] as number) - (b[0] as number));
    expect(pt).toEqual([
      [SZ_2M - SZ_4K, SZ_4K],
      [SZ_2M, SZ_2M],
      [2 * SZ_2M, SZ_4K],
    ]);
  });

  it("unwinds a partial failure: nothing stays mapped, table pages come back, the error is the driver's", () => {
    const { m, domain } = setup();
    const pages = m.mem.pagesInUse;
    m.fake.knobs.failAfterLeaves = 5;
    expect(errnoOf(() => iommuMap(domain, 0x100000, RAM, 8 * SZ_4K, IOMMU_READ))).toBe("ENOMEM");
    for (let i = 0; i < 8; i++) expect(iommuIovaToPhys(domain, 0x100000 + i * SZ_4K)).toBe(0);
    expect(m.mem.pagesInUse).toBe(pages);
    // Failure in a second map_pages call (after a 2M block): the block is unwound too.
    m.fake.knobs.failAfterLeaves = 1;
    expect(errnoOf(() => iommuMap(domain, SZ_2M, RAM + SZ_2M, SZ_2M + SZ_4K, IOMMU_READ))).toBe("ENOMEM");
    expect(iommuIovaToPhys(domain, SZ_2M)).toBe(0);
    m.fake.knobs.failAfterLeaves = -1;
  });

  it("iommuMapNosync defers iotlb_sync_map to one iommuSyncMap", () => {
    const { m, domain } = setup();
    const before = m.fake.syncMaps;
    iommuMapNosync(domain, 0x1000, RAM, SZ_4K, IOMMU_READ);
    iommuMapNosync(domain, 0x2000, RAM + SZ_4K, SZ_4K, IOMMU_READ);
    expect(m.fake.syncMaps).toBe(before);
    iommuSyncMap(domain, 0x1000, 2 * SZ_4K);
    expect(m.fake.syncMaps).toBe(before + 1);
    iommuMap(domain, 0x3000, RAM, SZ_4K, IOMMU_READ);
    expect(m.fake.syncMaps).toBe(before + 2);
  });
});

describe("iommuUnmap", () => {
  it("returns the kernel's byte counts: whole blocks, stops at the first hole, 0 when unaligned", () => {
    const { m, domain } = setup();
    iommuMap(domain, SZ_2M, RAM, SZ_2M, IOMMU_READ | IOMMU_WRITE);
    // A 4K unmap at the start of a block takes the whole block (what the fake and VT-d do).
    expect(iommuUnmap(domain, SZ_2M, SZ_4K)).toBe(SZ_2M);
    iommuMap(domain, 0x10000, RAM, 2 * SZ_4K, IOMMU_READ);
    iommuMap(domain, 0x13000, RAM, SZ_4K, IOMMU_READ);
    expect(iommuUnmap(domain, 0x10000, 4 * SZ_4K)).toBe(2 * SZ_4K);
    expect(iommuIovaToPhys(domain, 0x13000)).toBe(RAM);
    expect(iommuUnmap(domain, 0x12000, 2 * SZ_4K)).toBe(0);
    expect(iommuUnmap(domain, 0x13800, SZ_4K)).toBe(0);
    expect(m.log.find({ level: "err" }).at(-1)?.message).toBe(
      "unaligned: iova 0x13800 size 0x1000 min_pagesz 0x1000",
    );
    expect(iommuIovaToPhys(domain, 0x13000)).toBe(RAM);
    expect(iommuUnmap(domain, 0x13000, SZ_4K)).toBe(SZ_4K);
  });

  it("returns 0 with a WARN for non-paging domains", () => {
    const { m } = setup();
    const w = m.log.warnCount;
    expect(iommuUnmap(m.fake.ops.identityDomain as IommuDomain, 0, SZ_4K)).toBe(0);
    expect(m.log.warnCount).toBe(w + 1);
  });

  it("iommuUnmapFast gathers; table pages on the freelist are freed only at iommuIotlbSync", () => {
    const { m, domain } = setup();
    const pages0 = m.mem.pagesInUse;
    iommuMap(domain, 0x200000, RAM, 3 * SZ_4K, IOMMU_READ);
    expect(m.mem.pagesInUse).toBe(pages0 + 1);
    const gather = new IommuIotlbGather();
    const syncs = m.fake.syncs;
    expect(iommuUnmapFast(domain, 0x200000, 3 * SZ_4K, gather)).toBe(3 * SZ_4K);
    expect(m.fake.syncs).toBe(syncs);
    expect(gather.start).toBe(0x200000);
    expect(gather.end).toBe(0x202fff);
    expect(gather.pgsize).toBe(SZ_4K);
    expect(gather.freelist.length).toBe(1);
    expect(m.mem.pagesInUse).toBe(pages0 + 1);
    iommuIotlbSync(domain, gather);
    expect(m.fake.syncs).toBe(syncs + 1);
    expect(m.mem.pagesInUse).toBe(pages0);
    expect(gather.end).toBe(0);
    expect(gather.freelist.isEmpty()).toBe(true);
  });
});

describe("IommuIotlbGather", () => {
  it("is_disjoint: touching ranges merge, gaps and size changes force a sync first", () => {
    const g = new IommuIotlbGather();
    expect(iommuIotlbGatherIsDisjoint(g, 0x5000, SZ_4K)).toBe(false); // empty gather
    iommuIotlbGatherAddRange(g, 0x5000, SZ_4K);
    expect(iommuIotlbGatherIsDisjoint(g, 0x6000, SZ_4K)).toBe(false); // adjacent above
    expect(iommuIotlbGatherIsDisjoint(g, 0x4000, SZ_4K)).toBe(false); // adjacent below
    expect(iommuIotlbGatherIsDisjoint(g, 0x7000, SZ_4K)).toBe(true);
    expect(iommuIotlbGatherIsDisjoint(g, 0x3000, SZ_4K)).toBe(true);

    const { m, domain } = setup();
    const gather = new IommuIotlbGather();
    const s0 = m.fake.syncs;
    iommuIotlbGatherAddPage(domain, gather, 0x10000, SZ_4K);
    iommuIotlbGatherAddPage(domain, gather, 0x11000, SZ_4K);
    iommuIotlbGatherAddPage(domain, gather, 0xf000, SZ_4K);
    expect(m.fake.syncs).toBe(s0);
    expect([gather.start, gather.end]).toEqual([0xf000, 0x11fff]);
    iommuIotlbGatherAddPage(domain, gather, 0x20000, SZ_4K); // disjoint: sync, restart
    expect(m.fake.syncs).toBe(s0 + 1);
    expect([gather.start, gather.end]).toEqual([0x20000, 0x20fff]);
    iommuIotlbGatherAddPage(domain, gather, 0x21000, SZ_2M); // adjacent but another size: sync
    expect(m.fake.syncs).toBe(s0 + 2);
    expect([gather.start, gather.end, gather.pgsize]).toEqual([0x21000, 0x21000 + SZ_2M - 1, SZ_2M]);
  });
});

describe("iommuMapSg", () => {
  it("merges physically contiguous segments, skips bus addresses, maps back to back", () => {
    const { domain } = setup();
    const segs = [
      { phys: RAM + 0x10000, len: SZ_4K, bus: false },
      { phys: RAM + 0x11000, len: 2 * SZ_4K, bus: false },
      { phys: 0xf0000000, len: SZ_4K, bus: true },
      { phys: RAM + 0x40000, len: SZ_4K, bus: false },
    ];
    const sg = {
      nents: segs.length,
      phys: (i: number) => (segs[i] as (typeof segs)[0]).phys,
      length: (i: number) => (segs[i] as (typeof segs)[0]).len,
      isBusAddress: (i: number) => (segs[i] as (typeof segs)[0]).bus,
    };
    expect(iommuMapSg(domain, 0x100000, sg, IOMMU_READ)).toBe(4 * SZ_4K);
    expect(iommuIovaToPhys(domain, 0x100000)).toBe(RAM + 0x10000);
    expect(iommuIovaToPhys(domain, 0x102000)).toBe(RAM + 0x12000);
    expect(iommuIovaToPhys(domain, 0x103000)).toBe(RAM + 0x40000);
    expect(iommuIovaToPhys(domain, 0x104000)).toBe(0);
  });

  it("returns a negative errno and unmaps everything on failure", () => {
    const { domain } = setup();
    const phys = [RAM, RAM + 0x5000, RAM + 0x9800];
    const sg = { nents: 3, phys: (i: number) => phys[i] as number, length: () => SZ_4K };
    expect(iommuMapSg(domain, 0x300000, sg, IOMMU_READ)).toBe(-22);
    expect(iommuIovaToPhys(domain, 0x300000)).toBe(0);
    expect(iommuIovaToPhys(domain, 0x301000)).toBe(0);
  });
});

describe("iommuIovaToPhys", () => {
  it("identity returns the iova, blocked 0, paging asks the table", () => {
    const { m, domain } = setup();
    expect(iommuIovaToPhys(m.fake.ops.identityDomain as IommuDomain, 0x1234567)).toBe(0x1234567);
    expect((m.fake.ops.blockedDomain as IommuDomain).type).toBe(IOMMU_DOMAIN_BLOCKED);
    expect(iommuIovaToPhys(m.fake.ops.blockedDomain as IommuDomain, 0x1234567)).toBe(0);
    expect((m.fake.ops.identityDomain as IommuDomain).type).toBe(IOMMU_DOMAIN_IDENTITY);
    iommuMap(domain, SZ_1G, RAM, SZ_2M, IOMMU_READ | IOMMU_WRITE);
    expect(iommuIovaToPhys(domain, SZ_1G + 0x1abcd)).toBe(RAM + 0x1abcd);
  });
});
