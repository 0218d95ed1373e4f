import { errnoOf, PAGE_SIZE } from "@dmakit/core";
import { describe, expect, it } from "vitest";
import {
  FOLL_WRITE,
  PROT_READ,
  PROT_WRITE,
  pinUserPages,
  VM_IO,
  VM_MIXEDMAP,
  VM_PFNMAP,
  type VmAreaStruct,
} from "../src/index.js";
import { pattern, userMachine } from "./userMachine.js";

const RW = PROT_READ | PROT_WRITE;

describe("MmStruct: device mappings (driver mmap handlers)", () => {
  it("remap_pfn_range maps consecutive pfns without references; GUP refuses the VMA", () => {
    const { um, pages, mem } = userMachine();
    const mm = um.mmAlloc("app");
    const pfn = pages.allocPages(0, 2) as number;
    const data = pattern(4 * PAGE_SIZE, 3);
    mem.write(pfn * PAGE_SIZE, data);
    let seen: VmAreaStruct | undefined;
    const va = mm.mmapDevice(2 * PAGE_SIZE, RW, PAGE_SIZE, (vma) => {
      seen = vma;
      mm.remapPfnRange(vma, vma.start, pfn + vma.pgoff, vma.end - vma.start, "noncached");
    });
    expect(seen?.pgoff).toBe(1);
    expect(seen?.pageProt).toBe("noncached");
    expect(((seen as VmAreaStruct).flags & (VM_IO | VM_PFNMAP)) === (VM_IO | VM_PFNMAP)).toBe(true);
    expect(mm.followPage(va + PAGE_SIZE)?.pfn).toBe(pfn + 2);
    const got = new Uint8Array(2 * PAGE_SIZE);
    mm.cpuRead(va, got);
    expect(got).toEqual(data.subarray(PAGE_SIZE, 3 * PAGE_SIZE));
    expect(pages.pageRefCount(pfn)).toBe(1);
    expect(errnoOf(() => pinUserPages(mm, va, 1, FOLL_WRITE))).toBe("EFAULT");
    mm.munmap(va, 2 * PAGE_SIZE);
    expect(pages.pageRefCount(pfn)).toBe(1);
    pages.freePages(pfn, 2);
  });

  it("vm_map_pages takes a reference per page, honours vm_pgoff and drops them at munmap", () => {
    const { um, pages } = userMachine();
    const mm = um.mmAlloc("app");
    const arr = [pages.allocPage(0) as number, pages.allocPage(0) as number, pages.allocPage(0) as number];
    const va = mm.mmapDevice(2 * PAGE_SIZE, RW, PAGE_SIZE, (vma) => mm.vmMapPages(vma, arr, 3));
    const vma = mm.vmaLookup(va) as VmAreaStruct;
    expect((vma.flags & VM_MIXEDMAP) !== 0).toBe(true);
    expect(mm.followPage(va)?.pfn).toBe(arr[1]);
    expect(mm.followPage(va + PAGE_SIZE)?.pfn).toBe(arr[2]);
    expect(pages.pageRefCount(arr[1] as number)).toBe(2);
    expect(pages.pageRefCount(arr[0] as number)).toBe(1);
    mm.munmap(va, 2 * PAGE_SIZE);
    expect(pages.pageRefCount(arr[1] as number)).toBe(1);
    for (const p of arr) pages.freePage(p);
  });

  it("a failing handler leaves no VMA and no references; ENXIO past the object", () => {
    const { um, pages } = userMachine();
    const mm = um.mmAlloc("app");
    const arr = [pages.allocPage(0) as number, pages.allocPage(0) as number];
    expect(
      errnoOf(() => mm.mmapDevice(2 * PAGE_SIZE, RW, PAGE_SIZE, (vma) => mm.vmMapPages(vma, arr, 2))),
    ).toBe("ENXIO");
    expect(
      errnoOf(() => mm.mmapDevice(PAGE_SIZE, RW, 2 * PAGE_SIZE, (vma) => mm.vmMapPages(vma, arr, 2))),
    ).toBe("ENXIO");
    expect(mm.mappings()).toHaveLength(0);
    expect(pages.pageRefCount(arr[0] as number)).toBe(1);
    // An unpopulated page of a device mapping is SIGBUS, reported as EFAULT.
    let at = 0;
    expect(
      errnoOf(() => {
        at = mm.mmapDevice(2 * PAGE_SIZE, RW, 0, (vma) => mm.vmInsertPage(vma, vma.start, arr[0] as number));
        mm.cpuRead(at + PAGE_SIZE, new Uint8Array(1));
      }),
    ).toBe("EFAULT");
    expect(errnoOf(() => mm.remapPfnRange(mm.vmaLookup(at) as VmAreaStruct, at, 1, PAGE_SIZE))).toBe(
      "EINVAL",
    );
    mm.munmap(at, 2 * PAGE_SIZE);
    for (const p of arr) pages.freePage(p);
  });
});

describe("MmStruct: vm_mm", () => {
  it("every VMA names its address space", () => {
    const { um } = userMachine();
    const mm = um.mmAlloc("app");
    const va = mm.mmapDevice(PAGE_SIZE, RW, 0, () => {});
    expect(mm.vmaLookup(va)?.mm).toBe(mm);
  });
});
