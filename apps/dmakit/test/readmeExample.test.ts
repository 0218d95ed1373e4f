// The quick example of the top-level README, kept runnable so it cannot rot.
import { KernelLog } from "@dmakit/core";
import { bootMemory, CpuCache, GFP_KERNEL } from "@dmakit/mm-pages";
import { SgPool, SgTable, sgAllocTableFromPages, sgNents } from "@dmakit/scatterlist";
import { expect, it } from "vitest";

it("README quick example: a non-coherent device reading a dirty line is reported", () => {
  const log = new KernelLog();
  const mem = bootMemory({ banks: [{ start: 0x8000_0000, size: 2 ** 30 }] }, { log });
  const cache = new CpuCache(mem.phys, { coherent: false });

  const a = mem.pages.allocPages(GFP_KERNEL, 0)!;
  const b = mem.pages.allocPages(GFP_KERNEL, 0)!;
  cache.cpuWrite(a * 4096, new TextEncoder().encode("hello"));

  const sgt = new SgTable(new SgPool({ mem: mem.phys }));
  sgAllocTableFromPages(sgt, [a, b], 2, 0, 8192, GFP_KERNEL);
  expect(sgNents(sgt.sgl!)).toBe(Math.abs(a - b) === 1 && b > a ? 1 : 2);

  const seen = new Uint8Array(5);
  cache.deviceRead(a * 4096, seen, { device: "cam0" });
  expect([...seen]).toEqual([0, 0, 0, 0, 0]);
  expect(cache.findings()[0]?.kind).toBe("device-read-dirty");
});
