import {
  type Device,
  getOrder,
  hex,
  KernelError,
  PAGE_SIZE,
  roundupPowOfTwo,
  SZ_1G,
  SZ_128K,
} from "@dmakit/core";
import {
  __GFP_NOWARN,
  formatGfp,
  GFP_DMA,
  GFP_DMA32,
  GFP_KERNEL,
  MAX_ORDER_NR_PAGES,
  MAX_PAGE_ORDER,
  ZONE_DMA,
  ZONE_DMA32,
  ZONE_NORMAL,
} from "@dmakit/mm-pages";
import { type DmaSystem, DmaSystemKey } from "./DmaSystem.js";
import {
  dmaAllocFromContiguous,
  dmaContiguousDefaultArea,
  dmaReleaseFromContiguous,
} from "./dmaContiguous.js";
import { devDmaState } from "./dmaDevice.js";
import { archDmaPrepCoherent, dmaCommonContiguousRemap, zeroDmaBuffer } from "./internal/dmaRemap.js";
import { zoneDmaLimit } from "./internal/zoneDmaLimit.js";

/** `%pGg`: the flag names of a gfp mask (`GFP_KERNEL|GFP_DMA32`), without `formatGfp`'s hex prefix. */
export function gfpNames(gfp: number): string {
  return formatGfp(gfp).replace(/^0x[0-9a-f]+\((.*)\)$/, "$1");
}

/** One chunk of a {@link DmaAtomicPool}: a vmapped run of pages and its page bitmap. */
interface PoolChunk {
  readonly virt: number;
  readonly phys: number;
  readonly size: number;
  readonly bitmap: Uint8Array;
}

/**
 * What a {@link DmaAtomicPool} holds (the `dma_pools` debugfs numbers plus use).
 * @see kernel/dma/pool.c dma_atomic_pool_debugfs_init
 */
export interface DmaAtomicPoolReport {
  readonly name: string;
  /** The `%pGg` of the pool's gfp (`GFP_KERNEL|GFP_DMA32`, ...). */
  readonly gfp: string;
  /** Bytes in the pool (`gen_pool_size`, debugfs `pool_size_*`). */
  readonly size: number;
  /** Bytes free (`gen_pool_avail`). */
  readonly avail: number;
  /** First physical address of each chunk. */
  readonly chunks: readonly number[];
}

/**
 * A `struct gen_pool` with `min_alloc_order = PAGE_SHIFT` and the `gen_pool_first_fit_order_align`
 * algorithm, as `kernel/dma/pool.c` creates for each atomic pool: allocations are whole pages,
 * aligned (within the chunk) to their size rounded up to a power of two. One bitmap byte per page.
 * @see lib/genalloc.c gen_pool_alloc, gen_pool_first_fit_order_align, gen_pool_free
 */
export class DmaAtomicPool {
  readonly name: string;
  readonly gfp: number;
  private readonly chunks: PoolChunk[] = [];
  private used = 0;

  constructor(name: string, gfp: number) {
    this.name = name;
    this.gfp = gfp;
  }

  /** `gen_pool_add_virt(pool, virt, phys, size, nid)`. */
  addVirt(virt: number, phys: number, size: number): void {
    this.chunks.push({ virt, phys, size, bitmap: new Uint8Array(Math.floor(size / PAGE_SIZE)) });
  }

  /** `gen_pool_size(pool)`. */
  get size(): number {
    let n = 0;
    for (const c of this.chunks) n += c.size;
    return n;
  }

  /** `gen_pool_avail(pool)`. */
  get avail(): number {
    return this.size - this.used * PAGE_SIZE;
  }

  /** `gen_pool_alloc(pool, size)`: the virtual address, or 0 when no aligned run of pages is free. */
  alloc(size: number): number {
    const nr = Math.ceil(size / PAGE_SIZE);
    if (nr === 0) return 0;
    const step = roundupPowOfTwo(nr);
    for (const c of this.chunks) {
      const map = c.bitmap;
      for (let at = 0; at + nr <= map.length; at += step) {
        let k = 0;
        while (k < nr && map[at + k] === 0) k++;
        if (k < nr) continue;
        map.fill(1, at, at + nr);
        this.used += nr;
        return c.virt + at * PAGE_SIZE;
      }
    }
    return 0;
  }

  /**
   * `gen_pool_free(pool, addr, size)`. EINVAL, nothing freed, for a range that is not in the pool
   * or not wholly allocated (the kernel `BUG_ON`s).
   */
  free(addr: number, size: number): void {
    const nr = Math.ceil(size / PAGE_SIZE);
    const c = this.chunkOf(addr, size);
    const first = c === undefined ? -1 : (addr - c.virt) / PAGE_SIZE;
    if (c === undefined || !Number.isInteger(first) || c.bitmap.subarray(first, first + nr).includes(0))
      throw new KernelError(
        "EINVAL",
        `dma-pool: ${this.name}: gen_pool_free of ${hex(addr)}+${size}: not allocated`,
      );
    c.bitmap.fill(0, first, first + nr);
    this.used -= nr;
  }

  /** `gen_pool_has_addr(pool, start, size)`: the range lies inside one chunk. */
  hasAddr(addr: number, size: number): boolean {
    return this.chunkOf(addr, size) !== undefined;
  }

  /** `gen_pool_virt_to_phys(pool, addr)`; -1 outside the pool. */
  virtToPhys(addr: number): number {
    const c = this.chunkOf(addr, 1);
    return c === undefined ? -1 : c.phys + (addr - c.virt);
  }

  report(): DmaAtomicPoolReport {
    return {
      name: this.name,
      gfp: gfpNames(this.gfp),
      size: this.size,
      avail: this.avail,
      chunks: this.chunks.map((c) => c.phys),
    };
  }

  private chunkOf(addr: number, size: number): PoolChunk | undefined {
    return this.chunks.find((c) => addr >= c.virt && addr + size <= c.virt + c.size);
  }
}

/**
 * The atomic pools of a machine (`atomic_pool_dma`, `atomic_pool_dma32`, `atomic_pool_kernel`).
 * @see kernel/dma/pool.c
 */
export interface DmaAtomicPools {
  /** `atomic_pool_size`: the size each pool was asked for. */
  readonly atomicPoolSize: number;
  readonly dma: DmaAtomicPool | null;
  readonly dma32: DmaAtomicPool | null;
  readonly kernel: DmaAtomicPool | null;
}

/**
 * The slot holding a machine's atomic pools once {@link dmaAtomicPoolInit} ran.
 * @see kernel/dma/pool.c atomic_pool_dma, atomic_pool_dma32, atomic_pool_kernel
 */
export const DMA_ATOMIC_POOLS = new DmaSystemKey<DmaAtomicPools>("dma-atomic-pools");

/** Options of {@link dmaAtomicPoolInit}. @see kernel/dma/pool.c dma_atomic_pool_init (`coherent_pool=`) */
export interface DmaAtomicPoolOptions {
  /** `coherent_pool=` on the command line, bytes; absent = 128 KiB per GiB of RAM, 128 KiB to 4 MiB. */
  readonly size?: number;
}

/** `cma_in_zone(gfp)`: the default CMA area lies wholly inside the zone `gfp` asks for. */
function cmaInZone(system: DmaSystem, gfp: number): boolean {
  const cma = dmaContiguousDefaultArea(system);
  if (cma === null || cma.size === 0) return false;
  const end = cma.base + cma.size - 1;
  const z = system.phys.zoneLimits;
  if (z.dma > 0 && (gfp & GFP_DMA) !== 0) return end <= zoneDmaLimit(system);
  if (z.dma32 > 0 && (gfp & GFP_DMA32) !== 0) return end <= Math.max(2 ** 32 - 1, zoneDmaLimit(system));
  return true;
}

/** `atomic_pool_expand(pool, pool_size, gfp)`: one chunk, halving the order until an allocation succeeds. */
function atomicPoolExpand(system: DmaSystem, pool: DmaAtomicPool, poolSize: number, gfp: number): boolean {
  let order = Math.min(getOrder(poolSize), MAX_PAGE_ORDER);
  let pfn: number | null = null;
  let fromCma = false;
  let size = 0;
  for (;;) {
    size = PAGE_SIZE << order;
    fromCma = false;
    if (cmaInZone(system, gfp)) {
      pfn = dmaAllocFromContiguous(system, null, 1 << order, order, false);
      fromCma = pfn !== null;
    }
    pfn ??= system.pages.allocPages(gfp | __GFP_NOWARN, order);
    if (pfn !== null || order === 0) break;
    order--;
  }
  if (pfn === null) return false;
  archDmaPrepCoherent(system, pfn, size);
  const addr = dmaCommonContiguousRemap(system, pfn, size, "noncached");
  if (addr === null) {
    if (!(fromCma && dmaReleaseFromContiguous(system, null, pfn, 1 << order)))
      system.pages.freePages(pfn, order);
    return false;
  }
  pool.addVirt(addr, pfn * PAGE_SIZE, size);
  return true;
}

function atomicPoolInitOne(
  system: DmaSystem,
  name: string,
  poolSize: number,
  gfp: number,
): DmaAtomicPool | null {
  const pool = new DmaAtomicPool(name, gfp);
  if (!atomicPoolExpand(system, pool, poolSize, gfp)) {
    system.log.err(
      "dma-mapping",
      `DMA: failed to allocate ${poolSize >> 10} KiB ${gfpNames(gfp)} pool for atomic allocation`,
    );
    return null;
  }
  system.log.info(
    "dma-mapping",
    `DMA: preallocated ${pool.size >> 10} KiB ${gfpNames(gfp)} pool for atomic allocations`,
  );
  return pool;
}

/**
 * `dma_atomic_pool_init()` (a postcore initcall): carves the atomic pools that serve non-blocking
 * coherent allocations of non-coherent devices: `atomic_pool_kernel` if ZONE_NORMAL has memory,
 * `atomic_pool_dma` if ZONE_DMA has, `atomic_pool_dma32` if ZONE_DMA32 has. Each is one chunk of
 * `atomic_pool_size` (default 128 KiB per GiB of RAM, at least 128 KiB, at most
 * `MAX_ORDER_NR_PAGES` pages), from the default CMA area when it lies in the zone, else the page
 * allocator (smaller orders on failure), cleaned from the cache and vmapped. Logs
 * "DMA: preallocated N KiB GFP_KERNEL|GFP_DMA32 pool for atomic allocations" per pool.
 * Run once per machine at boot, before measuring what the machine holds; a second call returns
 * the pools already made.
 *
 * @see kernel/dma/pool.c dma_atomic_pool_init. Not modelled: the background expansion
 * (`atomic_pool_work`) when a pool runs low; pools keep their boot size. The pool is remapped
 * (CONFIG_DMA_DIRECT_REMAP, arm64) on every machine.
 */
export function dmaAtomicPoolInit(system: DmaSystem, options: DmaAtomicPoolOptions = {}): DmaAtomicPools {
  const existing = system.get(DMA_ATOMIC_POOLS);
  if (existing !== undefined) return existing;
  let size = options.size ?? 0;
  if (size === 0) {
    const pages = Math.min(Math.floor(system.pages.managedPages() / (SZ_1G / SZ_128K)), MAX_ORDER_NR_PAGES);
    size = Math.max(pages * PAGE_SIZE, SZ_128K);
  }
  const has = (z: 0 | 1 | 2) => system.pages.managedPages(z) > 0;
  const kernel = has(ZONE_NORMAL) ? atomicPoolInitOne(system, "atomic_pool_kernel", size, GFP_KERNEL) : null;
  const dma = has(ZONE_DMA) ? atomicPoolInitOne(system, "atomic_pool_dma", size, GFP_KERNEL | GFP_DMA) : null;
  const dma32 = has(ZONE_DMA32)
    ? atomicPoolInitOne(system, "atomic_pool_dma32", size, GFP_KERNEL | GFP_DMA32)
    : null;
  const pools: DmaAtomicPools = { atomicPoolSize: size, dma, dma32, kernel };
  system.set(DMA_ATOMIC_POOLS, pools);
  return pools;
}

/** `dma_guess_pool(prev, gfp)`: the pool to try first for `gfp`, then the fallbacks after `prev`. */
function dmaGuessPool(p: DmaAtomicPools, prev: DmaAtomicPool | null, gfp: number): DmaAtomicPool | null {
  if (prev === null) {
    if ((gfp & GFP_DMA) !== 0) return p.dma ?? p.dma32 ?? p.kernel;
    if ((gfp & GFP_DMA32) !== 0) return p.dma32 ?? p.dma ?? p.kernel;
    return p.kernel ?? p.dma32 ?? p.dma;
  }
  if (prev === p.kernel) return p.dma32 ?? p.dma;
  if (prev === p.dma32) return p.dma;
  return null;
}

/**
 * A page handed out by {@link dmaAllocFromPool}: its first pfn and the pool's (uncached) CPU address.
 * @see kernel/dma/pool.c dma_alloc_from_pool
 */
export interface DmaPoolAlloc {
  readonly pfn: number;
  readonly cpuAddr: number;
}

/**
 * `dma_alloc_from_pool(dev, size, &cpu_addr, gfp, phys_addr_ok)`: `size` bytes (page-aligned)
 * from the first atomic pool for `gfp` that has room and whose memory `physAddrOk` accepts
 * (`dma_coherent_ok` for dma-direct; null for dma-iommu), zeroed. Returns the pfn and the CPU
 * address, or null with a WARN "DMA pool exhausted for DEV" (unless `__GFP_NOWARN`), or
 * "Failed to get suitable pool for DEV" when the machine has no pools (`dmaAtomicPoolInit` never
 * ran). @see kernel/dma/pool.c dma_alloc_from_pool
 */
export function dmaAllocFromPool(
  dev: Device,
  size: number,
  gfp: number,
  physAddrOk: ((dev: Device, phys: number, size: number) => boolean) | null,
): DmaPoolAlloc | null {
  const system = devDmaState(dev).system;
  const pools = system.get(DMA_ATOMIC_POOLS);
  let found = false;
  if (pools !== undefined) {
    for (let pool = dmaGuessPool(pools, null, gfp); pool !== null; pool = dmaGuessPool(pools, pool, gfp)) {
      found = true;
      const addr = pool.alloc(size);
      if (addr === 0) continue;
      const phys = pool.virtToPhys(addr);
      if (physAddrOk !== null && !physAddrOk(dev, phys, size)) {
        pool.free(addr, size);
        continue;
      }
      const pfn = Math.floor(phys / PAGE_SIZE);
      zeroDmaBuffer(system, pfn, size, false);
      return { pfn, cpuAddr: addr };
    }
  }
  if (found) system.log.warn((gfp & __GFP_NOWARN) === 0, "dma-mapping", `DMA pool exhausted for ${dev.name}`);
  else system.log.warn(true, "dma-mapping", `Failed to get suitable pool for ${dev.name}`);
  return null;
}

/**
 * `dma_free_from_pool(dev, start, size)`: gives `size` bytes at `start` back to the atomic pool
 * holding them; false (nothing done) when no pool holds that range.
 * @see kernel/dma/pool.c dma_free_from_pool
 */
export function dmaFreeFromPool(dev: Device, start: number, size: number): boolean {
  const pools = devDmaState(dev).system.get(DMA_ATOMIC_POOLS);
  if (pools === undefined) return false;
  for (let pool = dmaGuessPool(pools, null, 0); pool !== null; pool = dmaGuessPool(pools, pool, 0)) {
    if (!pool.hasAddr(start, size)) continue;
    pool.free(start, size);
    return true;
  }
  return false;
}

/** The machine's atomic pools and their use, empty before {@link dmaAtomicPoolInit}. Model-only. */
export function dmaAtomicPoolReport(system: DmaSystem): DmaAtomicPoolReport[] {
  const p = system.get(DMA_ATOMIC_POOLS);
  if (p === undefined) return [];
  return [p.dma, p.dma32, p.kernel].filter((x): x is DmaAtomicPool => x !== null).map((x) => x.report());
}
