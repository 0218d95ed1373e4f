import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli.js";
import { loadBuiltinMachine } from "../src/loadMachine.js";
import { Machine } from "../src/Machine.js";
import { runStaleIotlb } from "../src/scenarios/staleIotlb.js";

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runCli(argv, { stdout: (s) => (out += s), stderr: (s) => (err += s) });
  return { code, out, err };
}

function run(machine: string, policy: "strict" | "lazy") {
  return runStaleIotlb(Machine.boot({ ...loadBuiltinMachine(machine), iommuPolicy: policy }));
}

describe("stale-iotlb scenario", () => {
  it("lazy (DMA-FQ) on x86-pc: writes land for exactly the 10 ms flush-queue window, then fault", () => {
    const r = run("x86-pc", "lazy");
    expect([r.policy, r.domainType, r.device]).toEqual(["lazy", "DMA-FQ", "nvme0"]);
    expect(r.mappedWriteVerified).toBe(true);
    expect(r.staleWindowUs).toBe(10_000);
    expect(r.flushQueue).toMatchObject({ timeoutMs: 10, queued: 1, freed: 1, flushesTimeout: 1 });
    // Probes every 1 ms: +0 .. +9 ms land, the one at +10 ms (the timer has fired) faults.
    expect(r.probes.filter((p) => p.landed).map((p) => p.afterNs / 1e6)).toEqual([
      0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
    ]);
    expect(r.firstFaultAfterNs).toBe(10_000_000);
    expect(r.fault).toMatchObject({ iova: r.mapping.iova, code: "DMAR:0x05", timeNs: 10_000_000 });
    expect(r.faultLog.some((l) => l.includes("fault addr fffff000"))).toBe(true);
    expect(r.outcome.ok).toBe(true);
  });

  it("strict on x86-pc: the first write after the unmap faults", () => {
    const r = run("x86-pc", "strict");
    expect([r.policy, r.domainType]).toEqual(["strict", "DMA"]);
    expect(r.flushQueue).toBeNull();
    expect(r.staleWindowUs).toBe(0);
    expect(r.probes).toEqual([{ afterNs: 0, landed: false, pending: false }]);
    expect(r.fault?.iova).toBe(r.mapping.iova);
    expect(r.outcome.ok).toBe(true);
  });

  it("CLI: lazy on x86-pc by default, --policy strict, deterministic JSON", async () => {
    const a = await cli("run", "stale-iotlb", "--json");
    const b = await cli("run", "stale-iotlb", "--json");
    expect(a.code).toBe(0);
    expect(a.out).toBe(b.out);
    expect(JSON.parse(a.out)).toMatchObject({
      machine: { name: "x86-pc" },
      policy: "lazy",
      staleWindowUs: 10_000,
    });
    const s = await cli("run", "stale-iotlb", "--policy", "strict");
    expect(s.code).toBe(0);
    expect(s.out).toContain("+0 µs  faulted");
    expect((await cli("run", "stale-iotlb", "--policy", "nope")).code).toBe(2);
  });

  it("CLI: arm64-soc runs lazy too: the SMMUv3 reports deferred flush, so the window is the FQ timer", async () => {
    const r = await cli("run", "stale-iotlb", "--machine", "arm64-soc", "--json");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({ requestedPolicy: "lazy", policy: "lazy", domainType: "DMA-FQ" });
    expect(j.fault).toMatchObject({ code: "F_TRANSLATION", timeNs: 10_000_000 });
  });
});
