import {
  fls,
  hex,
  isPowerOf2,
  KernelError,
  KernelLog,
  NSEC_PER_MSEC,
  PAGE_SIZE,
  SimClock,
  type TimerHandle,
  ULONG_MAX,
} from "@dmakit/core";
import { IovaTree, NIL } from "./internal/IovaTree.js";

/**
 * `IOVA_ANCHOR` (`~0UL`): pfn_lo = pfn_hi of the anchor node that sits above the top of the usable
 * address space. The model uses `ULONG_MAX` (2^64 as a number), which compares above every pfn.
 * @see drivers/iommu/iova.c IOVA_ANCHOR
 */
export const IOVA_ANCHOR = ULONG_MAX;
/**
 * Log2 of the largest cached IOVA range size in pages, plus one: classes 1, 2, 4, 8, 16, 32 pages.
 * @see drivers/iommu/iova.c
 */
export const IOVA_RANGE_CACHE_MAX_SIZE = 6;
/** Pfns per magazine (127 + one size/next word = a 1024-byte struct). @see drivers/iommu/iova.c */
export const IOVA_MAG_SIZE = 127;
/**
 * Period of the depot shrinker (`IOVA_DEPOT_DELAY`, `msecs_to_jiffies(100)`), in milliseconds.
 * @see drivers/iommu/iova.c IOVA_DEPOT_DELAY
 */
export const IOVA_DEPOT_DELAY_MS = 100;

/**
 * `iova_rcache_range()`: the largest allocation size in bytes the per-CPU caches serve,
 * `PAGE_SIZE << (IOVA_RANGE_CACHE_MAX_SIZE - 1)` = 128 KiB.
 * @see drivers/iommu/iova.c iova_rcache_range
 */
export function iovaRcacheRange(): number {
  return PAGE_SIZE * 2 ** (IOVA_RANGE_CACHE_MAX_SIZE - 1);
}

/**
 * `struct iova`: one allocated or reserved range `[pfnLo, pfnHi]` (inclusive) in the domain's tree.
 * A view onto the domain's node pool, not a copy: `reserveIova` merging updates it in place, and,
 * as with the kernel's pointer, it must not be used after the range is freed (its row is reused).
 * @see include/linux/iova.h struct iova
 */
export class Iova {
  /** @internal */
  constructor(
    private readonly tree: IovaTree,
    /** Row of the node in the domain's pool (stable while the IOVA is live). */
    readonly node: number,
  ) {}

  /** Lowest allocated pfn. */
  get pfnLo(): number {
    return this.tree.lo[this.node]!;
  }

  /** Highest allocated pfn (inclusive). */
  get pfnHi(): number {
    return this.tree.hi[this.node]!;
  }

  /** `iova_size(iova)`: pages in the range. */
  get size(): number {
    return this.tree.hi[this.node]! - this.tree.lo[this.node]! + 1;
  }
}

/**
 * What an {@link IovaDomain} holds, for reports and for tests that check it returns to empty.
 * Model-only: the holdings report every allocator gives.
 */
export interface IovaDomainStats {
  /** IOVA nodes in the rbtree, anchor excluded (allocated, reserved and rcache-held alike). */
  rbtreeNodes: number;
  /** Pages covered by those nodes. */
  rbtreePages: number;
  /** Pfns held by the per-CPU caches and the depot, all classes (each is also an rbtree node). */
  cachedPfns: number;
  /** Per size class (index = log2 pages): cached pfns per CPU (loaded + prev), depot magazines and pfns. */
  classes: Array<{ pages: number; perCpu: number[]; depotMagazines: number; depotPfns: number }>;
  /** Magazines allocated (per-CPU loaded/prev plus depot). */
  magazines: number;
  /** Depot shrinker timers pending on the clock. */
  shrinkersPending: number;
  /** `max32_alloc_size`: 32-bit requests of at least this many pages fail fast. */
  max32AllocSize: number;
}

/**
 * Options for {@link IovaDomain}; everything defaults to a one-CPU machine of its own.
 * Model-only: the clock, CPUs and log the kernel takes from globals.
 */
export interface IovaDomainOptions {
  /** Possible CPUs (`num_possible_cpus()`); all start online. Default 1. */
  numCpus?: number;
  /** Clock for the depot shrinker (`IOVA_DEPOT_DELAY`). Default: a private clock nobody advances. */
  clock?: SimClock;
  /** Kernel log for WARNs. Default: a private log. */
  log?: KernelLog;
  /** Log prefix. Default `"iova"`. */
  name?: string;
  /**
   * Models `GFP_ATOMIC` failure of `iova_magazine_alloc`: at most this many magazines exist at once;
   * beyond it a full CPU cache cannot take more pfns and `free_iova_fast` falls back to the rbtree.
   * Default unlimited.
   */
  maxMagazines?: number;
  /** Whether to run `iova_domain_init_rcaches` at construction. Default true. */
  rcaches?: boolean;
  /** Initial node-pool capacity (grows by doubling). */
  initialCapacity?: number;
}

const NONE = -1;

/**
 * `struct iova_domain`: an IOVA space of `granule`-sized pages handed out top-down from an rbtree
 * of allocated ranges, fronted by per-CPU magazine caches ("rcaches") for sizes up to 32 pages.
 *
 * "Current CPU" (`raw_cpu_ptr`) is the settable {@link cpu} field; CPU hot-unplug is
 * {@link cpuOffline}. Locks are not modelled (calls are atomic). The depot shrinker is a timer on
 * the {@link SimClock}. Nodes live in a typed-array pool (no JS object per IOVA); {@link Iova}
 * views are made only when an API returns one, and are reused with their pool row.
 *
 * @see drivers/iommu/iova.c, include/linux/iova.h
 * @example
 * const iovad = initIovaDomain(4096, 1, { numCpus: 4, clock });
 * const pfn = iovad.allocIovaFast(4, 0xfffff, true); // 4 pages below 4 GiB, 4-page aligned
 * iovad.freeIovaFast(pfn, 4);
 */
export class IovaDomain {
  /** `granule`: bytes per IOVA page. */
  readonly granule: number;
  /** `start_pfn`: lowest pfn handed out. */
  readonly startPfn: number;
  /** `dma_32bit_pfn`: first pfn above 4 GiB, `1 << (32 - iova_shift)`. */
  readonly dma32bitPfn: number;
  /** `max32_alloc_size`: a 32-bit request of at least this many pages fails without searching. */
  max32AllocSize: number;
  /** Possible CPUs. */
  readonly numCpus: number;
  readonly clock: SimClock;
  readonly log: KernelLog;
  readonly name: string;

  /** @internal The node pool and tree. */
  readonly tree: IovaTree;
  /** Node of `anchor`. */
  private readonly anchor: number;
  private cachedNode: number;
  private cached32Node: number;
  private readonly shift: number;
  private records: Array<Iova | undefined> = [];

  // rcaches: magazines are rows of magPfns (IOVA_MAG_SIZE wide); per class c and cpu k the loaded and
  // prev magazines are loaded[c * numCpus + k], prev[...]; the depot is a list linked through magNext.
  private hasRcaches = false;
  private magPfns = new Float64Array(0);
  private magSize = new Int32Array(0);
  private magNext = new Int32Array(0);
  private magFree = NONE;
  private magUnused = 0;
  private magCount = 0;
  private readonly maxMagazines: number;
  private readonly loaded: Int32Array;
  private readonly prev: Int32Array;
  private readonly depot: Int32Array;
  private readonly depotSize: Int32Array;
  private readonly depotWork: Array<TimerHandle | null>;
  private readonly online: Uint8Array;
  private onlineCount: number;
  private curCpu = 0;

  constructor(granule: number, startPfn: number, options: IovaDomainOptions = {}) {
    // BUG_ON((granule > PAGE_SIZE) || !is_power_of_2(granule)); the model throws instead of oopsing.
    if (!(granule <= PAGE_SIZE) || !isPowerOf2(granule))
      throw new KernelError(
        "EINVAL",
        `iova: init_iova_domain: granule ${granule} must be a power of 2 no larger than PAGE_SIZE ${PAGE_SIZE}`,
      );
    if (!Number.isSafeInteger(startPfn) || startPfn < 0)
      throw new KernelError("EINVAL", `iova: init_iova_domain: start_pfn ${startPfn} is not a pfn`);
    const numCpus = options.numCpus ?? 1;
    if (!Number.isInteger(numCpus) || numCpus < 1 || numCpus > 4096)
      throw new KernelError("EINVAL", `iova: numCpus ${numCpus} outside 1..4096`);
    this.granule = granule;
    this.startPfn = startPfn;
    this.shift = 31 - Math.clz32(granule);
    this.dma32bitPfn = 2 ** (32 - this.shift);
    this.max32AllocSize = this.dma32bitPfn;
    this.numCpus = numCpus;
    this.clock = options.clock ?? new SimClock();
    this.log = options.log ?? new KernelLog({ now: () => this.clock.now() });
    this.name = options.name ?? "iova";
    this.maxMagazines = options.maxMagazines ?? Number.POSITIVE_INFINITY;
    this.tree = new IovaTree(options.initialCapacity ?? 1024);
    this.anchor = this.tree.allocNode(IOVA_ANCHOR, IOVA_ANCHOR);
    this.tree.insert(this.anchor, NIL);
    this.cachedNode = this.anchor;
    this.cached32Node = this.anchor;
    const slots = IOVA_RANGE_CACHE_MAX_SIZE * numCpus;
    this.loaded = new Int32Array(slots).fill(NONE);
    this.prev = new Int32Array(slots).fill(NONE);
    this.depot = new Int32Array(IOVA_RANGE_CACHE_MAX_SIZE).fill(NONE);
    this.depotSize = new Int32Array(IOVA_RANGE_CACHE_MAX_SIZE);
    this.depotWork = new Array(IOVA_RANGE_CACHE_MAX_SIZE).fill(null);
    this.online = new Uint8Array(numCpus).fill(1);
    this.onlineCount = numCpus;
    if (options.rcaches !== false) this.iovaDomainInitRcaches();
  }

  /** The CPU the caller runs on (`smp_processor_id()`), used by the rcache paths. */
  get cpu(): number {
    return this.curCpu;
  }

  set cpu(cpu: number) {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.numCpus || this.online[cpu] === 0)
      throw new KernelError(
        "EINVAL",
        `${this.name}: cpu ${cpu} is not an online CPU (0..${this.numCpus - 1})`,
      );
    this.curCpu = cpu;
  }

  /** `num_online_cpus()`. */
  get numOnlineCpus(): number {
    return this.onlineCount;
  }

  // ---------------------------------------------------------------------------------------------
  // iova.h helpers

  /** `iova_shift(iovad)`: `__ffs(granule)`. */
  iovaShift(): number {
    return this.shift;
  }

  /** `iova_mask(iovad)`: `granule - 1`. */
  iovaMask(): number {
    return this.granule - 1;
  }

  /** `iova_offset(iovad, iova)`: the byte offset of a DMA address within its granule. */
  iovaOffset(iova: number): number {
    // Low-word mask for positive integers (`%` on a large number is an fmod call); else `%`.
    if (iova > 0 && this.shift < 31 && Number.isInteger(iova)) return iova & (this.granule - 1);
    return iova % this.granule;
  }

  /** `iova_align(iovad, size)`: `ALIGN(size, granule)`. */
  iovaAlign(size: number): number {
    return Math.ceil(size / this.granule) * this.granule;
  }

  /** `iova_align_down(iovad, size)`: `ALIGN_DOWN(size, granule)`. */
  iovaAlignDown(size: number): number {
    return Math.floor(size / this.granule) * this.granule;
  }

  /** `iova_dma_addr(iovad, iova)`: the DMA address of a range's first byte. */
  iovaDmaAddr(iova: Iova): number {
    return iova.pfnLo * this.granule;
  }

  /** `iova_pfn(iovad, iova)`: the IOVA page number of a DMA address. */
  iovaPfn(iova: number): number {
    return Math.floor(iova / this.granule);
  }

  // ---------------------------------------------------------------------------------------------
  // rbtree allocator

  /** The pfn the 32-bit / full-range searches currently start from (`cached32_node` / `cached_node`). */
  cachedNodePfns(): { cached32: number; cached: number } {
    return { cached32: this.tree.lo[this.cached32Node]!, cached: this.tree.lo[this.cachedNode]! };
  }

  private record(node: number): Iova {
    let r = this.records[node];
    if (r === undefined) {
      r = new Iova(this.tree, node);
      this.records[node] = r;
    }
    return r;
  }

  /**
   * `alloc_iova(iovad, size, limit_pfn, size_aligned)`: allocates `size` pages in
   * `[startPfn, limitPfn]`, searching top-down; with `sizeAligned` the range starts on a multiple
   * of `roundup_pow_of_two(size)`. Returns the range, or null when no space is left (the kernel's
   * NULL; -ENOMEM inside).
   * @see drivers/iommu/iova.c alloc_iova, __alloc_and_insert_iova_range
   */
  allocIova(size: number, limitPfn: number, sizeAligned: boolean): Iova | null {
    const n = this.allocAndInsertIovaRange(size, limitPfn + 1, sizeAligned);
    return n === NIL ? null : this.record(n);
  }

  /** `__alloc_and_insert_iova_range`; `limitPfn` is exclusive here, as in the kernel. Returns a node or NIL. */
  private allocAndInsertIovaRange(size: number, limitPfn: number, sizeAligned: boolean): number {
    if (this.log.warn(!Number.isSafeInteger(size) || size < 1, this.name, `alloc_iova: bad size ${size}`))
      return NIL;
    const tree = this.tree;
    const lo = tree.lo;
    const hi = tree.hi;
    // align_mask = ~0UL << fls_long(size - 1)
    const align = sizeAligned && size > 1 ? 2 ** (fls(size - 1) + 1) : 1;
    let highPfn = limitPfn;
    let lowPfn = this.startPfn;
    const dma32 = this.dma32bitPfn;

    if (limitPfn <= dma32 && size >= this.max32AllocSize) return NIL;

    let curr = limitPfn <= dma32 ? this.cached32Node : this.cachedNode;
    const retryPfn = hi[curr]!;
    let prev: number;
    let newPfn: number;
    for (;;) {
      do {
        const cl = lo[curr]!;
        if (cl < highPfn) highPfn = cl;
        // (high_pfn - size) & align_mask; an unsigned wrap in C becomes -1 here, which fails the
        // same tests (it is below every low_pfn).
        const d = highPfn - size;
        newPfn = d < 0 ? -1 : align === 1 ? d : d - (d % align);
        prev = curr;
        curr = tree.prev(curr);
      } while (curr !== NIL && newPfn <= hi[curr]! && newPfn >= lowPfn);

      if (highPfn < size || newPfn < lowPfn) {
        if (lowPfn === this.startPfn && retryPfn < limitPfn) {
          highPfn = limitPfn;
          lowPfn = retryPfn + 1;
          curr = this.iovaFindLimit(limitPfn);
          // low_pfn no longer equals start_pfn, so a second failure ends below.
          continue;
        }
        this.max32AllocSize = size;
        return NIL;
      }
      break;
    }

    const node = tree.allocNode(newPfn, newPfn + size - 1);
    // If we have 'prev', it's a valid place to start the insertion.
    if (!tree.insert(node, prev)) {
      this.log.warn(true, this.name, `iova_insert_rbtree: pfn ${hex(newPfn)} already in the tree`);
      tree.freeNode(node);
      return NIL;
    }
    // __cached_rbnode_insert_update
    if (newPfn + size - 1 < dma32) this.cached32Node = node;
    else this.cachedNode = node;
    return node;
  }

  /**
   * `iova_find_limit(iovad, limit_pfn)`: the node to restart a top-down walk from so that it
   * covers the gap just below `limitPfn` (the anchor for limits above 4 GiB).
   */
  private iovaFindLimit(limitPfn: number): number {
    if (limitPfn > this.dma32bitPfn) return this.anchor;
    const { lo, hi, left, right } = this.tree;
    let node = this.tree.root;
    while (hi[node]! < limitPfn) node = right[node]!;
    for (;;) {
      while (left[node]! !== NIL && lo[left[node]!]! >= limitPfn) node = left[node]!;
      if (left[node]! === NIL) return node;
      let next = left[node]!;
      let again = false;
      while (right[next]! !== NIL) {
        next = right[next]!;
        if (lo[next]! >= limitPfn) {
          node = next;
          again = true;
          break;
        }
      }
      if (!again) return node;
    }
  }

  /** `private_find_iova`: node containing `pfn`, or NIL. */
  private privateFindIova(pfn: number): number {
    const { lo, hi, left, right } = this.tree;
    let node = this.tree.root;
    while (node !== NIL) {
      if (pfn < lo[node]!) node = left[node]!;
      else if (pfn > hi[node]!) node = right[node]!;
      else return node;
    }
    return NIL;
  }

  /**
   * `find_iova(iovad, pfn)`: the range containing `pfn`, or null. Unlike the kernel it never
   * returns the anchor node (which the kernel would return for `~0UL`).
   * @see drivers/iommu/iova.c find_iova
   */
  findIova(pfn: number): Iova | null {
    const n = this.privateFindIova(pfn);
    return n === NIL || n === this.anchor ? null : this.record(n);
  }

  /**
   * `__cached_rbnode_delete_update(iovad, free)`: before `free` leaves the tree, moves a search
   * start point at or below it up to its successor, and re-opens the 32-bit space
   * (`max32_alloc_size = dma_32bit_pfn`) when it lay below 4 GiB.
   */
  private cachedRbnodeDeleteUpdate(free: number): void {
    const lo = this.tree.lo;
    const fLo = lo[free]!;
    const fHi = this.tree.hi[free]!;
    const c32 = this.cached32Node;
    if (free === c32 || (fHi < this.dma32bitPfn && fLo >= lo[c32]!)) this.cached32Node = this.tree.next(free);
    if (fLo < this.dma32bitPfn) this.max32AllocSize = this.dma32bitPfn;
    if (fLo >= lo[this.cachedNode]!) this.cachedNode = this.tree.next(free);
  }

  /** `remove_iova` + `free_iova_mem`. */
  private removeIova(node: number): void {
    this.cachedRbnodeDeleteUpdate(node);
    this.tree.erase(node);
    this.tree.freeNode(node);
  }

  /**
   * `__free_iova(iovad, iova)`: frees a range returned by {@link allocIova} / {@link findIova}.
   * @see drivers/iommu/iova.c __free_iova
   */
  __freeIova(iova: Iova): void {
    const n = iova.node;
    // A stale record (double free) would unlink a recycled row; the kernel would corrupt its tree.
    if (
      this.log.warn(
        n === this.anchor || this.privateFindIova(iova.pfnLo) !== n,
        this.name,
        "__free_iova: not a live IOVA",
      )
    )
      return;
    this.removeIova(n);
  }

  /**
   * `free_iova(iovad, pfn)`: frees the range containing `pfn`; does nothing if there is none.
   * Returns whether a range was freed (the kernel returns void).
   * @see drivers/iommu/iova.c free_iova
   */
  freeIova(pfn: number): boolean {
    const n = this.privateFindIova(pfn);
    if (n === NIL) return false;
    if (n === this.anchor) {
      this.log.warn(true, this.name, `free_iova: pfn ${hex(pfn)} is the anchor node`);
      return false;
    }
    this.removeIova(n);
    return true;
  }

  /**
   * `reserve_iova(iovad, pfn_lo, pfn_hi)`: keeps `[pfnLo, pfnHi]` out of allocation, merging it
   * into overlapping ranges (which grow downwards to cover it) and inserting what remains above
   * them. Returns the range that now covers `pfnHi`'s part, or null: WARNs and returns null on
   * nonsensical pfns (beyond `ULLONG_MAX >> iova_shift`; the model also rejects `pfnLo > pfnHi`,
   * negative and non-integer values).
   * @see drivers/iommu/iova.c reserve_iova
   */
  reserveIova(pfnLo: number, pfnHi: number): Iova | null {
    const maxPfn = ULONG_MAX / this.granule;
    if (
      this.log.warn(
        !Number.isInteger(pfnLo) ||
          !Number.isInteger(pfnHi) ||
          pfnLo < 0 ||
          pfnLo > pfnHi ||
          pfnHi > maxPfn ||
          pfnHi > Number.MAX_SAFE_INTEGER,
        this.name,
        `reserve_iova: nonsensical pfns ${pfnLo}..${pfnHi}`,
      )
    )
      return null;
    const tree = this.tree;
    const { lo, hi } = tree;
    let overlap = false;
    for (let node = tree.first(); node !== NIL; node = tree.next(node)) {
      if (node === this.anchor) {
        if (overlap) break;
        continue;
      }
      if (pfnLo <= hi[node]! && pfnHi >= lo[node]!) {
        // __adjust_overlap_range
        if (pfnLo < lo[node]!) lo[node] = pfnLo;
        if (pfnHi > hi[node]!) pfnLo = hi[node]! + 1;
        if (pfnLo >= lo[node]! && pfnHi <= hi[node]!) return this.record(node);
        overlap = true;
      } else if (overlap) {
        break;
      }
    }
    const node = tree.allocNode(pfnLo, pfnHi);
    if (!tree.insert(node, NIL)) {
      this.log.warn(true, this.name, `iova_insert_rbtree: pfn ${hex(pfnLo)} already in the tree`);
      tree.freeNode(node);
      return null;
    }
    return this.record(node);
  }

  /** Every range in the tree in address order, anchor excluded (O(n); for reports and tests). */
  ranges(): Array<{ pfnLo: number; pfnHi: number }> {
    const out: Array<{ pfnLo: number; pfnHi: number }> = [];
    const tree = this.tree;
    for (let n = tree.first(); n !== NIL; n = tree.next(n))
      if (n !== this.anchor) out.push({ pfnLo: tree.lo[n]!, pfnHi: tree.hi[n]! });
    return out;
  }

  /**
   * `put_iova_domain(iovad)`: frees the rcaches (cancelling the shrinkers) and every range. The
   * domain is empty afterwards; the model leaves it usable, with no rcaches.
   * @see drivers/iommu/iova.c put_iova_domain
   */
  putIovaDomain(): void {
    if (this.hasRcaches) this.freeIovaRcaches();
    this.tree.clear();
    this.records = [];
    const anchor = this.tree.allocNode(IOVA_ANCHOR, IOVA_ANCHOR);
    this.tree.insert(anchor, NIL);
    this.cachedNode = anchor;
    this.cached32Node = anchor;
    this.max32AllocSize = this.dma32bitPfn;
  }

  // ---------------------------------------------------------------------------------------------
  // rcaches

  /**
   * `iova_domain_init_rcaches(iovad)`: gives every size class an empty loaded and prev magazine per
   * possible CPU. Returns 0 (the kernel's -ENOMEM cannot happen in the model). Idempotent.
   * @see drivers/iommu/iova.c iova_domain_init_rcaches
   */
  iovaDomainInitRcaches(): number {
    if (this.hasRcaches) return 0;
    this.hasRcaches = true;
    const slots = IOVA_RANGE_CACHE_MAX_SIZE * this.numCpus;
    this.ensureMagazines(2 * slots + 8);
    for (let i = 0; i < slots; i++) {
      this.loaded[i] = this.magazineAllocUnlimited();
      this.prev[i] = this.magazineAllocUnlimited();
    }
    return 0;
  }

  private ensureMagazines(n: number): void {
    if (n <= this.magSize.length) return;
    const cap = Math.max(n, this.magSize.length * 2);
    const pfns = new Float64Array(cap * IOVA_MAG_SIZE);
    pfns.set(this.magPfns);
    this.magPfns = pfns;
    const size = new Int32Array(cap);
    size.set(this.magSize);
    this.magSize = size;
    const next = new Int32Array(cap);
    next.set(this.magNext);
    this.magNext = next;
  }

  private magazineAllocUnlimited(): number {
    let m = this.magFree;
    if (m !== NONE) {
      this.magFree = this.magNext[m]!;
    } else {
      if (this.magUnused === this.magSize.length) this.ensureMagazines(this.magUnused + 1);
      m = this.magUnused++;
    }
    this.magSize[m] = 0;
    this.magNext[m] = NONE;
    this.magCount++;
    return m;
  }

  /** `iova_magazine_alloc(GFP_ATOMIC)`: NONE when the `maxMagazines` limit models an allocation failure. */
  private iovaMagazineAlloc(): number {
    if (this.magCount >= this.maxMagazines) return NONE;
    return this.magazineAllocUnlimited();
  }

  private iovaMagazineFree(m: number): void {
    this.magNext[m] = this.magFree;
    this.magFree = m;
    this.magCount--;
  }

  /** `iova_magazine_free_pfns`: returns every pfn of magazine `m` to the rbtree. */
  private iovaMagazineFreePfns(m: number): void {
    const base = m * IOVA_MAG_SIZE;
    const size = this.magSize[m]!;
    for (let i = 0; i < size; i++) {
      const pfn = this.magPfns[base + i]!;
      const node = this.privateFindIova(pfn);
      if (
        this.log.warn(node === NIL || node === this.anchor, this.name, `rcache pfn ${hex(pfn)} not in tree`)
      )
        continue;
      this.removeIova(node);
    }
    this.magSize[m] = 0;
  }

  /** `iova_depot_pop`. */
  private iovaDepotPop(c: number): number {
    const m = this.depot[c]!;
    this.depot[c] = this.magNext[m]!;
    this.magNext[m] = NONE;
    this.depotSize[c]!--;
    return m;
  }

  /** `iova_depot_push`. */
  private iovaDepotPush(c: number, m: number): void {
    this.magNext[m] = this.depot[c]!;
    this.depot[c] = m;
    this.depotSize[c]!++;
  }

  /** `schedule_delayed_work(&rcache->work, IOVA_DEPOT_DELAY)`: a no-op while already pending. */
  private scheduleDepotWork(c: number): void {
    if (this.depotWork[c] !== null) return;
    this.depotWork[c] = this.clock.schedule(
      IOVA_DEPOT_DELAY_MS * NSEC_PER_MSEC,
      () => this.iovaDepotWorkFunc(c),
      `${this.name}: iova_depot_work_func[${c}]`,
    );
  }

  /**
   * `iova_depot_work_func`: frees one depot magazine back to the rbtree while the depot holds more
   * magazines than there are online CPUs, re-arming itself after each one.
   */
  private iovaDepotWorkFunc(c: number): void {
    this.depotWork[c] = null;
    if (this.depotSize[c]! <= this.onlineCount) return;
    const m = this.iovaDepotPop(c);
    this.iovaMagazineFreePfns(m);
    this.iovaMagazineFree(m);
    this.scheduleDepotWork(c);
  }

  /**
   * `alloc_iova_fast(iovad, size, limit_pfn, flush_rcache)`: rounds sizes below 32 pages up to a
   * power of two, tries this CPU's cache of that size, else allocates size-aligned from the rbtree;
   * if that fails and `flushRcache` is set, returns every cached pfn of every CPU and the depot to
   * the rbtree and tries once more. Returns the first pfn, or 0 on failure (the kernel's contract).
   * @see drivers/iommu/iova.c alloc_iova_fast
   */
  allocIovaFast(size: number, limitPfn: number, flushRcache: boolean): number {
    // A shift, not `2 ** k` (a Math.pow call in V8): k <= 5 here.
    if (size < 32) size = size <= 1 ? 1 : 1 << (32 - Math.clz32(size - 1));
    if (this.hasRcaches && size <= 32) {
      const c = size === 1 ? 0 : 32 - Math.clz32(size - 1);
      const pfn = this.iovaRcacheGet(c, limitPfn + 1 - size);
      if (pfn !== 0) return pfn;
    }
    for (;;) {
      const n = this.allocAndInsertIovaRange(size, limitPfn + 1, true);
      if (n !== NIL) return this.tree.lo[n]!;
      if (!flushRcache) return 0;
      // Cached IOVAs still occupy the tree: return them all once, then retry.
      flushRcache = false;
      for (let cpu = 0; cpu < this.numCpus; cpu++) if (this.online[cpu] === 1) this.freeCpuCachedIovas(cpu);
      this.freeGlobalCachedIovas();
    }
  }

  /**
   * `__iova_rcache_get(rcache, limit_pfn)`: pops the newest pfn <= `limitPfn` from this CPU's
   * loaded magazine, after swapping in prev or a full depot magazine when loaded is empty.
   */
  private iovaRcacheGet(c: number, limitPfn: number): number {
    const slot = c * this.numCpus + this.curCpu;
    let m = this.loaded[slot]!;
    const magSize = this.magSize;
    if (magSize[m]! === 0) {
      const p = this.prev[slot]!;
      if (magSize[p]! !== 0) {
        this.prev[slot] = m;
        this.loaded[slot] = p;
        m = p;
      } else if (this.depot[c]! !== NONE) {
        this.iovaMagazineFree(m);
        m = this.iovaDepotPop(c);
        magSize[m] = IOVA_MAG_SIZE;
        this.loaded[slot] = m;
      } else {
        return 0;
      }
    }
    // iova_magazine_pop: only fall back to the rbtree if no pfn at all is suitable.
    const pfns = this.magPfns;
    const base = m * IOVA_MAG_SIZE;
    let i = magSize[m]! - 1;
    while (pfns[base + i]! > limitPfn) {
      if (i === 0) return 0;
      i--;
    }
    const pfn = pfns[base + i]!;
    const top = magSize[m]! - 1;
    pfns[base + i] = pfns[base + top]!;
    magSize[m] = top;
    return pfn;
  }

  /**
   * `free_iova_fast(iovad, pfn, size)`: puts the range into this CPU's cache of size class
   * `order_base_2(size)` when below {@link IOVA_RANGE_CACHE_MAX_SIZE}, else (or when no magazine can
   * be had) frees it to the rbtree.
   * @see drivers/iommu/iova.c free_iova_fast
   */
  freeIovaFast(pfn: number, size: number): void {
    if (this.hasRcaches && size <= 32) {
      const c = size <= 1 ? 0 : 32 - Math.clz32(size - 1);
      if (this.iovaRcacheInsert(c, pfn)) return;
    }
    this.freeIova(pfn);
  }

  /**
   * `__iova_rcache_insert`: pushes onto loaded; if full, swaps with prev; if that is full too,
   * moves loaded to the depot (arming the shrinker) and loads a new empty magazine.
   */
  private iovaRcacheInsert(c: number, pfn: number): boolean {
    const slot = c * this.numCpus + this.curCpu;
    let m = this.loaded[slot]!;
    const magSize = this.magSize;
    if (magSize[m]! === IOVA_MAG_SIZE) {
      const p = this.prev[slot]!;
      if (magSize[p]! !== IOVA_MAG_SIZE) {
        this.prev[slot] = m;
        this.loaded[slot] = p;
        m = p;
      } else {
        const fresh = this.iovaMagazineAlloc();
        if (fresh === NONE) return false;
        this.iovaDepotPush(c, m);
        this.scheduleDepotWork(c);
        this.loaded[slot] = fresh;
        m = fresh;
      }
    }
    const s = magSize[m]!;
    this.magPfns[m * IOVA_MAG_SIZE + s] = pfn;
    magSize[m] = s + 1;
    return true;
  }

  /**
   * `free_cpu_cached_iovas(cpu, iovad)`: returns every pfn in `cpu`'s loaded and prev magazines of
   * every class to the rbtree (the CPU hot-unplug path, and part of the alloc_iova_fast retry).
   * @see drivers/iommu/iova.c free_cpu_cached_iovas
   */
  freeCpuCachedIovas(cpu: number): void {
    if (!this.hasRcaches) return;
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.numCpus)
      throw new KernelError(
        "EINVAL",
        `${this.name}: free_cpu_cached_iovas: cpu ${cpu} outside 0..${this.numCpus - 1}`,
      );
    for (let c = 0; c < IOVA_RANGE_CACHE_MAX_SIZE; c++) {
      const slot = c * this.numCpus + cpu;
      this.iovaMagazineFreePfns(this.loaded[slot]!);
      this.iovaMagazineFreePfns(this.prev[slot]!);
    }
  }

  /**
   * `free_global_cached_iovas(iovad)`: empties every depot back to the rbtree.
   * @see drivers/iommu/iova.c free_global_cached_iovas
   */
  freeGlobalCachedIovas(): void {
    if (!this.hasRcaches) return;
    for (let c = 0; c < IOVA_RANGE_CACHE_MAX_SIZE; c++) {
      while (this.depot[c]! !== NONE) {
        const m = this.iovaDepotPop(c);
        this.iovaMagazineFreePfns(m);
        this.iovaMagazineFree(m);
      }
    }
  }

  /**
   * CPU hot-unplug: marks `cpu` offline and runs the `CPUHP_IOMMU_IOVA_DEAD` callback
   * (`iova_cpuhp_dead` → {@link freeCpuCachedIovas}). The depot shrinker then keeps one magazine
   * fewer. Throws EINVAL for the last online CPU or the current one.
   */
  cpuOffline(cpu: number): void {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.numCpus || this.online[cpu] === 0)
      throw new KernelError("EINVAL", `${this.name}: cpu ${cpu} is not an online CPU`);
    if (cpu === this.curCpu || this.onlineCount === 1)
      throw new KernelError(
        "EINVAL",
        `${this.name}: cannot offline cpu ${cpu}: it is the current or last CPU`,
      );
    this.online[cpu] = 0;
    this.onlineCount--;
    this.freeCpuCachedIovas(cpu);
  }

  /** CPU hotplug: brings `cpu` back online (its magazines are empty). */
  cpuOnline(cpu: number): void {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.numCpus)
      throw new KernelError("EINVAL", `${this.name}: cpu ${cpu} outside 0..${this.numCpus - 1}`);
    if (this.online[cpu] === 1) return;
    this.online[cpu] = 1;
    this.onlineCount++;
  }

  /** `free_iova_rcaches`: drops the magazines (their pfns stay in the tree) and cancels the shrinkers. */
  private freeIovaRcaches(): void {
    for (let c = 0; c < IOVA_RANGE_CACHE_MAX_SIZE; c++) {
      const w = this.depotWork[c];
      if (w) this.clock.cancel(w);
      this.depotWork[c] = null;
      this.depot[c] = NONE;
      this.depotSize[c] = 0;
    }
    this.loaded.fill(NONE);
    this.prev.fill(NONE);
    this.magFree = NONE;
    this.magUnused = 0;
    this.magCount = 0;
    this.hasRcaches = false;
  }

  // ---------------------------------------------------------------------------------------------
  // reporting

  /** Everything the domain holds. O(nodes + magazines). */
  stats(): IovaDomainStats {
    const tree = this.tree;
    let pages = 0;
    for (let n = tree.first(); n !== NIL; n = tree.next(n))
      if (n !== this.anchor) pages += tree.hi[n]! - tree.lo[n]! + 1;
    const classes: IovaDomainStats["classes"] = [];
    let cachedPfns = 0;
    let shrinkersPending = 0;
    for (let c = 0; c < IOVA_RANGE_CACHE_MAX_SIZE; c++) {
      const perCpu: number[] = [];
      for (let cpu = 0; cpu < this.numCpus; cpu++) {
        const slot = c * this.numCpus + cpu;
        const l = this.loaded[slot]!;
        const p = this.prev[slot]!;
        const k = (l === NONE ? 0 : this.magSize[l]!) + (p === NONE ? 0 : this.magSize[p]!);
        perCpu.push(k);
        cachedPfns += k;
      }
      let depotPfns = 0;
      for (let m = this.depot[c]!; m !== NONE; m = this.magNext[m]!) depotPfns += this.magSize[m]!;
      cachedPfns += depotPfns;
      if (this.depotWork[c] !== null) shrinkersPending++;
      classes.push({ pages: 2 ** c, perCpu, depotMagazines: this.depotSize[c]!, depotPfns });
    }
    return {
      rbtreeNodes: tree.count - 1,
      rbtreePages: pages,
      cachedPfns,
      classes,
      magazines: this.magCount,
      shrinkersPending,
      max32AllocSize: this.max32AllocSize,
    };
  }
}

/**
 * `init_iova_domain(iovad, granule, start_pfn)` followed by `iova_domain_init_rcaches(iovad)` (unless
 * `options.rcaches === false`). Throws EINVAL where the kernel BUGs: `granule > PAGE_SIZE` or not a
 * power of 2.
 * @see drivers/iommu/iova.c init_iova_domain, iova_domain_init_rcaches
 */
export function initIovaDomain(
  granule: number,
  startPfn: number,
  options: IovaDomainOptions = {},
): IovaDomain {
  return new IovaDomain(granule, startPfn, options);
}
