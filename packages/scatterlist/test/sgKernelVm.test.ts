import { KernelLog, PAGE_SIZE } from "@dmakit/core";
import { bootMemory, CpuCache, GFP_KERNEL, KernelVm } from "@dmakit/mm-pages";
import {
  SG_MITER_FROM_SG,
  SgMappingIter,
  SgPool,
  sgCopyToBuffer,
  sgInitOne,
  sgInitTable,
  sgMiterNext,
  sgMiterStart,
  sgMiterStop,
  sgOffset,
  sgPage,
  sgSetBuf,
} from "@dmakit/scatterlist";
import { describe, expect, it } from "vitest";

function machine() {
  const log = new KernelLog();
  const mem = bootMemory({ banks: [{ start: 0x8000_0000, size: 0x100_0000 }] }, { log });
  const cache = new CpuCache(mem.phys, { coherent: true });
  const vm = new KernelVm({ mem: mem.phys, cache, pages: mem.pages });
  const cpu = {
    read: (p: number, d: Uint8Array) => cache.cpuRead(p, d),
    write: (p: number, b: Uint8Array) => cache.cpuWrite(p, b),
  };
  const pool = new SgPool({ mem: mem.phys, cpu, vm });
  return { mem, cache, vm, pool };
}

describe("kernel virtual addresses in sg_set_buf / sg_init_one / sg_miter", () => {
  it("sg_set_buf translates a linear-map address with virt_to_page and offset_in_page", () => {
    const { mem, vm, pool } = machine();
    const pfn = mem.pages.allocPages(GFP_KERNEL, 0)!;
    const sgl = pool.kmallocArray(1)!;
    sgInitTable(sgl, 1);
    sgSetBuf(sgl, vm.pageAddress(pfn) + 100, 50);
    expect(sgPage(sgl)).toBe(pfn);
    expect(sgOffset(sgl)).toBe(100);
  });

  it("sg_init_one + sg_miter hand out virtual addresses and copy the right bytes", () => {
    const { mem, cache, vm, pool } = machine();
    const pfn = mem.pages.allocPages(GFP_KERNEL, 0)!;
    cache.cpuWrite(pfn * PAGE_SIZE + 8, Uint8Array.from([1, 2, 3, 4]));
    const sgl = pool.kmallocArray(1)!;
    sgInitOne(sgl, vm.pageAddress(pfn) + 8, 4);
    const miter = new SgMappingIter();
    sgMiterStart(miter, sgl, 1, SG_MITER_FROM_SG);
    expect(sgMiterNext(miter)).toBe(true);
    expect(miter.addr).toBe(vm.pageAddress(pfn) + 8);
    expect(miter.phys).toBe(pfn * PAGE_SIZE + 8);
    sgMiterStop(miter);
    const out = new Uint8Array(4);
    expect(sgCopyToBuffer(sgl, 1, out, 4)).toBe(4);
    expect([...out]).toEqual([1, 2, 3, 4]);
  });
});
