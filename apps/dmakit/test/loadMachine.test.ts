import { describe, expect, it } from "vitest";
import { builtinMachineNames, loadBuiltinMachine, parseMachine, resolveMachine } from "../src/loadMachine.js";
import { MachineConfigError } from "../src/MachineConfigError.js";

const BASE = `name: m1
arch: arm64
coherent: false
memory:
  banks:
    - { start: 0x80000000, size: 1G }
`;

function errorOf(text: string, source = "m1.yaml"): MachineConfigError {
  try {
    parseMachine(text, source);
  } catch (e) {
    if (e instanceof MachineConfigError) return e;
    throw e;
  }
  throw new Error("expected a MachineConfigError");
}

describe("built-in machines", () => {
  it("lists arm64-soc and x86-pc", () => {
    expect(builtinMachineNames()).toEqual(["arm64-soc", "x86-pc"]);
  });

  it("arm64-soc: non-coherent, 4 GiB at 0x80000000, 256 MiB CMA, cam0 at 32 bits, smmu0", () => {
    const m = loadBuiltinMachine("arm64-soc");
    expect(m.name).toBe("arm64-soc");
    expect(m.arch).toBe("arm64");
    expect(m.coherent).toBe(false);
    expect(m.memory.banks).toEqual([{ start: 0x8000_0000, size: 4 * 2 ** 30 }]);
    expect(m.memory.cma.map((c) => [c.name, c.size])).toEqual([["reserved", 256 * 2 ** 20]]);
    expect(m.platform.devices.map((d) => d.name)).toEqual(["cam0", "disp0", "gpu0"]);
    expect(m.platform.devices.find((d) => d.name === "cam0")?.dmaMask).toBe(32);
    expect(m.iommus).toMatchObject([{ name: "smmu0", type: "arm-smmu-v3" }]);
    expect(m.platform.devices.find((d) => d.name === "gpu0")?.iommu).toBe("smmu0");
  });

  it("x86-pc: coherent, 16 GiB around the PCI hole, low 1 MiB reserved, switch with nvme0, gpu1, cap0", () => {
    const m = loadBuiltinMachine("x86-pc");
    expect(m.coherent).toBe(true);
    expect(m.memory.banks).toEqual([
      { start: 0, size: 2 ** 31 },
      { start: 2 ** 32, size: 14 * 2 ** 30 },
    ]);
    expect(m.memory.banks.reduce((s, b) => s + b.size, 0)).toBe(16 * 2 ** 30);
    expect(m.memory.reserved).toEqual([{ name: "low-1M", start: 0, size: 2 ** 20 }]);
    expect(m.pci?.switches).toMatchObject([{ name: "sw0", parent: "rp0" }]);
    expect(m.pci?.endpoints.map((e) => [e.name, e.parent])).toEqual([
      ["nvme0", "sw0"],
      ["gpu1", "sw0"],
      ["cap0", "sw0"],
    ]);
    expect(m.pci?.endpoints.find((e) => e.name === "cap0")).toMatchObject({ kind: "camera", dmaMask: 32 });
    expect(m.iommus).toMatchObject([{ name: "dmar0", type: "intel-vtd" }]);
  });

  it("an unknown built-in name lists the known ones", () => {
    expect(() => loadBuiltinMachine("riscv")).toThrow(
      /no built-in machine "riscv" \(known: arm64-soc, x86-pc\)/,
    );
    expect(() => resolveMachine("nope")).toThrow(MachineConfigError);
  });
});

describe("parseMachine errors point at the offending key", () => {
  it("a bad size names the path, the expectation and the value", () => {
    const e = errorOf(
      `${BASE}    - { start: 0x100000000, size: 4Q }\n`.replace("name: m1", "name: arm64-soc"),
    );
    expect(e.message).toBe(
      'machine arm64-soc: memory.banks[1].size: expected a size like "4G" or a number, got "4Q" (m1.yaml:7)',
    );
    expect(e.issues).toEqual([
      { path: "memory.banks[1].size", message: 'expected a size like "4G" or a number, got "4Q"', line: 7 },
    ]);
  });

  it("an unknown device field is named, with a suggestion for a near miss", () => {
    const e = errorOf(
      `${BASE}platform:\n  devices:\n    - { name: cam0, dmaMask: 32 }\n    - { name: cam1, dmamask: 32 }\n`,
    );
    expect(e.issues).toContainEqual({
      path: "platform.devices[1].dmamask",
      message: 'unknown key (did you mean "dmaMask"?)',
      line: 10,
    });
    expect(e.issues).toContainEqual({ path: "platform.devices[1].dmaMask", message: "required", line: 10 });
    expect(e.issues.some((i) => i.path.startsWith("platform.devices[0]"))).toBe(false);
  });

  it("an unknown key far from any known one gets no suggestion", () => {
    const e = errorOf(`${BASE}flux: 3\n`);
    expect(e.issues).toEqual([{ path: "flux", message: "unknown key", line: 7 }]);
  });

  it("missing or empty banks", () => {
    const missing = errorOf("name: m1\narch: arm64\ncoherent: false\nmemory:\n  reserved: []\n");
    expect(missing.issues).toEqual([{ path: "memory.banks", message: "required", line: 5 }]);
    const empty = errorOf("name: m1\narch: arm64\ncoherent: false\nmemory:\n  banks: []\n");
    expect(empty.issues).toEqual([
      { path: "memory.banks", message: "at least one RAM bank is required", line: 5 },
    ]);
  });

  it("wrong enum and type values show what was given", () => {
    const e = errorOf(BASE.replace("arch: arm64", "arch: riscv").replace("coherent: false", "coherent: yes"));
    expect(e.issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      'arch: expected one of "arm64", "x86_64", got "riscv"',
      'coherent: expected boolean, got "yes"',
    ]);
  });

  it("cross-field checks: overlapping banks, dangling iommu and parent references, arch mismatch", () => {
    const e = errorOf(`${BASE}    - { start: 0xa0000000, size: 1G }
iommus:
  - { name: vtd, type: intel-vtd }
platform:
  devices:
    - { name: cam0, dmaMask: 32, iommu: smmu9 }
pci:
  hostBridges:
    - { name: hb0, rootPorts: [{ name: rp0 }] }
  endpoints:
    - { name: cam0, parent: sw9, dmaMask: 64, bars: [{ size: 3000 }] }
`);
    expect(e.issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      "memory.banks[1]: overlaps memory.banks[0]",
      "iommus[0].type: intel-vtd needs arch x86_64, machine is arm64",
      'platform.devices[0].iommu: no IOMMU named "smmu9" (iommus: vtd)',
      'pci.endpoints[0].name: "cam0" is already used by platform.devices[0]',
      'pci.endpoints[0].parent: no root port or switch named "sw9"',
      "pci.endpoints[0].bars[0].size: the model needs BARs that are powers of two of at least 4K, got 0xbb8",
    ]);
  });

  it("MMIO that overlaps RAM or other MMIO is rejected", () => {
    const e = errorOf(`${BASE}mmio:
  - { name: a, start: 0x90000000, size: 4K }
  - { name: b, start: 0x1000, size: 8K }
  - { name: c, start: 0x2000, size: 4K }
`);
    expect(e.issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      "mmio[0]: [0x90000000+0x1000] overlaps RAM",
      "mmio[2]: [0x2000+0x1000] overlaps mmio[1]",
    ]);
  });

  it("YAML syntax errors carry a line", () => {
    const e = errorOf("name: m1\narch: [arm64\n");
    expect(e.issues[0]?.message).toMatch(/^YAML: /);
    expect(e.issues[0]?.line).toBeGreaterThan(1);
  });

  it("a valid description fills defaults and converts sizes", () => {
    const m = parseMachine(BASE);
    expect(m).toEqual({
      name: "m1",
      description: "",
      arch: "arm64",
      coherent: false,
      cpus: 1,
      memory: { banks: [{ start: 0x8000_0000, size: 2 ** 30 }], reserved: [], zones: {}, cma: [] },
      mmio: [],
      iommus: [],
      dmaDebug: true,
      platform: { devices: [] },
    });
  });

  it("DMA layer keys: IOMMU policy, swiotlb pool, dma-debug", () => {
    const m = parseMachine(
      `${BASE}iommuPolicy: passthrough\nswiotlb: { size: 8M, force: true }\ndmaDebug: false\n`,
    );
    expect([m.iommuPolicy, m.swiotlb, m.dmaDebug]).toEqual([
      "passthrough",
      { size: 8 * 2 ** 20, force: true },
      false,
    ]);
    expect(errorOf(`${BASE}iommuPolicy: sloppy\n`).issues.map((i) => i.path)).toEqual(["iommuPolicy"]);
    const e = errorOf(`${BASE}swiotlb: { size: 64K }\n`);
    expect(e.issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      "swiotlb.size: must be a page multiple of at least 1M (IO_TLB_MIN_SLABS), got 0x10000",
    ]);
  });

  it("PCI: port capacity, BAR sizes and slots, windows for BARs", () => {
    const e = errorOf(`name: p
arch: x86_64
coherent: true
memory: { banks: [{ start: 0, size: 1G }] }
pci:
  hostBridges:
    - { name: hb0, rootPorts: [{ name: rp0 }, { name: rp1 }] }
  switches:
    - { name: sw0, parent: rp1, acs: true, ports: 1 }
  endpoints:
    - { name: a, parent: rp0, dmaMask: 64 }
    - { name: b, parent: rp0, dmaMask: 64 }
    - { name: c, parent: sw0, dmaMask: 64, bars: [{ size: 16 }] }
    - { name: d, parent: sw0, dmaMask: 64 }
    - { name: e, parent: rp1, dmaMask: 64 }
    - { name: f, parent: sw9, dmaMask: 64, bars: [{ size: 4K }, { size: 4K }, { size: 4K }, { size: 4K, bits: 32 }] }
`);
    expect(e.issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      'pci.endpoints[1].parent: "rp0" has 1 downstream port, all taken',
      "pci.endpoints[2].bars[0].size: the model needs BARs that are powers of two of at least 4K, got 0x10",
      "pci.endpoints[2].bars: host bridge hb0 has no windows to place BARs in",
      'pci.endpoints[3].parent: "sw0" has 1 downstream port, all taken',
      'pci.endpoints[4].parent: "rp1" has 1 downstream port, all taken',
      'pci.endpoints[5].parent: no root port or switch named "sw9"',
      "pci.endpoints[5].bars: the BARs take 7 of the 6 BAR slots (a 64-bit BAR takes two)",
    ]);
  });
});
