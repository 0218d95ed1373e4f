import { KernelLog } from "@dmakit/core";
import {
  type IommuFlushOps,
  type IoPgtableCfg,
  type PgtableMemory,
  pgtableMemoryFromAllocator,
} from "@dmakit/iommu";
import { PageAllocator, PhysMem } from "@dmakit/mm-pages";

/** A small machine: 256 MiB of RAM at 1 GiB, a buddy allocator and a table-memory handle. */
export function smallMachine(ramBytes = 256 * 1024 * 1024) {
  const log = new KernelLog();
  const phys = new PhysMem({ banks: [{ start: 0x4000_0000, size: ramBytes }] }, { log });
  const alloc = new PageAllocator(phys);
  const mem = pgtableMemoryFromAllocator(phys, alloc);
  return { log, phys, alloc, mem };
}

/** Flush ops that count calls (the selftest's dummy_tlb_ops). */
export function countingTlb() {
  const calls = { flushAll: 0, flushWalk: 0, addPage: 0 };
  const tlb: IommuFlushOps = {
    tlbFlushAll: () => {
      calls.flushAll++;
    },
    tlbFlushWalk: () => {
      calls.flushWalk++;
    },
    tlbAddPage: () => {
      calls.addPage++;
    },
  };
  return { tlb, calls };
}

export function lpaeCfg(
  mem: PgtableMemory,
  pgsizeBitmap: number,
  ias: number,
  oas: number,
  tlb: IommuFlushOps | null,
  quirks = 0,
): IoPgtableCfg {
  return { quirks, pgsizeBitmap, ias, oas, coherentWalk: true, tlb, iommuDev: null, mem };
}
