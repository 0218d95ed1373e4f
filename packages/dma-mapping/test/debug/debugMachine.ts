import { Device, KernelLog, PAGE_SIZE, SimClock, SZ_256M } from "@dmakit/core";
import { bootMemory, CpuCache, KernelVm } from "@dmakit/mm-pages";
import { SgPool, SgTable, sgAllocTable, sgDmaSetAddress, sgDmaSetLen, sgSetPage } from "@dmakit/scatterlist";
import { type DmaDebugOptions, DmaSystem, dmaConfigure, dmaDebugInit } from "../../src/index.js";

export const RAM = 0x8000_0000;

/** A small machine with dma-debug on: 256 MiB at 2 GiB, a CPU cache (non-coherent unless said), a bound device. */
export function debugMachine(opts: DmaDebugOptions & { coherent?: boolean } = {}) {
  const clock = new SimClock();
  const log = new KernelLog({ now: () => clock.now() });
  const mem = bootMemory({ banks: [{ start: RAM, size: SZ_256M }] }, { log });
  const coherent = opts.coherent ?? false;
  const cache = new CpuCache(mem.phys, { coherent });
  const vm = new KernelVm({ mem: mem.phys, cache, pages: mem.pages });
  const system = new DmaSystem({ mem, cache, vm, log, clock });
  const debug = dmaDebugInit(system, opts);
  const pool = new SgPool();
  const device = (name: string, driver: string | null = "camdrv") => {
    const dev = new Device({ name, bus: "platform", log, dmaCoherent: coherent });
    dmaConfigure(dev, system);
    if (driver !== null) dev.bindDriver(driver);
    return dev;
  };
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
