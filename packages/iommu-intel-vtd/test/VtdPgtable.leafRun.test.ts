import { KernelLog, SZ_2M, SZ_4K } from "@dmakit/core";
import { IommuPagesList, pgtableMemoryFromAllocator } from "@dmakit/iommu";
import { PageAllocator, PhysMem } from "@dmakit/mm-pages";
import { describe, expect, it } from "vitest";
import { DMA_PTE_READ, DMA_PTE_WRITE, VtdPgtable } from "../src/index.js";

const RW = DMA_PTE_READ | DMA_PTE_WRITE;
const P = (addr: number) => addr / SZ_4K;

function setup() {
  const log = new KernelLog();
  const phys = new PhysMem({ banks: [{ start: 0x8000_0000, size: 64 * 1024 * 1024 }] }, { log });
  const mem = pgtableMemoryFromAllocator(phys, new PageAllocator(phys));
  return new VtdPgtable({ mem, agaw: 2, log });
}

// Unmaps inside one leaf table clear PTEs in place; a range covering the whole leaf table still
// unlinks the table and hands it to the freelist (dma_pte_clear_level), as before.
describe("VtdPgtable.unmap within one leaf table", () => {
  it("clears up to the first hole, keeps the table, and leaves the rest mapped", () => {
    const pt = setup();
    // PA 4 KiB-misaligned: 512 4 KiB PTEs in one leaf table.
    pt.map(P(SZ_2M), P(0x10_1000), 512, RW);
    const tables = pt.tablePages;
    const fl = new IommuPagesList();
    expect(pt.unmap(P(SZ_2M), 511, fl)).toBe(511);
    expect(fl.isEmpty()).toBe(true);
    expect(pt.tablePages).toBe(tables);
    expect(pt.iovaToPhys(SZ_2M + 510 * SZ_4K)).toBe(0);
    expect(pt.iovaToPhys(SZ_2M + 511 * SZ_4K)).toBe(0x10_1000 + 511 * SZ_4K);
    // From the middle, across a hole: stops at the hole.
    pt.map(P(SZ_2M + 100 * SZ_4K), P(0x20_0000), 10, RW);
    expect(pt.unmap(P(SZ_2M + 105 * SZ_4K), 50, fl)).toBe(5);
    expect(pt.iovaToPhys(SZ_2M + 104 * SZ_4K)).toBe(0x20_0000 + 4 * SZ_4K);
    expect(pt.iovaToPhys(SZ_2M + 105 * SZ_4K)).toBe(0);
    expect(fl.isEmpty()).toBe(true);
  });

  it("a range covering the whole leaf table frees the table; one crossing tables unmaps both parts", () => {
    const pt = setup();
    pt.map(P(SZ_2M), P(0x10_1000), 1024, RW);
    const tables = pt.tablePages;
    const fl = new IommuPagesList();
    expect(pt.unmap(P(SZ_2M), 512, fl)).toBe(512);
    expect(fl.length).toBe(1);
    fl.put();
    expect(pt.tablePages).toBe(tables - 1);
    // 2 pages at the end of the second table + 2 in a third: crosses a table boundary.
    pt.map(P(3 * SZ_2M), P(0x30_1000), 2, RW);
    expect(pt.unmap(P(3 * SZ_2M - 2 * SZ_4K), 4, fl)).toBe(4);
    expect(pt.iovaToPhys(3 * SZ_2M - 3 * SZ_4K)).toBe(0x10_1000 + 1021 * SZ_4K);
    expect(pt.iovaToPhys(3 * SZ_2M + SZ_4K)).toBe(0);
    expect(fl.isEmpty()).toBe(true);
  });
});
