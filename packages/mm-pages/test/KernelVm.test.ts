import { isKernelError, PAGE_SIZE } from "@dmakit/core";
import { describe, expect, it } from "vitest";
import { GFP_KERNEL, KernelVm, PAGE_OFFSET, VMALLOC_END, VMALLOC_START } from "../src/index.js";
import { pattern, RAM, userMachine } from "./userMachine.js";

function vm() {
  const m = userMachine();
  return { ...m, kvm: new KernelVm({ mem: m.mem, cache: m.cache, pages: m.pages }) };
}

describe("KernelVm: linear map", () => {
  it("page_address / virt_to_phys / phys_to_virt round-trip below 2^53", () => {
    const { kvm, log } = vm();
    const pfn = RAM / PAGE_SIZE + 5;
    const va = kvm.pageAddress(pfn);
    expect(va).toBe(PAGE_OFFSET + RAM + 5 * PAGE_SIZE);
    expect(Number.isSafeInteger(VMALLOC_END)).toBe(true);
    expect(kvm.virtToPhys(va + 12)).toBe(RAM + 5 * PAGE_SIZE + 12);
    expect(kvm.physToVirt(RAM + 7)).toBe(PAGE_OFFSET + RAM + 7);
    expect(kvm.virtToPage(va + 4095)).toBe(pfn);
    expect(kvm.virtAddrValid(va)).toBe(true);
    expect(kvm.virtAddrValid(PAGE_OFFSET + 0x1000)).toBe(false); // no RAM there
    expect(kvm.isVmallocAddr(va)).toBe(false);
    expect(log.warnCount).toBe(0);
    expect(kvm.kmap(pfn)).toBe(va);
    kvm.kunmap(pfn);
    kvm.kunmap(pfn);
    expect(log.warnCount).toBe(1);
  });

  it("CPU access through the linear map goes through the cache", () => {
    const { kvm, cache, mem } = vm();
    const va = kvm.physToVirt(RAM + 100);
    kvm.cpuWriteVirt(va, pattern(200, 1));
    expect(cache.lineState(RAM + 128)).toBe("dirty");
    const ram = new Uint8Array(200);
    mem.read(RAM + 100, ram);
    expect(ram.every((b) => b === 0)).toBe(true);
    const back = new Uint8Array(200);
    kvm.cpuReadVirt(va, back);
    expect(back).toEqual(pattern(200, 1));
  });
});

describe("KernelVm: vmap / vmalloc", () => {
  it("vmap maps scattered pages contiguously; accesses cross pages correctly", () => {
    const { kvm, pages, cache, log } = vm();
    const pfns = [
      pages.allocPage(GFP_KERNEL)!,
      pages.allocPage(GFP_KERNEL)!,
      pages.allocPage(GFP_KERNEL)!,
    ].reverse();
    const va = kvm.vmap(pfns, 3)!;
    expect(va).toBeGreaterThanOrEqual(VMALLOC_START);
    expect(kvm.isVmallocAddr(va)).toBe(true);
    expect(kvm.virtAddrValid(va)).toBe(false);
    expect(kvm.vmallocToPage(va + PAGE_SIZE + 5)).toBe(pfns[1]);
    expect(kvm.vmallocToPage(va + 3 * PAGE_SIZE)).toBeNull(); // guard page
    const data = pattern(2 * PAGE_SIZE, 2);
    kvm.cpuWriteVirt(va + PAGE_SIZE - 10, data);
    const tail = new Uint8Array(10);
    cache.cpuRead(pfns[0]! * PAGE_SIZE + PAGE_SIZE - 10, tail);
    expect(tail).toEqual(data.subarray(0, 10));
    const mid = new Uint8Array(PAGE_SIZE);
    cache.cpuRead(pfns[1]! * PAGE_SIZE, mid);
    expect(mid).toEqual(data.subarray(10, 10 + PAGE_SIZE));
    expect(() => kvm.cpuWriteVirt(va + 3 * PAGE_SIZE - 2, new Uint8Array(4))).toThrow(/paging request/);
    // virt_to_phys on a vmalloc address WARNs (CONFIG_DEBUG_VIRTUAL).
    kvm.virtToPhys(va);
    expect(log.find({ warn: true, message: "non-linear address" })).toHaveLength(1);
    const va2 = kvm.vmap(pfns, 1)!;
    expect(va2).toBe(va + 4 * PAGE_SIZE);
    kvm.vunmap(va);
    expect(kvm.vmallocToPage(va)).toBeNull();
    expect(kvm.vmap(pfns, 0)).toBeNull();
    expect(kvm.vmap(pfns, 1)).toBe(va); // first fit reuses the hole
  });

  it("vmalloc takes pages from the allocator and vfree returns them", () => {
    const { kvm, pages } = vm();
    const free = pages.nrFreePages();
    const va = kvm.vzalloc(3 * PAGE_SIZE + 1)!;
    expect(pages.nrFreePages()).toBe(free - 4);
    expect(kvm.vmallocUsed).toBe(5 * PAGE_SIZE);
    const b = new Uint8Array(16);
    kvm.cpuReadVirt(va + 3 * PAGE_SIZE, b);
    expect(b.every((x) => x === 0)).toBe(true);
    let code = "";
    try {
      kvm.vunmap(va);
    } catch (e) {
      if (isKernelError(e)) code = e.errno;
    }
    expect(code).toBe("EINVAL");
    kvm.vfree(va);
    expect(pages.nrFreePages()).toBe(free);
    expect(kvm.vmalloc(0)).toBeNull();
    expect(kvm.vmalloc(1 << 30)).toBeNull(); // more than the machine has
    expect(pages.nrFreePages()).toBe(free);
  });
});
