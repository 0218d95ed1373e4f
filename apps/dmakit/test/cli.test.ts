import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli.js";
import type { MachineReport } from "../src/report.js";

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runCli(argv, { stdout: (s) => (out += s), stderr: (s) => (err += s) });
  return { code, out, err };
}

describe("dmakit machines", () => {
  it("lists each built-in machine on one line", async () => {
    const r = await cli("machines");
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^arm64-soc\s+arm64\s+4 GiB\s+3 devices\s+non-coherent\s+/);
    expect(lines[1]).toMatch(/^x86-pc\s+x86_64\s+16 GiB\s+3 devices\s+coherent\s+/);
  });

  it("--json gives the validated descriptions", async () => {
    const r = await cli("machines", "--json");
    const list = JSON.parse(r.out) as { name: string; memory: { banks: { size: number }[] } }[];
    expect(list.map((m) => m.name)).toEqual(["arm64-soc", "x86-pc"]);
    expect(list[0]?.memory.banks[0]?.size).toBe(2 ** 32);
  });
});

describe("dmakit run", () => {
  it("run boot: arm64-soc by default, the machine report", async () => {
    const r = await cli("run", "boot");
    expect(r.code).toBe(0);
    expect(r.err).toBe("");
    expect(r.out).toMatch(/^machine arm64-soc: /);
    for (const section of ["Physical memory map", "Zones", "CMA areas", "IOMMUs", "Buses", "Devices"])
      expect(r.out).toContain(`\n${section}\n`);
    expect(r.out).toMatch(/\n {2}cam0 +platform +camera +mask 32 bits +non-coherent/);
    expect(r.out).toMatch(
      /\n {2}gpu0 +platform +gpu +mask 48 bits +non-coherent +max seg 4.0 GiB +via smmu0 sid 0x20 \(DMA\)\n/,
    );
  });

  it("--json: memory totals, zones and devices of x86-pc", async () => {
    const r = await cli("run", "boot", "--machine", "x86-pc", "--json", "--seed", "42");
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.out) as MachineReport;
    expect(rep.machine).toMatchObject({ name: "x86-pc", arch: "x86_64", coherent: true, seed: 42 });
    expect(rep.memory.totalRam).toBe(16 * 2 ** 30);
    expect(rep.memory.reserved).toBe(2 ** 20);
    expect(rep.zones.map((z) => z.name)).toEqual(["DMA", "DMA32", "Normal"]);
    expect(rep.iommus.map((x) => [x.name, x.type, x.devices])).toEqual([
      ["dmar0", "intel-vtd", ["nvme0", "gpu1", "cap0"]],
    ]);
    const hb = rep.buses.pci[0];
    expect(hb?.p2pdmaAllowlisted).toBe(true);
    expect(hb?.functions.map((f) => [f.name, f.type, f.depth, f.acsRedirect])).toEqual([
      ["rp0", "root-port", 0, true],
      ["sw0", "switch-upstream", 1, null],
      ["sw0.dp0", "switch-downstream", 2, false],
      ["nvme0", "endpoint", 3, null],
      ["sw0.dp1", "switch-downstream", 2, false],
      ["gpu1", "endpoint", 3, null],
      ["sw0.dp2", "switch-downstream", 2, false],
      ["cap0", "endpoint", 3, null],
      ["sw0.dp3", "switch-downstream", 2, false],
    ]);
    const nvme = rep.devices.find((d) => d.name === "nvme0");
    expect(nvme?.pci?.pciName).toBe("0000:03:00.0");
    expect(nvme?.streamIds).toEqual([0x300]);
    expect(nvme?.pci?.bars.map((b) => [b.bar, b.size, b.prefetchable])).toEqual([
      [0, 16 * 1024, false],
      [2, 64 * 2 ** 20, true],
    ]);
    // BARs appear in the physical memory map.
    expect(rep.memory.map.filter((e) => e.name.startsWith("nvme0 ")).map((e) => e.name)).toEqual([
      "nvme0 BAR0",
      "nvme0 BAR2",
    ]);
  });

  it("--json output of arm64-soc lists its devices with masks", async () => {
    const rep = JSON.parse((await cli("run", "boot", "--json")).out) as MachineReport;
    expect(rep.devices.map((d) => [d.name, d.dmaMaskBits, d.dmaMask, d.iommu])).toEqual([
      ["cam0", 32, "0xffffffff", null],
      ["disp0", 40, "0xffffffffff", null],
      ["gpu0", 48, "0xffffffffffff", "smmu0"],
    ]);
    expect(rep.buses.platform).toEqual(["cam0", "disp0", "gpu0"]);
  });

  it("the same seed gives byte-identical output", async () => {
    const a = await cli("run", "boot", "--json", "--seed", "5");
    const b = await cli("run", "boot", "--json", "--seed", "5");
    expect(a.out).toBe(b.out);
  });

  it("an unknown scenario is a usage error listing the known ones", async () => {
    const r = await cli("run", "frobnicate");
    expect(r.code).toBe(2);
    expect(r.out).toBe("");
    expect(r.err).toBe(
      'dmakit: unknown scenario "frobnicate" (known scenarios: capture, boot, p2p, stale-iotlb)\n',
    );
  });

  it("an unknown machine or a bad seed exits 2 with the reason", async () => {
    const m = await cli("run", "--machine", "vax");
    expect(m.code).toBe(2);
    expect(m.err).toContain('no built-in machine "vax" (known: arm64-soc, x86-pc)');
    const s = await cli("run", "--seed", "-3");
    expect(s.code).toBe(2);
    expect(s.err).toContain("expected an integer");
  });

  it("boots a machine file, reporting its schema errors by key", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dmakit-cli-"));
    const good = join(dir, "tiny.yaml");
    writeFileSync(
      good,
      "name: tiny\narch: x86_64\ncoherent: true\nmemory: { banks: [{ start: 0, size: 64M }] }\n",
    );
    const ok = await cli("run", "boot", "-m", good, "--json");
    expect(ok.code).toBe(0);
    expect((JSON.parse(ok.out) as MachineReport).memory.totalRam).toBe(64 * 2 ** 20);

    const bad = join(dir, "bad.yaml");
    writeFileSync(
      bad,
      "name: bad\narch: x86_64\ncoherent: true\nmemory: { banks: [{ start: 0, size: 64X }] }\n",
    );
    const r = await cli("run", "-m", bad);
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      `dmakit: machine bad: memory.banks[0].size: expected a size like "4G" or a number, got "64X" (${bad}:4)\n`,
    );
  });

  it("--trace writes a Chrome trace: kernel log lines as instant events on the dmesg lane", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "dmakit-trace-")), "boot.trace.json");
    const r = await cli("run", "boot", "--trace", file, "--seed", "9");
    expect(r.code).toBe(0);
    const trace = JSON.parse(readFileSync(file, "utf8")) as {
      traceEvents: { name: string; ph: string; tid: number; args: { name?: string; message?: string } }[];
    };
    expect(trace.traceEvents[0]).toMatchObject({
      name: "process_name",
      ph: "M",
      args: { name: "dmakit arm64-soc" },
    });
    const lane = trace.traceEvents.find((e) => e.name === "thread_name" && e.args.name === "dmesg");
    const first = trace.traceEvents.find((e) => e.ph === "i" && e.tid === lane?.tid);
    expect(first?.args.message).toBe("Booting dmakit machine arm64-soc (arm64, 8 CPUs, seed 9)");
  });
});
