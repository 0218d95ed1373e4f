import type { KernelLog } from "@dmakit/core";
import { type CmaArea, cmaDeclareContiguous } from "./CmaArea.js";
import { PageAllocator } from "./PageAllocator.js";
import { type MemoryLayout, PhysMem } from "./PhysMem.js";

/**
 * A CMA area to carve at boot (the `cma=` command line or a `shared-dma-pool` reserved-memory node).
 * @see mm/cma.c cma_declare_contiguous (its base, size, limit, alignment and order_per_bit arguments)
 */
export interface CmaSpec {
  readonly name: string;
  /** Bytes; rounded up to the alignment (at least 2 MiB). */
  readonly size: number;
  /** Exact physical base (as `fixed`); absent = placed by the allocator. */
  readonly base?: number;
  /** Highest end address when placed (e.g. 4 GiB for a DMA32-reachable default area); absent = end of RAM. */
  readonly limit?: number;
  /** Power-of-two byte alignment; absent or 0 = CMA_MIN_ALIGNMENT_BYTES. */
  readonly alignment?: number;
  /** `order_per_bit` of the allocation bitmap; default 0. */
  readonly orderPerBit?: number;
}

/** Options for {@link bootMemory}. Model-only: what boot code gets from the command line and devicetree. */
export interface BootMemoryOptions {
  readonly log: KernelLog;
  readonly cma?: readonly CmaSpec[];
}

/**
 * The memory side of a booted machine: physical memory, the buddy allocator and the CMA areas.
 * Model-only: the result of {@link bootMemory}.
 */
export interface MemorySystem {
  readonly phys: PhysMem;
  readonly pages: PageAllocator;
  readonly cma: readonly CmaArea[];
}

/**
 * Boots a machine's memory: builds the {@link PhysMem} (memblock + memmap), hands every free page to
 * the {@link PageAllocator} (`memblock_free_all`) and carves the CMA areas in order
 * (`cma_declare_contiguous`; the kernel reserves them before the buddy allocator starts, the model
 * claims them from it right after, which leaves the same state). Throws what those throw
 * (EINVAL for a bad layout, ENOMEM/EBUSY for a CMA area that does not fit).
 * @see mm/mm_init.c mm_core_init, mm/memblock.c memblock_free_all, mm/cma.c
 * @example
 * const { phys, pages, cma } = bootMemory(
 *   { banks: [{ start: 0x8000_0000, size: SZ_2G }], zones: { dma: 0, dma32: SZ_4G } },
 *   { log, cma: [{ name: "reserved", size: SZ_64M, limit: SZ_4G }] },
 * );
 */
export function bootMemory(layout: MemoryLayout, options: BootMemoryOptions): MemorySystem {
  const phys = new PhysMem(layout, { log: options.log });
  const pages = new PageAllocator(phys);
  const cma: CmaArea[] = [];
  for (const spec of options.cma ?? []) {
    cma.push(
      cmaDeclareContiguous(
        pages,
        spec.base ?? 0,
        spec.size,
        spec.limit ?? 0,
        spec.alignment ?? 0,
        spec.orderPerBit ?? 0,
        spec.base !== undefined,
        spec.name,
      ),
    );
  }
  return { phys, pages, cma };
}
