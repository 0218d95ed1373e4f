import { PAGE_SIZE } from "@dmakit/core";
import { SgTable, sgAllocTable, sgDmaSetAddress, sgDmaSetLen, sgSetPage } from "@dmakit/scatterlist";
import type { DmaDebug, DmaDebugOptions } from "../../src/index.js";
import { makeMachine, RAM_BASE } from "../helpers/machine.js";

export const RAM = RAM_BASE;

/**
 * The dma-debug tests' machine: {@link makeMachine}'s default 256 MiB at 2 GiB, a CPU cache
 * (non-coherent unless said) and dma-debug on with `opts`; devices get driver `camdrv` unless told.
 */
export function debugMachine(opts: DmaDebugOptions & { coherent?: boolean } = {}) {
  const { coherent = false, ...debugOptions } = opts;
  const m = makeMachine({ coherent, dmaDebug: debugOptions });
  const { clock, log, mem, cache, vm, system, pool } = m;
  const debug = m.debug as DmaDebug;
  const device = (name: string, driver: string | null = "camdrv") =>
    m.device(name, driver === null ? {} : { driver });
  /** The WARN lines of dma-debug, as dmesg prints them after the level. */
  const warns = () => log.find({ prefix: "DMA-API", warn: true }).map((r) => `DMA-API: ${r.message}`);
  /** An sg list of `segs` (phys, len), with DMA addresses/lengths `dma` (default: identity). */
  const sgList = (segs: readonly [number, number][], dma?: readonly [number, number][]) => {
    const sgt = new SgTable(pool);
    sgAllocTable(sgt, segs.length);
    let s = sgt.sgl;
    for (let i = 0; i < segs.length; i++) {
      const [p, l] = segs[i] as [number, number];
      if (s === null) throw new Error("short list");
      sgSetPage(s, Math.floor(p / PAGE_SIZE), l, p % PAGE_SIZE);
      const d = dma?.[i] ?? (dma === undefined ? [p, l] : undefined);
      if (d !== undefined) {
        sgDmaSetAddress(s, d[0]);
        sgDmaSetLen(s, d[1]);
      }
      s = i + 1 < segs.length ? s.add(1) : null;
    }
    return sgt;
  };
  const bytes = (n: number, v: number) => new Uint8Array(n).fill(v);
  return { clock, log, mem, cache, vm, system, debug, pool, device, warns, sgList, bytes };
}
