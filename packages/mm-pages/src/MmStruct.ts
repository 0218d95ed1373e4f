import { hex, KernelError, PAGE_SIZE } from "@dmakit/core";
import type { Memfd } from "./Memfd.js";
import { type DevPagemap, MEMORY_DEVICE_PCI_P2PDMA } from "./Pgmap.js";
import { PG_anon, PG_dirty } from "./pageFlags.js";
import type { UserMemory } from "./UserMemory.js";

/**
 * `TASK_SIZE`: user addresses lie below 2^47, as with x86_64 4-level paging (whose `TASK_SIZE_MAX`
 * stops one page short of it; arm64 with 48-bit VA allows 2^48).
 * @see arch/x86/include/asm/page_64_types.h TASK_SIZE_MAX
 */
export const TASK_SIZE = 0x8000_0000_0000;
/**
 * Where top-down mmap placement starts (below a model stack gap). Model-only: a fixed base; the
 * kernel derives `mmap_base` from the stack limit and randomization (mm/util.c mmap_base).
 */
export const MMAP_BASE = 0x7f00_0000_0000;
/**
 * `mmap_min_addr`: 65536, the value the Kconfig help suggests for x86 (the Kconfig default is 4096).
 * @see mm/Kconfig DEFAULT_MMAP_MIN_ADDR
 */
export const MMAP_MIN_ADDR = 0x10000;

/** `PROT_NONE`. @see include/uapi/asm-generic/mman-common.h */
export const PROT_NONE = 0x0;
/** `PROT_READ`. @see include/uapi/asm-generic/mman-common.h */
export const PROT_READ = 0x1;
/** `PROT_WRITE`. @see include/uapi/asm-generic/mman-common.h */
export const PROT_WRITE = 0x2;
/** `MAP_SHARED`. @see include/uapi/linux/mman.h */
export const MAP_SHARED = 0x01;
/** `MAP_PRIVATE`. @see include/uapi/linux/mman.h */
export const MAP_PRIVATE = 0x02;
/** `MAP_FIXED`. @see include/uapi/asm-generic/mman-common.h */
export const MAP_FIXED = 0x10;
/** `MAP_ANONYMOUS`. @see include/uapi/asm-generic/mman-common.h */
export const MAP_ANONYMOUS = 0x20;

/** `VM_READ`: the first of the `VM_*` flags of a {@link VmAreaStruct}. @see include/linux/mm.h */
export const VM_READ = 0x1;
/** `VM_WRITE`. @see include/linux/mm.h */
export const VM_WRITE = 0x2;
/** `VM_SHARED`. @see include/linux/mm.h */
export const VM_SHARED = 0x8;
/** `VM_MAYREAD`. @see include/linux/mm.h */
export const VM_MAYREAD = 0x10;
/** `VM_MAYWRITE`. @see include/linux/mm.h */
export const VM_MAYWRITE = 0x20;
/** `VM_PFNMAP`. @see include/linux/mm.h */
export const VM_PFNMAP = 0x400;
/** `VM_IO`. @see include/linux/mm.h */
export const VM_IO = 0x4000;
/** `VM_DONTEXPAND`. @see include/linux/mm.h */
export const VM_DONTEXPAND = 0x4_0000;
/** `VM_DONTDUMP`. @see include/linux/mm.h */
export const VM_DONTDUMP = 0x400_0000;
/** `VM_MIXEDMAP`. @see include/linux/mm.h */
export const VM_MIXEDMAP = 0x1000_0000;

/** PTE bits of the model (kept beside the pfn in one number: `pfn * 8 + bits`). */
const PTE_WRITE = 1;
const PTE_SPECIAL = 2;
const PTE_DIRTY = 4;
const PTE_SHIFT = 8;

/**
 * What backs a VMA. `device`: a mapping of a device file, populated by its driver's `mmap`
 * handler ({@link MmStruct.mmapDevice}) with {@link MmStruct.remapPfnRange} or
 * {@link MmStruct.vmInsertPage}; nothing is faulted in later.
 * Model-only: the kernel tells these apart by `vm_ops`, `vm_file` and `vm_flags`.
 */
export type VmaKind = "anon" | "shmem" | "p2pmem" | "device";

/**
 * The memory type of `vma->vm_page_prot` (the model keeps only that part of a pgprot): `cached`
 * (`PAGE_SHARED`), `noncached` (`pgprot_noncached` / arm64 `pgprot_dmacoherent`, Normal-NC) or
 * `writecombine` (`pgprot_writecombine`). CPU accesses through a non-cacheable mapping bypass the
 * cache model and go to RAM, as Normal-NC / Device stores do.
 * Model-only: the memory-type part of `pgprot_t`.
 * @see include/linux/pgtable.h pgprot_noncached, pgprot_writecombine
 */
export type PgprotKind = "cached" | "noncached" | "writecombine";

/**
 * `struct vm_area_struct`: one mapping of an address space (one object per mapping, never per page).
 * @see include/linux/mm_types.h
 */
export interface VmAreaStruct {
  start: number;
  end: number;
  flags: number;
  readonly kind: VmaKind;
  /** Backing shmem object of a `shmem` mapping. */
  readonly file: Memfd | undefined;
  /** Page offset into the file (shmem) or into the pgmap (p2pmem) of `start`. */
  pgoff: number;
  /** The ZONE_DEVICE pgmap of a `p2pmem` mapping. */
  readonly pgmap: DevPagemap | undefined;
  /** `vm_page_prot` of a `device` mapping, as its driver left it (absent: `cached`). */
  pageProt?: PgprotKind;
  /** `vm_mm`: the address space the mapping belongs to. */
  readonly mm?: MmStruct;
}

/**
 * `struct mm_struct`: a user address space. Mappings are {@link VmAreaStruct}s in a sorted array;
 * the page table is one `Map<virtual page number, pfn * 8 + PTE bits>` (no object per page).
 * Anonymous and shmem pages are allocated on first touch ({@link handleMmFault}); read faults of
 * private anonymous memory map the shared zero page, and the first write replaces it. User CPU
 * accesses ({@link cpuRead}, {@link cpuWrite}) fault pages in and go through the CPU cache.
 *
 * Not modelled: fork / copy-on-write of anonymous pages (so anonymous pages are always exclusive),
 * private file mappings, swap, mlock, page-table pages in simulated RAM.
 *
 * Created by {@link UserMemory.mmAlloc}.
 * @see include/linux/mm_types.h struct mm_struct, mm/mmap.c, mm/memory.c
 */
export class MmStruct {
  readonly um: UserMemory;
  readonly id: number;
  readonly name: string;
  /** `MMF_HAS_PINNED`: set on the first FOLL_PIN of this mm, never cleared. */
  hasPinned = false;
  private readonly vmas: VmAreaStruct[] = [];
  private readonly pte = new Map<number, number>();
  private dead = false;

  /** @internal use {@link UserMemory.mmAlloc}. */
  constructor(um: UserMemory, id: number, name: string) {
    this.um = um;
    this.id = id;
    this.name = name;
  }

  /**
   * `mmap(addr, length, prot, flags, fd, offset)`: anonymous memory (`MAP_ANONYMOUS`, private or
   * shared) or a shared mapping of a {@link Memfd}. `addr` 0 lets the model choose (top-down from
   * {@link MMAP_BASE}); a non-zero `addr` is a hint unless `MAP_FIXED`, which replaces any mapping
   * there. Returns the address. EINVAL for length 0, bad alignment, both or neither of
   * MAP_SHARED/MAP_PRIVATE, or a private file mapping (not modelled); EPERM for a writable shared
   * mapping of a memfd sealed with F_SEAL_WRITE; ENOMEM when no gap is large enough.
   * @see mm/mmap.c do_mmap
   */
  mmap(addr: number, length: number, prot: number, flags: number, file?: Memfd, offset = 0): number {
    this.checkAlive();
    if (!(length > 0) || !Number.isSafeInteger(length))
      throw new KernelError("EINVAL", `mm: ${this.name}: mmap length ${length} is not positive`);
    const shared = (flags & MAP_SHARED) !== 0;
    if (shared === ((flags & MAP_PRIVATE) !== 0))
      throw new KernelError(
        "EINVAL",
        `mm: ${this.name}: mmap needs exactly one of MAP_SHARED and MAP_PRIVATE`,
      );
    const anon = (flags & MAP_ANONYMOUS) !== 0;
    if (!anon && file === undefined)
      throw new KernelError("EBADF", `mm: ${this.name}: mmap without MAP_ANONYMOUS needs a file`);
    if (!anon && !shared)
      throw new KernelError("EINVAL", `mm: ${this.name}: private file mappings are not modelled`);
    if (offset % PAGE_SIZE !== 0 || offset < 0)
      throw new KernelError("EINVAL", `mm: ${this.name}: mmap offset ${hex(offset)} is not page-aligned`);
    const len = Math.ceil(length / PAGE_SIZE) * PAGE_SIZE;
    let backing: Memfd | undefined = anon ? undefined : file;
    if (backing !== undefined && shared && (prot & PROT_WRITE) !== 0) backing.checkWritableMap();
    const start = this.placeRange(addr, len, (flags & MAP_FIXED) !== 0);
    if (anon && shared) {
      // Shared anonymous memory is shmem (shmem_zero_setup), private to this mapping.
      backing = this.um.memfdCreate(`dev/zero (deleted)`, 0);
      backing.ftruncate(len);
    }
    let vmFlags = VM_MAYREAD | VM_MAYWRITE;
    if ((prot & PROT_READ) !== 0) vmFlags |= VM_READ;
    if ((prot & PROT_WRITE) !== 0) vmFlags |= VM_WRITE;
    if (shared) vmFlags |= VM_SHARED;
    const vma: VmAreaStruct = {
      start,
      end: start + len,
      flags: vmFlags,
      kind: backing === undefined ? "anon" : "shmem",
      file: backing,
      pgoff: anon ? 0 : offset / PAGE_SIZE,
      pgmap: undefined,
      mm: this,
    };
    if (backing !== undefined) {
      backing.attach(this, vma);
      if (anon) backing.close();
    }
    this.insertVma(vma);
    return start;
  }

  /**
   * Maps `length` bytes of a P2PDMA provider's memory, starting `offset` bytes into `pgmap`, like
   * `mmap` of a PCI device's `p2pmem/allocate` file: every page is inserted at once with
   * `vm_insert_page` (a reference and a mapcount each), in a `VM_MIXEDMAP` VMA. GUP returns these
   * pages only with `FOLL_PCI_P2PDMA`. The model does not allocate from the provider's genpool:
   * the caller chooses the range. EINVAL for a pgmap that is not `MEMORY_DEVICE_PCI_P2PDMA` or a
   * range outside it.
   * @see drivers/pci/p2pdma.c p2pmem_alloc_mmap
   */
  mmapP2pmem(
    pgmap: DevPagemap,
    offset: number,
    length: number,
    prot = PROT_READ | PROT_WRITE,
    addr = 0,
  ): number {
    this.checkAlive();
    if (pgmap.type !== MEMORY_DEVICE_PCI_P2PDMA)
      throw new KernelError(
        "EINVAL",
        `mm: ${this.name}: pgmap ${pgmap.id} of ${pgmap.owner} is not P2PDMA memory`,
      );
    const len = Math.ceil(length / PAGE_SIZE) * PAGE_SIZE;
    if (offset % PAGE_SIZE !== 0 || !(len > 0) || offset + len > pgmap.size)
      throw new KernelError(
        "EINVAL",
        `mm: ${this.name}: p2pmem range ${hex(offset)}+${hex(len)} outside pgmap of ${hex(pgmap.size)} bytes`,
      );
    const start = this.placeRange(addr, len, false);
    let vmFlags = VM_MAYREAD | VM_MAYWRITE | VM_SHARED | VM_MIXEDMAP;
    if ((prot & PROT_READ) !== 0) vmFlags |= VM_READ;
    if ((prot & PROT_WRITE) !== 0) vmFlags |= VM_WRITE;
    const vma: VmAreaStruct = {
      start,
      end: start + len,
      flags: vmFlags,
      kind: "p2pmem",
      file: undefined,
      pgoff: offset / PAGE_SIZE,
      pgmap,
      mm: this,
    };
    this.insertVma(vma);
    const first = pgmap.start / PAGE_SIZE + offset / PAGE_SIZE;
    const mm = this.um.mem.memmap;
    for (let k = 0; k < len / PAGE_SIZE; k++) {
      const pfn = first + k;
      this.um.pages.getPage(pfn);
      const i = mm.idx(pfn);
      mm.mapcount[i] = (mm.mapcount[i] as number) + 1;
      this.pte.set(start / PAGE_SIZE + k, pfn * PTE_SHIFT + ((vmFlags & VM_WRITE) !== 0 ? PTE_WRITE : 0));
    }
    return start;
  }

  /**
   * `mmap` of a device file: places a shared VMA of `length` bytes (`offset` becomes `vm_pgoff`)
   * and calls the driver's `f_op->mmap(file, vma)` handler, which fills it with
   * {@link remapPfnRange}, {@link vmInsertPage} or {@link vmMapPages} (e.g. `dma_mmap_attrs`).
   * If the handler throws, the VMA and whatever it mapped are removed and the error is rethrown,
   * as `mmap_region` unmaps on a failed `->mmap`. Returns the address. EINVAL for length 0 or an
   * unaligned offset; ENOMEM when no gap fits.
   * @see mm/mmap.c mmap_region (call_mmap)
   */
  mmapDevice(
    length: number,
    prot: number,
    offset: number,
    handler: (vma: VmAreaStruct) => void,
    addr = 0,
  ): number {
    this.checkAlive();
    if (!(length > 0) || !Number.isSafeInteger(length))
      throw new KernelError("EINVAL", `mm: ${this.name}: mmap length ${length} is not positive`);
    if (offset % PAGE_SIZE !== 0 || offset < 0)
      throw new KernelError("EINVAL", `mm: ${this.name}: mmap offset ${hex(offset)} is not page-aligned`);
    const len = Math.ceil(length / PAGE_SIZE) * PAGE_SIZE;
    const start = this.placeRange(addr, len, false);
    let vmFlags = VM_MAYREAD | VM_MAYWRITE | VM_SHARED;
    if ((prot & PROT_READ) !== 0) vmFlags |= VM_READ;
    if ((prot & PROT_WRITE) !== 0) vmFlags |= VM_WRITE;
    const vma: VmAreaStruct = {
      start,
      end: start + len,
      flags: vmFlags,
      kind: "device",
      file: undefined,
      pgoff: offset / PAGE_SIZE,
      pgmap: undefined,
      mm: this,
    };
    this.insertVma(vma);
    try {
      handler(vma);
    } catch (e) {
      this.munmap(vma.start, vma.end - vma.start);
      throw e;
    }
    return start;
  }

  /**
   * `remap_pfn_range(vma, addr, pfn, size, prot)`: maps `size` bytes of consecutive pfns from
   * `addr` in a `device` VMA as special PTEs (no page references: the driver keeps the memory
   * alive) and marks the VMA `VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP`, so GUP refuses it.
   * `prot` becomes the VMA's `vm_page_prot`. EINVAL (nothing mapped) for a range outside the VMA,
   * an unaligned address, or a PTE already present (the kernel's `BUG_ON(!pte_none)`).
   * @see mm/memory.c remap_pfn_range
   */
  remapPfnRange(vma: VmAreaStruct, addr: number, pfn: number, size: number, prot?: PgprotKind): void {
    const len = Math.ceil(size / PAGE_SIZE) * PAGE_SIZE;
    this.checkDeviceRange(vma, addr, len, "remap_pfn_range");
    vma.flags |= VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;
    if (prot !== undefined) vma.pageProt = prot;
    const bits = PTE_SPECIAL | ((vma.flags & VM_WRITE) !== 0 ? PTE_WRITE : 0);
    const v0 = addr / PAGE_SIZE;
    for (let k = 0; k < len / PAGE_SIZE; k++) this.pte.set(v0 + k, (pfn + k) * PTE_SHIFT + bits);
  }

  /**
   * `vm_insert_page(vma, addr, page)`: maps one page with a struct page at `addr` in a `device`
   * VMA, taking a page reference and a mapcount (dropped again at munmap), and sets `VM_MIXEDMAP`.
   * EINVAL for a pfn without struct page, a page that is not in use, an address outside the VMA or
   * a PTE already present; EINVAL for a `VM_PFNMAP` VMA (the kernel's BUG_ON).
   * @see mm/memory.c vm_insert_page
   */
  vmInsertPage(vma: VmAreaStruct, addr: number, pfn: number): void {
    this.checkDeviceRange(vma, addr, PAGE_SIZE, "vm_insert_page");
    if ((vma.flags & VM_PFNMAP) !== 0)
      throw new KernelError("EINVAL", `mm: ${this.name}: vm_insert_page into a VM_PFNMAP mapping`);
    if (!this.um.mem.pfnValid(pfn))
      throw new KernelError("EINVAL", `mm: ${this.name}: vm_insert_page: pfn ${hex(pfn)} has no struct page`);
    this.um.pages.getPage(pfn);
    vma.flags |= VM_MIXEDMAP;
    const mm = this.um.mem.memmap;
    const i = mm.idx(pfn);
    mm.mapcount[i] = (mm.mapcount[i] as number) + 1;
    this.pte.set(addr / PAGE_SIZE, pfn * PTE_SHIFT + ((vma.flags & VM_WRITE) !== 0 ? PTE_WRITE : 0));
  }

  /**
   * `vm_map_pages(vma, pages, num)`: inserts `pages[vm_pgoff ..]` over the whole VMA with
   * {@link vmInsertPage}. Throws ENXIO (nothing mapped) when `vm_pgoff >= num` or the VMA is larger
   * than the `num - vm_pgoff` pages that remain.
   * @see mm/memory.c vm_map_pages, __vm_map_pages
   */
  vmMapPages(vma: VmAreaStruct, pages: ArrayLike<number>, num: number): void {
    const count = (vma.end - vma.start) / PAGE_SIZE;
    const offset = vma.pgoff;
    if (offset >= num)
      throw new KernelError("ENXIO", `mm: ${this.name}: vm_map_pages: vm_pgoff ${offset} >= ${num} pages`);
    if (count > num - offset)
      throw new KernelError(
        "ENXIO",
        `mm: ${this.name}: vm_map_pages: ${count} pages from vm_pgoff ${offset} exceed the ${num} pages`,
      );
    for (let i = 0; i < count; i++)
      this.vmInsertPage(vma, vma.start + i * PAGE_SIZE, pages[offset + i] as number);
  }

  /**
   * `munmap(addr, length)`: removes mappings in the range (splitting VMAs at its edges) and drops
   * the pages' mapping references; pages no one else holds return to the allocator. Pinned pages
   * stay allocated until unpinned. EINVAL for a misaligned address or length 0.
   * @see mm/mmap.c do_vmi_munmap
   */
  munmap(addr: number, length: number): void {
    if (addr % PAGE_SIZE !== 0 || !(length > 0) || addr < 0)
      throw new KernelError("EINVAL", `mm: ${this.name}: munmap ${hex(addr)}+${hex(length)}: bad range`);
    const end = addr + Math.ceil(length / PAGE_SIZE) * PAGE_SIZE;
    for (let i = 0; i < this.vmas.length; ) {
      const v = this.vmas[i] as VmAreaStruct;
      if (v.end <= addr || v.start >= end) {
        i++;
        continue;
      }
      const from = Math.max(v.start, addr);
      const to = Math.min(v.end, end);
      this.zapRange(v, from, to);
      if (from === v.start && to === v.end) {
        this.vmas.splice(i, 1);
        v.file?.detach(this, v);
        continue;
      }
      if (from === v.start) {
        if (v.kind !== "anon") v.pgoff += (to - v.start) / PAGE_SIZE;
        v.start = to;
      } else if (to === v.end) {
        v.end = from;
      } else {
        const tail: VmAreaStruct = {
          ...v,
          start: to,
          pgoff: v.kind === "anon" ? 0 : v.pgoff + (to - v.start) / PAGE_SIZE,
        };
        v.end = from;
        this.vmas.splice(i + 1, 0, tail);
        tail.file?.attach(this, tail);
        i++;
      }
      i++;
    }
  }

  /** `mmput()` of the last user: unmaps everything; the address space can no longer be used. */
  mmput(): void {
    if (this.dead) return;
    while (this.vmas.length > 0) {
      const v = this.vmas[0] as VmAreaStruct;
      this.munmap(v.start, v.end - v.start);
    }
    this.dead = true;
    this.um.forgetMm(this.id);
  }

  /** `find_vma`-like: the VMA containing `addr`, or undefined (`vma_lookup`). */
  vmaLookup(addr: number): VmAreaStruct | undefined {
    const a = this.vmas;
    let lo = 0;
    let hi = a.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = a[mid] as VmAreaStruct;
      if (addr < v.start) hi = mid - 1;
      else if (addr >= v.end) lo = mid + 1;
      else return v;
    }
    return undefined;
  }

  /** The VMAs, sorted by address (read-only view). */
  mappings(): readonly VmAreaStruct[] {
    return this.vmas;
  }

  /** `get_mm_rss()`: pages mapped (the zero page excluded). */
  rss(): number {
    let n = 0;
    for (const v of this.pte.values()) if ((v & PTE_SPECIAL) === 0) n++;
    return n;
  }

  /**
   * The page mapped at `addr` and whether the mapping is writable, without faulting
   * (`follow_page`): `{ pfn, write }`, or undefined when no PTE is present.
   */
  followPage(addr: number): { pfn: number; write: boolean } | undefined {
    const e = this.pte.get(Math.floor(addr / PAGE_SIZE));
    if (e === undefined) return undefined;
    return { pfn: Math.floor(e / PTE_SHIFT), write: (e & PTE_WRITE) !== 0 };
  }

  /**
   * `handle_mm_fault(vma, addr, FAULT_FLAG_WRITE?)`: makes `addr` present (and writable for a write
   * fault) and returns the pfn mapped. Anonymous read faults map the zero page; write faults
   * allocate (replacing the zero page). EFAULT (SIGSEGV) for an unmapped address or a write to a
   * read-only mapping (unless `force` on a private mapping, as FOLL_FORCE allows); ENOMEM when no
   * page can be allocated; EFAULT (SIGBUS) beyond the end of a memfd.
   * @see mm/memory.c handle_mm_fault, do_anonymous_page, do_wp_page, mm/shmem.c shmem_fault
   */
  handleMmFault(addr: number, write: boolean, force = false): number {
    this.checkAlive();
    const vma = this.vmaLookup(addr);
    if (vma === undefined)
      throw new KernelError("EFAULT", `mm: ${this.name}: segfault at ${hex(addr)} (no mapping)`);
    if (write && (vma.flags & VM_WRITE) === 0 && !(force && (vma.flags & VM_SHARED) === 0))
      throw new KernelError("EFAULT", `mm: ${this.name}: write to read-only mapping at ${hex(addr)}`);
    if (!write && (vma.flags & VM_READ) === 0 && !force)
      throw new KernelError("EFAULT", `mm: ${this.name}: read of PROT_NONE mapping at ${hex(addr)}`);
    const vpn = Math.floor(addr / PAGE_SIZE);
    const e = this.pte.get(vpn);
    if (e !== undefined && (!write || (e & PTE_WRITE) !== 0 || vma.kind !== "anon")) {
      if (write && (e & PTE_DIRTY) === 0) this.pte.set(vpn, e | PTE_DIRTY);
      return Math.floor(e / PTE_SHIFT);
    }
    switch (vma.kind) {
      case "anon":
        return this.anonFault(vma, vpn, write, e);
      case "shmem":
        return this.shmemFault(vma, vpn, write);
      case "p2pmem":
        throw new KernelError("EFAULT", `mm: ${this.name}: p2pmem page at ${hex(addr)} is not mapped`);
      case "device":
        throw new KernelError(
          "EFAULT",
          `mm: ${this.name}: SIGBUS at ${hex(addr)}: the driver did not map this page of the device mapping`,
        );
    }
  }

  /**
   * A user-mode CPU load: faults pages in (read) and reads through the CPU cache, or straight from
   * memory in a device mapping whose `pageProt` is non-cacheable. EFAULT when unmapped.
   */
  cpuRead(addr: number, dst: Uint8Array): number {
    return this.access(addr, dst.length, false, (phys, off, n, uncached) => {
      if (!uncached) return this.um.cache.cpuRead(phys, dst.subarray(off, off + n));
      this.um.mem.read(phys, dst.subarray(off, off + n));
      return 0;
    });
  }

  /**
   * A user-mode CPU store: faults pages in (write) and writes through the CPU cache (straight to
   * memory in a non-cacheable device mapping). EFAULT when unmapped or read-only.
   */
  cpuWrite(addr: number, src: Uint8Array): number {
    return this.access(addr, src.length, true, (phys, off, n, uncached) => {
      if (!uncached) return this.um.cache.cpuWrite(phys, src.subarray(off, off + n));
      this.um.mem.write(phys, src.subarray(off, off + n));
      return 0;
    });
  }

  /** @internal Repoints a present PTE at another page (migration), keeping its bits. */
  replacePte(vpn: number, pfn: number): void {
    const e = this.pte.get(vpn);
    if (e !== undefined) this.pte.set(vpn, pfn * PTE_SHIFT + (e % PTE_SHIFT));
  }

  /** @internal Shmem: repoints PTEs mapping `pgoff` of `file` at `pfn`, if present. */
  replaceFilePte(vma: VmAreaStruct, pgoff: number, pfn: number): void {
    const vpn = vma.start / PAGE_SIZE + (pgoff - vma.pgoff);
    if (vpn >= vma.start / PAGE_SIZE && vpn < vma.end / PAGE_SIZE) this.replacePte(vpn, pfn);
  }

  /** @internal Shmem truncation: unmaps file pages at or beyond `pgoff` from `vma`. */
  zapFileFrom(vma: VmAreaStruct, pgoff: number): void {
    const from = vma.start + Math.max(0, pgoff - vma.pgoff) * PAGE_SIZE;
    if (from < vma.end) this.zapRange(vma, from, vma.end);
  }

  private access(
    addr: number,
    len: number,
    write: boolean,
    fn: (phys: number, off: number, n: number, uncached: boolean) => number,
  ): number {
    let findings = 0;
    let off = 0;
    while (off < len) {
      const at = addr + off;
      const n = Math.min(len - off, PAGE_SIZE - (at % PAGE_SIZE));
      const pfn = this.handleMmFault(at, write);
      const prot = this.vmaLookup(at)?.pageProt;
      findings += fn(pfn * PAGE_SIZE + (at % PAGE_SIZE), off, n, prot !== undefined && prot !== "cached");
      off += n;
    }
    return findings;
  }

  private anonFault(vma: VmAreaStruct, vpn: number, write: boolean, old: number | undefined): number {
    const um = this.um;
    if (!write) {
      this.pte.set(vpn, um.zeroPfn * PTE_SHIFT + PTE_SPECIAL);
      return um.zeroPfn;
    }
    // The old PTE (if any) maps the zero page: the write replaces it (do_wp_page on the zero page).
    if (old !== undefined) this.pte.delete(vpn);
    let order = um.anonFolioOrder;
    const nr = 1 << order;
    const base = vpn - (vpn % nr);
    if (
      order > 0 &&
      (base * PAGE_SIZE < vma.start || (base + nr) * PAGE_SIZE > vma.end || this.anyPte(base, base + nr))
    )
      order = 0;
    let pfn = order > 0 ? um.allocUserFolio(order, PG_anon) : null;
    if (pfn === null) order = 0;
    pfn ??= um.allocUserFolio(0, PG_anon);
    if (pfn === null) {
      if (old !== undefined) this.pte.set(vpn, old);
      throw new KernelError("ENOMEM", `mm: ${this.name}: out of memory faulting ${hex(vpn * PAGE_SIZE)}`);
    }
    const first = order > 0 ? base : vpn;
    const n = 1 << order;
    const mm = um.mem.memmap;
    const bits = PTE_WRITE | PTE_DIRTY;
    for (let k = 0; k < n; k++) {
      const i = mm.idx(pfn + k);
      mm.mapcount[i] = 1;
      mm.flags[i] = (mm.flags[i] as number) | PG_dirty;
      this.pte.set(first + k, (pfn + k) * PTE_SHIFT + bits);
      um.anonRmapAdd(pfn + k, this.id, first + k);
    }
    // One reference per PTE on the folio head (do_anonymous_page: folio_ref_add(nr - 1)).
    const hi = mm.idx(pfn);
    mm.refcount[hi] = n;
    return pfn + (vpn - first);
  }

  private shmemFault(vma: VmAreaStruct, vpn: number, write: boolean): number {
    const file = vma.file as Memfd;
    const pgoff = vma.pgoff + (vpn - vma.start / PAGE_SIZE);
    const pfn = file.getFolio(pgoff, `mm: ${this.name}: access at ${hex(vpn * PAGE_SIZE)}`);
    this.um.pages.getPage(pfn);
    const mm = this.um.mem.memmap;
    const i = mm.idx(pfn);
    mm.mapcount[i] = (mm.mapcount[i] as number) + 1;
    let bits = (vma.flags & VM_WRITE) !== 0 ? PTE_WRITE : 0;
    if (write) {
      bits |= PTE_DIRTY;
      mm.flags[i] = (mm.flags[i] as number) | PG_dirty;
    }
    this.pte.set(vpn, pfn * PTE_SHIFT + bits);
    return pfn;
  }

  private anyPte(from: number, to: number): boolean {
    for (let v = from; v < to; v++) if (this.pte.has(v)) return true;
    return false;
  }

  private zapRange(vma: VmAreaStruct, from: number, to: number): void {
    const v0 = from / PAGE_SIZE;
    const v1 = to / PAGE_SIZE;
    if (v1 - v0 > this.pte.size) {
      const hit: number[] = [];
      for (const vpn of this.pte.keys()) if (vpn >= v0 && vpn < v1) hit.push(vpn);
      for (const vpn of hit) this.zapPte(vma, vpn);
    } else {
      for (let vpn = v0; vpn < v1; vpn++) if (this.pte.has(vpn)) this.zapPte(vma, vpn);
    }
  }

  private zapPte(_vma: VmAreaStruct, vpn: number): void {
    const e = this.pte.get(vpn) as number;
    this.pte.delete(vpn);
    if ((e & PTE_SPECIAL) !== 0) return;
    const pfn = Math.floor(e / PTE_SHIFT);
    const um = this.um;
    const mm = um.mem.memmap;
    const i = mm.idx(pfn);
    mm.mapcount[i] = (mm.mapcount[i] as number) - 1;
    if (((mm.flags[i] as number) & PG_anon) !== 0) um.anonRmap.delete(pfn);
    um.pages.putPage(pfn);
  }

  private placeRange(addr: number, len: number, fixed: boolean): number {
    if (fixed) {
      if (addr % PAGE_SIZE !== 0 || addr < MMAP_MIN_ADDR || addr + len > TASK_SIZE)
        throw new KernelError(
          "EINVAL",
          `mm: ${this.name}: MAP_FIXED at ${hex(addr)}+${hex(len)} is not allowed`,
        );
      this.munmap(addr, len);
      return addr;
    }
    if (addr !== 0) {
      const a = Math.ceil(addr / PAGE_SIZE) * PAGE_SIZE;
      if (a >= MMAP_MIN_ADDR && a + len <= TASK_SIZE && this.isFree(a, a + len)) return a;
    }
    // Top-down: the highest gap below MMAP_BASE that fits.
    let top = MMAP_BASE;
    for (let i = this.vmas.length - 1; i >= -1; i--) {
      const v = this.vmas[i];
      if (v !== undefined && v.start >= top) continue;
      const bottom = v === undefined ? MMAP_MIN_ADDR : v.end;
      if (top - bottom >= len) return top - len;
      if (v !== undefined) top = Math.min(top, v.start);
    }
    throw new KernelError("ENOMEM", `mm: ${this.name}: no gap of ${hex(len)} bytes for mmap`);
  }

  private isFree(from: number, to: number): boolean {
    for (const v of this.vmas) if (v.start < to && from < v.end) return false;
    return true;
  }

  private insertVma(vma: VmAreaStruct): void {
    let i = 0;
    while (i < this.vmas.length && (this.vmas[i] as VmAreaStruct).start < vma.start) i++;
    this.vmas.splice(i, 0, vma);
  }

  private checkDeviceRange(vma: VmAreaStruct, addr: number, len: number, fn: string): void {
    this.checkAlive();
    if (vma.kind !== "device" || this.vmaLookup(vma.start) !== vma)
      throw new KernelError("EINVAL", `mm: ${this.name}: ${fn}: not a device mapping of this mm`);
    if (addr % PAGE_SIZE !== 0 || addr < vma.start || addr + len > vma.end || !(len > 0))
      throw new KernelError(
        "EINVAL",
        `mm: ${this.name}: ${fn}: ${hex(addr)}+${hex(len)} outside the VMA ${hex(vma.start)}-${hex(vma.end)}`,
      );
    for (let v = addr / PAGE_SIZE; v < (addr + len) / PAGE_SIZE; v++)
      if (this.pte.has(v))
        throw new KernelError("EINVAL", `mm: ${this.name}: ${fn}: ${hex(v * PAGE_SIZE)} is already mapped`);
  }

  private checkAlive(): void {
    if (this.dead) throw new KernelError("EFAULT", `mm: ${this.name} has exited`);
  }
}
