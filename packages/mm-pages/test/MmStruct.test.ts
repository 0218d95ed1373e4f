import { errnoOf, PAGE_SIZE } from "@dmakit/core";
import { describe, expect, it } from "vitest";
import {
  F_SEAL_SHRINK,
  F_SEAL_WRITE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  MFD_ALLOW_SEALING,
  PG_anon,
  PG_lru,
  PG_shmem,
  PROT_READ,
  PROT_WRITE,
} from "../src/index.js";
import { pattern, userMachine } from "./userMachine.js";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

describe("MmStruct: anonymous memory", () => {
  it("faults pages in on first touch (zero page for reads), and munmap gives them back", () => {
    const { um, pages, mem } = userMachine();
    const mm = um.mmAlloc("a.out");
    const free = pages.nrFreePages();
    const va = mm.mmap(0, 3 * PAGE_SIZE, RW, ANON);
    expect(mm.rss()).toBe(0);
    const r = new Uint8Array(PAGE_SIZE);
    mm.cpuRead(va + PAGE_SIZE, r);
    expect(mm.followPage(va + PAGE_SIZE)).toEqual({ pfn: um.zeroPfn, write: false });
    expect(mm.rss()).toBe(0);
    const data = pattern(PAGE_SIZE + 50, 3);
    mm.cpuWrite(va + PAGE_SIZE - 25, data);
    expect(mm.rss()).toBe(3); // the write touches pages 0, 1 and 2
    const p = mm.followPage(va + PAGE_SIZE)!;
    expect(p.pfn).not.toBe(um.zeroPfn);
    expect(p.write).toBe(true);
    const i = mem.memmap.idx(p.pfn);
    expect(mem.memmap.flags[i]! & (PG_anon | PG_lru)).toBe(PG_anon | PG_lru);
    expect(mem.memmap.mapcount[i]).toBe(1);
    const back = new Uint8Array(PAGE_SIZE + 50);
    mm.cpuRead(va + PAGE_SIZE - 25, back);
    expect(back).toEqual(data);
    expect(pages.nrFreePages()).toBe(free - 3);
    mm.munmap(va + PAGE_SIZE, PAGE_SIZE); // splits the VMA in two
    expect(mm.mappings().map((v) => [v.start - va, v.end - va])).toEqual([
      [0, PAGE_SIZE],
      [2 * PAGE_SIZE, 3 * PAGE_SIZE],
    ]);
    expect(pages.nrFreePages()).toBe(free - 2);
    expect(errnoOf(() => mm.cpuRead(va + PAGE_SIZE, r))).toBe("EFAULT");
    mm.mmput();
    expect(pages.nrFreePages()).toBe(free);
  });

  it("permissions, MAP_FIXED and placement", () => {
    const { um } = userMachine();
    const mm = um.mmAlloc();
    const ro = mm.mmap(0, PAGE_SIZE, PROT_READ, ANON);
    expect(errnoOf(() => mm.cpuWrite(ro, new Uint8Array(1)))).toBe("EFAULT");
    const a = mm.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    expect(a + 2 * PAGE_SIZE).toBe(ro); // top-down
    mm.cpuWrite(a, pattern(16, 1));
    const fixed = mm.mmap(a, PAGE_SIZE, RW, ANON | MAP_FIXED);
    expect(fixed).toBe(a);
    const z = new Uint8Array(16);
    mm.cpuRead(a, z);
    expect(z.every((b) => b === 0)).toBe(true); // the old page was replaced
    expect(errnoOf(() => mm.mmap(0, 0, RW, ANON))).toBe("EINVAL");
    expect(errnoOf(() => mm.mmap(0, PAGE_SIZE, RW, MAP_ANONYMOUS))).toBe("EINVAL");
  });
});

describe("Memfd: shared memory between address spaces", () => {
  it("two address spaces map the same pages and see each other's writes", () => {
    const { um, mem, pages } = userMachine();
    const fd = um.memfdCreate("buf", MFD_ALLOW_SEALING);
    fd.ftruncate(2 * PAGE_SIZE);
    const a = um.mmAlloc("producer");
    const b = um.mmAlloc("consumer");
    const va = a.mmap(0, 2 * PAGE_SIZE, RW, MAP_SHARED, fd);
    const vb = b.mmap(0, 2 * PAGE_SIZE, PROT_READ, MAP_SHARED, fd);
    const data = pattern(300, 9);
    a.cpuWrite(va + PAGE_SIZE - 100, data);
    const seen = new Uint8Array(300);
    b.cpuRead(vb + PAGE_SIZE - 100, seen);
    expect(seen).toEqual(data);
    const pfn = a.followPage(va)!.pfn;
    expect(b.followPage(vb)!.pfn).toBe(pfn);
    expect(fd.findPage(0)).toBe(pfn);
    const i = mem.memmap.idx(pfn);
    expect(mem.memmap.flags[i]! & (PG_shmem | PG_lru)).toBe(PG_shmem | PG_lru);
    expect(pages.pageRefCount(pfn)).toBe(3); // page cache + two PTEs
    expect(mem.memmap.mapcount[i]).toBe(2);
    const viaFile = new Uint8Array(300);
    expect(fd.pread(PAGE_SIZE - 100, viaFile)).toBe(300);
    expect(viaFile).toEqual(data);
    expect(errnoOf(() => b.cpuWrite(vb, new Uint8Array(1)))).toBe("EFAULT");
    // Beyond i_size is SIGBUS (EFAULT).
    const big = b.mmap(0, 4 * PAGE_SIZE, PROT_READ, MAP_SHARED, fd);
    expect(errnoOf(() => b.cpuRead(big + 3 * PAGE_SIZE, new Uint8Array(1)))).toBe("EFAULT");
  });

  it("seals: F_SEAL_WRITE vs writable mappings, F_SEAL_SHRINK, sealing needs MFD_ALLOW_SEALING", () => {
    const { um } = userMachine();
    const fd = um.memfdCreate("sealed", MFD_ALLOW_SEALING);
    fd.ftruncate(PAGE_SIZE);
    const mm = um.mmAlloc();
    const va = mm.mmap(0, PAGE_SIZE, RW, MAP_SHARED, fd);
    expect(errnoOf(() => fd.addSeals(F_SEAL_WRITE))).toBe("EBUSY");
    mm.munmap(va, PAGE_SIZE);
    fd.addSeals(F_SEAL_WRITE | F_SEAL_SHRINK);
    expect(fd.getSeals()).toBe(F_SEAL_WRITE | F_SEAL_SHRINK);
    expect(errnoOf(() => mm.mmap(0, PAGE_SIZE, RW, MAP_SHARED, fd))).toBe("EPERM");
    expect(errnoOf(() => fd.pwrite(0, new Uint8Array(1)))).toBe("EPERM");
    expect(errnoOf(() => fd.ftruncate(0))).toBe("EPERM");
    fd.ftruncate(2 * PAGE_SIZE);
    const plain = um.memfdCreate("plain");
    expect(errnoOf(() => plain.addSeals(F_SEAL_SHRINK))).toBe("EPERM");
  });

  it("pages are released when the last file reference and mapping go", () => {
    const { um, pages } = userMachine();
    const free = pages.nrFreePages();
    const fd = um.memfdCreate("tmp");
    fd.pwrite(0, pattern(3 * PAGE_SIZE, 1));
    const mm = um.mmAlloc();
    const va = mm.mmap(0, 3 * PAGE_SIZE, RW, MAP_SHARED, fd);
    mm.cpuRead(va, new Uint8Array(10));
    expect(pages.nrFreePages()).toBe(free - 3);
    fd.close();
    expect(pages.nrFreePages()).toBe(free - 3); // the mapping keeps the file
    mm.munmap(va, 3 * PAGE_SIZE);
    expect(pages.nrFreePages()).toBe(free);
    // Shared anonymous memory is shmem too.
    const sa = mm.mmap(0, PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
    mm.cpuWrite(sa, pattern(8, 2));
    const pfn = mm.followPage(sa)!.pfn;
    expect(pages.pageRefCount(pfn)).toBe(2);
    mm.munmap(sa, PAGE_SIZE);
    expect(pages.nrFreePages()).toBe(free);
  });
});
