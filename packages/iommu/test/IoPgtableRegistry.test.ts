import { isKernelError } from "@dmakit/core";
import { describe, expect, it } from "vitest";
import {
  ARM_64_LPAE_S2,
  allocIoPgtableOps,
  freeIoPgtableOps,
  INTEL_VTD_SL,
  type IoPgtable,
  type IoPgtableCfg,
  type IoPgtableInitFns,
  IoPgtableRegistry,
} from "../src/index.js";

function fakeFns(log: string[]): IoPgtableInitFns {
  return {
    alloc(cfg, cookie): IoPgtable | null {
      if (cfg.ias > 48) return null;
      cfg.pgsizeBitmap &= 0x1000;
      log.push("alloc");
      return {
        fmt: INTEL_VTD_SL,
        cookie,
        cfg,
        ops: { mapPages: () => 0, unmapPages: () => 0, iovaToPhys: () => 0 },
      };
    },
    free(): void {
      log.push("free");
    },
  };
}

const cfg = (ias: number): IoPgtableCfg =>
  ({
    quirks: 0,
    pgsizeBitmap: 0x40201000,
    ias,
    oas: 48,
    coherentWalk: true,
    iommuDev: null,
    mem: null as never,
    tlb: { tlbFlushAll: (c: unknown) => (c as string[]).push("flush-all"), tlbFlushWalk: () => {} },
  }) satisfies IoPgtableCfg;

describe("IoPgtableRegistry", () => {
  it("dispatches to the registered format; unknown/refused formats give null; free flushes then frees", () => {
    const reg = new IoPgtableRegistry();
    const log: string[] = [];
    const fns = fakeFns(log);
    reg.register(INTEL_VTD_SL, fns);
    reg.register(INTEL_VTD_SL, fns); // same object: no-op
    expect(reg.formats()).toEqual([INTEL_VTD_SL]);
    try {
      reg.register(INTEL_VTD_SL, fakeFns(log));
      expect.unreachable();
    } catch (e) {
      expect(isKernelError(e, "EEXIST")).toBe(true);
    }
    expect(allocIoPgtableOps(ARM_64_LPAE_S2, cfg(48), log, reg)).toBeNull();
    expect(allocIoPgtableOps(INTEL_VTD_SL, cfg(57), log, reg)).toBeNull();
    const c = cfg(48);
    const ops = allocIoPgtableOps(INTEL_VTD_SL, c, log, reg);
    expect(ops).not.toBeNull();
    expect(c.pgsizeBitmap).toBe(0x1000);
    expect(reg.pgtableOf(ops!)?.cookie).toBe(log);
    freeIoPgtableOps(ops, reg);
    expect(log).toEqual(["alloc", "flush-all", "free"]);
    freeIoPgtableOps(null, reg);
    // Another registry does not know these ops; the default registry has no formats of its own.
    expect(() => freeIoPgtableOps(ops, new IoPgtableRegistry())).toThrow(/EINVAL/);
    expect(() => reg.register(99 as never, fns)).toThrow(/EINVAL/);
  });
});
