import { KernelLog, PAGE_SIZE, SZ_32M, SZ_64M } from "@dmakit/core";
import { CpuCache, PageAllocator, PhysMem, UserMemory } from "../src/index.js";

export const RAM = 0x1_0000_0000;

/**
 * A small machine for the user-memory tests: 64 MiB of RAM above 4 GiB, optionally with its upper
 * half in ZONE_MOVABLE or 48 MiB of it in a CMA area, a non-coherent CPU cache and a UserMemory.
 */
export function userMachine(
  opts: { movable?: boolean; cma?: boolean; anonFolioOrder?: number; coherent?: boolean } = {},
) {
  const log = new KernelLog();
  const mem = new PhysMem(
    {
      banks: [{ start: RAM, size: SZ_64M }],
      ...(opts.movable === true ? { zones: { movableStart: RAM + SZ_32M } } : {}),
    },
    { log },
  );
  const pages = new PageAllocator(mem);
  const cache = new CpuCache(mem, { coherent: opts.coherent ?? false });
  const cmaStart = (RAM + 16 * 1024 * 1024) / PAGE_SIZE;
  const cmaEnd = (RAM + SZ_64M) / PAGE_SIZE;
  if (opts.cma === true) pages.markCma(cmaStart, cmaEnd, pages.allocCmaId() + 1);
  const um = new UserMemory({ mem, pages, cache, anonFolioOrder: opts.anonFolioOrder ?? 0 });
  return { log, mem, pages, cache, um, cmaStart, cmaEnd };
}

export function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return b;
}
