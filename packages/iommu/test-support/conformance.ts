/**
 * The shared IOMMU conformance suite: every IOMMU implementation package runs it against itself
 * through the core interface (`iommuMap`, `iommuUnmap`, `iommuIovaToPhys`, domains, attach) and
 * its {@link IommuHardware} (device transactions, faults, IOTLB, counters).
 *
 * @example
 * // packages/iommu-arm-smmu-v3/test/conformance.test.ts
 * import { describeIommuConformance } from "@dmakit/iommu/conformance";
 * describeIommuConformance("arm-smmu-v3", () => {
 *   const m = buildSmmuMachine();          // PhysMem, PageAllocator, IommuSubsystem, SMMU instance
 *   const dev = m.addPlatformDevice("cam0", { streamId: 0x42 });  // fwspec + iommuProbeDevice
 *   return { iommu: m.iommu, dev, streamId: 0x42, hardware: m.smmu.hardware,
 *            tablePagesInUse: () => m.pgtableMem.pagesInUse, physBase: 0x80000000 };
 * });
 */
import { type Device, errnoOf, Prng, SZ_1M, SZ_2M, SZ_4K } from "@dmakit/core";
import { describe, expect, it } from "vitest";
import {
  IOMMU_READ,
  IOMMU_WRITE,
  type IommuDomain,
  type IommuHardware,
  IommuIotlbGather,
  type IommuSubsystem,
  type IommuTranslation,
  iommuAttachDevice,
  iommuDetachDevice,
  iommuDomainFree,
  iommuFlushIotlbAll,
  iommuGetDmaDomain,
  iommuGetDomainForDev,
  iommuIotlbSync,
  iommuIovaToPhys,
  iommuMap,
  iommuPagingDomainAlloc,
  iommuUnmap,
  iommuUnmapFast,
} from "../src/index.js";

/** What an implementation hands the suite: a machine with one probed device behind its IOMMU. */
export interface IommuConformanceFixture {
  /** The machine's IOMMU subsystem, with the implementation's instance registered. */
  iommu: IommuSubsystem;
  /**
   * A device probed by the IOMMU (`iommuProbeDevice`), alone in its group, with no driver bound
   * and no DMA owner, whose DMA carries {@link streamId}.
   */
  dev: Device;
  /** Stream id (SMMU) or requester id (VT-d) of the device's transactions. */
  streamId: number;
  /** The hardware the device's DMA goes through. */
  hardware: IommuHardware;
  /** Pages currently held for page tables (the implementation's `PgtableMemory.pagesInUse`). */
  tablePagesInUse(): number;
  /** First physical address the suite may map to (default 0x80000000); 1 GiB from there must be mappable. */
  physBase?: number;
  /** Seed for the random sequences (default 1). */
  seed?: number;
}

interface Interval {
  iova: number;
  phys: number;
  size: number;
  prot: number;
}

function read(hw: IommuHardware, sid: number, iova: number): IommuTranslation {
  return hw.translate({ streamId: sid, iova, size: 4, write: false });
}

function write(hw: IommuHardware, sid: number, iova: number): IommuTranslation {
  return hw.translate({ streamId: sid, iova, size: 4, write: true });
}

/**
 * Registers the conformance tests (vitest `describe`/`it`) for one implementation. `makeIommu` is
 * called once per test and must return a fresh machine.
 */
export function describeIommuConformance(name: string, makeIommu: () => IommuConformanceFixture): void {
  describe(`IOMMU conformance: ${name}`, () => {
    /** A fresh unmanaged domain attached to the fixture's device. */
    function setup(): { fx: IommuConformanceFixture; domain: IommuDomain; base: number; tables0: number } {
      const fx = makeIommu();
      const tables0 = fx.tablePagesInUse();
      const domain = iommuPagingDomainAlloc(fx.dev);
      iommuAttachDevice(domain, fx.dev);
      return { fx, domain, base: fx.physBase ?? 0x80000000, tables0 };
    }

    function teardown(fx: IommuConformanceFixture, domain: IommuDomain): void {
      iommuDetachDevice(domain, fx.dev);
      iommuDomainFree(domain);
    }

    it("probes the device into a group with a default domain, and attaches/detaches a paging domain", () => {
      const fx = makeIommu();
      const dflt = iommuGetDmaDomain(fx.dev);
      expect(dflt).not.toBeNull();
      expect(iommuGetDomainForDev(fx.dev)).toBe(dflt);
      const domain = iommuPagingDomainAlloc(fx.dev);
      expect(domain.pgsizeBitmap & SZ_4K).toBe(SZ_4K);
      iommuAttachDevice(domain, fx.dev);
      expect(iommuGetDomainForDev(fx.dev)).toBe(domain);
      iommuDetachDevice(domain, fx.dev);
      expect(iommuGetDomainForDev(fx.dev)).toBe(dflt);
      iommuDomainFree(domain);
    });

    it("maps, translates and unmaps through iommuMap / iommuIovaToPhys / iommuUnmap", () => {
      const { fx, domain, base } = setup();
      iommuMap(domain, 0x100000, base + 0x345000, 3 * SZ_4K, IOMMU_READ | IOMMU_WRITE);
      expect(iommuIovaToPhys(domain, 0x100000)).toBe(base + 0x345000);
      expect(iommuIovaToPhys(domain, 0x102abc)).toBe(base + 0x347abc);
      expect(iommuIovaToPhys(domain, 0x103000)).toBe(0);
      const t = read(fx.hardware, fx.streamId, 0x101010);
      expect(t.ok).toBe(true);
      if (t.ok) expect(t.phys).toBe(base + 0x346010);
      expect(iommuUnmap(domain, 0x100000, 3 * SZ_4K)).toBe(3 * SZ_4K);
      expect(iommuIovaToPhys(domain, 0x101000)).toBe(0);
      expect(iommuUnmap(domain, 0x100000, SZ_4K)).toBe(0);
      teardown(fx, domain);
    });

    it("agrees with an interval map over random map/unmap sequences and frees every table page", () => {
      const { fx, domain, base, tables0 } = setup();
      const rng = new Prng(fx.seed ?? 1);
      const live: Interval[] = [];
      const space = 64 * SZ_2M; // IOVA window [0, 128 MiB)
      const overlaps = (iova: number, size: number): boolean =>
        live.some((r) => r.iova < iova + size && iova < r.iova + r.size);
      const ref = (iova: number): number => {
        for (const r of live) if (iova >= r.iova && iova < r.iova + r.size) return r.phys + (iova - r.iova);
        return 0;
      };
      for (let step = 0; step < 300; step++) {
        const op = rng.below(10);
        if (op < 6 || live.length === 0) {
          // Map: sometimes 2 MiB-aligned chunks (block candidates), mostly 4 KiB-granular runs.
          const big = rng.below(4) === 0;
          const size = big ? SZ_2M * rng.int(1, 2) + SZ_4K * rng.below(3) : SZ_4K * rng.int(1, 40);
          const iova = big ? SZ_2M * rng.below(space / SZ_2M - 3) : SZ_4K * rng.below(space / SZ_4K - 64);
          const phys = base + (big ? SZ_2M * rng.below(200) : SZ_4K * rng.below(100000));
          const prot = rng.below(3) === 0 ? IOMMU_READ : IOMMU_READ | IOMMU_WRITE;
          if (overlaps(iova, size)) {
            expect(errnoOf(() => iommuMap(domain, iova, phys, size, prot))).toBe("EEXIST");
          } else {
            iommuMap(domain, iova, phys, size, prot);
            live.push({ iova, phys, size, prot });
          }
        } else if (op < 9) {
          // Unmap exactly a range that was mapped: the kernel returns its size.
          const r = live.splice(rng.below(live.length), 1)[0] as Interval;
          expect(iommuUnmap(domain, r.iova, r.size)).toBe(r.size);
        } else {
          // Unmap where nothing is mapped: 0 bytes, nothing changes.
          const iova = SZ_4K * rng.below(space / SZ_4K);
          if (!overlaps(iova, SZ_4K)) expect(iommuUnmap(domain, iova, SZ_4K)).toBe(0);
        }
        for (let k = 0; k < 8; k++) {
          const probe = rng.below(space / 8) * 8;
          expect(iommuIovaToPhys(domain, probe)).toBe(ref(probe));
        }
        for (const r of live.slice(-3)) {
          const off = rng.below(r.size / 8) * 8;
          const t = read(fx.hardware, fx.streamId, r.iova + off);
          expect(t.ok && t.phys).toBe(r.phys + off);
        }
      }
      for (const r of live) expect(iommuUnmap(domain, r.iova, r.size)).toBe(r.size);
      teardown(fx, domain);
      expect(fx.tablePagesInUse()).toBe(tables0);
    });

    it("stops unmapping at the first hole and returns the bytes before it", () => {
      const { fx, domain, base } = setup();
      iommuMap(domain, 0x200000, base, 2 * SZ_4K, IOMMU_READ);
      iommuMap(domain, 0x204000, base + 0x10000, SZ_4K, IOMMU_READ);
      expect(iommuUnmap(domain, 0x200000, 5 * SZ_4K)).toBe(2 * SZ_4K);
      expect(iommuIovaToPhys(domain, 0x204000)).toBe(base + 0x10000);
      expect(iommuUnmap(domain, 0x204000, SZ_4K)).toBe(SZ_4K);
      teardown(fx, domain);
    });

    it("uses block mappings for 2 MiB-aligned ranges (fewer table pages than 4 KiB pages)", () => {
      const a = setup();
      const t0 = a.fx.tablePagesInUse();
      iommuMap(a.domain, 4 * SZ_2M, a.base + 8 * SZ_2M, SZ_2M, IOMMU_READ | IOMMU_WRITE);
      const blockPages = a.fx.tablePagesInUse() - t0;
      expect(iommuIovaToPhys(a.domain, 4 * SZ_2M + 0x12345)).toBe(a.base + 8 * SZ_2M + 0x12345);
      const t = read(a.fx.hardware, a.fx.streamId, 4 * SZ_2M + 0x1ff000);
      expect(t.ok && t.phys).toBe(a.base + 8 * SZ_2M + 0x1ff000);
      // A translation through a block covers the rest of the block, not just one 4 KiB page.
      const long = a.fx.hardware.translate({
        streamId: a.fx.streamId,
        iova: 4 * SZ_2M,
        size: SZ_1M,
        write: false,
      });
      expect(long.ok && long.len).toBe(SZ_1M);
      expect(iommuUnmap(a.domain, 4 * SZ_2M, SZ_2M)).toBe(SZ_2M);
      teardown(a.fx, a.domain);

      const b = setup();
      const u0 = b.fx.tablePagesInUse();
      // Same size, but physical address only 4 KiB-aligned: no block possible.
      iommuMap(b.domain, 4 * SZ_2M, b.base + 8 * SZ_2M + SZ_4K, SZ_2M, IOMMU_READ | IOMMU_WRITE);
      const pagePages = b.fx.tablePagesInUse() - u0;
      expect(blockPages).toBeLessThan(pagePages);
      expect(iommuUnmap(b.domain, 4 * SZ_2M, SZ_2M)).toBe(SZ_2M);
      teardown(b.fx, b.domain);
    });

    it("refuses to map over a valid entry with EEXIST and leaves the table unchanged", () => {
      const { fx, domain, base } = setup();
      iommuMap(domain, 0x400000, base + 0x1000, 2 * SZ_4K, IOMMU_READ);
      const pages = fx.tablePagesInUse();
      expect(errnoOf(() => iommuMap(domain, 0x400000, base + 0x9000, SZ_4K, IOMMU_READ))).toBe("EEXIST");
      // Partly new, partly mapped: the new part is unwound.
      expect(errnoOf(() => iommuMap(domain, 0x3fe000, base + 0x20000, 3 * SZ_4K, IOMMU_READ))).toBe("EEXIST");
      expect(iommuIovaToPhys(domain, 0x3fe000)).toBe(0);
      expect(iommuIovaToPhys(domain, 0x3ff000)).toBe(0);
      expect(iommuIovaToPhys(domain, 0x400000)).toBe(base + 0x1000);
      expect(iommuIovaToPhys(domain, 0x401000)).toBe(base + 0x2000);
      expect(fx.tablePagesInUse()).toBeLessThanOrEqual(pages + 1);
      expect(iommuUnmap(domain, 0x400000, 2 * SZ_4K)).toBe(2 * SZ_4K);
      teardown(fx, domain);
    });

    it("faults a device access to an unmapped IOVA with a translation fault record", () => {
      const { fx, domain, base } = setup();
      iommuMap(domain, 0x600000, base, SZ_4K, IOMMU_READ | IOMMU_WRITE);
      fx.hardware.drainFaults();
      const t = write(fx.hardware, fx.streamId, 0x700010);
      expect(t.ok).toBe(false);
      if (!t.ok) {
        expect(t.fault.kind).toBe("translation");
        expect(t.fault.iova).toBe(0x700010);
        expect(t.fault.streamId).toBe(fx.streamId);
        expect(t.fault.write).toBe(true);
        expect(typeof t.fault.code).toBe("string");
      }
      const q = [...fx.hardware.faults()];
      expect(q.length).toBeGreaterThanOrEqual(1);
      expect(q[q.length - 1]?.iova).toBe(0x700010);
      expect(fx.hardware.drainFaults().length).toBe(q.length);
      expect(fx.hardware.faults().length).toBe(0);
      teardown(fx, domain);
    });

    it("faults a write to a read-only mapping with a permission fault, and serves the read", () => {
      const { fx, domain, base } = setup();
      iommuMap(domain, 0x800000, base + 0x5000, SZ_4K, IOMMU_READ);
      const r = read(fx.hardware, fx.streamId, 0x800100);
      expect(r.ok && r.phys).toBe(base + 0x5100);
      const w = write(fx.hardware, fx.streamId, 0x800100);
      expect(w.ok).toBe(false);
      if (!w.ok) {
        expect(w.fault.kind).toBe("permission");
        expect(w.fault.write).toBe(true);
        expect(w.fault.iova).toBe(0x800100);
      }
      teardown(fx, domain);
    });

    it("keeps translating a stale IOTLB entry after iommuUnmapFast until the gather is synced", () => {
      const { fx, domain, base } = setup();
      iommuMap(domain, 0xa00000, base + 0x7000, SZ_4K, IOMMU_READ | IOMMU_WRITE);
      expect(read(fx.hardware, fx.streamId, 0xa00000).ok).toBe(true); // fills the IOTLB
      const gather = new IommuIotlbGather();
      expect(iommuUnmapFast(domain, 0xa00000, SZ_4K, gather)).toBe(SZ_4K);
      expect(iommuIovaToPhys(domain, 0xa00000)).toBe(0); // the table no longer maps it ...
      const stale = read(fx.hardware, fx.streamId, 0xa00000); // ... but the IOTLB still does
      expect(stale.ok && stale.phys).toBe(base + 0x7000);
      iommuIotlbSync(domain, gather);
      const after = read(fx.hardware, fx.streamId, 0xa00000);
      expect(after.ok).toBe(false);
      if (!after.ok) expect(after.fault.kind).toBe("translation");
      teardown(fx, domain);
    });

    it("iommuUnmap invalidates synchronously; iommuFlushIotlbAll drops every entry", () => {
      const { fx, domain, base } = setup();
      iommuMap(domain, 0xc00000, base, 2 * SZ_4K, IOMMU_READ);
      expect(read(fx.hardware, fx.streamId, 0xc00000).ok).toBe(true);
      expect(iommuUnmap(domain, 0xc00000, SZ_4K)).toBe(SZ_4K);
      expect(read(fx.hardware, fx.streamId, 0xc00000).ok).toBe(false);
      // Stale entry for the second page, removed by a full flush.
      expect(read(fx.hardware, fx.streamId, 0xc01000).ok).toBe(true);
      const gather = new IommuIotlbGather();
      expect(iommuUnmapFast(domain, 0xc01000, SZ_4K, gather)).toBe(SZ_4K);
      expect(read(fx.hardware, fx.streamId, 0xc01000).ok).toBe(true);
      iommuFlushIotlbAll(domain);
      expect(read(fx.hardware, fx.streamId, 0xc01000).ok).toBe(false);
      iommuIotlbSync(domain, gather);
      teardown(fx, domain);
    });

    it("counts IOTLB hits, misses and walks", () => {
      const { fx, domain, base } = setup();
      iommuMap(domain, 0xe00000, base, SZ_4K, IOMMU_READ);
      const c0 = { ...fx.hardware.counters() };
      expect(read(fx.hardware, fx.streamId, 0xe00000).ok).toBe(true);
      expect(read(fx.hardware, fx.streamId, 0xe00008).ok).toBe(true);
      const c1 = fx.hardware.counters();
      const d = (k: string): number => (c1[k] ?? 0) - (c0[k] ?? 0);
      expect(d("iommu.translate.iotlb-hit")).toBe(1);
      expect(d("iommu.translate.iotlb-miss")).toBe(1);
      expect(d("iommu.translate.walk")).toBe(1);
      teardown(fx, domain);
    });
  });
}
