import {
  type Device,
  defineTracepoint,
  dmaGetMaxSegSize,
  formatBytes,
  hex,
  KernelError,
  PAGE_SIZE,
} from "@dmakit/core";
import {
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  type DmaDataDirection,
  type DmaDebugReport,
  type DmaEngine,
  type DmaEngineEvent,
  type DmaStats,
  dmaAddressingLimited,
  dmaAllocCoherent,
  dmaFreeCoherent,
  dmaMappingError,
  dmaMapSgtable,
  dmaMapSingleAttrs,
  dmaSyncSgtableForCpu,
  dmaSyncSingleForCpu,
  dmaSyncSingleForDevice,
  dmaUnmapSgtable,
  dmaUnmapSingleAttrs,
  useDmaIommu,
} from "@dmakit/dma-mapping";
import { iommuGetDomainForDev, iommuGroupTypeStr } from "@dmakit/iommu";
import { type CpuCacheStats, GFP_DMA32, GFP_KERNEL } from "@dmakit/mm-pages";
import {
  forEachSg,
  SgPool,
  SgTable,
  sgAllocTableFromPagesSegment,
  sgDmaAddress,
  sgDmaLen,
  sgFreeTable,
} from "@dmakit/scatterlist";
import { formatColumns } from "../formatColumns.js";
import { formatSection } from "../formatSection.js";
import type { Machine } from "../Machine.js";
import type { Scenario, ScenarioOptions, ScenarioResult } from "./Scenario.js";

/** Frames the camera captures. */
const FRAMES = 4;
/** Bytes per frame: 256 × 256 pixels, 4 bytes each (64 pages). */
const FRAME_BYTES = 256 * 1024;
/** The camera's per-frame statistics block (a 256-bin histogram of u32 counts). */
const STATS_BYTES = 1024;
/** Simulated rates, bytes per ns: camera link, GPU, display scan-out, CPU copy/compare. */
const RATE = { capture: 2, render: 16, display: 4, cpu: 8 } as const;
/** Bus transaction sizes: the GPU issues 256-byte bursts, so each page costs 16 IOTLB lookups. */
const BURST = { capture: 4096, render: 256, display: 4096 } as const;

const BUGS = new Map([
  [
    "missing-sync",
    "the CPU reads frame 1's statistics without dma_sync_single_for_cpu() (stale cache lines on a non-coherent SoC)",
  ],
  ["unchecked-mapping-error", "the driver never calls dma_mapping_error() on the statistics mapping"],
  ["leak", "the driver unbinds with the statistics buffer still mapped"],
]);

/** dma-debug report kinds that prove each injected bug was caught. */
const CAUGHT_BY: Record<string, readonly string[]> = {
  "missing-sync": ["cpu-read-stale", "cpu-touched-device-owned"],
  "unchecked-mapping-error": ["map-error-not-checked"],
  leak: ["leak-at-unbind"],
};

/** A scenario phase or a frame, as a complete event on the trace's "scenario" lane. */
const TRACE_PHASE = defineTracepoint<{ phase: string; detail: string }>(
  "dmakit:scenario_phase",
  (f) => `${f.phase}: ${f.detail}`,
);

/** Everything `dmakit run capture` reports (also its `--json` output). */
export interface CaptureReport {
  scenario: "capture";
  machine: { name: string; arch: string; coherent: boolean; seed: number };
  injectBug: string | null;
  devices: { capture: string; render: string; display: string };
  /** How each device's DMA is mapped. */
  dmaPaths: { device: string; role: string; path: string; coherent: boolean }[];
  frames: { count: number; bytes: number };
  phases: { name: string; startNs: number; durNs: number }[];
  mappings: {
    made: number;
    unmapped: number;
    mapErrors: number;
    syncs: number;
    coherentAllocations: number;
    frees: number;
  };
  swiotlb: { poolBytes: number; bytesBounced: number } | null;
  iommus: {
    name: string;
    type: string;
    iotlbHits: number;
    iotlbMisses: number;
    /** Hits / lookups, 0..1; null without lookups. */
    iotlbHitRate: number | null;
    faults: number;
    /** Most pages held for tables, stream table and queues at any phase end. */
    pageTablePagesPeak: number;
    pageTablePages: number;
  }[];
  engines: {
    device: string;
    bytesRead: number;
    bytesWritten: number;
    transactions: number;
    faults: number;
    unreachable: number;
  }[];
  cache: { maintenanceOps: number; maintenanceBytes: number; linesCleaned: number; linesInvalidated: number };
  /** The display's framebuffer, and how the CPU wrote it. */
  coherentBuffer: { device: string; bytes: number; dmaAddr: number; cpuMapping: string };
  verification: {
    bytesVerified: number;
    bytesMismatched: number;
    firstMismatch: { what: string; offset: number; expected: number; got: number } | null;
  };
  deviceEvents: Pick<DmaEngineEvent, "kind" | "device" | "write" | "dmaAddr" | "reason">[];
  debug: {
    enabled: boolean;
    findings: Pick<DmaDebugReport, "kind" | "device" | "driver" | "message" | "missingCall">[];
  };
  outcome: { ok: boolean; summary: string };
}

/** The first described device of one of these kinds. */
function deviceOfKind(m: Machine, kinds: readonly string[]): Device | null {
  const all = [...m.config.platform.devices, ...(m.config.pci?.endpoints ?? [])];
  for (const kind of kinds) {
    const d = all.find((x) => x.kind === kind);
    if (d !== undefined) return m.device(d.name);
  }
  return null;
}

/** Counters at the start of the run. */
interface Baseline {
  readonly dma: Readonly<DmaStats>;
  readonly cache: CpuCacheStats;
  readonly iommu: ReadonlyMap<string, Readonly<Record<string, number>>>;
}

/** One buffer of pages with its sg_table. */
interface PageBuf {
  readonly pfns: number[];
  readonly sgt: SgTable;
}

/**
 * Runs the capture pipeline on `m`: camera → CPU check → GPU render through its IOMMU → display
 * scan-out of a coherent buffer, verifying every byte, and returns the report.
 */
export function runCapture(m: Machine, options: ScenarioOptions = {}): CaptureReport {
  const bug = options.injectBug ?? null;
  if (bug !== null && !BUGS.has(bug))
    throw new KernelError("EINVAL", `capture: unknown bug "${bug}" (known: ${[...BUGS.keys()].join(", ")})`);
  const cam = deviceOfKind(m, ["camera"]);
  const gpu = deviceOfKind(m, ["gpu"]);
  const disp = deviceOfKind(m, ["display"]) ?? gpu;
  if (cam === null || gpu === null || disp === null)
    throw new KernelError(
      "ENODEV",
      `capture: machine ${m.config.name} needs a device of kind "camera" and one of kind "gpu"`,
    );
  const { vm, clock, tracer } = m;
  // Counters before the run: the report shows what the scenario did, not what boot did.
  const before: Baseline = {
    dma: { ...m.dma.stats },
    cache: m.cache.stats(),
    iommu: new Map([...m.iommuUnits.values()].map((u) => [u.name, { ...u.hardware.counters() }])),
  };
  const pool = new SgPool({ mem: m.mem });
  const verification: CaptureReport["verification"] = {
    bytesVerified: 0,
    bytesMismatched: 0,
    firstMismatch: null,
  };
  const phases: CaptureReport["phases"] = [];
  const ptPeak = new Map<string, number>();
  const samplePageTables = (): void => {
    for (const u of m.iommuUnits.values())
      ptPeak.set(u.name, Math.max(ptPeak.get(u.name) ?? 0, u.tables.pagesInUse));
  };
  const cpuTime = (bytes: number): void => clock.advance(Math.ceil(bytes / RATE.cpu));
  const span = (lane: string, name: string, detail: string, fn: () => void): void => {
    const start = clock.now();
    fn();
    const dur = clock.now() - start;
    if (lane === "scenario") phases.push({ name, startNs: start, durNs: dur });
    if (tracer.enabled) tracer.complete(TRACE_PHASE, start, dur, { phase: name, detail }, lane);
  };
  const check = (what: string, expected: Uint8Array, got: Uint8Array): void => {
    verification.bytesVerified += expected.length;
    for (let i = 0; i < expected.length; i++) {
      if (expected[i] !== got[i]) {
        verification.bytesMismatched++;
        if (verification.firstMismatch === null)
          verification.firstMismatch = { what, offset: i, expected: expected[i] ?? 0, got: got[i] ?? 0 };
      }
    }
  };
  const allocBuf = (dev: Device, gfp: number): PageBuf => {
    const pfns: number[] = [];
    for (let i = 0; i < FRAME_BYTES / PAGE_SIZE; i++) {
      const pfn = m.pages.allocPages(gfp, 0);
      if (pfn === null) throw new KernelError("ENOMEM", `capture: out of memory for ${dev.name}'s buffers`);
      pfns.push(pfn);
    }
    const sgt = new SgTable(pool);
    sgAllocTableFromPagesSegment(sgt, pfns, pfns.length, 0, FRAME_BYTES, dmaGetMaxSegSize(dev), GFP_KERNEL);
    return { pfns, sgt };
  };
  const freeBuf = (b: PageBuf): void => {
    sgFreeTable(b.sgt);
    for (const pfn of b.pfns) m.pages.freePages(pfn, 0);
  };
  const cpuReadBuf = (b: PageBuf): Uint8Array => {
    const out = new Uint8Array(FRAME_BYTES);
    b.pfns.forEach((pfn, i) => {
      vm.cpuReadVirt(vm.pageAddress(pfn), out.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
    });
    cpuTime(FRAME_BYTES);
    return out;
  };
  /** The device reads or writes `data` at the DMA segments of a mapped table, in order. */
  const deviceIo = (engine: DmaEngine, sgt: SgTable, data: Uint8Array, write: boolean): void => {
    let off = 0;
    for (const sg of forEachSg(sgt.sgl, sgt.nents)) {
      const len = Math.min(sgDmaLen(sg), data.length - off);
      const piece = data.subarray(off, off + len);
      const r = write ? engine.write(sgDmaAddress(sg), piece) : engine.read(sgDmaAddress(sg), piece);
      if (!r.ok) return;
      off += len;
    }
  };
  const mapSgtable = (dev: Device, sgt: SgTable, dir: DmaDataDirection): void => {
    dmaMapSgtable(dev, sgt, dir, 0);
    samplePageTables();
  };

  const drivers = new Map<Device, string>([
    [cam, "dmakit-camera"],
    [gpu, "dmakit-gpu"],
  ]);
  if (!drivers.has(disp)) drivers.set(disp, "dmakit-display");
  for (const [dev, drv] of drivers) if (dev.driver === null) dev.bindDriver(drv);

  const camEngine = m.dmaEngine(cam.name, { burst: BURST.capture, bytesPerNs: RATE.capture });
  const gpuEngine = m.dmaEngine(gpu.name, { burst: BURST.render, bytesPerNs: RATE.render });
  const dispEngine =
    disp === gpu ? gpuEngine : m.dmaEngine(disp.name, { burst: BURST.display, bytesPerNs: RATE.display });

  // ---- capture: the camera writes frames into streaming FROM_DEVICE mappings (videobuf2-dma-sg
  // style, pages from anywhere in RAM) and a statistics block mapped once with dma_map_single.
  const frames: PageBuf[] = [];
  const expected: Uint8Array[] = [];
  let statsPfn = -1;
  span("scenario", "capture", `${cam.name}: ${FRAMES} frames of ${formatBytes(FRAME_BYTES)}`, () => {
    const stats = m.pages.allocPages(GFP_KERNEL | GFP_DMA32, 0);
    if (stats === null) throw new KernelError("ENOMEM", "capture: no page for the statistics block");
    statsPfn = stats;
    const statsVa = vm.pageAddress(stats);
    const statsDma = dmaMapSingleAttrs(cam, statsVa, STATS_BYTES, DMA_FROM_DEVICE, 0);
    if (bug !== "unchecked-mapping-error" && dmaMappingError(cam, statsDma) !== 0)
      throw new KernelError("ENOMEM", `capture: ${cam.name}: mapping the statistics block failed`);
    for (let f = 0; f < FRAMES; f++) {
      span("frames", `frame ${f}`, `${cam.name} capture`, () => {
        const buf = allocBuf(cam, GFP_KERNEL);
        // The driver clears the buffer before queueing it: its lines sit dirty in the CPU cache.
        buf.pfns.forEach((pfn) => {
          vm.cpuWriteVirt(vm.pageAddress(pfn), new Uint8Array(PAGE_SIZE));
        });
        mapSgtable(cam, buf.sgt, DMA_FROM_DEVICE);
        const frame = m.prng.fill(new Uint8Array(FRAME_BYTES));
        deviceIo(camEngine, buf.sgt, frame, true);
        const hist = histogram(frame);
        camEngine.write(statsDma, hist);
        dmaSyncSgtableForCpu(cam, buf.sgt, DMA_FROM_DEVICE);
        check(`frame ${f}`, frame, cpuReadBuf(buf));
        if (!(bug === "missing-sync" && f === 1))
          dmaSyncSingleForCpu(cam, statsDma, STATS_BYTES, DMA_FROM_DEVICE);
        const seen = new Uint8Array(STATS_BYTES);
        vm.cpuReadVirt(statsVa, seen);
        cpuTime(STATS_BYTES);
        check(`frame ${f} statistics`, hist, seen);
        dmaSyncSingleForDevice(cam, statsDma, STATS_BYTES, DMA_FROM_DEVICE);
        dmaUnmapSgtable(cam, buf.sgt, DMA_FROM_DEVICE, 0);
        frames.push(buf);
        expected.push(frame);
      });
    }
    if (bug !== "leak") dmaUnmapSingleAttrs(cam, statsDma, STATS_BYTES, DMA_FROM_DEVICE, 0);
  });

  // ---- render: the GPU reads each frame through its IOMMU (TO_DEVICE) and writes a negative
  // into an output buffer (FROM_DEVICE) in 256-byte bursts.
  let last: Uint8Array = new Uint8Array(0);
  span("scenario", "render", `${gpu.name}: ${FRAMES} frames`, () => {
    for (let f = 0; f < FRAMES; f++) {
      span("frames", `render ${f}`, `${gpu.name} render`, () => {
        const src = frames[f] as PageBuf;
        const out = allocBuf(gpu, GFP_KERNEL);
        mapSgtable(gpu, src.sgt, DMA_TO_DEVICE);
        mapSgtable(gpu, out.sgt, DMA_FROM_DEVICE);
        const local = new Uint8Array(FRAME_BYTES);
        deviceIo(gpuEngine, src.sgt, local, false);
        for (let i = 0; i < local.length; i++) local[i] = 255 - (local[i] as number);
        deviceIo(gpuEngine, out.sgt, local, true);
        dmaSyncSgtableForCpu(gpu, out.sgt, DMA_FROM_DEVICE);
        const want = (expected[f] as Uint8Array).map((x) => 255 - x);
        const got = cpuReadBuf(out);
        check(`rendered frame ${f}`, want, got);
        dmaUnmapSgtable(gpu, src.sgt, DMA_TO_DEVICE, 0);
        dmaUnmapSgtable(gpu, out.sgt, DMA_FROM_DEVICE, 0);
        last = got;
        freeBuf(out);
      });
    }
  });

  // ---- display: a coherent framebuffer; the CPU writes the last rendered frame into it with no
  // cache maintenance and the display scans it out.
  let coherentBuffer: CaptureReport["coherentBuffer"] = {
    device: disp.name,
    bytes: FRAME_BYTES,
    dmaAddr: 0,
    cpuMapping: "",
  };
  span("scenario", "display", `${disp.name}: scan-out of a coherent framebuffer`, () => {
    const fb = dmaAllocCoherent(disp, FRAME_BYTES, GFP_KERNEL);
    if (fb === null) throw new KernelError("ENOMEM", `capture: dma_alloc_coherent for ${disp.name} failed`);
    samplePageTables();
    // A coherent device snoops ordinary cached stores; for a non-coherent one dma_alloc_coherent
    // remapped the pages uncached (pgprot_dmacoherent), so the same stores reach RAM directly.
    // Either way the driver needs no clean or invalidate, and makes none.
    vm.cpuWriteVirt(fb.cpuAddr, last);
    const cpuMapping = disp.dmaCoherent
      ? "cached (the device snoops the CPU caches)"
      : "uncached remap (stores reach RAM; no cache maintenance)";
    cpuTime(last.length);
    const scanned = new Uint8Array(FRAME_BYTES);
    dispEngine.read(fb.dmaHandle, scanned);
    check("scanned-out framebuffer", last, scanned);
    coherentBuffer = { device: disp.name, bytes: FRAME_BYTES, dmaAddr: fb.dmaHandle, cpuMapping };
    dmaFreeCoherent(disp, FRAME_BYTES, fb.cpuAddr, fb.dmaHandle);
  });

  // ---- teardown: buffers go back, drivers unbind (dma-debug checks for leaked mappings).
  for (const b of frames) freeBuf(b);
  for (const [dev] of drivers) dev.releaseDriver();
  if (bug !== "leak" && statsPfn >= 0) m.pages.freePages(statsPfn, 0);

  return buildReport(m, {
    bug,
    cam,
    gpu,
    disp,
    engines: disp === gpu ? [camEngine, gpuEngine] : [camEngine, gpuEngine, dispEngine],
    phases,
    ptPeak,
    verification,
    coherentBuffer,
    before,
  });
}

/** A 256-bin histogram of the frame's bytes, as little-endian u32 counts. */
function histogram(frame: Uint8Array): Uint8Array {
  const counts = new Uint32Array(256);
  for (let i = 0; i < frame.length; i++)
    counts[frame[i] as number] = (counts[frame[i] as number] as number) + 1;
  return new Uint8Array(counts.buffer);
}

function dmaPath(m: Machine, dev: Device): string {
  const unit = m.iommuUnitOf(dev);
  if (useDmaIommu(dev)) {
    const dom = iommuGetDomainForDev(dev);
    return `iommu-dma through ${unit?.name ?? "?"} (${unit?.type ?? "?"}, domain ${dom === null ? "?" : iommuGroupTypeStr(dom.type)})`;
  }
  const limited = dmaAddressingLimited(dev);
  const base = unit !== null ? `dma-direct, ${unit.name} in passthrough` : "dma-direct (no IOMMU)";
  return limited && m.swiotlb !== null ? `${base}, swiotlb bounces what its mask cannot reach` : base;
}

function buildReport(
  m: Machine,
  r: {
    bug: string | null;
    cam: Device;
    gpu: Device;
    disp: Device;
    engines: DmaEngine[];
    phases: CaptureReport["phases"];
    ptPeak: Map<string, number>;
    verification: CaptureReport["verification"];
    coherentBuffer: CaptureReport["coherentBuffer"];
    before: Baseline;
  },
): CaptureReport {
  const b = r.before;
  const now = m.dma.stats;
  const s = {
    mappings: now.mappings - b.dma.mappings,
    unmappings: now.unmappings - b.dma.unmappings,
    mapErrors: now.mapErrors - b.dma.mapErrors,
    syncs: now.syncs - b.dma.syncs,
    bytesBounced: now.bytesBounced - b.dma.bytesBounced,
    allocations: now.allocations - b.dma.allocations,
    frees: now.frees - b.dma.frees,
  };
  const findings = (m.dmaDebug?.reports() ?? []).map((x) => ({
    kind: x.kind,
    device: x.device,
    driver: x.driver,
    message: x.message,
    missingCall: x.missingCall,
  }));
  const deviceEvents = r.engines.flatMap((e) =>
    e
      .events()
      .map((x) => ({ kind: x.kind, device: x.device, write: x.write, dmaAddr: x.dmaAddr, reason: x.reason })),
  );
  const c = m.cache.stats();
  const roles: [string, Device][] = [
    ["capture", r.cam],
    ["render", r.gpu],
  ];
  if (r.disp !== r.gpu) roles.push(["display", r.disp]);
  else roles[1] = ["render + display", r.gpu];
  const v = r.verification;
  let ok: boolean;
  let summary: string;
  if (r.bug === null) {
    ok = v.bytesMismatched === 0 && findings.length === 0 && deviceEvents.length === 0;
    summary = ok
      ? `all ${v.bytesVerified} bytes verified, no dma-debug findings`
      : `${v.bytesMismatched} bytes did not verify, ${findings.length} dma-debug findings, ${deviceEvents.length} device events`;
  } else {
    const kinds = CAUGHT_BY[r.bug] ?? [];
    const caught = findings.filter((f) => kinds.includes(f.kind));
    ok = caught.length > 0;
    summary = ok
      ? `injected bug "${r.bug}" caught by dma-debug (${caught.map((f) => f.kind).join(", ")})` +
        (v.bytesMismatched > 0
          ? `; it corrupted ${v.bytesMismatched} bytes the CPU read`
          : "; no bytes corrupted on this machine")
      : `injected bug "${r.bug}" was NOT caught${m.dmaDebug === null ? " (dma-debug is off)" : ""}`;
  }
  return {
    scenario: "capture",
    machine: { name: m.config.name, arch: m.config.arch, coherent: m.config.coherent, seed: m.seed },
    injectBug: r.bug,
    devices: { capture: r.cam.name, render: r.gpu.name, display: r.disp.name },
    dmaPaths: roles.map(([role, dev]) => ({
      device: dev.name,
      role,
      path: dmaPath(m, dev),
      coherent: dev.dmaCoherent,
    })),
    frames: { count: FRAMES, bytes: FRAME_BYTES },
    phases: r.phases,
    mappings: {
      made: s.mappings,
      unmapped: s.unmappings,
      mapErrors: s.mapErrors,
      syncs: s.syncs,
      coherentAllocations: s.allocations,
      frees: s.frees,
    },
    swiotlb:
      m.swiotlb === null
        ? null
        : { poolBytes: m.swiotlb.report().end - m.swiotlb.report().start, bytesBounced: s.bytesBounced },
    iommus: [...m.iommuUnits.values()].map((u) => {
      const k0 = b.iommu.get(u.name) ?? {};
      const k = u.hardware.counters();
      const delta = (key: string): number => (k[key] ?? 0) - (k0[key] ?? 0);
      const hits = delta("iommu.translate.iotlb-hit");
      const misses = delta("iommu.translate.iotlb-miss");
      return {
        name: u.name,
        type: u.type,
        iotlbHits: hits,
        iotlbMisses: misses,
        iotlbHitRate: hits + misses > 0 ? hits / (hits + misses) : null,
        faults: delta("iommu.translate.fault"),
        pageTablePagesPeak: r.ptPeak.get(u.name) ?? u.tables.pagesInUse,
        pageTablePages: u.tables.pagesInUse,
      };
    }),
    engines: r.engines.map((e) => ({
      device: e.dev.name,
      bytesRead: e.stats.bytesRead,
      bytesWritten: e.stats.bytesWritten,
      transactions: e.stats.transactions,
      faults: e.stats.faults,
      unreachable: e.stats.unreachable,
    })),
    cache: {
      maintenanceOps: c.maintenanceOps - b.cache.maintenanceOps,
      maintenanceBytes: c.maintenanceBytes - b.cache.maintenanceBytes,
      linesCleaned: c.linesCleaned - b.cache.linesCleaned,
      linesInvalidated: c.linesInvalidated - b.cache.linesInvalidated,
    },
    coherentBuffer: r.coherentBuffer,
    verification: v,
    deviceEvents,
    debug: { enabled: m.dmaDebug !== null, findings },
    outcome: { ok, summary },
  };
}

/** Renders a {@link CaptureReport} as the text `dmakit run capture` prints. */
export function formatCaptureText(r: CaptureReport): string {
  const out: string[] = [];
  const table = (rows: string[][]): string[] => formatColumns(rows, "  ");
  const mc = r.machine;
  out.push(
    `capture on ${mc.name} (${mc.arch}, ${mc.coherent ? "coherent" : "non-coherent"}), seed ${mc.seed}` +
      (r.injectBug !== null ? `, injected bug: ${r.injectBug}` : ""),
  );
  out.push(
    `  ${r.frames.count} frames of ${formatBytes(r.frames.bytes)}: ${r.devices.capture} captures, ` +
      `${r.devices.render} renders, ${r.devices.display} scans out`,
  );
  out.push("", "DMA paths");
  out.push(
    ...table(r.dmaPaths.map((p) => [p.device, p.role, p.coherent ? "coherent" : "non-coherent", p.path])),
  );
  out.push("", "Phases (simulated time)");
  out.push(...table(r.phases.map((p) => [p.name, `at ${us(p.startNs)}`, `took ${us(p.durNs)}`])));
  const mp = r.mappings;
  out.push("", "DMA API");
  out.push(
    `  mappings made ${mp.made}, unmapped ${mp.unmapped}, map errors ${mp.mapErrors}, syncs ${mp.syncs}, ` +
      `coherent allocations ${mp.coherentAllocations}, frees ${mp.frees}`,
  );
  out.push(
    r.swiotlb === null
      ? "  swiotlb: no pool"
      : `  swiotlb: ${formatBytes(r.swiotlb.bytesBounced)} bounced (${r.swiotlb.bytesBounced} bytes) through a ${formatBytes(r.swiotlb.poolBytes)} pool`,
  );
  out.push(
    `  CPU cache maintenance: ${r.cache.maintenanceOps} operations over ${formatBytes(r.cache.maintenanceBytes)}, ` +
      `${r.cache.linesCleaned} lines cleaned, ${r.cache.linesInvalidated} invalidated`,
  );
  out.push(
    `  coherent buffer: ${formatBytes(r.coherentBuffer.bytes)} for ${r.coherentBuffer.device} at DMA ${hex(r.coherentBuffer.dmaAddr)}, CPU mapping ${r.coherentBuffer.cpuMapping}`,
  );
  out.push(
    ...formatSection(
      "IOMMUs",
      r.iommus.map((x) => [
        x.name,
        x.type,
        `IOTLB hits ${x.iotlbHits}, misses ${x.iotlbMisses}`,
        `hit rate ${x.iotlbHitRate === null ? "-" : `${(x.iotlbHitRate * 100).toFixed(1)}%`}`,
        `faults ${x.faults}`,
        `table pages ${x.pageTablePages} (peak ${x.pageTablePagesPeak})`,
      ]),
    ),
  );
  out.push("", "Device DMA engines");
  out.push(
    ...table(
      r.engines.map((e) => [
        e.device,
        `read ${formatBytes(e.bytesRead)}`,
        `wrote ${formatBytes(e.bytesWritten)}`,
        `${e.transactions} transactions`,
        `faults ${e.faults}`,
        `unreachable ${e.unreachable}`,
      ]),
    ),
  );
  for (const e of r.deviceEvents)
    out.push(`  ! ${e.device} ${e.kind} ${e.write ? "write" : "read"} at ${hex(e.dmaAddr)}: ${e.reason}`);
  const v = r.verification;
  out.push("", "Verification");
  out.push(`  ${v.bytesVerified} bytes checked, ${v.bytesMismatched} wrong`);
  if (v.firstMismatch !== null)
    out.push(
      `  first wrong byte: ${v.firstMismatch.what} offset ${v.firstMismatch.offset}: expected ${hex(v.firstMismatch.expected)}, CPU saw ${hex(v.firstMismatch.got)}`,
    );
  out.push("", "dma-debug");
  if (!r.debug.enabled) out.push("  (disabled)");
  else if (r.debug.findings.length === 0) out.push("  no findings");
  for (const f of r.debug.findings)
    out.push(`  DMA-API: ${f.driver} ${f.device}: ${f.message.replace(/\n/g, "\n    ")}`);
  out.push("", `${r.outcome.ok ? "OK" : "FAILED"}: ${r.outcome.summary}`);
  return `${out.join("\n")}\n`;
}

function us(ns: number): string {
  return `${(ns / 1000).toFixed(1)} us`;
}

/** `dmakit run capture` (the default scenario). */
export const captureScenario: Scenario = {
  name: "capture",
  summary:
    "camera frames into streaming mappings (swiotlb when it cannot reach them), GPU render through the IOMMU, display scan-out of a coherent buffer; every byte verified",
  bugs: BUGS,
  run(machine, options = {}): ScenarioResult {
    const report = runCapture(machine, options);
    return { json: report, text: formatCaptureText(report), ok: report.outcome.ok };
  },
};
