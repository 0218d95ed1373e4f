import { hex, PAGE_SIZE } from "@dmakit/core";
import type { PgprotKind } from "@dmakit/mm-pages";
import { type DmaSystem, DmaSystemKey } from "../DmaSystem.js";

/** One `VM_DMA_COHERENT` vmap area: its page array when made by `dma_common_pages_remap`, else null. */
interface RemapArea {
  readonly count: number;
  readonly pages: Float64Array | null;
}

/**
 * The machine's `VM_DMA_COHERENT` areas by start address. `KernelVm` keeps no vm_struct flags, so
 * the DMA layer remembers which vmap areas it made (what `find_vm_area(addr)->flags` tells the
 * kernel) and the page array `dma_common_pages_remap` stores in `area->pages`.
 */
const REMAP_AREAS = new DmaSystemKey<Map<number, RemapArea>>("dma-remap-areas");

function areas(system: DmaSystem): Map<number, RemapArea> {
  let m = system.get(REMAP_AREAS);
  if (m === undefined) {
    m = new Map();
    system.set(REMAP_AREAS, m);
  }
  return m;
}

/**
 * `dma_common_contiguous_remap(page, size, prot, caller)`: vmaps `PAGE_ALIGN(size)` pages from
 * `pfn` into the vmalloc space with memory type `prot` (`dma_pgprot`: non-cacheable for a
 * non-coherent device, so CPU accesses through it reach RAM directly). Returns the address or
 * null (vmap failed). @see kernel/dma/remap.c dma_common_contiguous_remap
 */
export function dmaCommonContiguousRemap(
  system: DmaSystem,
  pfn: number,
  size: number,
  prot: PgprotKind,
): number | null {
  const count = Math.ceil(size / PAGE_SIZE);
  const pages = new Float64Array(count);
  for (let i = 0; i < count; i++) pages[i] = pfn + i;
  const va = system.vm.vmap(pages, count, prot);
  if (va !== null) areas(system).set(va, { count, pages: null });
  return va;
}

/**
 * `dma_common_pages_remap(pages, size, prot, caller)`: vmaps a page array and keeps the array with
 * the area (`find_vm_area(vaddr)->pages = pages`) for {@link dmaCommonFindPages}.
 * @see kernel/dma/remap.c dma_common_pages_remap
 */
export function dmaCommonPagesRemap(
  system: DmaSystem,
  pages: Float64Array,
  size: number,
  prot: PgprotKind,
): number | null {
  const count = Math.ceil(size / PAGE_SIZE);
  const va = system.vm.vmap(pages, count, prot);
  if (va !== null) areas(system).set(va, { count, pages });
  return va;
}

/**
 * `dma_common_find_pages(cpu_addr)`: the page array of a `dma_common_pages_remap` area, or null
 * (not a DMA-coherent area, or a contiguous remap).
 * @see kernel/dma/remap.c dma_common_find_pages
 */
export function dmaCommonFindPages(system: DmaSystem, cpuAddr: number): Float64Array | null {
  return system.get(REMAP_AREAS)?.get(cpuAddr)?.pages ?? null;
}

/**
 * `dma_common_free_remap(cpu_addr, size)`: vunmaps a DMA-coherent area; anything else WARNs
 * "trying to free invalid coherent area" and is left alone.
 * @see kernel/dma/remap.c dma_common_free_remap
 */
export function dmaCommonFreeRemap(system: DmaSystem, cpuAddr: number): void {
  const m = system.get(REMAP_AREAS);
  if (
    system.log.warn(
      m?.get(cpuAddr) === undefined,
      "dma-mapping",
      `trying to free invalid coherent area: ${hex(cpuAddr)}`,
    )
  )
    return;
  m?.delete(cpuAddr);
  system.vm.vunmap(cpuAddr);
}

/** Number of live DMA-coherent vmap areas and the pages they map (for reports and leak checks). */
export function dmaRemapUsage(system: DmaSystem): { areas: number; pages: number } {
  let pages = 0;
  const m = system.get(REMAP_AREAS);
  for (const a of m?.values() ?? []) pages += a.count;
  return { areas: m?.size ?? 0, pages };
}

/**
 * `arch_dma_prep_coherent(page, size)` (arm64): clean and invalidate the kernel linear alias of a
 * buffer about to be used through an uncached mapping, so no dirty line is written back over it
 * later. @see arch/arm64/mm/dma-mapping.c arch_dma_prep_coherent
 */
export function archDmaPrepCoherent(system: DmaSystem, pfn: number, size: number): void {
  system.cache.cleanInvalidateRange(pfn * PAGE_SIZE, size);
}

/**
 * `memset(addr, 0, size)` of a DMA buffer: through the CPU cache when the CPU address is cached
 * (the linear map of a coherent device's buffer), straight to RAM when it is an uncached mapping
 * (a remap or an atomic-pool address of a non-coherent device: `pgprot_dmacoherent` is Normal-NC).
 * Pages come from `pfns[0 ..]` when given, else consecutively from `pfn`.
 */
export function zeroDmaBuffer(
  system: DmaSystem,
  pfn: number,
  size: number,
  cached: boolean,
  pfns: ArrayLike<number> | null = null,
): void {
  if (pfns === null) {
    if (cached) system.cache.cpuFill(pfn * PAGE_SIZE, size, 0);
    else system.phys.fill(pfn * PAGE_SIZE, size, 0);
    return;
  }
  for (let off = 0; off < size; off += PAGE_SIZE) {
    const p = pfns[off / PAGE_SIZE] as number;
    const n = Math.min(PAGE_SIZE, size - off);
    if (cached) system.cache.cpuFill(p * PAGE_SIZE, n, 0);
    else system.phys.fill(p * PAGE_SIZE, n, 0);
  }
}
