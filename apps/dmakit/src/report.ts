import {
  type Device,
  devIsPci,
  dmaGetMask,
  dmaGetMaxSegSize,
  dmaGetSegBoundary,
  hex,
  PAGE_SIZE,
  PCI_ACS_CR,
  PCI_ACS_RR,
  PCI_EXP_TYPE_DOWNSTREAM,
  PCI_EXP_TYPE_ENDPOINT,
  PCI_EXP_TYPE_ROOT_PORT,
  PCI_EXP_TYPE_UPSTREAM,
  type PciDev,
  PlatformDevice,
  pciAcsEnabled,
  pciDevId,
  pciDeviceGroupKey,
  pciName,
} from "@dmakit/core";
import { iommuGetDomainForDev, iommuGroupTypeStr } from "@dmakit/iommu";
import { PAGES_PER_SECTION, PG_buddy, PG_reserved, ZONE_NAMES } from "@dmakit/mm-pages";
import type { Machine } from "./Machine.js";

/** One range of the physical address map. */
export interface MemoryMapEntry {
  start: number;
  /** Exclusive end. */
  end: number;
  size: number;
  kind: "ram" | "reserved" | "cma" | "mmio" | "hole";
  name: string;
}

/** Pages of one zone, counted from the memmap (`/proc/zoneinfo` spanned/present/managed). */
export interface ZoneReport {
  name: string;
  /** First and last+1 physical address of the zone's RAM (the zone span). */
  start: number;
  end: number;
  spannedPages: number;
  presentPages: number;
  reservedPages: number;
  /** Pages the buddy allocator manages (present − reserved). */
  managedPages: number;
  /** Free pages right now (`NR_FREE_PAGES`). */
  freePages: number;
  /** Free blocks per order 0..MAX_PAGE_ORDER (`/proc/buddyinfo`). */
  freeArea: number[];
}

export interface CmaReport {
  name: string;
  /** Where the area was placed (physical address) and its size in bytes. */
  base: number;
  size: number;
  /** Zone the area lies in. */
  zone: string;
  /** Pages handed out by `cma_alloc` right now. */
  usedPages: number;
  /** Free pages of the area still in the buddy allocator (lent to movable allocations). */
  freePages: number;
}

export interface IommuReport {
  name: string;
  type: string;
  base: number | null;
  devices: string[];
}

export interface DeviceReport {
  name: string;
  bus: string | null;
  kind: string | null;
  dmaMaskBits: number;
  /** `dma_get_mask(dev)` as hex (masks reach 2^64, beyond exact JSON numbers). */
  dmaMask: string;
  coherentDmaMask: string;
  coherent: boolean;
  maxSegmentSize: number;
  segmentBoundaryMask: string;
  iommu: string | null;
  /** Stream IDs (platform: from the description; PCI: the requester ID `bus << 8 | devfn`). */
  streamIds: number[];
  /**
   * The IOMMU domain the device's DMA goes through, as sysfs `iommu_groups/N/type` says it
   * ("DMA", "DMA-FQ", "identity", ...), or null without an IOMMU (dma-direct).
   */
  domain: string | null;
  /** PCI endpoints only. */
  pci?: { pciName: string; untrusted: boolean; iommuGroup: string; bars: PciBarReport[] };
}

export interface PciBarReport {
  bar: number;
  cpuAddr: number;
  busAddr: number;
  size: number;
  prefetchable: boolean;
}

/** One PCI function in the hierarchy (ports, switch ports, endpoints), parents before children. */
export interface PciFunctionReport {
  name: string;
  pciName: string;
  type: "root-port" | "switch-upstream" | "switch-downstream" | "endpoint" | "other";
  /** Name of the bridge above, or null on the root bus. */
  upstream: string | null;
  /** Root and downstream ports: ACS request/completion redirect enabled (`pci_acs_enabled`); null otherwise. */
  acsRedirect: boolean | null;
  depth: number;
}

export interface PciHostBridgeReport {
  name: string;
  domain: number;
  p2pdmaAllowlisted: boolean;
  iommu: string | null;
  windows: { cpuStart: number; busStart: number; size: number }[];
  functions: PciFunctionReport[];
}

/** Everything `dmakit run boot` shows, as data (also the `--json` output). */
export interface MachineReport {
  machine: { name: string; description: string; arch: string; coherent: boolean; cpus: number; seed: number };
  memory: { totalRam: number; reserved: number; map: MemoryMapEntry[] };
  zones: ZoneReport[];
  cma: CmaReport[];
  iommus: IommuReport[];
  buses: { platform: string[]; pci: PciHostBridgeReport[] };
  devices: DeviceReport[];
  /** The kernel log of the boot, formatted as dmesg prints it. */
  dmesg: string[];
}

function memoryMap(m: Machine): MemoryMapEntry[] {
  const entries: MemoryMapEntry[] = [];
  const push = (start: number, end: number, kind: MemoryMapEntry["kind"], name: string): void => {
    if (end > start) entries.push({ start, end, size: end - start, kind, name });
  };
  const carved = [
    ...m.mem.reserved.map((r) => ({ start: r.start, size: r.size, kind: "reserved" as const, name: r.name })),
    ...m.cma.map((a) => ({ start: a.base, size: a.size, kind: "cma" as const, name: `CMA ${a.name}` })),
  ];
  for (const [i, b] of m.mem.banks.entries()) {
    const end = b.start + b.size;
    const inBank = carved
      .filter((r) => r.start >= b.start && r.start < end)
      .sort((x, y) => x.start - y.start);
    let at = b.start;
    for (const r of inBank) {
      push(at, r.start, "ram", `System RAM (bank ${i})`);
      push(Math.max(at, r.start), r.start + r.size, r.kind, r.name);
      at = Math.max(at, r.start + r.size);
    }
    push(at, end, "ram", `System RAM (bank ${i})`);
  }
  for (const r of m.mem.mmioRegions()) push(r.start, r.start + r.size, "mmio", r.name);
  entries.sort((a, b) => a.start - b.start);
  const withHoles: MemoryMapEntry[] = [];
  for (const e of entries) {
    const prev = withHoles[withHoles.length - 1];
    if (prev !== undefined && prev.end < e.start)
      withHoles.push({ start: prev.end, end: e.start, size: e.start - prev.end, kind: "hole", name: "" });
    withHoles.push(e);
  }
  return withHoles;
}

function zones(m: Machine): ZoneReport[] {
  const mm = m.mem.memmap;
  const present = new Map<number, number>();
  const reserved = new Map<number, number>();
  const lo = new Map<number, number>();
  const hi = new Map<number, number>();
  for (const b of m.mem.banks) {
    const endPfn = (b.start + b.size) / PAGE_SIZE;
    // Consecutive pfns share consecutive memmap indices only within a section.
    for (let pfn = b.start / PAGE_SIZE; pfn < endPfn; ) {
      const run = Math.min(endPfn - pfn, PAGES_PER_SECTION - (pfn % PAGES_PER_SECTION));
      const base = mm.idx(pfn);
      for (let k = 0; k < run; k++) {
        const z = mm.zone[base + k] as number;
        present.set(z, (present.get(z) ?? 0) + 1);
        if (((mm.flags[base + k] as number) & PG_reserved) !== 0) reserved.set(z, (reserved.get(z) ?? 0) + 1);
        if (!lo.has(z)) lo.set(z, pfn + k);
        hi.set(z, pfn + k + 1);
      }
      pfn += run;
    }
  }
  return [...present.keys()]
    .sort((a, b) => a - b)
    .map((z) => {
      const p = present.get(z) ?? 0;
      const r = reserved.get(z) ?? 0;
      const start = (lo.get(z) ?? 0) * PAGE_SIZE;
      const buddy = m.pages.report().zones.find((b) => b.zone === z);
      const end = (hi.get(z) ?? 0) * PAGE_SIZE;
      return {
        name: ZONE_NAMES[z] ?? String(z),
        start,
        end,
        spannedPages: (end - start) / PAGE_SIZE,
        presentPages: p,
        reservedPages: r,
        managedPages: buddy?.managed ?? 0,
        freePages: buddy?.free ?? 0,
        freeArea: [...(buddy?.freeArea ?? [])],
      };
    });
}

/** The IOMMU translating a PCI function: its host bridge's. */
function pciIommu(m: Machine, dev: PciDev): string | null {
  return m.config.pci?.hostBridges.find((h) => h.name === dev.hostBridge.name)?.iommu ?? null;
}

function deviceReport(m: Machine, dev: Device): DeviceReport {
  const cfg =
    m.config.platform.devices.find((d) => d.name === dev.name) ??
    m.config.pci?.endpoints.find((e) => e.name === dev.name);
  const base = {
    name: dev.name,
    bus: dev.bus,
    kind: cfg?.kind ?? null,
    dmaMaskBits: cfg?.dmaMask ?? 32,
    dmaMask: hex(dmaGetMask(dev)),
    coherentDmaMask: hex(dev.coherentDmaMask),
    coherent: dev.dmaCoherent,
    maxSegmentSize: dmaGetMaxSegSize(dev),
    segmentBoundaryMask: hex(dmaGetSegBoundary(dev)),
  };
  const dom = iommuGetDomainForDev(dev);
  const domain = dom === null ? null : iommuGroupTypeStr(dom.type);
  if (devIsPci(dev)) {
    const iommu = pciIommu(m, dev);
    return {
      ...base,
      iommu,
      streamIds: iommu !== null ? [pciDevId(dev)] : [],
      domain,
      pci: {
        pciName: pciName(dev),
        untrusted: dev.untrusted,
        iommuGroup: pciDeviceGroupKey(dev).name,
        bars: dev.bars.map((b) => ({
          bar: b.bar,
          cpuAddr: b.cpuAddr,
          busAddr: b.busAddr,
          size: b.size,
          prefetchable: b.prefetchable,
        })),
      },
    };
  }
  const pdev = dev instanceof PlatformDevice ? dev : undefined;
  return { ...base, iommu: pdev?.iommu ?? null, streamIds: [...(pdev?.streamIds ?? [])], domain };
}

const PCI_TYPES: Record<number, PciFunctionReport["type"]> = {
  [PCI_EXP_TYPE_ROOT_PORT]: "root-port",
  [PCI_EXP_TYPE_UPSTREAM]: "switch-upstream",
  [PCI_EXP_TYPE_DOWNSTREAM]: "switch-downstream",
  [PCI_EXP_TYPE_ENDPOINT]: "endpoint",
};

// Request and completion redirect decide whether peer traffic is sent up to the root complex.
const ACS_REDIRECT = PCI_ACS_RR | PCI_ACS_CR;

function pciReport(m: Machine): PciHostBridgeReport[] {
  return m.pciHostBridges.map((hb) => {
    const depth = (d: PciDev): number => (d.upstream === null ? 0 : depth(d.upstream) + 1);
    const children = (up: PciDev | null): PciDev[] => hb.devices().filter((d) => d.upstream === up);
    const functions: PciFunctionReport[] = [];
    const walk = (d: PciDev): void => {
      functions.push({
        name: d.name,
        pciName: pciName(d),
        type: PCI_TYPES[d.pcieType ?? -1] ?? "other",
        upstream: d.upstream?.name ?? null,
        acsRedirect:
          d.pcieType === PCI_EXP_TYPE_ROOT_PORT || d.pcieType === PCI_EXP_TYPE_DOWNSTREAM
            ? pciAcsEnabled(d, ACS_REDIRECT)
            : null,
        depth: depth(d),
      });
      for (const c of children(d)) walk(c);
    };
    for (const root of children(null)) walk(root);
    return {
      name: hb.name,
      domain: hb.domain,
      p2pdmaAllowlisted: hb.p2pdmaAllowlisted,
      iommu: m.config.pci?.hostBridges.find((h) => h.name === hb.name)?.iommu ?? null,
      windows: hb.windows.map((w) => ({ cpuStart: w.cpuStart, busStart: w.busStart, size: w.size })),
      functions,
    };
  });
}

/** Free pages in [basePfn, basePfn+count): free buddy blocks (`PG_buddy` heads) cover them. */
function cmaFreePages(m: Machine, basePfn: number, count: number): number {
  const mm = m.mem.memmap;
  let free = 0;
  for (let pfn = basePfn; pfn < basePfn + count; ) {
    const i = mm.idx(pfn);
    if (((mm.flags[i] as number) & PG_buddy) !== 0) {
      const n = 2 ** (mm.order[i] as number);
      free += n;
      pfn += n;
    } else pfn++;
  }
  return free;
}

/** Collects what a booted machine looks like: memory map, zones, CMA, IOMMUs, buses, devices, dmesg. */
export function machineReport(m: Machine): MachineReport {
  const c = m.config;
  const devices = [...m.devices.values()].map((d) => deviceReport(m, d));
  return {
    machine: {
      name: c.name,
      description: c.description,
      arch: c.arch,
      coherent: c.coherent,
      cpus: c.cpus,
      seed: m.seed,
    },
    memory: {
      totalRam: m.mem.totalRam,
      reserved: m.mem.reserved.reduce((s, r) => s + r.size, 0),
      map: memoryMap(m),
    },
    zones: zones(m),
    cma: m.cma.map((a) => ({
      name: a.name,
      base: a.base,
      size: a.size,
      zone: ZONE_NAMES[m.mem.pageZonenum(a.basePfn)] ?? "?",
      usedPages: a.used,
      freePages: cmaFreePages(m, a.basePfn, a.count),
    })),
    iommus: m.iommus.map((x) => ({
      name: x.name,
      type: x.type,
      base: x.base ?? null,
      devices: devices.filter((d) => d.iommu === x.name).map((d) => d.name),
    })),
    buses: { platform: m.platform.devices().map((d) => d.name), pci: pciReport(m) },
    devices,
    dmesg: m.log.dmesg().split("\n"),
  };
}
