import { KernelLog, PAGE_SIZE } from "@dmakit/core";
import { MEMORY_DEVICE_PCI_P2PDMA, MemoryBackedMmio, PhysMem } from "@dmakit/mm-pages";
import { SgPool, type SgPoolOptions } from "../src/index.js";

/** 64 MiB of RAM at 0, a hole, then two 1 MiB P2P BARs back to back (different pgmaps) and plain MMIO. */
export function machine(opts: Omit<SgPoolOptions, "mem"> = {}): {
  mem: PhysMem;
  pool: SgPool;
  p2pA: number;
  p2pB: number;
  mmio: number;
} {
  const mem = new PhysMem({ banks: [{ start: 0, size: 64 << 20 }] }, { log: new KernelLog() });
  const barA = 0x1_0000_0000;
  const barB = barA + (1 << 20);
  const mmio = barB + (1 << 20);
  mem.addMmioRegion({ start: barA, size: 1 << 20, name: "barA", handler: new MemoryBackedMmio(1 << 20) });
  mem.addMmioRegion({ start: barB, size: 1 << 20, name: "barB", handler: new MemoryBackedMmio(1 << 20) });
  mem.addMmioRegion({ start: mmio, size: 1 << 20, name: "regs", handler: new MemoryBackedMmio(1 << 20) });
  mem.memremapPages({ start: barA, size: 1 << 20, type: MEMORY_DEVICE_PCI_P2PDMA, owner: "nvmeA" });
  mem.memremapPages({ start: barB, size: 1 << 20, type: MEMORY_DEVICE_PCI_P2PDMA, owner: "nvmeB" });
  const pool = new SgPool({ mem, ...opts });
  return { mem, pool, p2pA: barA / PAGE_SIZE, p2pB: barB / PAGE_SIZE, mmio: mmio / PAGE_SIZE };
}

/** Byte ranges [addr, len] merged where adjacent: the representation-independent content of a buffer. */
export function coalesce(ranges: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (const [a, l] of ranges) {
    if (l === 0) continue;
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === a) last[1] += l;
    else out.push([a, l]);
  }
  return out;
}

/** The naive byte ranges of a page-array buffer. */
export function pageRanges(pages: readonly number[], offset: number, size: number): [number, number][] {
  const r: [number, number][] = [];
  let pos = -offset;
  for (const pg of pages) {
    const from = Math.max(pos, 0);
    const to = Math.min(pos + PAGE_SIZE, size);
    if (to > from) r.push([pg * PAGE_SIZE + (from - pos), to - from]);
    pos += PAGE_SIZE;
  }
  return coalesce(r);
}
