import { isKernelError, SZ_1G, SZ_2G, SZ_2M, SZ_4K, SZ_16K, SZ_32M, SZ_64K, SZ_512M } from "@dmakit/core";
import {
  ARM_64_LPAE_S1,
  ARM_64_LPAE_S2,
  allocIoPgtableOps,
  freeIoPgtableOps,
  IO_PGTABLE_QUIRK_NO_WARN,
  IOMMU_CACHE,
  IOMMU_NOEXEC,
  IOMMU_READ,
  IOMMU_WRITE,
  IoPgtableRegistry,
} from "@dmakit/iommu";
import { GFP_KERNEL } from "@dmakit/mm-pages";
import { describe, expect, it } from "vitest";
import { type ArmLpaeIoPgtable, type ArmLpaeS2Cfg, registerArmLpaeFormats } from "../src/index.js";
import { countingTlb, lpaeCfg, smallMachine } from "./helpers.js";

const PGSIZES = [SZ_4K | SZ_2M | SZ_1G, SZ_16K | SZ_32M, SZ_64K | SZ_512M] as const;
const ADDRESS_SIZES = [32, 36, 40, 42, 44, 48] as const;

function setBits(bm: number): number[] {
  const out: number[] = [];
  for (let j = 0; j < 53; j++) if (Math.floor(bm / 2 ** j) % 2 === 1) out.push(2 ** j);
  return out;
}

function expectErrno(fn: () => unknown, errno: string): void {
  try {
    fn();
  } catch (e) {
    expect(isKernelError(e) && e.errno).toBe(errno);
    return;
  }
  throw new Error(`expected ${errno}`);
}

describe("io-pgtable-arm selftest (arm_lpae_run_tests for every granule and address size)", () => {
  const registry = new IoPgtableRegistry();
  registerArmLpaeFormats(registry);
  for (const pgsize of PGSIZES)
    for (let j = 0; j < ADDRESS_SIZES.length; j++)
      for (let k = 0; k <= j; k++) {
        const ias = ADDRESS_SIZES[k] as number;
        const oas = ADDRESS_SIZES[j] as number;
        for (const fmt of [ARM_64_LPAE_S1, ARM_64_LPAE_S2] as const)
          it(`pgsize 0x${pgsize.toString(16)} ias ${ias} oas ${oas} ${fmt === ARM_64_LPAE_S1 ? "S1" : "S2"}`, () => {
            const { mem } = smallMachine(64 * 1024 * 1024);
            const { tlb } = countingTlb();
            const cfg = lpaeCfg(mem, pgsize, ias, oas, tlb, IO_PGTABLE_QUIRK_NO_WARN);
            const ops = allocIoPgtableOps(fmt, cfg, cfg, registry);
            expect(ops).not.toBeNull();
            if (ops === null) return;
            // Empty page tables shouldn't provide any translations.
            expect(ops.iovaToPhys(42)).toBe(0);
            expect(ops.iovaToPhys(SZ_1G + 42)).toBe(0);
            expect(ops.iovaToPhys(SZ_2G + 42)).toBe(0);
            const sizes = setBits(cfg.pgsizeBitmap);
            // Distinct mappings of different granule sizes.
            let iova = 0;
            for (const size of sizes) {
              expect(
                ops.mapPages(
                  iova,
                  iova,
                  size,
                  1,
                  IOMMU_READ | IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_CACHE,
                  GFP_KERNEL,
                ),
              ).toBe(size);
              // Overlapping mappings
              expectErrno(
                () => ops.mapPages(iova, iova + size, size, 1, IOMMU_READ | IOMMU_NOEXEC, GFP_KERNEL),
                "EEXIST",
              );
              expect(ops.iovaToPhys(iova + 42)).toBe(iova + 42);
              iova += SZ_1G;
            }
            // Partial unmap: one granule inside each block splits it.
            iova = SZ_1G;
            for (const size of sizes.slice(1)) {
              const granule = sizes[0] as number;
              expect(ops.unmapPages(iova + size - granule, granule, 1, null)).toBe(granule);
              expect(ops.iovaToPhys(iova + size - granule + 42)).toBe(0);
              expect(ops.iovaToPhys(iova + 42)).toBe(iova + 42);
              expect(ops.iovaToPhys(iova + size - 2 * granule + 42)).toBe(iova + size - 2 * granule + 42);
              // Remap of the hole works at granule size; remapping the block over it does not.
              expect(
                ops.mapPages(
                  iova + size - granule,
                  iova + size - granule,
                  granule,
                  1,
                  IOMMU_READ,
                  GFP_KERNEL,
                ),
              ).toBe(granule);
              expectErrno(() => ops.mapPages(iova, iova, size, 1, IOMMU_READ, GFP_KERNEL), "EEXIST");
              iova += SZ_1G;
            }
            // Full unmap
            iova = 0;
            for (const size of sizes) {
              expect(ops.unmapPages(iova, size, 1, null)).toBe(size);
              expect(ops.iovaToPhys(iova + 42)).toBe(0);
              // Remap full block
              expect(ops.mapPages(iova, iova, size, 1, IOMMU_WRITE, GFP_KERNEL)).toBe(size);
              expect(ops.iovaToPhys(iova + 42)).toBe(iova + 42);
              iova += SZ_1G;
            }
            // Map/unmap the last largest supported page of the IAS (concatenated-table corner).
            const size = sizes[sizes.length - 1] as number;
            iova = 2 ** cfg.ias - size;
            expect(
              ops.mapPages(
                iova,
                iova,
                size,
                1,
                IOMMU_READ | IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_CACHE,
                GFP_KERNEL,
              ),
            ).toBe(size);
            expect(ops.iovaToPhys(iova + 42)).toBe(iova + 42);
            expect(ops.unmapPages(iova, size, 1, null)).toBe(size);
            expect(ops.iovaToPhys(iova + 42)).toBe(0);
            freeIoPgtableOps(ops, registry);
            expect(mem.pagesInUse).toBe(0);
          });
      }
});

describe("geometry", () => {
  const registry = new IoPgtableRegistry();
  registerArmLpaeFormats(registry);
  const cases: Array<[number, number, number, number, number, number]> = [
    // fmt, pgsize, ias, levels, start level, pgd bytes
    [ARM_64_LPAE_S1, SZ_4K, 48, 4, 0, 4096],
    [ARM_64_LPAE_S1, SZ_4K, 32, 3, 1, 32],
    [ARM_64_LPAE_S1, SZ_4K, 40, 4, 0, 16],
    [ARM_64_LPAE_S2, SZ_4K, 40, 3, 1, 8192],
    [ARM_64_LPAE_S2, SZ_4K, 42, 3, 1, 32768],
    [ARM_64_LPAE_S2, SZ_4K, 44, 4, 0, 256],
    [ARM_64_LPAE_S2, SZ_16K, 48, 3, 1, 32768],
    [ARM_64_LPAE_S1, SZ_16K, 48, 4, 0, 16],
    [ARM_64_LPAE_S1, SZ_64K, 48, 3, 1, 512],
    [ARM_64_LPAE_S2, SZ_64K, 42, 2, 2, 524288 / 8],
  ];
  for (const [fmt, pgsize, ias, levels, start, pgdBytes] of cases)
    it(`fmt ${fmt} granule ${pgsize} ias ${ias}: ${levels} levels from ${start}, pgd ${pgdBytes} B`, () => {
      const { mem } = smallMachine(64 * 1024 * 1024);
      const cfg = lpaeCfg(mem, pgsize, ias, 48, null);
      const ops = allocIoPgtableOps(fmt as 2 | 3, cfg, null, registry);
      const t = registry.pgtableOf(ops as NonNullable<typeof ops>) as unknown as ArmLpaeIoPgtable;
      expect([t.levels, t.startLevel, t.pgdSize]).toEqual([levels, start, pgdBytes]);
      if (fmt === ARM_64_LPAE_S2) {
        const vtcr = (cfg.fmtCfg as ArmLpaeS2Cfg).vtcr;
        expect(vtcr.tsz).toBe(64 - ias);
        // SL0 encodes the start level (4K granule counts from level 2 down, others from 3).
        const sl = pgsize === SZ_4K ? 2 - vtcr.sl : 3 - vtcr.sl;
        expect(sl).toBe(start);
      }
      freeIoPgtableOps(ops, registry);
    });
});
