import { PAGE_SIZE } from "@dmakit/core";
import { describe, expect, it } from "vitest";
import { KernelVm, PROT_READ, PROT_WRITE, type VmAreaStruct } from "../src/index.js";
import { pattern, userMachine } from "./userMachine.js";

describe("non-cacheable mappings (DMA-coherent remaps)", () => {
  it("vmap with a non-cacheable prot reads and writes RAM directly; PAGE_KERNEL goes through the cache", () => {
    const { mem, pages, cache } = userMachine();
    const vm = new KernelVm({ mem, cache, pages });
    const pfn = pages.allocPage(0) as number;
    const nc = vm.vmap([pfn], 1, "noncached") as number;
    const wb = vm.vmap([pfn], 1) as number;
    const data = pattern(PAGE_SIZE, 1);
    vm.cpuWriteVirt(nc, data);
    const ram = new Uint8Array(PAGE_SIZE);
    mem.read(pfn * PAGE_SIZE, ram);
    expect(ram).toEqual(data);
    expect(cache.stats().residentLines).toBe(0);
    vm.cpuWriteVirt(wb, new Uint8Array(64).fill(9));
    mem.read(pfn * PAGE_SIZE, ram);
    expect(ram[0]).toBe(data[0]);
    expect(cache.stats().dirtyLines).toBe(1);
    vm.vunmap(nc);
    vm.vunmap(wb);
    pages.freePage(pfn);
  });

  it("a device mapping with a non-cacheable vm_page_prot bypasses the cache for user accesses", () => {
    const { um, pages, mem, cache } = userMachine();
    const mm = um.mmAlloc("app");
    const pfn = pages.allocPage(0) as number;
    const va = mm.mmapDevice(PAGE_SIZE, PROT_READ | PROT_WRITE, 0, (vma: VmAreaStruct) =>
      mm.remapPfnRange(vma, vma.start, pfn, PAGE_SIZE, "writecombine"),
    );
    mm.cpuWrite(va, new Uint8Array(8).fill(3));
    const ram = new Uint8Array(8);
    mem.read(pfn * PAGE_SIZE, ram);
    expect(ram).toEqual(new Uint8Array(8).fill(3));
    expect(cache.stats().dirtyLines).toBe(0);
    mm.munmap(va, PAGE_SIZE);
    pages.freePage(pfn);
  });
});
