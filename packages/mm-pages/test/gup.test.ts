import { errnoOf, PAGE_SIZE } from "@dmakit/core";
import { PHYR_F_BUS_ADDR, PHYR_F_PINNED } from "@dmakit/phyr";
import { describe, expect, it } from "vitest";
import {
  FOLL_FORCE,
  FOLL_GET,
  FOLL_LONGTERM,
  FOLL_NOWAIT,
  FOLL_PCI_P2PDMA,
  FOLL_PIN,
  FOLL_WRITE,
  folioMaybeDmaPinned,
  GUP_PIN_COUNTING_BIAS,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MEMORY_DEVICE_PCI_P2PDMA,
  MemoryBackedMmio,
  PG_cma,
  PG_dirty,
  PROT_READ,
  PROT_WRITE,
  pinUserPages,
  pinUserPagesFast,
  pinUserPagesToPhyr,
  unpinUserPage,
  unpinUserPages,
  unpinUserPagesDirtyLock,
  unpinUserPhyr,
  ZONE_MOVABLE,
} from "../src/index.js";
import { pattern, userMachine } from "./userMachine.js";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

describe("pin_user_pages: pin accounting", () => {
  it("small folios: refcount += GUP_PIN_COUNTING_BIAS per pin, unpin restores it", () => {
    const { um, pages } = userMachine();
    const mm = um.mmAlloc();
    const va = mm.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    mm.cpuWrite(va, pattern(4 * PAGE_SIZE, 1));
    const before = [0, 1, 2, 3].map((k) => pages.pageRefCount(mm.followPage(va + k * PAGE_SIZE)!.pfn));
    expect(before).toEqual([1, 1, 1, 1]);
    const pfns = pinUserPages(mm, va, 4, FOLL_WRITE);
    expect([...pfns]).toEqual([0, 1, 2, 3].map((k) => mm.followPage(va + k * PAGE_SIZE)!.pfn));
    expect([...pfns].map((p) => pages.pageRefCount(p))).toEqual([1025, 1025, 1025, 1025]);
    expect([...pfns].every((p) => folioMaybeDmaPinned(um, p))).toBe(true);
    const again = pinUserPagesFast(mm, va + 100, 1, 0); // unaligned start pins its page
    expect(pages.pageRefCount(again[0]!)).toBe(1 + 2 * GUP_PIN_COUNTING_BIAS);
    unpinUserPages(um, again);
    unpinUserPages(um, pfns, 4);
    expect([...pfns].map((p) => pages.pageRefCount(p))).toEqual(before);
    expect(folioMaybeDmaPinned(um, pfns[0]!)).toBe(false);
    expect(mm.hasPinned).toBe(true);
  });

  it("large folios: head _pincount + 1 and refcount + 1 per page pinned", () => {
    const { um, pages, mem } = userMachine({ anonFolioOrder: 2 });
    const mm = um.mmAlloc();
    const va = mm.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    expect(va % (4 * PAGE_SIZE)).toBe(0);
    mm.cpuWrite(va + 5, pattern(10, 2));
    const head = mm.followPage(va)!.pfn;
    expect(pages.compoundOrder(head)).toBe(2);
    expect(pages.pageRefCount(head)).toBe(4); // one reference per PTE
    const i = mem.memmap.idx(head);
    const pfns = pinUserPages(mm, va + PAGE_SIZE, 3, FOLL_WRITE);
    expect([...pfns]).toEqual([head + 1, head + 2, head + 3]);
    expect(mem.memmap.refcount[i]).toBe(4 + 3);
    expect(mem.memmap.priv[i]).toBe(3);
    expect(mem.memmap.refcount[mem.memmap.idx(head + 1)]).toBe(0); // tails hold nothing
    expect(folioMaybeDmaPinned(um, head + 3)).toBe(true);
    unpinUserPage(um, head + 2);
    expect([mem.memmap.refcount[i], mem.memmap.priv[i]]).toEqual([6, 2]);
    unpinUserPages(um, [head + 1, head + 3]);
    expect([mem.memmap.refcount[i], mem.memmap.priv[i]]).toEqual([4, 0]);
    expect(folioMaybeDmaPinned(um, head)).toBe(false);
  });

  it("read pins of untouched anonymous memory return the zero page without pinning it", () => {
    const { um, pages } = userMachine();
    const mm = um.mmAlloc();
    const va = mm.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    const zeroRefs = pages.pageRefCount(um.zeroPfn);
    const pfns = pinUserPages(mm, va, 2, 0);
    expect([...pfns]).toEqual([um.zeroPfn, um.zeroPfn]);
    expect(pages.pageRefCount(um.zeroPfn)).toBe(zeroRefs);
    expect(mm.rss()).toBe(0);
    unpinUserPages(um, pfns);
    expect(pages.pageRefCount(um.zeroPfn)).toBe(zeroRefs);
    // A write pin breaks the zero-page mapping with a real page.
    const w = pinUserPages(mm, va, 1, FOLL_WRITE);
    expect(w[0]).not.toBe(um.zeroPfn);
    expect(pages.pageRefCount(w[0]!)).toBe(1 + GUP_PIN_COUNTING_BIAS);
  });

  it("unpin_user_pages_dirty_lock marks folios dirty; a pinned page outlives munmap until unpinned", () => {
    const { um, pages, mem } = userMachine();
    const mm = um.mmAlloc();
    const va = mm.mmap(0, PAGE_SIZE, RW, ANON);
    const [pfn] = pinUserPages(mm, va, 1, FOLL_WRITE);
    const i = mem.memmap.idx(pfn!);
    mem.memmap.flags[i] = mem.memmap.flags[i]! & ~PG_dirty;
    const free = pages.nrFreePages();
    mm.munmap(va, PAGE_SIZE);
    expect(pages.pageRefCount(pfn!)).toBe(GUP_PIN_COUNTING_BIAS);
    expect(pages.nrFreePages()).toBe(free);
    unpinUserPagesDirtyLock(um, [pfn!], 1, true);
    expect(pages.pageRefCount(pfn!)).toBe(0);
    expect(pages.nrFreePages()).toBe(free + 1);
  });
});

describe("pin_user_pages: errors leave no pins", () => {
  it("FOLL_GET or FOLL_PIN from the caller is EINVAL (with a WARN)", () => {
    const { um, log } = userMachine();
    const mm = um.mmAlloc();
    const va = mm.mmap(0, PAGE_SIZE, RW, ANON);
    expect(errnoOf(() => pinUserPages(mm, va, 1, FOLL_GET))).toBe("EINVAL");
    expect(errnoOf(() => pinUserPages(mm, va, 1, FOLL_PIN))).toBe("EINVAL");
    expect(errnoOf(() => pinUserPagesFast(mm, va, 1, FOLL_NOWAIT))).toBe("EINVAL");
    expect(pinUserPages(mm, va, 1, FOLL_NOWAIT)).toHaveLength(1);
    expect(log.warnCount).toBe(3);
  });

  it("EFAULT past the mapping releases the pins already taken", () => {
    const { um, pages } = userMachine();
    const mm = um.mmAlloc();
    const va = mm.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    mm.cpuWrite(va, pattern(2 * PAGE_SIZE, 3));
    const p0 = mm.followPage(va)!.pfn;
    expect(errnoOf(() => pinUserPages(mm, va, 3, FOLL_WRITE))).toBe("EFAULT");
    expect(pages.pageRefCount(p0)).toBe(1);
    expect(folioMaybeDmaPinned(um, p0)).toBe(false);
  });

  it("FOLL_WRITE on a read-only mapping is EFAULT unless FOLL_FORCE on a private mapping", () => {
    const { um } = userMachine();
    const mm = um.mmAlloc();
    const va = mm.mmap(0, PAGE_SIZE, PROT_READ, ANON);
    expect(errnoOf(() => pinUserPages(mm, va, 1, FOLL_WRITE))).toBe("EFAULT");
    const [pfn] = pinUserPages(mm, va, 1, FOLL_WRITE | FOLL_FORCE);
    expect(pfn).not.toBe(um.zeroPfn);
  });
});

describe("FOLL_LONGTERM", () => {
  it("migrates a ZONE_MOVABLE page out before pinning; the user sees the same bytes", () => {
    const { um, pages, mem, cache } = userMachine({ movable: true });
    const mm = um.mmAlloc();
    const va = mm.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    const data = pattern(2 * PAGE_SIZE, 4);
    mm.cpuWrite(va, data); // still dirty in the (non-coherent) CPU cache
    const old = [mm.followPage(va)!.pfn, mm.followPage(va + PAGE_SIZE)!.pfn];
    expect(old.map((p) => mem.pageZonenum(p))).toEqual([ZONE_MOVABLE, ZONE_MOVABLE]);
    // A short-term pin leaves pages where they are.
    const short = pinUserPages(mm, va, 2, FOLL_WRITE);
    expect([...short]).toEqual(old);
    unpinUserPages(um, short);
    const pfns = pinUserPages(mm, va, 2, FOLL_WRITE | FOLL_LONGTERM);
    expect([...pfns].every((p, k) => p !== old[k])).toBe(true);
    expect([...pfns].map((p) => mem.pageZonenum(p)).includes(ZONE_MOVABLE)).toBe(false);
    expect([...pfns].map((p) => pages.pageRefCount(p))).toEqual([1025, 1025]);
    expect(old.map((p) => pages.pageRefCount(p))).toEqual([0, 0]); // old pages went back
    expect([mm.followPage(va)!.pfn, mm.followPage(va + PAGE_SIZE)!.pfn]).toEqual([...pfns]);
    const seen = new Uint8Array(2 * PAGE_SIZE);
    mm.cpuRead(va, seen);
    expect(seen).toEqual(data);
    const phys = new Uint8Array(PAGE_SIZE);
    cache.cpuRead(pfns[1]! * PAGE_SIZE, phys);
    expect(phys).toEqual(data.subarray(PAGE_SIZE));
    unpinUserPages(um, pfns);
    expect([...pfns].map((p) => pages.pageRefCount(p))).toEqual([1, 1]);
  });

  it("migrates a CMA page out before pinning", () => {
    const { um, mem } = userMachine({ cma: true });
    const mm = um.mmAlloc();
    const va = mm.mmap(0, PAGE_SIZE, RW, ANON);
    const data = pattern(PAGE_SIZE, 5);
    mm.cpuWrite(va, data);
    const old = mm.followPage(va)!.pfn;
    expect(mem.memmap.flags[mem.memmap.idx(old)]! & PG_cma).toBe(PG_cma);
    const [pfn] = pinUserPages(mm, va, 1, FOLL_WRITE | FOLL_LONGTERM);
    expect(pfn).not.toBe(old);
    expect(mem.memmap.flags[mem.memmap.idx(pfn!)]! & PG_cma).toBe(0);
    const seen = new Uint8Array(PAGE_SIZE);
    mm.cpuRead(va, seen);
    expect(seen).toEqual(data);
  });

  it("a movable page pinned by someone else cannot migrate: ENOMEM, and only the old pin remains", () => {
    const { um, pages } = userMachine({ movable: true });
    const mm = um.mmAlloc();
    const va = mm.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    mm.cpuWrite(va, pattern(2 * PAGE_SIZE, 6));
    const [held] = pinUserPages(mm, va + PAGE_SIZE, 1, FOLL_WRITE);
    const first = mm.followPage(va)!.pfn;
    expect(errnoOf(() => pinUserPages(mm, va, 2, FOLL_WRITE | FOLL_LONGTERM))).toBe("ENOMEM");
    expect(pages.pageRefCount(held!)).toBe(1 + GUP_PIN_COUNTING_BIAS);
    expect(mm.followPage(va + PAGE_SIZE)!.pfn).toBe(held);
    // The first page was migrated (the kernel keeps migrated folios moved) and is not pinned.
    const now = mm.followPage(va)!.pfn;
    expect(now).not.toBe(first);
    expect(pages.pageRefCount(now)).toBe(1);
  });
});

describe("P2PDMA pages", () => {
  function p2pMachine() {
    const m = userMachine();
    m.mem.addMmioRegion({
      start: 0x40_0000_0000,
      size: 0x10_0000,
      name: "nvme0 bar4",
      handler: new MemoryBackedMmio(0x10_0000),
    });
    const pgmap = m.mem.memremapPages({
      start: 0x40_0000_0000,
      size: 0x10_0000,
      type: MEMORY_DEVICE_PCI_P2PDMA,
      owner: "nvme0",
    });
    return { ...m, pgmap };
  }

  it("without FOLL_PCI_P2PDMA is EREMOTEIO and pins nothing (anonymous pages before it included)", () => {
    const { um, pages, pgmap } = p2pMachine();
    const mm = um.mmAlloc();
    const p2p = mm.mmapP2pmem(pgmap, 0, 2 * PAGE_SIZE);
    const anon = mm.mmap(p2p - PAGE_SIZE, PAGE_SIZE, RW, ANON | MAP_FIXED);
    mm.cpuWrite(anon, pattern(8, 1));
    const anonPfn = mm.followPage(anon)!.pfn;
    const p2pPfn = pgmap.start / PAGE_SIZE;
    expect(pages.pageRefCount(p2pPfn)).toBe(2); // pgmap's + vm_insert_page's
    expect(errnoOf(() => pinUserPages(mm, anon, 3, FOLL_WRITE))).toBe("EREMOTEIO");
    expect(pages.pageRefCount(anonPfn)).toBe(1);
    expect(pages.pageRefCount(p2pPfn)).toBe(2);
    const pfns = pinUserPages(mm, anon, 3, FOLL_WRITE | FOLL_PCI_P2PDMA | FOLL_LONGTERM);
    expect([...pfns]).toEqual([anonPfn, p2pPfn, p2pPfn + 1]);
    expect(pages.pageRefCount(p2pPfn)).toBe(2 + GUP_PIN_COUNTING_BIAS);
    unpinUserPages(um, pfns);
    expect(pages.pageRefCount(p2pPfn)).toBe(2);
    mm.munmap(p2p, 2 * PAGE_SIZE);
    expect(pages.pageRefCount(p2pPfn)).toBe(1);
  });

  it("pin_user_pages to a PhysRangeList: runs split at the P2PDMA boundary, P2P runs flagged", () => {
    const { um, pages, pgmap } = p2pMachine();
    const mm = um.mmAlloc();
    const p2p = mm.mmapP2pmem(pgmap, 0, 2 * PAGE_SIZE);
    const anon = mm.mmap(p2p - PAGE_SIZE, PAGE_SIZE, RW, ANON | MAP_FIXED);
    const list = pinUserPagesToPhyr(mm, anon + 100, 2 * PAGE_SIZE, FOLL_WRITE | FOLL_PCI_P2PDMA);
    const anonPfn = mm.followPage(anon)!.pfn;
    expect(list.toArray()).toEqual([
      { addr: anonPfn * PAGE_SIZE + 100, len: PAGE_SIZE - 100, flags: PHYR_F_PINNED },
      { addr: pgmap.start, len: PAGE_SIZE + 100, flags: PHYR_F_PINNED | PHYR_F_BUS_ADDR },
    ]);
    expect(list.totalLength).toBe(2 * PAGE_SIZE);
    expect(pages.pageRefCount(anonPfn)).toBe(1 + GUP_PIN_COUNTING_BIAS);
    unpinUserPhyr(um, list, true);
    expect(pages.pageRefCount(anonPfn)).toBe(1);
    expect(pages.pageRefCount(pgmap.start / PAGE_SIZE + 1)).toBe(2);
  });
});

describe("CMA migrate hook", () => {
  it("cma-style alloc_contig_range moves unpinned user pages and fails on pinned ones", () => {
    const { um, pages, mem } = userMachine({ cma: true });
    um.installMigrateHook();
    const mm = um.mmAlloc();
    const va = mm.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    const data = pattern(2 * PAGE_SIZE, 8);
    mm.cpuWrite(va, data);
    const [a, b] = [mm.followPage(va)!.pfn, mm.followPage(va + PAGE_SIZE)!.pfn];
    expect(mem.memmap.flags[mem.memmap.idx(a)]! & PG_cma).toBe(PG_cma);
    const [pinned] = pinUserPages(mm, va + PAGE_SIZE, 1, FOLL_WRITE);
    expect(errnoOf(() => pages.allocContigRange(b!, b! + 1))).toBe("EBUSY");
    expect(mm.followPage(va + PAGE_SIZE)!.pfn).toBe(b);
    pages.allocContigRange(a, a + 1);
    const moved = mm.followPage(va)!.pfn;
    expect(moved).not.toBe(a);
    const seen = new Uint8Array(2 * PAGE_SIZE);
    mm.cpuRead(va, seen);
    expect(seen).toEqual(data);
    unpinUserPages(um, [pinned!]);
    pages.allocContigRange(b!, b! + 1);
    expect(mm.followPage(va + PAGE_SIZE)!.pfn).not.toBe(b);
  });
});
