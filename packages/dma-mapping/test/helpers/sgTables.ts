import {
  forEachSg,
  SgPool,
  SgTable,
  sgAllocTable,
  sgDmaAddress,
  sgDmaIsBusAddress,
  sgDmaLen,
  sgLength,
  sgOffset,
  sgSetPage,
} from "@dmakit/scatterlist";
import type { TestMachine } from "./machine.js";

/** An sg_table of `entries` (pfn, offset in page, length) in a pool of the machine's memory. */
export function makeSgTable(
  m: TestMachine,
  entries: ReadonlyArray<{ pfn: number; off?: number; len: number }>,
): SgTable {
  const sgt = new SgTable(new SgPool({ mem: m.mem.phys }));
  sgAllocTable(sgt, entries.length);
  let i = 0;
  for (const s of forEachSg(sgt.sgl, entries.length)) {
    const e = entries[i++] as { pfn: number; off?: number; len: number };
    sgSetPage(s, e.pfn, e.len, e.off ?? 0);
  }
  return sgt;
}

/** The DMA segments (address, length, bus flag) of the first `count` entries. */
export function dmaSegments(sgt: SgTable, count: number): Array<{ addr: number; len: number; bus: boolean }> {
  const out: Array<{ addr: number; len: number; bus: boolean }> = [];
  for (const s of forEachSg(sgt.sgl, count))
    out.push({ addr: sgDmaAddress(s), len: sgDmaLen(s), bus: sgDmaIsBusAddress(s) });
  return out;
}

/** The CPU fields (offset, length) of every entry, to check a list was restored. */
export function cpuFields(sgt: SgTable): Array<{ off: number; len: number }> {
  const out: Array<{ off: number; len: number }> = [];
  for (const s of forEachSg(sgt.sgl, sgt.origNents)) out.push({ off: sgOffset(s), len: sgLength(s) });
  return out;
}
