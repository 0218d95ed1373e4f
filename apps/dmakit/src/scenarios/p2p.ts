import {
  devIsPci,
  dmaGetMaxSegSize,
  formatBytes,
  hex,
  PAGE_SIZE,
  PCI_EXP_TYPE_UPSTREAM,
  PCI_P2PDMA_MAP_BUS_ADDR,
  PCI_P2PDMA_MAP_THRU_HOST_BRIDGE,
  type PciDev,
  pciName,
  pciP2pdmaMapTypeName,
  pciP2pdmaSetup,
} from "@dmakit/core";
import {
  DMA_FROM_DEVICE,
  type DmaDebugReport,
  type DmaEngineEvent,
  dmaMapSgtable,
  dmaUnmapSgtable,
  PciP2pdmaMapState,
  pciP2pdmaState,
  useDmaIommu,
} from "@dmakit/dma-mapping";
import { iommuGetDomainForDev, iommuGroupTypeStr } from "@dmakit/iommu";
import { MEMORY_DEVICE_PCI_P2PDMA } from "@dmakit/mm-pages";
import {
  forEachSg,
  SgPool,
  SgTable,
  sgAllocTableFromPagesSegment,
  sgDmaAddress,
  sgDmaIsBusAddress,
  sgDmaLen,
  sgFreeTable,
} from "@dmakit/scatterlist";
import { formatSection } from "../formatSection.js";
import type { Machine } from "../Machine.js";
import type { Scenario } from "./Scenario.js";
import { ScenarioUnsupportedError } from "./ScenarioUnsupportedError.js";

/** The part of the GPU's BAR the GPU driver hands to P2PDMA (`pci_p2pdma_add_resource(size)`). */
const P2P_REGION = 2 * 1024 * 1024;
/** Bytes the NVMe writes into the BAR (a 128 KiB read command's data). */
const XFER_BYTES = 128 * 1024;
/** Offset of the NVMe's buffer inside the P2P region (`pci_alloc_p2pmem` placement, fixed here). */
const XFER_OFFSET = 64 * 1024;
/** The NVMe's bus transaction size (a PCIe max payload of 256 bytes). */
const BURST = 256;

/** Everything `dmakit run p2p` reports (also its `--json` output). */
export interface P2pReport {
  scenario: "p2p";
  machine: { name: string; arch: string; seed: number };
  /** The initiator (writes) and the provider (its BAR is the destination). */
  initiator: { name: string; pciName: string; domain: string };
  provider: { name: string; pciName: string; bar: number; barCpuAddr: number; barSize: number };
  /** The P2PDMA pages: `memremap_pages(MEMORY_DEVICE_PCI_P2PDMA)` over the start of the BAR. */
  pgmap: { id: number; owner: string; cpuStart: number; size: number; busOffset: number };
  /** `pci_p2pdma_state()` for the initiator and the provider's pages. */
  mapType: { value: number; name: string };
  /** The switch both sit below, when the map type is a bus address (else null). */
  commonSwitch: string | null;
  /** The buffer: CPU physical address of its first byte and the DMA segments the mapping gave. */
  buffer: { cpuPhys: number; bytes: number };
  segments: { dmaAddr: number; len: number; busAddress: boolean }[];
  /** What the initiator's engine did. */
  engine: {
    bytesWritten: number;
    peerBytes: number;
    transactions: number;
    iotlbHits: number;
    iotlbMisses: number;
  };
  /** IOMMU translations (IOTLB hits + misses) and faults during the transfer, all units. */
  iommuTranslations: number;
  iommuFaults: number;
  /** CPU cache maintenance operations and lines touched during the run. */
  cache: { maintenanceOps: number; linesCleaned: number; linesInvalidated: number; snoops: number };
  verification: { bytesVerified: number; bytesMismatched: number; firstMismatchOffset: number | null };
  path: string[];
  deviceEvents: Pick<DmaEngineEvent, "kind" | "device" | "write" | "dmaAddr" | "reason">[];
  debugFindings: Pick<DmaDebugReport, "kind" | "device" | "message">[];
  outcome: { ok: boolean; summary: string };
}

function pciEndpointOfKind(m: Machine, kind: string): PciDev | null {
  const e = m.config.pci?.endpoints.find((x) => x.kind === kind);
  if (e === undefined) return null;
  const dev = m.device(e.name);
  return devIsPci(dev) ? dev : null;
}

/** Names of the switches (upstream ports) above `dev`, nearest first. */
function switchesAbove(m: Machine, dev: PciDev): string[] {
  const names = new Map([...m.pciDevices].map(([name, d]) => [d, name]));
  const out: string[] = [];
  for (let p = dev.upstream; p !== null; p = p.upstream)
    if (p.pcieType === PCI_EXP_TYPE_UPSTREAM) out.push(names.get(p) ?? p.name);
  return out;
}

function iommuCounters(m: Machine): { translations: number; faults: number } {
  let translations = 0;
  let faults = 0;
  for (const u of m.iommuUnits.values()) {
    const k = u.hardware.counters();
    translations += (k["iommu.translate.iotlb-hit"] ?? 0) + (k["iommu.translate.iotlb-miss"] ?? 0);
    faults += k["iommu.translate.fault"] ?? 0;
  }
  return { translations, faults };
}

/**
 * Runs the peer-to-peer scenario: the GPU's prefetchable BAR becomes P2PDMA memory, an NVMe-style
 * device maps a buffer in it with `dma_map_sgtable` and writes into it; the bytes are checked in the
 * BAR. Throws {@link ScenarioUnsupportedError} on a machine without a PCI switch, an NVMe and a GPU.
 */
export function runP2p(m: Machine): P2pReport {
  if ((m.config.pci?.switches.length ?? 0) === 0)
    throw new ScenarioUnsupportedError(
      `p2p: no PCI switch on this machine (${m.config.name}): peer-to-peer DMA needs PCIe devices below a common switch (try --machine x86-pc)`,
    );
  const nvme = pciEndpointOfKind(m, "nvme");
  const gpu = pciEndpointOfKind(m, "gpu");
  if (nvme === null || gpu === null)
    throw new ScenarioUnsupportedError(
      `p2p: machine ${m.config.name} needs PCI endpoints of kind "nvme" and "gpu"`,
    );
  const bar = [...gpu.bars].filter((b) => b.prefetchable).sort((a, b) => b.size - a.size)[0];
  if (bar === undefined || bar.size < P2P_REGION)
    throw new ScenarioUnsupportedError(
      `p2p: ${gpu.name} needs a prefetchable BAR of at least ${formatBytes(P2P_REGION)} to publish as P2PDMA memory`,
    );

  const cache0 = m.cache.stats();
  const iommu0 = iommuCounters(m);

  // pci_p2pdma_add_resource(gpu, bar, size, 0): ZONE_DEVICE pages over the BAR, owned by the GPU,
  // with the BAR's bus offset (what the host bridge window adds).
  const busOffset = bar.busAddr - bar.cpuAddr;
  const pgmap = m.mem.memremapPages({
    start: bar.cpuAddr,
    size: P2P_REGION,
    type: MEMORY_DEVICE_PCI_P2PDMA,
    owner: gpu.name,
    busOffset,
  });
  pciP2pdmaSetup(gpu);
  if (nvme.driver === null) nvme.bindDriver("nvme");
  if (gpu.driver === null) gpu.bindDriver("dmakit-gpu");

  const first = (bar.cpuAddr + XFER_OFFSET) / PAGE_SIZE;
  const pfns = Array.from({ length: XFER_BYTES / PAGE_SIZE }, (_, i) => first + i);
  const mapType = pciP2pdmaState(new PciP2pdmaMapState(), nvme, first);

  const pool = new SgPool({ mem: m.mem });
  const sgt = new SgTable(pool);
  sgAllocTableFromPagesSegment(sgt, pfns, pfns.length, 0, XFER_BYTES, dmaGetMaxSegSize(nvme), 0);
  // A failed mapping (EREMOTEIO: no route) throws out of the run: `run failed:` and exit 1.
  dmaMapSgtable(nvme, sgt, DMA_FROM_DEVICE, 0);
  const segments: P2pReport["segments"] = [];
  for (const sg of forEachSg(sgt.sgl, sgt.nents))
    segments.push({ dmaAddr: sgDmaAddress(sg), len: sgDmaLen(sg), busAddress: sgDmaIsBusAddress(sg) });

  const engine = m.dmaEngine(nvme.name, { burst: BURST });
  const data = m.prng.fill(new Uint8Array(XFER_BYTES));
  let off = 0;
  for (const s of segments) {
    const r = engine.write(s.dmaAddr, data.subarray(off, off + s.len));
    if (!r.ok) break;
    off += s.len;
  }
  const iommu1 = iommuCounters(m);

  // The GPU's view: its own BAR (VRAM), read over MMIO; no CPU cache sits in front of it.
  const landed = new Uint8Array(XFER_BYTES);
  m.mem.read(bar.cpuAddr + XFER_OFFSET, landed);
  let mismatched = 0;
  let firstMismatch: number | null = null;
  for (let i = 0; i < XFER_BYTES; i++)
    if (landed[i] !== data[i]) {
      mismatched++;
      firstMismatch ??= i;
    }

  dmaUnmapSgtable(nvme, sgt, DMA_FROM_DEVICE, 0);
  sgFreeTable(sgt);
  nvme.releaseDriver();
  gpu.releaseDriver();
  m.mem.memunmapPages(pgmap);

  const cache1 = m.cache.stats();
  const sw = switchesAbove(m, nvme).find((s) => switchesAbove(m, gpu).includes(s)) ?? null;
  const busAddr = mapType === PCI_P2PDMA_MAP_BUS_ADDR;
  const dom = iommuGetDomainForDev(nvme);
  const domain = useDmaIommu(nvme)
    ? `${m.iommuUnitOf(nvme)?.name ?? "?"} ${dom === null ? "?" : iommuGroupTypeStr(dom.type)}`
    : "dma-direct";
  const translations = iommu1.translations - iommu0.translations;
  const seg0 = segments[0];
  const path = busAddr
    ? [
        `${nvme.name} writes to PCI bus address ${seg0 === undefined ? "?" : hex(seg0.dmaAddr)} (dma_map_sgtable marked the segment as a bus address)`,
        `switch ${sw ?? "?"} routes it to ${gpu.name} BAR${bar.bar} (no ACS redirect on its downstream ports)`,
        `no IOMMU translation: the transaction never reaches the root complex (${translations} IOTLB lookups)`,
        "no cache involvement: BAR memory is not cached by the CPU and nothing was cleaned or invalidated",
      ]
    : mapType === PCI_P2PDMA_MAP_THRU_HOST_BRIDGE
      ? [
          `${nvme.name} writes to IOVA ${seg0 === undefined ? "?" : hex(seg0.dmaAddr)} through its IOMMU domain (${domain})`,
          `the root complex forwards it to ${gpu.name} BAR${bar.bar} (host bridge on the P2PDMA allowlist)`,
          `${translations} IOMMU translations`,
        ]
      : [`no route: ${pciP2pdmaMapTypeName(mapType)}`];
  const events = engine
    .events()
    .map((x) => ({ kind: x.kind, device: x.device, write: x.write, dmaAddr: x.dmaAddr, reason: x.reason }));
  const findings = (m.dmaDebug?.reports() ?? []).map((x) => ({
    kind: x.kind,
    device: x.device,
    message: x.message,
  }));
  const verified = mismatched === 0 && off === XFER_BYTES;
  const expectedPath = busAddr
    ? segments.every((s) => s.busAddress) && translations === 0 && engine.stats.peerBytes === XFER_BYTES
    : mapType === PCI_P2PDMA_MAP_THRU_HOST_BRIDGE;
  const ok = verified && expectedPath && events.length === 0 && findings.length === 0;
  const summary = ok
    ? `${XFER_BYTES} bytes from ${nvme.name} landed in ${gpu.name} BAR${bar.bar} via ${pciP2pdmaMapTypeName(mapType)}`
    : `${mismatched} of ${XFER_BYTES} bytes wrong, map type ${pciP2pdmaMapTypeName(mapType)}, ` +
      `${translations} IOMMU translations, ${events.length} device events, ${findings.length} dma-debug findings`;
  return {
    scenario: "p2p",
    machine: { name: m.config.name, arch: m.config.arch, seed: m.seed },
    initiator: { name: nvme.name, pciName: pciName(nvme), domain },
    provider: {
      name: gpu.name,
      pciName: pciName(gpu),
      bar: bar.bar,
      barCpuAddr: bar.cpuAddr,
      barSize: bar.size,
    },
    pgmap: { id: pgmap.id, owner: pgmap.owner, cpuStart: pgmap.start, size: pgmap.size, busOffset },
    mapType: { value: mapType, name: pciP2pdmaMapTypeName(mapType) },
    commonSwitch: busAddr ? sw : null,
    buffer: { cpuPhys: bar.cpuAddr + XFER_OFFSET, bytes: XFER_BYTES },
    segments,
    engine: {
      bytesWritten: engine.stats.bytesWritten,
      peerBytes: engine.stats.peerBytes,
      transactions: engine.stats.transactions,
      iotlbHits: engine.stats.iotlbHits,
      iotlbMisses: engine.stats.iotlbMisses,
    },
    iommuTranslations: translations,
    iommuFaults: iommu1.faults - iommu0.faults,
    cache: {
      maintenanceOps: cache1.maintenanceOps - cache0.maintenanceOps,
      linesCleaned: cache1.linesCleaned - cache0.linesCleaned,
      linesInvalidated: cache1.linesInvalidated - cache0.linesInvalidated,
      snoops: cache1.snoops - cache0.snoops,
    },
    verification: {
      bytesVerified: XFER_BYTES,
      bytesMismatched: mismatched,
      firstMismatchOffset: firstMismatch,
    },
    path,
    deviceEvents: events,
    debugFindings: findings,
    outcome: { ok, summary },
  };
}

/** Renders a {@link P2pReport} as the text `dmakit run p2p` prints. */
export function formatP2pText(r: P2pReport): string {
  const out: string[] = [];
  out.push(`p2p on ${r.machine.name} (${r.machine.arch}), seed ${r.machine.seed}`);
  out.push(
    `  ${r.initiator.name} (${r.initiator.pciName}, ${r.initiator.domain}) writes ${formatBytes(r.buffer.bytes)} ` +
      `into ${r.provider.name} (${r.provider.pciName}) BAR${r.provider.bar}`,
  );
  out.push(
    ...formatSection("P2PDMA memory", [
      ["BAR", `${hex(r.provider.barCpuAddr)}`, formatBytes(r.provider.barSize), "prefetchable"],
      [
        "pgmap",
        `${hex(r.pgmap.cpuStart)}`,
        formatBytes(r.pgmap.size),
        `MEMORY_DEVICE_PCI_P2PDMA, owner ${r.pgmap.owner}, bus offset ${r.pgmap.busOffset}`,
      ],
      ["buffer", `${hex(r.buffer.cpuPhys)}`, formatBytes(r.buffer.bytes), "CPU physical (ZONE_DEVICE pages)"],
    ]),
  );
  out.push("", "Mapping (dma_map_sgtable, DMA_FROM_DEVICE)");
  out.push(
    `  pci_p2pdma_state: ${r.mapType.name}${r.commonSwitch !== null ? ` (common switch ${r.commonSwitch})` : ""}`,
  );
  out.push(
    ...formatSection(
      "Segments",
      r.segments.map((s) => [
        hex(s.dmaAddr),
        formatBytes(s.len),
        s.busAddress ? "PCI bus address" : "IOVA / DMA address",
      ]),
    ),
  );
  out.push("", "Path");
  for (const p of r.path) out.push(`  ${p}`);
  const e = r.engine;
  out.push("", "Transfer");
  out.push(
    `  ${r.initiator.name} wrote ${formatBytes(e.bytesWritten)} in ${e.transactions} transactions, ` +
      `${formatBytes(e.peerBytes)} to a peer BAR; IOTLB hits ${e.iotlbHits}, misses ${e.iotlbMisses}`,
  );
  out.push(`  IOMMU translations ${r.iommuTranslations}, faults ${r.iommuFaults}`);
  out.push(
    `  CPU cache: ${r.cache.maintenanceOps} maintenance operations, ${r.cache.linesCleaned} lines cleaned, ` +
      `${r.cache.linesInvalidated} invalidated, ${r.cache.snoops} snoops`,
  );
  for (const x of r.deviceEvents)
    out.push(`  ! ${x.device} ${x.kind} ${x.write ? "write" : "read"} at ${hex(x.dmaAddr)}: ${x.reason}`);
  const v = r.verification;
  out.push("", "Verification");
  out.push(
    `  ${v.bytesVerified} bytes read back from the BAR, ${v.bytesMismatched} wrong` +
      (v.firstMismatchOffset !== null ? ` (first at offset ${v.firstMismatchOffset})` : ""),
  );
  out.push("", "dma-debug");
  if (r.debugFindings.length === 0) out.push("  no findings");
  for (const f of r.debugFindings) out.push(`  ${f.kind} ${f.device}: ${f.message}`);
  out.push("", `${r.outcome.ok ? "OK" : "FAILED"}: ${r.outcome.summary}`);
  return `${out.join("\n")}\n`;
}

/** `dmakit run p2p`: an NVMe writes straight into the GPU's BAR through the PCIe switch. */
export const p2pScenario: Scenario = {
  name: "p2p",
  summary: "an NVMe writes into the GPU's BAR (P2PDMA pages) through the common PCIe switch",
  bugs: new Map(),
  defaultMachine: "x86-pc",
  run(machine) {
    const report = runP2p(machine);
    return { json: report, text: formatP2pText(report), ok: report.outcome.ok };
  },
};
