import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli.js";
import { loadBuiltinMachine, parseMachine } from "../src/loadMachine.js";
import { Machine } from "../src/Machine.js";
import { type CaptureReport, runCapture } from "../src/scenarios/capture.js";

const FRAME = 256 * 1024;
const PAGES = FRAME / 4096;
/** Frames in, statistics blocks, rendered frames, the scanned-out framebuffer. */
const BYTES_VERIFIED = 4 * FRAME + 4 * 1024 + 4 * FRAME + FRAME;

const memo = new Map<string, CaptureReport>();
function capture(machine: string, bug?: string): CaptureReport {
  const key = `${machine}/${bug ?? ""}`;
  let r = memo.get(key);
  if (r === undefined) {
    r = runCapture(Machine.boot(loadBuiltinMachine(machine)), bug !== undefined ? { injectBug: bug } : {});
    memo.set(key, r);
  }
  return r;
}

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runCli(argv, { stdout: (s) => (out += s), stderr: (s) => (err += s) });
  return { code, out, err };
}

describe("capture on arm64-soc (non-coherent, SMMUv3)", () => {
  it("moves and verifies every byte with no dma-debug finding", () => {
    const r = capture("arm64-soc");
    expect(r.outcome).toEqual({
      ok: true,
      summary: `all ${BYTES_VERIFIED} bytes verified, no dma-debug findings`,
    });
    expect(r.verification).toEqual({
      bytesVerified: BYTES_VERIFIED,
      bytesMismatched: 0,
      firstMismatch: null,
    });
    expect(r.deviceEvents).toEqual([]);
    expect(r.debug).toEqual({ enabled: true, findings: [] });
    expect(r.dmaPaths.map((p) => [p.device, p.role, p.path])).toEqual([
      ["cam0", "capture", "dma-direct (no IOMMU), swiotlb bounces what its mask cannot reach"],
      ["gpu0", "render", "iommu-dma through smmu0 (arm-smmu-v3, domain DMA)"],
      ["disp0", "display", "dma-direct (no IOMMU)"],
    ]);
  });

  it("the 32-bit camera's frames (above 4 GiB) bounce: copied in at map, out at sync and again at unmap", () => {
    const r = capture("arm64-soc");
    expect(r.swiotlb).toEqual({ poolBytes: 32 * 2 ** 20, bytesBounced: 3 * 4 * FRAME });
    // 4 frame maps + the statistics block, then 4 × 2 GPU maps; every one unmapped.
    expect(r.mappings).toMatchObject({
      made: 13,
      unmapped: 13,
      mapErrors: 0,
      coherentAllocations: 1,
      frees: 1,
    });
  });

  it("the GPU's 256-byte bursts through the SMMU: one IOTLB miss per page, fifteen hits", () => {
    const r = capture("arm64-soc");
    const lookups = 2 * 4 * PAGES * 16;
    expect(r.iommus).toMatchObject([
      {
        name: "smmu0",
        iotlbHits: lookups - 2 * 4 * PAGES,
        iotlbMisses: 2 * 4 * PAGES,
        iotlbHitRate: 15 / 16,
      },
    ]);
    // The GPU's mappings needed new table pages beyond what the SMMU held at boot (stream table, queues).
    const boot =
      Machine.boot(loadBuiltinMachine("arm64-soc")).iommuUnits.get("smmu0")?.tables.pagesInUse ?? 0;
    expect(r.iommus[0]?.pageTablePagesPeak).toBeGreaterThan(boot);
    expect(r.iommus[0]?.pageTablePagesPeak).toBeGreaterThanOrEqual(r.iommus[0]?.pageTablePages ?? 0);
    expect(r.engines.find((e) => e.device === "gpu0")).toMatchObject({
      bytesRead: 4 * FRAME,
      bytesWritten: 4 * FRAME,
      transactions: lookups,
      faults: 0,
    });
  });

  it("the coherent framebuffer is an uncached remap: the CPU's stores reach the display without maintenance", () => {
    const r = capture("arm64-soc");
    expect(r.coherentBuffer).toMatchObject({
      device: "disp0",
      bytes: FRAME,
      cpuMapping: "uncached remap (stores reach RAM; no cache maintenance)",
    });
    expect(r.engines.find((e) => e.device === "disp0")?.bytesRead).toBe(FRAME);
  });

  it("--inject-bug missing-sync: stale statistics, and dma-debug names the missing call", () => {
    const r = capture("arm64-soc", "missing-sync");
    expect(r.debug.findings.map((f) => `DMA-API: ${f.driver} ${f.device}: ${f.message}`)).toEqual([
      "DMA-API: dmakit-camera cam0: CPU read a buffer owned by the device at 0x0000000080200000 (after dma_sync_single_for_device()), mapping [device address=0x0000000080200000] [size=1024 bytes] DMA_FROM_DEVICE — missing dma_sync_single_for_cpu() or dma_unmap_single() before the CPU access",
      "DMA-API: dmakit-camera cam0: CPU read stale data: cache line 0x0000000080200000 was cached before cam0 wrote RAM, mapping [device address=0x0000000080200000] [size=1024 bytes] DMA_FROM_DEVICE — missing dma_sync_single_for_cpu() or dma_unmap_single() before the CPU read",
    ]);
    expect(r.debug.findings.map((f) => f.missingCall)).toEqual([
      "dma_sync_single_for_cpu",
      "dma_sync_single_for_cpu",
    ]);
    // The CPU saw frame 0's histogram where frame 1's should be.
    expect(r.verification.firstMismatch?.what).toBe("frame 1 statistics");
    expect(r.verification.bytesMismatched).toBeGreaterThan(0);
    expect(r.verification.bytesMismatched).toBeLessThanOrEqual(1024);
    expect(r.outcome.ok).toBe(true);
    expect(r.outcome.summary).toBe(
      `injected bug "missing-sync" caught by dma-debug (cpu-touched-device-owned, cpu-read-stale); it corrupted ${r.verification.bytesMismatched} bytes the CPU read`,
    );
  });

  it("--inject-bug unchecked-mapping-error and leak: the kernel's own dma-debug checks", () => {
    expect(capture("arm64-soc", "unchecked-mapping-error").debug.findings.map((f) => f.message)).toEqual([
      "device driver failed to check map error[device address=0x0000000080200000] [size=1024 bytes] [mapped as phy]",
    ]);
    const leak = capture("arm64-soc", "leak");
    expect(leak.debug.findings.map((f) => f.kind)).toEqual(["leak-at-unbind"]);
    expect(leak.debug.findings[0]?.message).toMatch(
      /^device driver has pending DMA allocations while released from device \[count=1\]/,
    );
    expect(leak.outcome.ok).toBe(true);
  });
});

describe("capture on x86-pc (coherent, VT-d)", () => {
  it("nothing bounces (the IOMMU maps the 32-bit card below 4 GiB) and nothing needs cache maintenance", () => {
    const r = capture("x86-pc");
    expect(r.outcome.ok).toBe(true);
    expect(r.verification).toEqual({
      bytesVerified: BYTES_VERIFIED,
      bytesMismatched: 0,
      firstMismatch: null,
    });
    expect(r.swiotlb?.bytesBounced).toBe(0);
    // The only cache maintenance is the IOMMU driver flushing the table pages it allocated.
    const boot = Machine.boot(loadBuiltinMachine("x86-pc")).iommuUnits.get("dmar0")?.tables.pagesInUse ?? 0;
    expect(r.cache.maintenanceBytes).toBe(((r.iommus[0]?.pageTablePagesPeak ?? 0) - boot) * 4096);
    expect(capture("arm64-soc").cache.maintenanceBytes).toBeGreaterThan(4 * FRAME);
    expect(r.dmaPaths.map((p) => [p.device, p.path])).toEqual([
      ["cap0", "iommu-dma through dmar0 (intel-vtd, domain DMA-FQ)"],
      ["gpu1", "iommu-dma through dmar0 (intel-vtd, domain DMA-FQ)"],
    ]);
    expect(r.coherentBuffer.cpuMapping).toBe("cached (the device snoops the CPU caches)");
    const x = r.iommus[0];
    // GPU bursts (render in/out + scan-out) plus the capture card's 4 KiB transactions.
    expect((x?.iotlbHits ?? 0) + (x?.iotlbMisses ?? 0)).toBe((2 * 4 + 1) * PAGES * 16 + 4 * PAGES + 4);
    expect(x?.iotlbHitRate).toBeGreaterThan(0.9);
  });

  it("missing-sync: dma-debug still reports the ownership violation, but no byte is stale", () => {
    const r = capture("x86-pc", "missing-sync");
    expect(r.debug.findings.map((f) => f.kind)).toEqual(["cpu-touched-device-owned"]);
    expect(r.verification.bytesMismatched).toBe(0);
    expect(r.outcome.summary).toMatch(/caught by dma-debug \(cpu-touched-device-owned\); no bytes corrupted/);
  });
});

describe("dmakit run capture (CLI)", () => {
  it("is the default scenario; the same seed gives the same report and the same trace, byte for byte", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dmakit-capture-"));
    const runs = await Promise.all(
      [1, 1, 2].map(async (seed, i) => {
        const trace = join(dir, `t${i}.json`);
        const r = await cli("run", "--json", "--seed", String(seed), "--trace", trace);
        return { ...r, trace: readFileSync(trace, "utf8") };
      }),
    );
    const [a, b, c] = runs as [(typeof runs)[0], (typeof runs)[0], (typeof runs)[0]];
    expect(a.code).toBe(0);
    expect((JSON.parse(a.out) as CaptureReport).scenario).toBe("capture");
    expect(b.out).toBe(a.out);
    expect(b.trace).toBe(a.trace);
    expect(c.out).not.toBe(a.out);
    // The trace opens in Perfetto: Chrome trace events with the DMA tracepoints, the devices'
    // transfers and the scenario's phases as complete events.
    const t = JSON.parse(a.trace) as {
      traceEvents: { name: string; cat?: string; ph: string; dur?: number; args: { name?: string } }[];
    };
    const names = new Set(t.traceEvents.map((e) => `${e.cat}:${e.name}:${e.ph}`));
    for (const n of [
      "dma:dma_map_sg:i",
      "dma:dma_sync_sg_for_cpu:i",
      "dma:dma_unmap_sg:i",
      "dmakit:dma_engine:X",
      "dmakit:scenario_phase:X",
    ])
      expect(names, n).toContain(n);
    const lanes = t.traceEvents.filter((e) => e.name === "thread_name").map((e) => e.args.name);
    expect(lanes).toEqual(expect.arrayContaining(["cam0", "gpu0", "disp0", "scenario", "frames", "dmesg"]));
    const phases = t.traceEvents.filter((e) => e.name === "scenario_phase" && e.ph === "X");
    expect(phases.every((e) => (e.dur ?? 0) > 0)).toBe(true);
  });

  it("prints the text report; an injected bug that is caught exits 0, an unknown bug exits 2", async () => {
    const r = await cli("run", "capture", "--inject-bug", "missing-sync");
    expect(r.code).toBe(0);
    expect(r.out).toContain(
      "  DMA-API: dmakit-camera cam0: CPU read stale data: cache line 0x0000000080200000 was cached before cam0 wrote RAM",
    );
    expect(r.out).toMatch(/\nOK: injected bug "missing-sync" caught by dma-debug/);
    const bad = await cli("run", "--inject-bug", "typo");
    expect(bad.code).toBe(2);
    expect(bad.err).toBe(
      'dmakit: scenario capture knows no bug "typo" (known: missing-sync, unchecked-mapping-error, leak)\n',
    );
    expect((await cli("run", "boot", "--inject-bug", "leak")).err).toMatch(/it takes no --inject-bug/);
  });

  it("with dma-debug off an injected bug goes unnoticed and the run fails (exit 1)", async () => {
    const config = { ...loadBuiltinMachine("arm64-soc"), dmaDebug: false };
    const r = runCapture(Machine.boot(config), { injectBug: "missing-sync" });
    expect(r.outcome).toEqual({
      ok: false,
      summary: 'injected bug "missing-sync" was NOT caught (dma-debug is off)',
    });
    expect(r.verification.bytesMismatched).toBeGreaterThan(0);
  });

  it("a machine without a camera cannot run it (exit 1 naming what is missing)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dmakit-capture-"));
    const file = join(dir, "tiny.yaml");
    const { writeFileSync } = await import("node:fs");
    writeFileSync(
      file,
      "name: tiny\narch: x86_64\ncoherent: true\nmemory: { banks: [{ start: 0, size: 64M }] }\n",
    );
    expect(parseMachine(readFileSync(file, "utf8")).name).toBe("tiny");
    const r = await cli("run", "-m", file);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      'dmakit: run failed: capture: machine tiny needs a device of kind "camera" and one of kind "gpu" (ENODEV)\n',
    );
  });
});
