import { KernelLog, PAGE_SIZE } from "@dmakit/core";
import { pgtableMemoryFromAllocator } from "@dmakit/iommu";
import { bootMemory, CpuCache, GFP_KERNEL } from "@dmakit/mm-pages";
import { describe, expect, it } from "vitest";

describe("pgtableMemoryFromAllocator", () => {
  it("hands out table pages zeroed in RAM with no line left in a non-coherent CPU cache", () => {
    const mem = bootMemory({ banks: [{ start: 0x8000_0000, size: 0x100_0000 }] }, { log: new KernelLog() });
    const cache = new CpuCache(mem.phys, { coherent: false });
    const tables = pgtableMemoryFromAllocator(mem.phys, mem.pages);
    // A previous owner leaves garbage both in RAM and as dirty lines in the cache.
    const pfn = mem.pages.allocPages(GFP_KERNEL, 0)!;
    mem.phys.fill(pfn * PAGE_SIZE, PAGE_SIZE, 0x11);
    cache.cpuWrite(pfn * PAGE_SIZE + 64, new Uint8Array(64).fill(0x22));
    mem.pages.freePages(pfn, 0);

    const table = tables.allocTablePage(0)!;
    expect(table).toBe(pfn);
    const ram = new Uint8Array(PAGE_SIZE);
    mem.phys.read(table * PAGE_SIZE, ram);
    expect(ram.every((b) => b === 0)).toBe(true);
    expect(cache.lineState(table * PAGE_SIZE + 64)).toBe("invalid");
    expect(tables.pagesInUse).toBe(1);
    tables.freeTablePage(table, 0);
    expect(tables.pagesInUse).toBe(0);
  });
});
