import { SgPool } from "@dmakit/scatterlist";
import { type DmaSystem, DmaSystemKey } from "./DmaSystem.js";

/**
 * The scatterlist pool the DMA layer builds its own tables in (`dma_alloc_noncontiguous`'s
 * sg_table, iommu-dma's temporary tables): a machine that shares one {@link SgPool} with its
 * drivers sets it here before the first allocation.
 * Model-only.
 */
export const DMA_SG_POOL = new DmaSystemKey<SgPool>("dma-sg-pool");

/**
 * The machine's DMA scatterlist pool: the one set in {@link DMA_SG_POOL}, else a pool over the
 * machine's memory, page allocator, kernel VM and CPU cache, made on first use.
 * Model-only.
 */
export function dmaSgPool(system: DmaSystem): SgPool {
  let pool = system.get(DMA_SG_POOL);
  if (pool === undefined) {
    const cache = system.cache;
    pool = new SgPool({
      mem: system.phys,
      pageAllocator: system.pages,
      log: system.log,
      vm: system.vm,
      // sg_copy_buffer and sg_miter are CPU accesses: they go through the machine's cache.
      cpu: { read: (phys, dst) => cache.cpuRead(phys, dst), write: (phys, src) => cache.cpuWrite(phys, src) },
    });
    system.set(DMA_SG_POOL, pool);
  }
  return pool;
}
