import { isKernelError, SZ_2M, SZ_4K, SZ_16K, SZ_32M, SZ_64K, SZ_512M } from "@dmakit/core";
import {
  ARM_64_LPAE_S1,
  ARM_64_LPAE_S2,
  allocIoPgtableOps,
  freeIoPgtableOps,
  IO_PGTABLE_QUIRK_NO_WARN,
  IOMMU_READ,
  IOMMU_WRITE,
  type IoPgtableOps,
  IoPgtableRegistry,
} from "@dmakit/iommu";
import { GFP_KERNEL } from "@dmakit/mm-pages";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { registerArmLpaeFormats } from "../src/index.js";
import { countingTlb, lpaeCfg, smallMachine } from "./helpers.js";

/** The reference: leaf mappings as the kernel's io-pgtable would hold them (iova, size, pa). */
interface Leaf {
  iova: number;
  size: number;
  pa: number;
}

const opArb = fc.oneof(
  fc.record({
    t: fc.constant("map" as const),
    big: fc.boolean(),
    slot: fc.nat(4096),
    count: fc.integer({ min: 1, max: 3 }),
    pa: fc.nat(1024),
  }),
  fc.record({ t: fc.constant("unmap" as const), pick: fc.nat(), small: fc.boolean(), off: fc.nat() }),
  fc.record({ t: fc.constant("unmapBig" as const), pick: fc.nat() }),
  fc.record({ t: fc.constant("hole" as const), at: fc.nat() }),
);

const CONFIGS = [
  { name: "S1 4K ias 48", fmt: ARM_64_LPAE_S1, granule: SZ_4K, block: SZ_2M, ias: 48 },
  { name: "S2 4K ias 40 (concatenated)", fmt: ARM_64_LPAE_S2, granule: SZ_4K, block: SZ_2M, ias: 40 },
  { name: "S2 16K ias 48 (concatenated)", fmt: ARM_64_LPAE_S2, granule: SZ_16K, block: SZ_32M, ias: 48 },
  { name: "S1 64K ias 42", fmt: ARM_64_LPAE_S1, granule: SZ_64K, block: SZ_512M, ias: 42 },
] as const;

function check(ops: IoPgtableOps, leaves: Leaf[], granule: number, window: number): void {
  // Block splits make thousands of leaves with big granules: check a strided sample.
  const stride = Math.max(1, Math.floor(leaves.length / 200));
  for (let i = 0; i < leaves.length; i += stride) {
    const l = leaves[i] as Leaf;
    expect(ops.iovaToPhys(l.iova)).toBe(l.pa);
    expect(ops.iovaToPhys(l.iova + l.size - 8)).toBe(l.pa + l.size - 8);
  }
  // Addresses not covered by a leaf must not translate (sampled on a grid).
  const step = Math.max(granule, Math.floor(window / 160 / granule) * granule) + granule;
  for (let a = 0; a < window; a += step) {
    const covered = leaves.find((l) => a >= l.iova && a < l.iova + l.size);
    expect(ops.iovaToPhys(a + 16)).toBe(covered === undefined ? 0 : covered.pa + (a - covered.iova) + 16);
  }
}

describe("io-pgtable-arm: random map/unmap against a leaf list", () => {
  for (const c of CONFIGS)
    it(c.name, () => {
      const window = 4 * c.block;
      fc.assert(
        fc.property(fc.array(opArb, { minLength: 1, maxLength: 25 }), (opList) => {
          const registry = new IoPgtableRegistry();
          registerArmLpaeFormats(registry);
          const { mem, alloc } = smallMachine(64 * 1024 * 1024);
          const baseline = alloc.allocated();
          const { tlb } = countingTlb();
          const cfg = lpaeCfg(mem, c.granule | c.block, c.ias, 48, tlb, IO_PGTABLE_QUIRK_NO_WARN);
          const ops = allocIoPgtableOps(c.fmt, cfg, null, registry) as IoPgtableOps;
          let leaves: Leaf[] = [];
          const overlaps = (a: number, n: number) =>
            leaves.some((l) => l.iova < a + n && a < l.iova + l.size);
          for (const op of opList) {
            if (op.t === "map") {
              const size = op.big ? c.block : c.granule;
              const slots = window / size;
              const iova = (op.slot % slots) * size;
              const count = Math.min(op.count, slots - (op.slot % slots));
              const pa = 0x8000_0000 + (op.pa % 64) * c.block + (op.big ? 0 : (op.pa % 7) * c.granule);
              const expectFail = overlaps(iova, count * size);
              let mapped = 0;
              try {
                while (mapped < count * size) {
                  const r = ops.mapPages(
                    iova + mapped,
                    pa + mapped,
                    size,
                    count - mapped / size,
                    IOMMU_READ | IOMMU_WRITE,
                    GFP_KERNEL,
                  );
                  expect(r).toBeGreaterThan(0);
                  mapped += r;
                }
                expect(expectFail).toBe(false);
                for (let i = 0; i < count; i++)
                  leaves.push({ iova: iova + i * size, size, pa: pa + i * size });
              } catch (e) {
                expect(isKernelError(e) && e.errno).toBe("EEXIST");
                expect(expectFail).toBe(true);
                // iommu_map unwinds what it mapped.
                if (mapped > 0) expect(ops.unmapPages(iova, size, mapped / size, null)).toBe(mapped);
              }
            } else if (op.t === "unmap") {
              if (leaves.length === 0) continue;
              const l = leaves[op.pick % leaves.length] as Leaf;
              const size = op.small ? c.granule : l.size;
              const u = l.iova + (op.off % (l.size / size)) * size;
              expect(ops.unmapPages(u, size, 1, null)).toBe(size);
              // A block split leaves granule-sized leaves around the hole.
              leaves = leaves.filter((x) => x !== l);
              if (size < l.size)
                for (let a = l.iova; a < l.iova + l.size; a += c.granule)
                  if (a < u || a >= u + size)
                    leaves.push({ iova: a, size: c.granule, pa: l.pa + (a - l.iova) });
            } else if (op.t === "unmapBig") {
              const small = leaves.filter((x) => x.size === c.granule);
              if (small.length === 0) continue;
              const l = small[op.pick % small.length] as Leaf;
              const base = l.iova - (l.iova % c.block);
              // The block-level entry is a table: it goes whole, with every leaf under it.
              expect(ops.unmapPages(base, c.block, 1, null)).toBe(c.block);
              leaves = leaves.filter((x) => x.iova < base || x.iova >= base + c.block);
            } else {
              const a = (op.at % (window / c.granule)) * c.granule;
              if (overlaps(a, c.granule)) continue;
              expect(ops.unmapPages(a, c.granule, 1, null)).toBe(0);
            }
            check(ops, leaves, c.granule, window);
          }
          for (const l of leaves) expect(ops.unmapPages(l.iova, l.size, 1, null)).toBe(l.size);
          check(ops, [], c.granule, window);
          freeIoPgtableOps(ops, registry);
          expect(mem.pagesInUse).toBe(0);
          expect(alloc.allocated()).toBe(baseline);
        }),
        { numRuns: c.granule === SZ_4K ? 60 : 25, seed: 0x5eed },
      );
    });
});
