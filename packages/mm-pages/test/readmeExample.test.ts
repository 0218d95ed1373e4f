// The quick example of README.md, verbatim, with assertions on the values its comments show.

import { KernelLog, PAGE_SIZE, SZ_64M, SZ_256M } from "@dmakit/core";
import { bootMemory, CpuCache, cmaAlloc, cmaRelease, GFP_KERNEL, KernelVm } from "@dmakit/mm-pages";
import { describe, expect, it } from "vitest";

describe("README quick example", () => {
  it("runs as written in README.md", () => {
    // 256 MiB of RAM at 2 GiB with a 64 MiB CMA area; devices do not snoop the CPU cache (arm64 SoC).
    const log = new KernelLog();
    const { phys, pages, cma } = bootMemory(
      { banks: [{ start: 0x8000_0000, size: SZ_256M }] },
      { log, cma: [{ name: "reserved", size: SZ_64M }] },
    );
    const cache = new CpuCache(phys, { coherent: false });
    const vm = new KernelVm({ mem: phys, cache, pages });

    // The CPU fills a buffer; a non-coherent device reading RAM sees it only after a clean.
    const pfn = pages.allocPages(GFP_KERNEL, 2)!; // 4 pages, naturally aligned (null when none free)
    vm.cpuWriteVirt(vm.pageAddress(pfn), new Uint8Array(64).fill(0xab)); // a dirty line; RAM untouched
    const seen = new Uint8Array(64);
    cache.deviceRead(pfn * PAGE_SIZE, seen, { device: "cam0" });
    const before = seen[0]; // 0
    const finding = cache.findings()[0]?.kind; // "device-read-dirty", also logged as "cache: stale read"
    cache.cleanRange(pfn * PAGE_SIZE, 64); // dcache_clean_poc, as dma_sync_single_for_device does
    cache.deviceRead(pfn * PAGE_SIZE, seen, { device: "cam0" });
    const after = seen[0]; // 0xab

    // 2 MiB physically contiguous from the CMA area, then everything back.
    const block = cmaAlloc(cma[0]!, 512, 9, false)!; // 512 pages, 2 MiB-aligned
    const held = pages.report().allocated; // 516 (4 + 512 pages)
    cmaRelease(cma[0]!, block, 512);
    pages.freePages(pfn, 2);
    const left = pages.report().allocated; // 0

    // The values the README's comments show.
    expect(before).toBe(0);
    expect(finding).toBe("device-read-dirty");
    expect(log.find({ prefix: "cache", message: "stale read" })).toHaveLength(1);
    expect(after).toBe(0xab);
    expect(block % 512).toBe(0);
    expect(held).toBe(516);
    expect(left).toBe(0);
  });
});
