import { KernelError, PAGE_SIZE } from "@dmakit/core";
import type { CpuCache } from "./CpuCache.js";
import { __GFP_COMP, __GFP_NOWARN, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_USER } from "./gfp.js";
import { Memfd, type MemfdFlags } from "./Memfd.js";
import { MmStruct } from "./MmStruct.js";
import { MAX_PAGE_ORDER, type PageAllocator } from "./PageAllocator.js";
import type { PhysMem } from "./PhysMem.js";
import { PG_anon, PG_dirty, PG_head, PG_kernel, PG_lru, PG_shmem } from "./pageFlags.js";

/** Options of a {@link UserMemory}. Model-only: what a {@link UserMemory} is built from. */
export interface UserMemoryOptions {
  readonly mem: PhysMem;
  readonly pages: PageAllocator;
  readonly cache: CpuCache;
  /**
   * Order of the anonymous folios faulted in where a naturally aligned folio fits inside the VMA
   * (mTHP, `/sys/kernel/mm/transparent_hugepage/hugepages-<size>/enabled = always`); default 0
   * (small folios only). Falls back to order 0 when the allocation fails.
   */
  readonly anonFolioOrder?: number;
}

const MM_ID_BITS = 65536;
const PGOFF_BITS = 0x1_0000_0000;

/**
 * The user-memory side of one machine: its address spaces ({@link MmStruct}), shmem objects
 * ({@link Memfd}), the shared zero page, and the reverse map from pages to the PTEs that map them
 * (the model's `mm/rmap.c`), which page migration (`mm/migrate.c`) uses to move movable user
 * pages for CMA and for `FOLL_LONGTERM` pins.
 *
 * The reverse map is two `Map<pfn, number>`s (anon: address space and virtual page; shmem: object
 * and page offset): no object per page. Anonymous memory is never shared between address spaces
 * (the model has no fork), so each anonymous page has one mapping.
 * Model-only: gathers the user-memory state the kernel keeps in globals (rmap, zero page, shmem).
 */
export class UserMemory {
  readonly mem: PhysMem;
  readonly pages: PageAllocator;
  readonly cache: CpuCache;
  readonly anonFolioOrder: number;
  /** `ZERO_PAGE(0)`: mapped read-only for read faults of anonymous memory; never refcounted or pinned. */
  readonly zeroPfn: number;
  private readonly mms: (MmStruct | undefined)[] = [undefined];
  private readonly memfds: (Memfd | undefined)[] = [undefined];
  /** @internal pfn → vpn * 65536 + mm id. */
  readonly anonRmap = new Map<number, number>();
  /** @internal pfn → memfd id * 2^32 + pgoff. */
  readonly shmemRmap = new Map<number, number>();

  constructor(options: UserMemoryOptions) {
    this.mem = options.mem;
    this.pages = options.pages;
    this.cache = options.cache;
    const order = options.anonFolioOrder ?? 0;
    if (!(Number.isInteger(order) && order >= 0 && order <= MAX_PAGE_ORDER))
      throw new KernelError("EINVAL", `mm: anonFolioOrder ${order} is not in 0..${MAX_PAGE_ORDER}`);
    this.anonFolioOrder = order;
    const zero = this.pages.allocPages(GFP_KERNEL, 0);
    if (zero === null) throw new KernelError("ENOMEM", "mm: no memory for the zero page");
    this.mem.fill(zero * PAGE_SIZE, PAGE_SIZE, 0);
    const mm = this.mem.memmap;
    const i = mm.idx(zero);
    mm.flags[i] = (mm.flags[i] as number) | PG_kernel;
    this.zeroPfn = zero;
  }

  /** `is_zero_pfn(pfn)`. */
  isZeroPfn(pfn: number): boolean {
    return pfn === this.zeroPfn;
  }

  /** `mm_alloc()`: a new, empty address space. */
  mmAlloc(name = `mm${this.mms.length}`): MmStruct {
    const id = this.mms.length;
    if (id >= MM_ID_BITS)
      throw new KernelError("ENOMEM", `mm: mm_alloc: out of address-space ids (${MM_ID_BITS - 1})`);
    const mm = new MmStruct(this, id, name);
    this.mms.push(mm);
    return mm;
  }

  /**
   * `memfd_create(name, flags)`: a new shmem object of size 0. Without `MFD_ALLOW_SEALING` it
   * starts with `F_SEAL_SEAL` (no seals can be added), as the kernel does.
   * @see mm/memfd.c memfd_create
   */
  memfdCreate(name: string, flags: MemfdFlags = 0): Memfd {
    const id = this.memfds.length;
    const f = new Memfd(this, id, name, flags);
    this.memfds.push(f);
    return f;
  }

  /** @internal */
  mmById(id: number): MmStruct | undefined {
    return this.mms[id];
  }

  /** @internal */
  memfdById(id: number): Memfd | undefined {
    return this.memfds[id];
  }

  /** @internal The last user of an address space dropped it. */
  forgetMm(id: number): void {
    this.mms[id] = undefined;
  }

  /** @internal The last reference to a memfd went. */
  forgetMemfd(id: number): void {
    this.memfds[id] = undefined;
  }

  /** @internal Records that `pfn` is mapped at `vpn` of address space `mmId` (anonymous). */
  anonRmapAdd(pfn: number, mmId: number, vpn: number): void {
    this.anonRmap.set(pfn, vpn * MM_ID_BITS + mmId);
  }

  /** @internal */
  shmemRmapAdd(pfn: number, memfdId: number, pgoff: number): void {
    this.shmemRmap.set(pfn, memfdId * PGOFF_BITS + pgoff);
  }

  /**
   * Allocates and zeroes a user page: `GFP_HIGHUSER_MOVABLE` and zeroing by CPU stores through the
   * cache (`__GFP_ZERO` / `clear_user_highpage` are CPU stores in the kernel too; on a non-coherent
   * machine a fresh user page therefore holds dirty zero lines until cleaned). Null when out of memory.
   * @internal
   */
  allocUserFolio(order: number, flags: number): number | null {
    const pfn = this.pages.allocPages(
      GFP_HIGHUSER_MOVABLE | __GFP_NOWARN | (order > 0 ? __GFP_COMP : 0),
      order,
    );
    if (pfn === null) return null;
    this.cache.cpuFill(pfn * PAGE_SIZE, PAGE_SIZE << order, 0);
    const mm = this.mem.memmap;
    for (let k = 0; k < 1 << order; k++) {
      const i = mm.idx(pfn + k);
      mm.flags[i] = (mm.flags[i] as number) | flags | PG_lru;
      mm.mapcount[i] = 0;
    }
    return pfn;
  }

  /**
   * Migrates the movable user folio holding `pfn` to a new folio allocated with `gfp`: copies the
   * contents (CPU copy through the cache, as `folio_copy` does), repoints every PTE and the shmem
   * page cache at the new folio, and frees the old one. Returns the new pfn of the folio head, or
   * null when the folio cannot move: not a user (`PG_lru`) folio, extra references (pinned: a
   * refcount above what its mappings explain, or a large folio's `_pincount`), or no memory.
   * @see mm/migrate.c migrate_pages, folio_migrate_mapping (the expected-refcount check)
   */
  migrateFolio(pfn: number, gfp: number): number | null {
    const pages = this.pages;
    const mm = this.mem.memmap;
    const h = pages.compoundHead(pfn);
    const hi = mm.index(h);
    if (hi < 0) return null;
    const f = mm.flags[hi] as number;
    if ((f & PG_lru) === 0 || (f & (PG_anon | PG_shmem)) === 0) return null;
    const order = (f & PG_head) !== 0 ? (mm.order[hi] as number) : 0;
    const nr = 1 << order;
    let expected = (f & PG_shmem) !== 0 ? nr : 0;
    for (let k = 0; k < nr; k++) expected += mm.mapcount[hi + k] as number;
    if ((mm.refcount[hi] as number) !== expected || (order > 0 && (mm.priv[hi] as number) !== 0)) return null;
    const to = pages.allocPages(gfp | __GFP_NOWARN | (order > 0 ? __GFP_COMP : 0), order);
    if (to === null) return null;
    const buf = new Uint8Array(PAGE_SIZE << order);
    this.cache.cpuRead(h * PAGE_SIZE, buf);
    this.cache.cpuWrite(to * PAGE_SIZE, buf);
    const ti = mm.idx(to);
    const keep = f & (PG_anon | PG_shmem | PG_lru | PG_dirty);
    for (let k = 0; k < nr; k++) {
      mm.flags[ti + k] = (mm.flags[ti + k] as number) | keep;
      mm.mapcount[ti + k] = mm.mapcount[hi + k] as number;
      mm.mapcount[hi + k] = 0;
      mm.flags[hi + k] = (mm.flags[hi + k] as number) & ~(PG_anon | PG_shmem | PG_lru | PG_dirty);
    }
    mm.refcount[ti] = expected;
    for (let k = 0; k < nr; k++) {
      const a = this.anonRmap.get(h + k);
      if (a !== undefined) {
        this.anonRmap.delete(h + k);
        this.anonRmap.set(to + k, a);
        const owner = this.mms[a % MM_ID_BITS];
        owner?.replacePte(Math.floor(a / MM_ID_BITS), to + k);
      }
      const s = this.shmemRmap.get(h + k);
      if (s !== undefined) {
        this.shmemRmap.delete(h + k);
        this.shmemRmap.set(to + k, s);
        this.memfds[Math.floor(s / PGOFF_BITS)]?.replacePage(s % PGOFF_BITS, to + k);
      }
    }
    mm.refcount[hi] = 1;
    pages.freePages(h, order);
    return to;
  }

  /**
   * Installs the page-migration hook that CMA (`alloc_contig_range`) calls to move unpinned
   * movable user folios out of the range it claims; pinned folios return null (cannot move).
   * @see mm/page_alloc.c __alloc_contig_migrate_range (alloc_migration_target)
   */
  installMigrateHook(): void {
    this.pages.setMigrateHook((pfn) => this.migrateFolio(pfn, GFP_HIGHUSER_MOVABLE));
  }

  /** @internal Target gfp for `FOLL_LONGTERM` migration: no `__GFP_MOVABLE` (memalloc_pin_save). */
  static readonly LONGTERM_GFP = GFP_USER;

  /** Pages of every live address space's page tables (RSS), for reports. */
  rss(): number {
    let n = 0;
    for (const m of this.mms) if (m !== undefined) n += m.rss();
    return n;
  }
}
