import { type Device, hex, KernelError, PAGE_SIZE } from "@dmakit/core";
import {
  DMA_FROM_DEVICE,
  type DmaDebugReport,
  dmaMappingError,
  dmaMapSingle,
  dmaSyncSingleForCpu,
  dmaUnmapSingle,
  iommuDmaCookie,
  useDmaIommu,
} from "@dmakit/dma-mapping";
import { type FlushQueueStats, iommuGetDomainForDev, iommuGroupTypeStr } from "@dmakit/iommu";
import { GFP_KERNEL } from "@dmakit/mm-pages";
import { formatSection } from "../formatSection.js";
import type { Machine } from "../Machine.js";
import type { MachineConfig } from "../machineSchema.js";
import type { Scenario, ScenarioOptions } from "./Scenario.js";
import { ScenarioUnsupportedError } from "./ScenarioUnsupportedError.js";

/** Simulated time between the device's post-unmap probe writes: 1 ms. */
const STEP_NS = 1_000_000;
/** Probes after the unmap before giving up (well past the 10 ms DMA-FQ timer). */
const MAX_STEPS = 50;
/** Bytes of each probe write. */
const PROBE_BYTES = 64;

/** One post-unmap write of the device at the old IOVA. */
export interface StaleProbe {
  /** Simulated ns since the unmap. */
  afterNs: number;
  /** The write reached the page (through a stale IOTLB entry). */
  landed: boolean;
  /** The flush queue still held the IOVA (not yet invalidated and freed). */
  pending: boolean;
}

/** Everything `dmakit run stale-iotlb` reports (also its `--json` output). */
export interface StaleIotlbReport {
  scenario: "stale-iotlb";
  machine: { name: string; arch: string; seed: number };
  /** What the run got: "lazy" when the domain has a flush queue (DMA-FQ), else "strict". */
  policy: "strict" | "lazy";
  /** The description's `iommuPolicy` for the run (after `--policy` / the scenario's lazy default). */
  requestedPolicy: string;
  device: string;
  iommu: string;
  /** The device's default domain type: `DMA-FQ` (lazy) or `DMA` (strict). */
  domainType: string;
  /** The mapping: IOVA, the page's physical address, size. */
  mapping: { iova: number; phys: number; bytes: number };
  /** The write while mapped landed and was verified through `dma_sync_single_for_cpu`. */
  mappedWriteVerified: boolean;
  unmapAtNs: number;
  probes: StaleProbe[];
  /** Time from the unmap to the last probe that still landed, ns; null when none landed. */
  lastLandedAfterNs: number | null;
  /** Time from the unmap to the first probe that faulted, ns; null when none did. */
  firstFaultAfterNs: number | null;
  /** The flush queue's stats after the run (null for a strict domain: no queue). */
  flushQueue: (FlushQueueStats & { timeoutMs: number }) | null;
  /**
   * The window in which the device could still reach the unmapped page, in µs: the flush queue's
   * `maxStaleNs` (unmap to invalidation) for DMA-FQ, 0 for strict.
   */
  staleWindowUs: number;
  /** The first IOMMU fault the device's engine recorded after the unmap. */
  fault: { iova: number; code: string; message: string; timeNs: number } | null;
  /** Kernel log lines of the IOMMU driver after the unmap (its fault report). */
  faultLog: string[];
  debugFindings: Pick<DmaDebugReport, "kind" | "device" | "message">[];
  outcome: { ok: boolean; summary: string };
}

/** The first described device that translates through an IOMMU DMA domain. */
function translatedDevice(m: Machine): Device | null {
  for (const dev of m.devices.values()) if (m.iommuUnitOf(dev) !== null && useDmaIommu(dev)) return dev;
  return null;
}

/**
 * Runs the stale-IOTLB scenario on `m`: map a page for a device behind an IOMMU, let it write, unmap,
 * then let the device keep writing at the same IOVA every {@link STEP_NS}: under DMA-FQ the writes
 * land through the stale IOTLB entry until the flush-queue timer invalidates it, then fault; under
 * strict the first one faults.
 */
export function runStaleIotlb(m: Machine): StaleIotlbReport {
  const dev = translatedDevice(m);
  if (dev === null)
    throw new ScenarioUnsupportedError(
      `stale-iotlb: machine ${m.config.name} has no device translated by an IOMMU DMA domain (policy ${m.config.iommuPolicy ?? "default"})`,
    );
  const unit = m.iommuUnitOf(dev);
  const dom = iommuGetDomainForDev(dev);
  const domainType = dom === null ? "?" : iommuGroupTypeStr(dom.type);
  const fq = iommuDmaCookie(dev).fq;
  const policy = fq !== null ? "lazy" : "strict";
  const { clock } = m;
  if (dev.driver === null) dev.bindDriver("dmakit-stale");
  const pfn = m.pages.allocPages(GFP_KERNEL, 0);
  if (pfn === null) throw new KernelError("ENOMEM", "stale-iotlb: no page for the buffer");
  const phys = pfn * PAGE_SIZE;
  const va = m.vm.pageAddress(pfn);
  m.vm.cpuWriteVirt(va, new Uint8Array(PAGE_SIZE));
  const engine = m.dmaEngine(dev.name);

  const iova = dmaMapSingle(dev, va, PAGE_SIZE, DMA_FROM_DEVICE);
  if (dmaMappingError(dev, iova) !== 0)
    throw new KernelError("ENOMEM", `stale-iotlb: ${dev.name}: dma_map_single failed`);
  const frame = m.prng.fill(new Uint8Array(PAGE_SIZE));
  const w = engine.write(iova, frame);
  dmaSyncSingleForCpu(dev, iova, PAGE_SIZE, DMA_FROM_DEVICE);
  const seen = new Uint8Array(PAGE_SIZE);
  m.vm.cpuReadVirt(va, seen);
  const mappedWriteVerified = w.ok && seen.every((b, i) => b === frame[i]);

  dmaUnmapSingle(dev, iova, PAGE_SIZE, DMA_FROM_DEVICE);
  const unmapAtNs = clock.now();
  const logFrom = m.log.records().length;
  const iovaPfn = Math.floor(iova / PAGE_SIZE);

  // The device, unaware of the unmap, keeps writing at the old IOVA. Each probe carries its own
  // byte so that what reached RAM says which probe it was.
  const probes: StaleProbe[] = [];
  for (let step = 0; step < MAX_STEPS; step++) {
    if (step > 0) clock.advance(STEP_NS);
    const pending = fq?.isPending(iovaPfn) ?? false;
    const mark = (step + 1) & 0xff;
    const r = engine.write(iova, new Uint8Array(PROBE_BYTES).fill(mark));
    const ram = new Uint8Array(PROBE_BYTES);
    m.mem.read(phys, ram);
    const landed = r.ok && ram.every((b) => b === mark);
    probes.push({ afterNs: clock.now() - unmapAtNs, landed, pending });
    if (!r.ok) break;
  }
  // Let the IOMMU's fault interrupt (VT-d raises it through the clock) run and log.
  clock.advance(STEP_NS);

  const faultEv = engine.events().find((e) => e.kind === "iommu-fault") ?? null;
  const lastLanded = [...probes].reverse().find((p) => p.landed) ?? null;
  const firstFault = probes.find((p) => !p.landed) ?? null;
  const fqStats = fq === null ? null : { ...fq.stats(), timeoutMs: fq.fqTimeoutMs };
  const staleWindowUs = fqStats === null ? 0 : fqStats.maxStaleNs / 1000;
  const faultLog = m.log
    .records()
    .slice(logFrom)
    .filter((r) => r.prefix !== "" && /fault|DMAR|smmu|event/i.test(`${r.prefix} ${r.message}`))
    .map((r) => `[${(r.timeNs / 1e9).toFixed(6)}] ${r.prefix}: ${r.message}`);

  dev.releaseDriver();
  m.pages.freePages(pfn, 0);
  const findings = (m.dmaDebug?.reports() ?? []).map((x) => ({
    kind: x.kind,
    device: x.device,
    message: x.message,
  }));

  let ok: boolean;
  let summary: string;
  const windowMs = fqStats?.timeoutMs ?? 0;
  if (policy === "lazy") {
    ok =
      mappedWriteVerified &&
      probes[0]?.landed === true &&
      firstFault !== null &&
      faultEv !== null &&
      fqStats !== null &&
      fqStats.flushesTimeout >= 1 &&
      fqStats.maxStaleNs === windowMs * 1_000_000;
    summary = ok
      ? `after dma_unmap_single the device still wrote the page for ${staleWindowUs} µs (DMA-FQ timer ${windowMs} ms); ` +
        `its first write after the flush faulted`
      : "the stale IOTLB window did not show as expected under DMA-FQ";
  } else {
    ok = mappedWriteVerified && probes.length === 1 && probes[0]?.landed === false && faultEv !== null;
    summary = ok
      ? "strict invalidation: the device's first write after dma_unmap_single faulted (no stale window)"
      : "a write after dma_unmap_single was not refused under strict invalidation";
  }
  return {
    scenario: "stale-iotlb",
    machine: { name: m.config.name, arch: m.config.arch, seed: m.seed },
    policy,
    requestedPolicy: m.config.iommuPolicy ?? "default",
    device: dev.name,
    iommu: unit?.name ?? "?",
    domainType,
    mapping: { iova, phys, bytes: PAGE_SIZE },
    mappedWriteVerified,
    unmapAtNs,
    probes,
    lastLandedAfterNs: lastLanded?.afterNs ?? null,
    firstFaultAfterNs: firstFault?.afterNs ?? null,
    flushQueue: fqStats,
    staleWindowUs,
    fault:
      faultEv === null
        ? null
        : {
            iova: faultEv.dmaAddr,
            code: faultEv.fault?.code ?? "",
            message: faultEv.reason,
            timeNs: faultEv.timeNs,
          },
    faultLog,
    debugFindings: findings,
    outcome: { ok, summary },
  };
}

const us = (ns: number): string => `${ns / 1000} µs`;

/** Renders a {@link StaleIotlbReport} as the text `dmakit run stale-iotlb` prints. */
export function formatStaleIotlbText(r: StaleIotlbReport): string {
  const out: string[] = [];
  out.push(
    `stale-iotlb on ${r.machine.name} (${r.machine.arch}), seed ${r.machine.seed}, policy ${r.policy}`,
  );
  out.push(
    `  ${r.device} behind ${r.iommu}, domain ${r.domainType}: page at ${hex(r.mapping.phys)} mapped at IOVA ${hex(r.mapping.iova)} (DMA_FROM_DEVICE)`,
  );
  if (r.requestedPolicy !== r.policy)
    out.push(
      `  note: policy ${r.requestedPolicy} was requested, but ${r.iommu}'s driver does not report IOMMU_CAP_DEFERRED_FLUSH: the domain stayed ${r.domainType}`,
    );
  out.push(`  write while mapped: ${r.mappedWriteVerified ? "landed and verified" : "FAILED"}`);
  out.push(`  dma_unmap_single at ${us(r.unmapAtNs)}; the device keeps writing at the old IOVA`);
  out.push(
    ...formatSection(
      "Writes after the unmap",
      r.probes.map((p) => [
        `+${us(p.afterNs)}`,
        p.landed ? "LANDED (stale IOTLB entry)" : "faulted",
        p.pending ? "IOVA in the flush queue" : "IOVA invalidated",
      ]),
    ),
  );
  out.push("", "Flush queue");
  const f = r.flushQueue;
  if (f === null) out.push("  none (strict domain: the unmap invalidated the IOTLB before it returned)");
  else
    out.push(
      `  timer ${f.timeoutMs} ms; queued ${f.queued}, freed ${f.freed}, flushes by timer ${f.flushesTimeout}, ` +
        `by full ring ${f.flushesFull}; longest stale ${us(f.maxStaleNs)}`,
    );
  out.push("", "Window");
  out.push(
    `  stale window ${r.staleWindowUs} µs; last write landed at +${r.lastLandedAfterNs === null ? "-" : us(r.lastLandedAfterNs)}, ` +
      `first fault at +${r.firstFaultAfterNs === null ? "-" : us(r.firstFaultAfterNs)}`,
  );
  out.push("", "Fault");
  if (r.fault === null) out.push("  (none)");
  else
    out.push(
      `  ${r.device} write at IOVA ${hex(r.fault.iova)} at ${us(r.fault.timeNs)}: ${r.fault.code} ${r.fault.message}`,
    );
  for (const l of r.faultLog) out.push(`  ${l}`);
  out.push("", "dma-debug");
  if (r.debugFindings.length === 0) out.push("  no findings");
  for (const d of r.debugFindings) out.push(`  ${d.kind} ${d.device}: ${d.message}`);
  out.push("", `${r.outcome.ok ? "OK" : "FAILED"}: ${r.outcome.summary}`);
  return `${out.join("\n")}\n`;
}

/** `dmakit run stale-iotlb`: a device writes through a stale IOTLB entry after dma_unmap. */
export const staleIotlbScenario: Scenario = {
  name: "stale-iotlb",
  summary: "a device writes an unmapped page through a stale IOTLB entry until the DMA-FQ flush",
  bugs: new Map(),
  defaultMachine: "x86-pc",
  prepare(config: MachineConfig, options: ScenarioOptions): MachineConfig {
    // Lazy unless --policy says otherwise: the window exists only with a flush queue.
    return { ...config, iommuPolicy: options.policy ?? "lazy" };
  },
  run(machine) {
    const report = runStaleIotlb(machine);
    return { json: report, text: formatStaleIotlbText(report), ok: report.outcome.ok };
  },
};
