import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli.js";
import { loadBuiltinMachine } from "../src/loadMachine.js";
import { Machine } from "../src/Machine.js";
import { runP2p } from "../src/scenarios/p2p.js";

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runCli(argv, { stdout: (s) => (out += s), stderr: (s) => (err += s) });
  return { code, out, err };
}

describe("p2p scenario", () => {
  const r = runP2p(Machine.boot(loadBuiltinMachine("x86-pc")));

  it("maps the GPU BAR's P2PDMA pages for the NVMe as bus addresses through sw0", () => {
    expect(r.mapType.name).toBe("PCI_P2PDMA_MAP_BUS_ADDR");
    expect(r.commonSwitch).toBe("sw0");
    expect(r.pgmap).toMatchObject({ owner: "gpu1", size: 2 * 2 ** 20, busOffset: 0 });
    // x86-pc's prefetch window has no bus offset: the bus address is the BAR's CPU address.
    expect(r.provider.barCpuAddr).toBe(0x42_0000_0000);
    expect(r.segments).toEqual([
      { dmaAddr: 0x42_0001_0000, len: 0x10000, busAddress: true },
      { dmaAddr: 0x42_0002_0000, len: 0x10000, busAddress: true },
    ]);
  });

  it("the bytes land in the BAR with no IOMMU translation and no cache work", () => {
    expect(r.verification).toEqual({ bytesVerified: 131072, bytesMismatched: 0, firstMismatchOffset: null });
    expect(r.engine).toMatchObject({ bytesWritten: 131072, peerBytes: 131072, iotlbHits: 0, iotlbMisses: 0 });
    expect(r.iommuTranslations).toBe(0);
    expect(r.cache.maintenanceOps).toBe(0);
    expect(r.outcome.ok).toBe(true);
  });

  it("CLI: x86-pc by default, exit 0; deterministic JSON for a seed", async () => {
    const a = await cli("run", "p2p", "--json", "--seed", "7");
    const b = await cli("run", "p2p", "--json", "--seed", "7");
    expect(a.code).toBe(0);
    expect(a.out).toBe(b.out);
    expect((JSON.parse(a.out) as { machine: { name: string } }).machine.name).toBe("x86-pc");
    const t = await cli("run", "p2p");
    expect(t.out).toContain("pci_p2pdma_state: PCI_P2PDMA_MAP_BUS_ADDR (common switch sw0)");
  });

  it("CLI: arm64-soc has no PCI switch: exit 2 with the reason", async () => {
    const r2 = await cli("run", "p2p", "--machine", "arm64-soc");
    expect(r2.code).toBe(2);
    expect(r2.out).toBe("");
    expect(r2.err).toContain("no PCI switch on this machine (arm64-soc)");
  });
});
