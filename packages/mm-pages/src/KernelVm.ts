import { hex, KernelError, PAGE_SIZE } from "@dmakit/core";
import type { CpuCache } from "./CpuCache.js";
import { __GFP_NOWARN, GFP_KERNEL } from "./gfp.js";
import type { PgprotKind } from "./MmStruct.js";
import type { PageAllocator } from "./PageAllocator.js";
import type { PhysMem } from "./PhysMem.js";

/**
 * Start of the kernel's linear map (`PAGE_OFFSET`): physical address `p` is visible at
 * `PAGE_OFFSET + p`. The kernel's value (0xffff000000000000 on arm64 48-bit VA, 0xffff888000000000 on
 * x86_64) does not fit in a double, so the model lays the kernel half out below 2^53:
 *
 * | range                                       | what                                     |
 * |---------------------------------------------|------------------------------------------|
 * | 0 .. `TASK_SIZE` (2^47)                     | user address spaces (`MmStruct`)         |
 * | `PAGE_OFFSET` (2^52) .. + `LINEAR_MAP_SIZE` | linear map of all physical memory (2 PiB)|
 * | `VMALLOC_START` .. `VMALLOC_END`            | vmalloc / vmap (1 PiB)                   |
 *
 * @see arch/arm64/include/asm/memory.h, Documentation/arch/arm64/memory.rst
 */
export const PAGE_OFFSET = 0x10_0000_0000_0000;
/**
 * Size of the linear map: physical addresses at or above it have no linear-map address.
 * Model-only size (the model's layout is its own). @see arch/arm64/include/asm/memory.h PAGE_END
 */
export const LINEAR_MAP_SIZE = 0x08_0000_0000_0000;
/** `VMALLOC_START`. @see arch/arm64/include/asm/pgtable.h (the model's address is its own) */
export const VMALLOC_START = 0x18_0000_0000_0000;
/** `VMALLOC_END` (exclusive). @see arch/arm64/include/asm/pgtable.h (the model's address is its own) */
export const VMALLOC_END = 0x1c_0000_0000_0000;

/** One vmalloc/vmap area: a `struct vm_struct` holding its pages as a typed array. */
interface VmArea {
  readonly addr: number;
  /** Pages mapped (the guard page after them is not counted). */
  readonly nrPages: number;
  readonly pages: Float64Array;
  /** True for vmalloc areas: vfree frees the pages. */
  readonly owned: boolean;
  readonly caller: string;
  /** Mapped non-cacheable (`pgprot_dmacoherent` / `pgprot_writecombine`): CPU accesses bypass the cache. */
  readonly uncached: boolean;
}

/** Options of a {@link KernelVm}. Model-only: what a {@link KernelVm} is built from. */
export interface KernelVmOptions {
  readonly mem: PhysMem;
  readonly cache: CpuCache;
  /** Needed by {@link KernelVm.vmalloc} only. */
  readonly pages?: PageAllocator;
}

/**
 * The kernel's CPU views of memory: the linear map (`page_address`, `__va`/`__pa`, `kmap`) and the
 * vmalloc space (`vmap`, `vmalloc`). Kernel CPU accesses through virtual addresses
 * ({@link cpuReadVirt}, {@link cpuWriteVirt}) translate page by page and go through the CPU cache.
 *
 * The vmalloc "page table" is one sorted list of areas, each with a `Float64Array` of pfns (no
 * object per page); lookups are binary searches. There is no highmem: `kmap` is `page_address`.
 *
 * @see mm/vmalloc.c, include/linux/mm.h page_address, arch/arm64/include/asm/memory.h
 */
export class KernelVm {
  readonly mem: PhysMem;
  readonly cache: CpuCache;
  private readonly pages: PageAllocator | undefined;
  private readonly areas: VmArea[] = [];
  private kmaps = 0;

  constructor(options: KernelVmOptions) {
    this.mem = options.mem;
    this.cache = options.cache;
    this.pages = options.pages;
  }

  // ---------------------------------------------------------------- linear map

  /**
   * `page_address(page)`: the linear-map address of a page with a struct page (RAM or ZONE_DEVICE
   * memory, which `memremap_pages` maps). EFAULT for a pfn without struct page (the kernel would
   * return garbage).
   * @see include/linux/mm.h page_address (lowmem_page_address)
   */
  pageAddress(pfn: number): number {
    if (!this.mem.pfnValid(pfn))
      throw new KernelError("EFAULT", `vm: page_address: pfn ${hex(pfn)} has no struct page`);
    return PAGE_OFFSET + pfn * PAGE_SIZE;
  }

  /** `kmap(page)`: without highmem, the page's linear-map address. Counts outstanding kmaps. */
  kmap(pfn: number): number {
    const va = this.pageAddress(pfn);
    this.kmaps++;
    return va;
  }

  /** `kunmap(page)`. WARNs on an unbalanced call. */
  kunmap(_pfn: number): void {
    if (this.mem.log.warn(this.kmaps === 0, "vm", "kunmap without a matching kmap")) return;
    this.kmaps--;
  }

  /** `kmap_local_page(page)` (same as {@link kmap} in the model). */
  kmapLocalPage(pfn: number): number {
    return this.kmap(pfn);
  }

  /** `kunmap_local(addr)`. */
  kunmapLocal(_va: number): void {
    this.kunmap(0);
  }

  /** Outstanding kmaps (leak check). */
  get kmapCount(): number {
    return this.kmaps;
  }

  /**
   * `virt_to_phys(va)` / `__pa`. Only linear-map addresses translate; any other address WARNs like
   * `CONFIG_DEBUG_VIRTUAL` ("virt_to_phys used for non-linear address") and returns the same
   * arithmetic the kernel would, a meaningless physical address.
   * @see arch/arm64/mm/physaddr.c __virt_to_phys
   */
  virtToPhys(va: number): number {
    this.mem.log.warn(
      !isLinearAddr(va),
      "vm",
      `virt_to_phys used for non-linear address: ${hex(va)}${this.isVmallocAddr(va) ? " (vmalloc)" : ""}`,
    );
    return va - PAGE_OFFSET;
  }

  /** `phys_to_virt(phys)` / `__va`. EINVAL beyond the linear map. */
  physToVirt(phys: number): number {
    if (!(phys >= 0 && phys < LINEAR_MAP_SIZE))
      throw new KernelError("EINVAL", `vm: phys_to_virt: ${hex(phys)} is beyond the linear map`);
    return PAGE_OFFSET + phys;
  }

  /** `virt_to_page(va)`: pfn of a linear-map address (same WARN as {@link virtToPhys}). */
  virtToPage(va: number): number {
    return Math.floor(this.virtToPhys(va) / PAGE_SIZE);
  }

  /**
   * `virt_addr_valid(va)`: a linear-map address whose page has a struct page. False for vmalloc
   * addresses: what `dma_map_single` debug checks use to reject vmalloc memory.
   * @see arch/arm64/include/asm/memory.h virt_addr_valid
   */
  virtAddrValid(va: number): boolean {
    return isLinearAddr(va) && this.mem.pfnValid(Math.floor((va - PAGE_OFFSET) / PAGE_SIZE));
  }

  /** `is_vmalloc_addr(va)`. @see include/linux/mm.h */
  isVmallocAddr(va: number): boolean {
    return va >= VMALLOC_START && va < VMALLOC_END;
  }

  // ---------------------------------------------------------------- vmalloc space

  /**
   * `vmap(pages, count, flags, prot)`: maps `count` pages (any pfns with struct pages, in any
   * order) virtually contiguously in the vmalloc space, followed by a guard page. Returns the
   * address, or null (the kernel's NULL) for `count` 0 or too many pages, or when the space is full.
   * `prot` is the mapping's memory type: `cached` (`PAGE_KERNEL`, the default) or a non-cacheable
   * one (`noncached` = arm64 `pgprot_dmacoherent`, `writecombine`), whose CPU accesses through
   * {@link cpuReadVirt} / {@link cpuWriteVirt} go straight to memory, as DMA-coherent remaps do.
   * EINVAL for a pfn without struct page or `count` beyond the array.
   * @see mm/vmalloc.c vmap
   */
  vmap(pages: ArrayLike<number>, count: number, prot: PgprotKind = "cached"): number | null {
    if (!Number.isInteger(count) || count <= 0) return null;
    if (count > pages.length)
      throw new KernelError("EINVAL", `vm: vmap: count ${count} exceeds the page array (${pages.length})`);
    const arr = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      const pfn = pages[i] as number;
      if (!this.mem.pfnValid(pfn))
        throw new KernelError("EINVAL", `vm: vmap: page ${i} (pfn ${hex(pfn)}) has no struct page`);
      arr[i] = pfn;
    }
    return this.insertArea(arr, false, "vmap", prot !== "cached");
  }

  /** `vunmap(addr)`: unmaps a {@link vmap} area (pages untouched). EINVAL for an unknown address. */
  vunmap(va: number): void {
    const at = this.areaIndexAt(va);
    const area = at >= 0 ? this.areas[at] : undefined;
    if (area === undefined || area.addr !== va || area.owned)
      throw new KernelError("EINVAL", `vm: vunmap: ${hex(va)} is not the start of a vmap area`);
    this.areas.splice(at, 1);
  }

  /**
   * `vmalloc(size)`: virtually contiguous memory from order-0 `GFP_KERNEL` pages, not zeroed.
   * Returns the address, or null (NULL) for size 0 or when pages run out (logging
   * "vmalloc error", as `warn_alloc` does, and freeing what it took).
   * @see mm/vmalloc.c vmalloc, __vmalloc_node_range
   */
  vmalloc(size: number): number | null {
    const pages = this.pages;
    if (pages === undefined)
      throw new KernelError("EINVAL", "vm: vmalloc: no page allocator given to KernelVm");
    if (!(size > 0)) return null;
    const n = Math.ceil(size / PAGE_SIZE);
    const arr = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const pfn = pages.allocPages(GFP_KERNEL | __GFP_NOWARN, 0);
      if (pfn === null) {
        for (let k = 0; k < i; k++) pages.freePages(arr[k] as number, 0);
        this.mem.log.warning("vm", `vmalloc error: size ${size}, failed to allocate pages, mode:GFP_KERNEL`);
        return null;
      }
      arr[i] = pfn;
    }
    const va = this.insertArea(arr, true, "vmalloc", false);
    if (va === null) for (let k = 0; k < n; k++) pages.freePages(arr[k] as number, 0);
    return va;
  }

  /** `vzalloc(size)`: {@link vmalloc} then zeroed through the CPU cache. */
  vzalloc(size: number): number | null {
    const va = this.vmalloc(size);
    if (va !== null) this.cpuWriteVirt(va, new Uint8Array(Math.ceil(size / PAGE_SIZE) * PAGE_SIZE));
    return va;
  }

  /** `vfree(addr)`: unmaps a {@link vmalloc} area and frees its pages; null-like 0 is ignored. */
  vfree(va: number): void {
    if (va === 0) return;
    const at = this.areaIndexAt(va);
    const area = at >= 0 ? this.areas[at] : undefined;
    if (area === undefined || area.addr !== va || !area.owned)
      throw new KernelError("EINVAL", `vm: vfree: ${hex(va)} is not the start of a vmalloc area`);
    this.areas.splice(at, 1);
    for (let i = 0; i < area.nrPages; i++) this.pages?.freePages(area.pages[i] as number, 0);
  }

  /** `vmalloc_to_page(addr)`: the pfn behind a vmalloc/vmap address, or null (unmapped, guard page). */
  vmallocToPage(va: number): number | null {
    const at = this.areaIndexAt(va);
    const area = at >= 0 ? this.areas[at] : undefined;
    if (area === undefined) return null;
    const i = Math.floor((va - area.addr) / PAGE_SIZE);
    return i < area.nrPages ? (area.pages[i] as number) : null;
  }

  /** `vmalloc_to_pfn(addr)`; EFAULT when unmapped. */
  vmallocToPfn(va: number): number {
    const pfn = this.vmallocToPage(va);
    if (pfn === null) throw new KernelError("EFAULT", `vm: vmalloc_to_pfn: ${hex(va)} is not mapped`);
    return pfn;
  }

  /** Bytes of vmalloc space in use, guard pages included (`/proc/vmallocinfo` total). */
  get vmallocUsed(): number {
    let n = 0;
    for (const a of this.areas) n += (a.nrPages + 1) * PAGE_SIZE;
    return n;
  }

  // ---------------------------------------------------------------- CPU access

  /**
   * Translates a kernel virtual address (linear map or vmalloc) to a physical address, or -1 when
   * nothing is mapped there (the model's page-table walk).
   */
  translate(va: number): number {
    if (isLinearAddr(va)) {
      const phys = va - PAGE_OFFSET;
      return this.mem.regionKind(phys) === "hole" ? -1 : phys;
    }
    const pfn = this.vmallocToPage(va);
    return pfn === null ? -1 : pfn * PAGE_SIZE + (va % PAGE_SIZE);
  }

  /** A kernel CPU load at a virtual address, through the CPU cache. EFAULT ("Unable to handle kernel paging request") when unmapped. Returns cache findings recorded. */
  cpuReadVirt(va: number, dst: Uint8Array): number {
    let n = 0;
    this.forPages(va, dst.length, (phys, off, len, uncached) => {
      if (uncached) this.mem.read(phys, dst.subarray(off, off + len));
      else n += this.cache.cpuRead(phys, dst.subarray(off, off + len));
    });
    return n;
  }

  /** A kernel CPU store at a virtual address, through the CPU cache. EFAULT when unmapped. */
  cpuWriteVirt(va: number, src: Uint8Array): number {
    let n = 0;
    this.forPages(va, src.length, (phys, off, len, uncached) => {
      if (uncached) this.mem.write(phys, src.subarray(off, off + len));
      else n += this.cache.cpuWrite(phys, src.subarray(off, off + len));
    });
    return n;
  }

  private forPages(
    va: number,
    len: number,
    fn: (phys: number, off: number, len: number, uncached: boolean) => void,
  ): void {
    let off = 0;
    while (off < len) {
      const at = va + off;
      const n = Math.min(len - off, PAGE_SIZE - (at % PAGE_SIZE));
      const phys = this.translate(at);
      if (phys < 0)
        throw new KernelError(
          "EFAULT",
          `vm: Unable to handle kernel paging request at virtual address ${hex(at)}`,
        );
      fn(phys, off, n, !isLinearAddr(at) && this.isUncached(at));
      off += n;
    }
  }

  private isUncached(va: number): boolean {
    const at = this.areaIndexAt(va);
    return at >= 0 && (this.areas[at] as VmArea).uncached;
  }

  private areaIndexAt(va: number): number {
    const a = this.areas;
    let lo = 0;
    let hi = a.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const m = a[mid] as VmArea;
      if (va < m.addr) hi = mid - 1;
      else if (va >= m.addr + (m.nrPages + 1) * PAGE_SIZE) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  /** First fit from VMALLOC_START; each area is followed by a guard page (no VM_NO_GUARD). */
  private insertArea(pages: Float64Array, owned: boolean, caller: string, uncached: boolean): number | null {
    const span = (pages.length + 1) * PAGE_SIZE;
    let addr = VMALLOC_START;
    let at = 0;
    for (; at < this.areas.length; at++) {
      const a = this.areas[at] as VmArea;
      if (addr + span <= a.addr) break;
      addr = a.addr + (a.nrPages + 1) * PAGE_SIZE;
    }
    if (addr + span > VMALLOC_END) {
      this.mem.log.warning(
        "vm",
        `vmap allocation for size ${span} failed: use vmalloc=<size> to increase size`,
      );
      return null;
    }
    this.areas.splice(at, 0, { addr, nrPages: pages.length, pages, owned, caller, uncached });
    return addr;
  }
}

function isLinearAddr(va: number): boolean {
  return va >= PAGE_OFFSET && va < PAGE_OFFSET + LINEAR_MAP_SIZE;
}
