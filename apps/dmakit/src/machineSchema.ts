import { isPowerOf2, PAGE_SIZE } from "@dmakit/core";
import * as z from "zod";
import { parseSize } from "./parseSize.js";

/** A size or address: a number or a string like "4G", "512M", "0x80000000" (see {@link parseSize}). */
const size = z.unknown().transform((value, ctx) => {
  const n = parseSize(value);
  if (n === undefined) {
    ctx.addIssue({
      code: "custom",
      message:
        value === undefined
          ? "required"
          : `expected a size like "4G" or a number, got ${JSON.stringify(value) ?? String(value)}`,
    });
    return z.NEVER;
  }
  return n;
});

/** A DMA mask as a bit count (`DMA_BIT_MASK(n)`), 1..64. */
const maskBits = z.number().int().min(1).max(64);
const name = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]*$/, "expected a name of letters, digits, '_', '.', ':' or '-'");

const range = z.strictObject({ start: size, size });

const iommu = z.strictObject({
  name,
  type: z.enum(["arm-smmu-v3", "intel-vtd"]),
  /** Register base (MMIO). */
  base: size.optional(),
  /** Register window size; default 128K for arm-smmu-v3 (two 64K pages), 4K for intel-vtd. */
  regSize: size.optional(),
  /** Input (IOVA) address bits. */
  inputBits: z.number().int().min(32).max(64).optional(),
  /** Output (physical) address bits. */
  outputBits: z.number().int().min(32).max(64).optional(),
  /** Supported page sizes, e.g. ["4K", "2M", "1G"]. */
  pageSizes: z.array(size).optional(),
  description: z.string().optional(),
});

/** Fields every DMA-capable device shares (platform or PCI). */
const dmaFields = {
  name,
  description: z.string().optional(),
  /** What kind of device model drives it later: "camera", "display", "gpu", "nvme", ... */
  kind: z.string().optional(),
  /** Streaming DMA mask in bits: `dma_set_mask(dev, DMA_BIT_MASK(n))`. */
  dmaMask: maskBits,
  /** Coherent DMA mask in bits; defaults to dmaMask. */
  coherentDmaMask: maskBits.optional(),
  /** Does the device snoop CPU caches? Defaults to the machine's `coherent`. */
  coherent: z.boolean().optional(),
  /** `dma_set_max_seg_size()`; the kernel's default is 64 KiB. */
  maxSegmentSize: size.optional(),
  /** `dma_set_seg_boundary()` as a size: segments must not cross a multiple of it. */
  segmentBoundary: size.optional(),
};

const platformDevice = z.strictObject({
  ...dmaFields,
  /** Register window. */
  reg: range.optional(),
  /** The IOMMU it sits behind (an `iommus[].name`). */
  iommu: name.optional(),
  /** SMMU stream IDs / requester IDs the device emits. */
  streamIds: z.array(z.number().int().min(0)).optional(),
});

const rootPort = z.strictObject({ name, acs: z.boolean().optional(), description: z.string().optional() });

const hostBridge = z.strictObject({
  name,
  description: z.string().optional(),
  segment: z.number().int().min(0).optional(),
  /** On the P2PDMA host-bridge allowlist: peer traffic between its root ports is allowed. */
  p2pdmaAllowlisted: z.boolean().optional(),
  /** The IOMMU translating every device below this bridge. */
  iommu: name.optional(),
  /** Vendor/device ID of the host bridge function; the P2PDMA allowlist is looked up by it. */
  vendor: z.number().int().min(0).max(0xffff).optional(),
  device: z.number().int().min(0).max(0xffff).optional(),
  /**
   * MMIO windows BARs are assigned from (CPU addresses). `busOffset`: CPU address minus PCI bus
   * address (default 0). Prefetchable BARs prefer `prefetch` windows.
   */
  windows: z
    .array(
      z.strictObject({ start: size, size, prefetch: z.boolean().optional(), busOffset: size.optional() }),
    )
    .optional(),
  rootPorts: z.array(rootPort).min(1, "a host bridge needs at least one root port"),
});

const pciSwitch = z.strictObject({
  name,
  description: z.string().optional(),
  /** A root port or another switch. */
  parent: name,
  /** ACS on the downstream ports: when true, peer traffic is redirected up to the root complex. */
  acs: z.boolean(),
  /** Number of downstream ports. */
  ports: z.number().int().min(1).max(32).optional(),
});

const bar = z.strictObject({
  size,
  prefetch: z.boolean().optional(),
  /** 32- or 64-bit BAR. */
  bits: z.union([z.literal(32), z.literal(64)]).optional(),
});

const endpoint = z.strictObject({
  ...dmaFields,
  /** A root port or switch. */
  parent: name,
  vendor: z.number().int().min(0).max(0xffff).optional(),
  device: z.number().int().min(0).max(0xffff).optional(),
  /** Memory BARs in BAR order; a 64-bit BAR takes two of the six BAR slots. */
  bars: z.array(bar).max(6, "a PCI function has at most 6 BARs").optional(),
  /** `pci_dev->untrusted` (external-facing port): always translated, bounce-buffered. */
  untrusted: z.boolean().optional(),
});

const cma = z.strictObject({
  name,
  size,
  base: size.optional(),
  /** Alignment of the area (power of two). */
  align: size.optional(),
  /** The area must end at or below this address. */
  limit: size.optional(),
});

/** The schema of a machine description, before cross-field checks. */
const machineShape = z.strictObject({
  name,
  description: z.string().default(""),
  arch: z.enum(["arm64", "x86_64"]),
  /** true: devices snoop CPU caches (x86); false: the kernel must clean/invalidate (arm64 SoCs). */
  coherent: z.boolean(),
  cpus: z.number().int().min(1).max(4096).default(1),
  memory: z.strictObject({
    banks: z.array(range).min(1, "at least one RAM bank is required"),
    reserved: z.array(z.strictObject({ start: size, size, name })).default([]),
    /** Zone limits (exclusive end addresses); omitted ones take the arch default. */
    zones: z.strictObject({ dma: size.optional(), dma32: size.optional() }).default({}),
    cma: z.array(cma).default([]),
  }),
  mmio: z.array(z.strictObject({ name, start: size, size })).default([]),
  iommus: z.array(iommu).default([]),
  /**
   * Default IOMMU domain policy (`CONFIG_IOMMU_DEFAULT_DMA_STRICT/_LAZY/_PASSTHROUGH`, or
   * `iommu.strict=` / `iommu.passthrough=`); default: strict on arm64, lazy on x86_64, as the
   * kernel's Kconfig defaults.
   */
  iommuPolicy: z.enum(["strict", "lazy", "passthrough"]).optional(),
  /**
   * The swiotlb bounce pool (`swiotlb=`): `size` in bytes (default 64M), `force` bounces every
   * streaming mapping. Without the key a pool is made when RAM extends above 4 GiB.
   */
  swiotlb: z.strictObject({ size: size.optional(), force: z.boolean().optional() }).optional(),
  /** `CONFIG_DMA_API_DEBUG` (with debugfs `all_errors` set); default true. */
  dmaDebug: z.boolean().default(true),
  platform: z.strictObject({ devices: z.array(platformDevice).default([]) }).default({ devices: [] }),
  pci: z
    .strictObject({
      hostBridges: z.array(hostBridge).default([]),
      switches: z.array(pciSwitch).default([]),
      endpoints: z.array(endpoint).default([]),
    })
    .optional(),
});

type Shape = z.output<typeof machineShape>;
type DmaFields = { segmentBoundary?: number | undefined; maxSegmentSize?: number | undefined };
type Path = (string | number)[];

function formatPathShort(path: Path): string {
  return path.map((k, i) => (typeof k === "number" ? `[${k}]` : i === 0 ? k : `.${k}`)).join("");
}

/** Size of an IOMMU's register window: `regSize`, else the architecture's. */
export function iommuRegSize(x: { type: "arm-smmu-v3" | "intel-vtd"; regSize?: number | undefined }): number {
  return x.regSize ?? (x.type === "arm-smmu-v3" ? 0x20000 : 0x1000);
}

/** Downstream ports of a switch: `ports`, else one per switch or endpoint below it (at least one). */
export function switchPorts(
  pci: { switches: readonly { parent: string }[]; endpoints: readonly { parent: string }[] },
  s: { name: string; ports?: number | undefined },
): number {
  const children =
    pci.switches.filter((x) => x.parent === s.name).length +
    pci.endpoints.filter((e) => e.parent === s.name).length;
  return s.ports ?? Math.max(1, children);
}

/** Cross-field checks: overlaps, alignment, names that must resolve. */
function checkMachine(m: Shape, ctx: z.RefinementCtx): void {
  const issue = (path: Path, message: string): void => {
    ctx.addIssue({ code: "custom", path, message });
  };
  const hexa = (n: number): string => `0x${n.toString(16)}`;

  const banks = m.memory.banks;
  banks.forEach((b, i) => {
    if (b.size === 0) issue(["memory", "banks", i, "size"], "a RAM bank cannot be empty");
    if (b.start % PAGE_SIZE !== 0)
      issue(["memory", "banks", i, "start"], `${hexa(b.start)} is not page-aligned`);
    if (b.size % PAGE_SIZE !== 0)
      issue(["memory", "banks", i, "size"], `${hexa(b.size)} is not a page multiple`);
    if (!Number.isSafeInteger(b.start + b.size)) issue(["memory", "banks", i], "ends beyond 2^53");
    banks.forEach((o, j) => {
      if (j < i && b.start < o.start + o.size && o.start < b.start + b.size)
        issue(["memory", "banks", i], `overlaps memory.banks[${j}]`);
    });
  });
  const inRam = (start: number, len: number): boolean =>
    banks.some((b) => start >= b.start && start + len <= b.start + b.size);
  const overlapsRam = (start: number, len: number): boolean =>
    banks.some((b) => start < b.start + b.size && b.start < start + len);

  m.memory.reserved.forEach((r, i) => {
    if (!inRam(r.start, r.size))
      issue(
        ["memory", "reserved", i],
        `${r.name} [${hexa(r.start)}+${hexa(r.size)}] is not inside one RAM bank`,
      );
  });
  for (const key of ["dma", "dma32"] as const) {
    const limit = m.memory.zones[key];
    if (limit !== undefined && limit % PAGE_SIZE !== 0)
      issue(["memory", "zones", key], `${hexa(limit)} is not page-aligned`);
  }
  const { dma, dma32 } = m.memory.zones;
  if (dma !== undefined && dma32 !== undefined && dma > dma32)
    issue(
      ["memory", "zones", "dma"],
      `the DMA zone limit ${hexa(dma)} is above the DMA32 limit ${hexa(dma32)}`,
    );

  const totalRam = banks.reduce((s, b) => s + b.size, 0);
  const sw = m.swiotlb?.size;
  if (sw !== undefined && (sw < 0x100000 || sw % PAGE_SIZE !== 0))
    issue(["swiotlb", "size"], `must be a page multiple of at least 1M (IO_TLB_MIN_SLABS), got ${hexa(sw)}`);
  m.memory.cma.forEach((c, i) => {
    if (c.size === 0 || c.size % PAGE_SIZE !== 0)
      issue(["memory", "cma", i, "size"], `must be a non-zero page multiple, got ${hexa(c.size)}`);
    if (c.size > totalRam)
      issue(["memory", "cma", i, "size"], `${hexa(c.size)} exceeds RAM (${hexa(totalRam)})`);
    if (c.align !== undefined && (!isPowerOf2(c.align) || c.align < PAGE_SIZE))
      issue(["memory", "cma", i, "align"], `must be a power of two of at least 4K, got ${hexa(c.align)}`);
    if (c.base !== undefined && !inRam(c.base, c.size))
      issue(["memory", "cma", i, "base"], `[${hexa(c.base)}+${hexa(c.size)}] is not inside one RAM bank`);
  });

  // Every MMIO range the machine declares must avoid RAM and every other MMIO range.
  const ranges: { start: number; size: number; path: Path }[] = [];
  m.mmio.forEach((r, i) => {
    ranges.push({ start: r.start, size: r.size, path: ["mmio", i] });
  });
  m.iommus.forEach((x, i) => {
    if (x.base !== undefined)
      ranges.push({ start: x.base, size: iommuRegSize(x), path: ["iommus", i, "base"] });
  });
  m.platform.devices.forEach((d, i) => {
    if (d.reg) ranges.push({ start: d.reg.start, size: d.reg.size, path: ["platform", "devices", i, "reg"] });
  });
  m.pci?.hostBridges.forEach((h, i) => {
    h.windows?.forEach((w, j) => {
      ranges.push({ start: w.start, size: w.size, path: ["pci", "hostBridges", i, "windows", j] });
    });
  });
  ranges.forEach((r, i) => {
    if (r.start % PAGE_SIZE !== 0 || r.size % PAGE_SIZE !== 0 || r.size === 0)
      issue(r.path, `[${hexa(r.start)}+${hexa(r.size)}] is not page-aligned and non-empty`);
    else if (overlapsRam(r.start, r.size)) issue(r.path, `[${hexa(r.start)}+${hexa(r.size)}] overlaps RAM`);
    const other = ranges.find((o, j) => j < i && r.start < o.start + o.size && o.start < r.start + r.size);
    if (other) issue(r.path, `[${hexa(r.start)}+${hexa(r.size)}] overlaps ${formatPathShort(other.path)}`);
  });

  // One namespace for everything a scenario can name.
  const names = new Map<string, string>();
  const claim = (n: string, path: Path): void => {
    const prev = names.get(n);
    if (prev !== undefined) issue([...path, "name"], `"${n}" is already used by ${prev}`);
    else names.set(n, formatPathShort(path));
  };
  m.iommus.forEach((x, i) => {
    claim(x.name, ["iommus", i]);
  });
  m.platform.devices.forEach((d, i) => {
    claim(d.name, ["platform", "devices", i]);
  });
  const iommuNames = new Map(m.iommus.map((x) => [x.name, x]));
  const checkIommuRef = (ref: string | undefined, path: Path): void => {
    if (ref !== undefined && !iommuNames.has(ref))
      issue(path, `no IOMMU named "${ref}" (iommus: ${[...iommuNames.keys()].join(", ") || "none"})`);
  };
  m.iommus.forEach((x, i) => {
    const wants = x.type === "arm-smmu-v3" ? "arm64" : "x86_64";
    if (m.arch !== wants) issue(["iommus", i, "type"], `${x.type} needs arch ${wants}, machine is ${m.arch}`);
  });
  const checkSegmentLimits = (d: DmaFields, path: Path): void => {
    if (d.segmentBoundary !== undefined && (!isPowerOf2(d.segmentBoundary) || d.segmentBoundary < PAGE_SIZE))
      issue(
        [...path, "segmentBoundary"],
        `must be a power of two of at least 4K, got ${hexa(d.segmentBoundary)}`,
      );
    if (d.maxSegmentSize !== undefined && (d.maxSegmentSize === 0 || d.maxSegmentSize > 0x1_0000_0000))
      issue([...path, "maxSegmentSize"], `must be between 1 and 4G, got ${hexa(d.maxSegmentSize)}`);
  };
  m.platform.devices.forEach((d, i) => {
    checkSegmentLimits(d, ["platform", "devices", i]);
    checkIommuRef(d.iommu, ["platform", "devices", i, "iommu"]);
    if (d.streamIds !== undefined && d.iommu === undefined)
      issue(["platform", "devices", i, "streamIds"], "streamIds need an iommu");
  });

  if (m.pci) {
    const pci = m.pci;
    // Parent name → its host bridge index, how many links it has below it, and how many are used.
    const parents = new Map<string, { bridge: number; ports: number; children: number }>();
    pci.hostBridges.forEach((h, i) => {
      claim(h.name, ["pci", "hostBridges", i]);
      checkIommuRef(h.iommu, ["pci", "hostBridges", i, "iommu"]);
      h.rootPorts.forEach((p, j) => {
        claim(p.name, ["pci", "hostBridges", i, "rootPorts", j]);
        parents.set(p.name, { bridge: i, ports: 1, children: 0 });
      });
    });
    const attach = (parent: string, path: Path, what: string): number | undefined => {
      const p = parents.get(parent);
      if (p === undefined) {
        issue([...path, "parent"], `no root port or ${what} named "${parent}"`);
        return undefined;
      }
      p.children++;
      if (p.children > p.ports)
        issue(
          [...path, "parent"],
          `"${parent}" has ${p.ports} downstream port${p.ports === 1 ? "" : "s"}, all taken`,
        );
      return p.bridge;
    };
    pci.switches.forEach((s, i) => {
      claim(s.name, ["pci", "switches", i]);
      // Switches may chain, but only to parents declared earlier, which also rules out cycles.
      const bridge = attach(s.parent, ["pci", "switches", i], "earlier switch");
      if (bridge !== undefined) parents.set(s.name, { bridge, ports: switchPorts(pci, s), children: 0 });
    });
    pci.endpoints.forEach((e, i) => {
      const path: Path = ["pci", "endpoints", i];
      claim(e.name, path);
      checkSegmentLimits(e, path);
      const bridge = attach(e.parent, path, "switch");
      let slots = 0;
      e.bars?.forEach((b, j) => {
        if (!isPowerOf2(b.size) || b.size < PAGE_SIZE)
          issue(
            [...path, "bars", j, "size"],
            `the model needs BARs that are powers of two of at least 4K, got ${hexa(b.size)}`,
          );
        if (b.bits === 32 && b.size > 2 ** 31)
          issue([...path, "bars", j, "size"], `too large for a 32-bit BAR: ${hexa(b.size)}`);
        slots += b.bits === 32 ? 1 : 2;
      });
      if (slots > 6)
        issue([...path, "bars"], `the BARs take ${slots} of the 6 BAR slots (a 64-bit BAR takes two)`);
      const hb = bridge === undefined ? undefined : pci.hostBridges[bridge];
      if (hb !== undefined && (e.bars?.length ?? 0) > 0 && (hb.windows?.length ?? 0) === 0)
        issue([...path, "bars"], `host bridge ${hb.name} has no windows to place BARs in`);
    });
  }
}

/**
 * The zod schema of a machine description (YAML or JSON). Sizes and addresses accept numbers or
 * strings such as "4G" and "0x80000000"; unknown keys are errors so typos do not pass silently.
 * See apps/dmakit/README.md for the format.
 */
export const machineSchema = machineShape.superRefine(checkMachine);

/** A validated machine description: sizes are numbers, defaults filled in. */
export type MachineConfig = z.output<typeof machineSchema>;
/** A machine description as written (sizes may be strings, optional sections omitted). */
export type MachineDescription = z.input<typeof machineSchema>;
export type PlatformDeviceConfig = MachineConfig["platform"]["devices"][number];
export type PciConfig = NonNullable<MachineConfig["pci"]>;
export type PciEndpointConfig = PciConfig["endpoints"][number];
export type IommuConfig = MachineConfig["iommus"][number];
