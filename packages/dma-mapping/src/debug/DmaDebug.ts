import {
  type Device,
  DMA_MAPPING_ERROR,
  dmaGetMaxSegSize,
  dmaGetSegBoundary,
  hex16,
  KernelError,
  PAGE_SIZE,
} from "@dmakit/core";
import { type CacheFinding, L1_CACHE_BYTES } from "@dmakit/mm-pages";
import {
  forEachSg,
  NO_PAGE,
  type Sg,
  sgDmaAddress,
  sgDmaLen,
  sgLength,
  sgPage,
  sgPhys,
} from "@dmakit/scatterlist";
import type { DmaDebugHooks } from "../DmaDebugHooks.js";
import type { DmaSystem } from "../DmaSystem.js";
import { devDriverString } from "../devDriverString.js";
import {
  DMA_ATTR_DEBUGGING_IGNORE_CACHELINES,
  DMA_ATTR_MMIO,
  DMA_ATTR_REQUIRE_COHERENT,
  DMA_ATTR_SKIP_CPU_SYNC,
} from "../dmaAttrs.js";
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE, dmaDirectionName } from "../dmaDirection.js";
import { dmaGetCacheAlignment } from "../dmaLimits.js";
import { isSwiotlbActive } from "../swiotlb.js";
import { ACTIVE_CACHELINE_MAX_OVERLAP, ActiveCachelines, CACHELINE_EEXIST } from "./ActiveCachelines.js";
import {
  API_RESOURCE,
  API_SINGLE,
  DMA_DEBUG_DYNAMIC_ENTRIES,
  DMA_DEBUG_TYPE_NAMES,
  DmaDebugEntries,
  type DmaDebugRef,
  dma_debug_coherent,
  dma_debug_noncoherent,
  dma_debug_phy,
  dma_debug_sg,
  dma_debug_single,
  MAP_ERR_CHECKED,
  MAP_ERR_NAMES,
  MAP_ERR_NOT_CHECKED,
  OP_ALLOC,
  OP_MAP,
  OP_SYNC_FOR_CPU,
  OP_SYNC_FOR_DEVICE,
  OWNER_CPU,
  OWNER_DEVICE,
  OWNER_NONE,
  PREALLOC_DMA_DEBUG_ENTRIES,
} from "./DmaDebugEntries.js";
import type { DmaDebugReport, DmaDebugReportKind } from "./DmaDebugReport.js";
import { PhysRangeIndex } from "./PhysRangeIndex.js";

const PREFIX = "DMA-API";
/** `NAME_MAX_LEN - 1`: the driver filter compares this many characters. */
const FILTER_LEN = 63;

/**
 * Options of {@link dmaDebugInit}: the kernel's boot options and debugfs knobs, plus the model's.
 * @see kernel/dma/debug.c dma_debug_init (boot options `dma_debug=`, `dma_debug_entries=`, `dma_debug_driver=`)
 */
export interface DmaDebugOptions {
  /** debugfs `num_errors`: how many errors are printed (default 1, like the kernel). */
  readonly numErrors?: number;
  /** debugfs `all_errors`: print every error. */
  readonly allErrors?: boolean;
  /** `dma_debug_driver=` / debugfs `driver_filter`: print only errors of this driver. */
  readonly driverFilter?: string;
  /** `dma_debug_entries=`: preallocated entries (default `PREALLOC_DMA_DEBUG_ENTRIES` = 65536); the pool grows past it. */
  readonly entries?: number;
  /** `CONFIG_DMA_API_DEBUG_SG`: check sg segments against `max_segment_size` and `segment_boundary_mask` (default false, as Kconfig). */
  readonly sg?: boolean;
  /**
   * Model-only: cache-model and ownership reports (stale device reads, stale CPU reads, lost
   * writes, CPU touching a device-owned buffer). Default true.
   */
  readonly cacheChecks?: boolean;
  /**
   * Physical ranges of kernel text and rodata, for "maps memory from kernel text or rodata". The
   * model has no kernel image unless the machine says where it is; default none.
   */
  readonly kernelText?: readonly { readonly start: number; readonly size: number }[];
  /**
   * `dma_get_cache_alignment()`; overlap errors need it ≥ `L1_CACHE_BYTES`, so a coherent (x86-like)
   * machine, where it is 1, never reports them. Default: `dmaGetCacheAlignment(system)`.
   */
  readonly cacheAlignment?: number;
}

interface MutableReport {
  seq: number;
  kind: DmaDebugReportKind;
  device: string;
  driver: string;
  dmaAddr: number | null;
  size: number | null;
  phys: number | null;
  dir: number | null;
  message: string;
  missingCall: string | null;
  printed: boolean;
}

/** Report fields a check supplies; the rest come from `err_printk`. */
type ReportDetail = Partial<Pick<MutableReport, "dmaAddr" | "size" | "phys" | "dir" | "missingCall">>;

/** `%p` with pointer hashing off (`no_hash_pointers`): 16 zero-padded hex digits, no 0x. */
function ptr(addr: number): string {
  return addr.toString(16).padStart(16, "0");
}

/** Calls named after the API an entry came from, for reports. */
function apiNames(
  type: number,
  api: number,
): { map: string; unmap: string; forCpu: string; forDevice: string } {
  if (type === dma_debug_sg)
    return {
      map: "dma_map_sg",
      unmap: "dma_unmap_sg",
      forCpu: "dma_sync_sg_for_cpu",
      forDevice: "dma_sync_sg_for_device",
    };
  const single = { forCpu: "dma_sync_single_for_cpu", forDevice: "dma_sync_single_for_device" };
  if (type === dma_debug_noncoherent) return { map: "dma_alloc_pages", unmap: "dma_free_pages", ...single };
  if (type === dma_debug_coherent)
    return { map: "dma_alloc_coherent", unmap: "dma_free_coherent", ...single };
  if (api === API_SINGLE) return { map: "dma_map_single", unmap: "dma_unmap_single", ...single };
  if (api === API_RESOURCE) return { map: "dma_map_resource", unmap: "dma_unmap_resource", ...single };
  return { map: "dma_map_page", unmap: "dma_unmap_page", ...single };
}

/**
 * `CONFIG_DMA_API_DEBUG` for one machine: the DMA API's bookkeeping checker. Every map, unmap,
 * sync and alloc of the DMA layer calls its hooks ({@link DmaDebugHooks}); it keeps a
 * `dma_debug_entry` per live mapping, hashed by DMA address exactly as `kernel/dma/debug.c` does
 * (16384 buckets by `dev_addr >> 13`, best-fit lookup, containing-match walk for syncs), and
 * reports misuse through `err_printk`: a `WARN` in the machine's log reading
 * `DMA-API: <driver> <dev>: <message>` in the kernel's words, only the first error unless
 * `allErrors` or `numErrors` say otherwise, counted in {@link errorCount} either way.
 *
 * Beyond the kernel, it watches the machine's CPU cache model: a non-coherent device reading data
 * the CPU has not cleaned, the CPU reading data a device wrote without `dma_sync_*_for_cpu`/unmap,
 * dirty lines written back over or discarded from device data, and the CPU touching a buffer the
 * device owns (ownership per entry: map and `sync_for_device` give it to the device,
 * `sync_for_cpu` to the CPU, unmap ends it). These reports name the device, the mapping, the
 * address and the missing call, and are also kept as data ({@link reports}).
 *
 * Model differences: no "Mapped at:" stack trace (reports carry the entry instead); stack mapping
 * is not detected (the model has no task stacks); kernel text/rodata only when
 * {@link DmaDebugOptions.kernelText} says where it is; the pool never runs out of memory (no
 * "debugging out of memory - disabling"); unmap/free hooks carry no attrs, so the newest kernels'
 * "frees DMA memory with different attributes" check is not made. `CONFIG_DMA_BOUNCE_UNALIGNED_KMALLOC`
 * is taken as set (arm64), so overlap errors are skipped for devices with an active swiotlb pool.
 * @see kernel/dma/debug.c
 */
export class DmaDebug implements DmaDebugHooks {
  readonly system: DmaSystem;
  /** The live entries (struct-of-arrays) and their hash. */
  readonly entries: DmaDebugEntries;
  private readonly cachelines = new ActiveCachelines();
  private readonly ranges = new PhysRangeIndex();
  private readonly cacheChecks: boolean;
  private readonly sgChecks: boolean;
  private readonly kernelText: readonly { readonly start: number; readonly size: number }[];
  private readonly cacheAlignment: number;

  private globalDisable = false;
  private errors = 0;
  private showNumErrors: number;
  private showAllErrors: boolean;
  private filterName = "";

  private readonly devices: Device[] = [];
  private readonly devIds = new Map<Device, number>();
  private readonly devByName = new Map<string, number>();
  private readonly devLive: number[] = [];
  private readonly detach: Array<() => void> = [];
  private readonly found: MutableReport[] = [];
  private reportSeq = 0;
  private muted = 0;
  private pendingSingle: Device | null = null;
  private overflowWarned = false;
  private readonly ref: DmaDebugRef = {
    devId: -1,
    devAddr: 0,
    size: 0,
    type: 0,
    dir: 0,
    sgCallEnts: 0,
    paddr: -1,
  };
  private readonly overlapOut = { overflow: 0, existingClean: false };

  constructor(system: DmaSystem, options: DmaDebugOptions = {}) {
    const prealloc = options.entries ?? PREALLOC_DMA_DEBUG_ENTRIES;
    if (!Number.isInteger(prealloc) || prealloc < 1)
      throw new KernelError(
        "EINVAL",
        `DMA-API: dma_debug_entries=${String(prealloc)}: need at least 1 entry (0 divides by zero in the pool-growth message)`,
      );
    this.system = system;
    this.entries = new DmaDebugEntries(prealloc);
    this.showNumErrors = options.numErrors ?? 1;
    this.showAllErrors = options.allErrors ?? false;
    this.cacheChecks = options.cacheChecks ?? true;
    this.sgChecks = options.sg ?? false;
    this.kernelText = options.kernelText ?? [];
    this.cacheAlignment = options.cacheAlignment ?? dmaGetCacheAlignment(system);
    const log = system.log;
    if (options.driverFilter !== undefined && options.driverFilter !== "") {
      this.filterName = options.driverFilter.slice(0, FILTER_LEN);
      log.info(PREFIX, `enable driver filter for driver [${this.filterName}]`);
    }
    log.info(PREFIX, `preallocated ${this.entries.nrTotal} debug entries`);
    log.info(PREFIX, "debugging enabled by kernel config");
    if (this.cacheChecks) {
      this.detach.push(system.cache.addFindingListener((f) => this.onCacheFinding(f)));
      this.detach.push(system.cache.watchCpuAccess((p, s, w) => this.onCpuAccess(p, s, w)));
    }
  }

  // ------------------------------------------------------------------ debugfs

  /** debugfs `error_count`: errors found, printed or not. */
  get errorCount(): number {
    return this.errors;
  }
  /** debugfs `num_errors`: errors still to be printed (counts down unless {@link allErrors}). */
  get numErrors(): number {
    return this.showNumErrors;
  }
  set numErrors(n: number) {
    this.showNumErrors = n;
  }
  /** debugfs `all_errors`. */
  get allErrors(): boolean {
    return this.showAllErrors;
  }
  set allErrors(v: boolean) {
    this.showAllErrors = v;
  }
  /** debugfs `disabled` (`global_disable`). */
  get disabled(): boolean {
    return this.globalDisable;
  }
  /** debugfs `num_free_entries`. */
  get numFreeEntries(): number {
    return this.entries.numFree;
  }
  /** debugfs `min_free_entries`. */
  get minFreeEntries(): number {
    return this.entries.minFree;
  }
  /** debugfs `nr_total_entries`. */
  get nrTotalEntries(): number {
    return this.entries.nrTotal;
  }
  /** Live entries (mappings and allocations being tracked). */
  get liveEntries(): number {
    return this.entries.live;
  }

  /** debugfs `driver_filter` (read). */
  get driverFilter(): string {
    return this.filterName;
  }
  /**
   * debugfs `driver_filter` (write): the first whitespace-separated token; a value not starting
   * with a letter or digit switches the filter off. @see kernel/dma/debug.c filter_write
   */
  set driverFilter(value: string) {
    const log = this.system.log;
    if (!/^[A-Za-z0-9]/.test(value)) {
      if (this.filterName !== "") log.info(PREFIX, "switching off dma-debug driver filter");
      this.filterName = "";
      return;
    }
    this.filterName = (value.split(/\s/)[0] as string).slice(0, FILTER_LEN);
    log.info(PREFIX, `enable driver filter for driver [${this.filterName}]`);
  }

  /**
   * `dma_debug=off` after the fact: every hook becomes a no-op and the cache watchers are removed
   * (`global_disable`). Live entries stay for {@link dump}.
   */
  disable(): void {
    this.globalDisable = true;
    for (const d of this.detach.splice(0)) d();
  }

  /** Live entries of `dev` (the count `device_dma_allocations` would find). */
  deviceEntries(dev: Device): number {
    const id = this.devIds.get(dev);
    return id === undefined ? 0 : (this.devLive[id] as number);
  }

  /** Live entries per device name, for reports. */
  deviceCounts(): Map<string, number> {
    const m = new Map<string, number>();
    for (let i = 0; i < this.devices.length; i++) {
      const n = this.devLive[i] as number;
      if (n > 0) m.set((this.devices[i] as Device).name, n);
    }
    return m;
  }

  /** Every report so far (kernel checks and cache/ownership checks), oldest first. */
  reports(): readonly DmaDebugReport[] {
    return this.found;
  }

  /** Forgets the recorded reports (not {@link errorCount}). */
  clearReports(): void {
    this.found.length = 0;
  }

  /**
   * debugfs `dump`: one line per live entry, bucket by bucket:
   * `<driver> <dev> <type> idx <bucket> P=<phys> D=<dma> L=<len> cln=<line> <dir> <map err state> attrs=<attrs>`.
   * @see kernel/dma/debug.c dump_show
   */
  dump(): string[] {
    const out: string[] = [];
    this.entries.forEach((e, b) => {
      const dev = this.devices[this.entries.devId[e] as number] as Device;
      out.push(`${devDriverString(dev)} ${dev.name} ${this.entryLine(e, b)}`);
    });
    return out;
  }

  /**
   * `debug_dma_dump_mappings(dev)`: the same lines as {@link dump} (without driver and device,
   * which `dev_info` puts in front) written to the log at info level; `dev` null dumps all devices.
   * Returns the number of lines. @see kernel/dma/debug.c debug_dma_dump_mappings
   */
  dumpMappings(dev: Device | null = null): number {
    let n = 0;
    const want = dev === null ? -2 : (this.devIds.get(dev) ?? -3);
    this.entries.forEach((e, b) => {
      const id = this.entries.devId[e] as number;
      if (want !== -2 && id !== want) return;
      const d = this.devices[id] as Device;
      this.system.log.info(`${devDriverString(d)} ${d.name}`, this.entryLine(e, b));
      n++;
    });
    return n;
  }

  /**
   * Runs `fn` with the CPU-access ownership check muted: for kernel-internal CPU accesses made
   * inside a DMA API call before its debug hook runs (swiotlb copying a bounce buffer back to the
   * original at unmap or `sync_for_cpu`), which would otherwise look like the driver touching a
   * buffer the device still owns.
   */
  kernelAccess<T>(fn: () => T): T {
    this.muted++;
    try {
      return fn();
    } finally {
      this.muted--;
    }
  }

  // ------------------------------------------------------------------ hooks

  /** `debug_dma_map_single`: the CPU address of `dma_map_single` must be in the linear map, not vmalloc. */
  debugDmaMapSingle(dev: Device, cpuAddr: number, len: number): void {
    if (this.globalDisable) return;
    this.pendingSingle = dev;
    const vm = this.system.vm;
    if (!vm.virtAddrValid(cpuAddr))
      this.errPrintk(
        dev,
        "map-invalid-area",
        `device driver maps memory from invalid area [addr=${ptr(cpuAddr)}] [len=${len}]`,
        { size: len },
      );
    if (vm.isVmallocAddr(cpuAddr))
      this.errPrintk(
        dev,
        "map-vmalloc",
        `device driver maps memory from vmalloc area [addr=${ptr(cpuAddr)}] [len=${len}]`,
        { size: len },
      );
  }

  /** `debug_dma_map_phys`: records a `dma_debug_phy` entry for every successful `dma_map_phys`. */
  debugDmaMapPhys(
    dev: Device,
    phys: number,
    size: number,
    dir: number,
    dmaAddr: number,
    attrs: number,
  ): void {
    if (this.globalDisable) return;
    const single = this.pendingSingle === dev;
    this.pendingSingle = null;
    if (dmaAddr === DMA_MAPPING_ERROR) return;
    const E = this.entries;
    const e = this.allocEntry();
    E.devId[e] = this.devId(dev);
    E.type[e] = dma_debug_phy;
    E.paddr[e] = phys;
    E.devAddr[e] = dmaAddr;
    E.size[e] = size;
    E.dir[e] = dir;
    E.mapErr[e] = MAP_ERR_NOT_CHECKED;
    E.attrs[e] = attrs;
    const mmio = (attrs & DMA_ATTR_MMIO) !== 0;
    E.api[e] = mmio ? API_RESOURCE : single ? API_SINGLE : 0;
    E.owner[e] = OWNER_DEVICE;
    E.lastOp[e] = OP_MAP;
    if (!mmio) {
      this.checkForIllegalArea(dev, phys, size);
      if (this.cacheChecks) E.firstRange[e] = this.ranges.add(phys, size, e, -1);
    }
    this.addDmaEntry(e);
  }

  /** `debug_dma_unmap_phys`. */
  debugDmaUnmapPhys(dev: Device, dmaAddr: number, size: number, dir: number): void {
    if (this.globalDisable) return;
    this.checkUnmap(this.setRef(dev, dma_debug_phy, dmaAddr, size, dir, 0, -1));
  }

  /** `debug_dma_mapping_error`: marks the first unchecked entry at `dmaAddr` of `dev` as checked. */
  debugDmaMappingError(dev: Device, dmaAddr: number): void {
    if (this.globalDisable) return;
    const id = this.devIds.get(dev);
    if (id === undefined) return;
    const E = this.entries;
    for (let e = E.bucketHead(DmaDebugEntries.bucketOf(dmaAddr)); e >= 0; e = E.next[e] as number) {
      if (E.devId[e] !== id || E.devAddr[e] !== dmaAddr) continue;
      if (E.mapErr[e] === MAP_ERR_NOT_CHECKED) {
        E.mapErr[e] = MAP_ERR_CHECKED;
        break;
      }
    }
  }

  /** `debug_dma_map_sg`: one entry per mapped DMA segment (`mappedEnts` of them). */
  debugDmaMapSg(dev: Device, sg: Sg, nents: number, mappedEnts: number, dir: number, attrs: number): void {
    if (this.globalDisable) return;
    const cpuPhys: number[] = [];
    const cpuLen: number[] = [];
    for (const s of forEachSg(sg, nents)) {
      if (sgPage(s) === NO_PAGE) continue;
      const p = sgPhys(s);
      const l = sgLength(s);
      this.checkForIllegalArea(dev, p, l);
      cpuPhys.push(p);
      cpuLen.push(l);
    }
    if (mappedEnts <= 0) return;
    const E = this.entries;
    const id = this.devId(dev);
    const made: number[] = [];
    for (const s of forEachSg(sg, mappedEnts)) {
      const e = this.allocEntry();
      E.devId[e] = id;
      E.type[e] = dma_debug_sg;
      E.paddr[e] = sgPage(s) === NO_PAGE ? -1 : sgPhys(s);
      E.size[e] = sgDmaLen(s);
      E.devAddr[e] = sgDmaAddress(s);
      E.dir[e] = dir;
      E.sgCallEnts[e] = nents;
      E.sgMappedEnts[e] = mappedEnts;
      E.attrs[e] = attrs;
      E.owner[e] = OWNER_DEVICE;
      E.lastOp[e] = OP_MAP;
      if (this.sgChecks) this.checkSgSegment(dev, s);
      this.addDmaEntry(e);
      made.push(e);
    }
    if (this.cacheChecks) this.assignSgRanges(made, cpuPhys, cpuLen);
  }

  /** `debug_dma_unmap_sg`: checks each mapped segment, using the count the first segment was mapped with. */
  debugDmaUnmapSg(dev: Device, sglist: Sg, nelems: number, dir: number): void {
    if (this.globalDisable) return;
    let mapped = 0;
    let i = 0;
    for (const s of forEachSg(sglist, nelems)) {
      if (mapped !== 0 && i >= mapped) break;
      const ref = this.setRef(dev, dma_debug_sg, sgDmaAddress(s), sgDmaLen(s), dir, nelems, this.sgPaddr(s));
      if (i === 0) mapped = this.nrMappedEntries(ref);
      this.checkUnmap(ref);
      i++;
    }
  }

  /** `debug_dma_alloc_coherent`: a `coherent` entry (BIDIRECTIONAL) for a linear-map or vmalloc CPU address. */
  debugDmaAllocCoherent(dev: Device, size: number, dmaAddr: number, cpuAddr: number, attrs: number): void {
    if (this.globalDisable) return;
    if (cpuAddr === 0) return;
    const paddr = this.virtToPaddr(cpuAddr);
    if (paddr < 0) return;
    const E = this.entries;
    const e = this.allocEntry();
    E.devId[e] = this.devId(dev);
    E.type[e] = dma_debug_coherent;
    E.paddr[e] = paddr;
    E.size[e] = size;
    E.devAddr[e] = dmaAddr;
    E.dir[e] = DMA_BIDIRECTIONAL;
    E.attrs[e] = attrs;
    E.owner[e] = OWNER_NONE;
    E.lastOp[e] = OP_ALLOC;
    this.addDmaEntry(e);
  }

  /** `debug_dma_free_coherent`. */
  debugDmaFreeCoherent(dev: Device, size: number, cpuAddr: number, dmaAddr: number): void {
    const paddr = this.virtToPaddr(cpuAddr);
    if (paddr < 0) return;
    if (this.globalDisable) return;
    this.checkUnmap(this.setRef(dev, dma_debug_coherent, dmaAddr, size, DMA_BIDIRECTIONAL, 0, paddr));
  }

  /** `debug_dma_alloc_pages`: a `noncoherent` entry; the CPU owns the pages until `dma_sync_single_for_device`. */
  debugDmaAllocPages(
    dev: Device,
    pfn: number,
    size: number,
    dir: number,
    dmaAddr: number,
    attrs: number,
  ): void {
    if (this.globalDisable) return;
    const E = this.entries;
    const e = this.allocEntry();
    const paddr = pfn * PAGE_SIZE;
    E.devId[e] = this.devId(dev);
    E.type[e] = dma_debug_noncoherent;
    E.paddr[e] = paddr;
    E.size[e] = size;
    E.devAddr[e] = dmaAddr;
    E.dir[e] = dir;
    E.attrs[e] = attrs;
    E.owner[e] = OWNER_CPU;
    E.lastOp[e] = OP_ALLOC;
    if (this.cacheChecks) E.firstRange[e] = this.ranges.add(paddr, size, e, -1);
    this.addDmaEntry(e);
  }

  /** `debug_dma_free_pages`. */
  debugDmaFreePages(dev: Device, pfn: number, size: number, dir: number, dmaAddr: number): void {
    if (this.globalDisable) return;
    this.checkUnmap(this.setRef(dev, dma_debug_noncoherent, dmaAddr, size, dir, 0, pfn * PAGE_SIZE));
  }

  /** `debug_dma_sync_single_for_cpu`; ownership passes to the CPU. */
  debugDmaSyncSingleForCpu(dev: Device, dmaHandle: number, size: number, dir: number): void {
    if (this.globalDisable) return;
    this.checkSync(dev, this.setRef(dev, dma_debug_single, dmaHandle, size, dir, 0, -1), true);
  }

  /** `debug_dma_sync_single_for_device`; ownership passes to the device. */
  debugDmaSyncSingleForDevice(dev: Device, dmaHandle: number, size: number, dir: number): void {
    if (this.globalDisable) return;
    this.checkSync(dev, this.setRef(dev, dma_debug_single, dmaHandle, size, dir, 0, -1), false);
  }

  /** `debug_dma_sync_sg_for_cpu`. */
  debugDmaSyncSgForCpu(dev: Device, sg: Sg, nelems: number, dir: number): void {
    this.syncSg(dev, sg, nelems, dir, true);
  }

  /** `debug_dma_sync_sg_for_device`. */
  debugDmaSyncSgForDevice(dev: Device, sg: Sg, nelems: number, dir: number): void {
    this.syncSg(dev, sg, nelems, dir, false);
  }

  // ------------------------------------------------------------------ kernel checks

  /** `err_printk`: counts the error; WARNs if the driver filter passes and `num_errors`/`all_errors` allow. */
  private errPrintk(
    dev: Device | null,
    kind: DmaDebugReportKind,
    message: string,
    detail: ReportDetail = {},
  ): void {
    this.errors++;
    const printed = this.driverFilterPasses(dev) && (this.showAllErrors || this.showNumErrors > 0);
    const driver = dev === null ? "NULL" : devDriverString(dev);
    const name = dev === null ? "NULL" : dev.name;
    if (printed) this.system.log.warn(true, PREFIX, `${driver} ${name}: ${message}`);
    if (!this.showAllErrors && this.showNumErrors > 0) this.showNumErrors--;
    this.found.push({
      seq: this.reportSeq++,
      kind,
      device: name,
      driver,
      dmaAddr: detail.dmaAddr ?? null,
      size: detail.size ?? null,
      phys: detail.phys ?? null,
      dir: detail.dir ?? null,
      message,
      missingCall: detail.missingCall ?? null,
      printed,
    });
  }

  /** `driver_filter(dev)`: no filter, or the device's driver has the filter's name. */
  private driverFilterPasses(dev: Device | null): boolean {
    if (this.filterName === "") return true;
    if (dev === null) return false;
    const drv = dev.driver;
    return drv !== null && drv.slice(0, FILTER_LEN) === this.filterName;
  }

  /** `check_unmap`: finds the entry (exact address, best fit), reports every mismatch, frees it. */
  private checkUnmap(ref: DmaDebugRef): void {
    const E = this.entries;
    const dev = this.devices[ref.devId] as Device;
    const e = E.findExact(ref);
    if (e < 0) {
      if (ref.devAddr === DMA_MAPPING_ERROR)
        this.errPrintk(
          dev,
          "free-invalid-address",
          "device driver tries to free an invalid DMA memory address",
          {
            dmaAddr: ref.devAddr,
            size: ref.size,
            dir: ref.dir,
          },
        );
      else
        this.errPrintk(
          dev,
          "free-not-allocated",
          `device driver tries to free DMA memory it has not allocated [device address=${hex16(ref.devAddr)}] [size=${ref.size} bytes]`,
          { dmaAddr: ref.devAddr, size: ref.size, dir: ref.dir },
        );
      return;
    }
    const entrySize = E.size[e] as number;
    const entryType = E.type[e] as number;
    const entryDir = E.dir[e] as number;
    const d: ReportDetail = { dmaAddr: ref.devAddr, size: entrySize, dir: entryDir, phys: this.physOf(e) };
    const addr = hex16(ref.devAddr);
    if (ref.size !== entrySize)
      this.errPrintk(
        dev,
        "free-different-size",
        `device driver frees DMA memory with different size [device address=${addr}] [map size=${entrySize} bytes] [unmap size=${ref.size} bytes]`,
        d,
      );
    if (ref.type !== entryType)
      this.errPrintk(
        dev,
        "free-wrong-function",
        `device driver frees DMA memory with wrong function [device address=${addr}] [size=${ref.size} bytes] [mapped as ${DMA_DEBUG_TYPE_NAMES[entryType]}] [unmapped as ${DMA_DEBUG_TYPE_NAMES[ref.type]}]`,
        d,
      );
    else if (
      (entryType === dma_debug_coherent || entryType === dma_debug_noncoherent) &&
      ref.paddr !== E.paddr[e]
    )
      // "0x%pa": the kernel prints 0x twice here, and so does the model.
      this.errPrintk(
        dev,
        "free-different-cpu-address",
        `device driver frees DMA memory with different CPU address [device address=${addr}] [size=${ref.size} bytes] [cpu alloc address=0x${hex16(E.paddr[e] as number)}] [cpu free address=0x${hex16(ref.paddr)}]`,
        d,
      );
    if (ref.sgCallEnts !== 0 && ref.type === dma_debug_sg && ref.sgCallEnts !== E.sgCallEnts[e])
      this.errPrintk(
        dev,
        "free-sg-count",
        `device driver frees DMA sg list with different entry count [map count=${E.sgCallEnts[e]}] [unmap count=${ref.sgCallEnts}]`,
        d,
      );
    if (ref.dir !== entryDir)
      this.errPrintk(
        dev,
        "free-different-direction",
        `device driver frees DMA memory with different direction [device address=${addr}] [size=${ref.size} bytes] [mapped with ${dmaDirectionName(entryDir)}] [unmapped with ${dmaDirectionName(ref.dir)}]`,
        d,
      );
    if (E.mapErr[e] === MAP_ERR_NOT_CHECKED)
      this.errPrintk(
        dev,
        "map-error-not-checked",
        `device driver failed to check map error[device address=${addr}] [size=${ref.size} bytes] [mapped as ${DMA_DEBUG_TYPE_NAMES[entryType]}]`,
        { ...d, missingCall: "dma_mapping_error" },
      );
    this.freeEntry(e);
  }

  /** `check_sync`: the sync must lie in a live mapping of the device, in a direction it allows. */
  private checkSync(dev: Device, ref: DmaDebugRef, toCpu: boolean): void {
    const E = this.entries;
    const e = E.findContaining(ref);
    if (e < 0) {
      this.errPrintk(
        dev,
        "sync-not-allocated",
        `device driver tries to sync DMA memory it has not allocated [device address=${hex16(ref.devAddr)}] [size=${ref.size} bytes]`,
        { dmaAddr: ref.devAddr, size: ref.size, dir: ref.dir },
      );
      return;
    }
    const entrySize = E.size[e] as number;
    const entryDir = E.dir[e] as number;
    const d: ReportDetail = {
      dmaAddr: E.devAddr[e] as number,
      size: entrySize,
      dir: entryDir,
      phys: this.physOf(e),
    };
    if (E.owner[e] !== OWNER_NONE) {
      E.owner[e] = toCpu ? OWNER_CPU : OWNER_DEVICE;
      E.lastOp[e] = toCpu ? OP_SYNC_FOR_CPU : OP_SYNC_FOR_DEVICE;
      E.touched[e] = 0;
    }
    if (ref.size > entrySize)
      this.errPrintk(
        dev,
        "sync-outside-range",
        `device driver syncs DMA memory outside allocated range [device address=${hex16(E.devAddr[e] as number)}] [allocation size=${entrySize} bytes] [sync offset+size=${ref.size}]`,
        d,
      );
    if (entryDir === DMA_BIDIRECTIONAL) return;
    const names = `[device address=${hex16(ref.devAddr)}] [size=${entrySize} bytes] [mapped with ${dmaDirectionName(entryDir)}] [synced with ${dmaDirectionName(ref.dir)}]`;
    if (ref.dir !== entryDir)
      this.errPrintk(
        dev,
        "sync-different-direction",
        `device driver syncs DMA memory with different direction ${names}`,
        d,
      );
    if (toCpu && entryDir !== DMA_FROM_DEVICE && ref.dir !== DMA_TO_DEVICE)
      this.errPrintk(
        dev,
        "sync-read-only-for-cpu",
        `device driver syncs device read-only DMA memory for cpu ${names}`,
        d,
      );
    if (!toCpu && entryDir !== DMA_TO_DEVICE && ref.dir !== DMA_FROM_DEVICE)
      this.errPrintk(
        dev,
        "sync-write-only-to-device",
        `device driver syncs device write-only DMA memory to device ${names}`,
        d,
      );
    if (ref.sgCallEnts !== 0 && ref.type === dma_debug_sg && ref.sgCallEnts !== E.sgCallEnts[e])
      this.errPrintk(
        dev,
        "sync-sg-count",
        `device driver syncs DMA sg list with different entry count [map count=${E.sgCallEnts[e]}] [sync count=${ref.sgCallEnts}]`,
        d,
      );
  }

  /** `debug_dma_sync_sg_for_cpu/device`: each mapped segment, stopping at the count the list was mapped with. */
  private syncSg(dev: Device, sg: Sg, nelems: number, dir: number, toCpu: boolean): void {
    if (this.globalDisable) return;
    let mapped = 0;
    let i = 0;
    for (const s of forEachSg(sg, nelems)) {
      const ref = this.setRef(dev, dma_debug_sg, sgDmaAddress(s), sgDmaLen(s), dir, nelems, this.sgPaddr(s));
      if (i === 0) mapped = this.nrMappedEntries(ref);
      if (i >= mapped) break;
      this.checkSync(dev, ref, toCpu);
      i++;
    }
  }

  /** `check_for_illegal_area` against the configured kernel text/rodata ranges (physical). */
  private checkForIllegalArea(dev: Device, phys: number, len: number): void {
    for (const t of this.kernelText) {
      if (phys < t.start + t.size && phys + len > t.start) {
        const va = phys >= 0 && phys < 2 ** 51 ? this.system.vm.physToVirt(phys) : phys;
        this.errPrintk(
          dev,
          "map-kernel-text",
          `device driver maps memory from kernel text or rodata [addr=${ptr(va)}] [len=${len}]`,
          { phys, size: len },
        );
        return;
      }
    }
  }

  /** `check_sg_segment` (CONFIG_DMA_API_DEBUG_SG). */
  private checkSgSegment(dev: Device, s: Sg): void {
    const maxSeg = dmaGetMaxSegSize(dev);
    const len = sgLength(s);
    if (len > maxSeg)
      this.errPrintk(
        dev,
        "sg-segment-too-long",
        `mapping sg segment longer than device claims to support [len=${len}] [max=${maxSeg}]`,
        { dmaAddr: sgDmaAddress(s), size: len },
      );
    const boundary = dmaGetSegBoundary(dev);
    const start = sgDmaAddress(s);
    const end = start + sgDmaLen(s) - 1;
    // (start ^ end) & ~boundary without 32-bit bit operators: boundary is 2^k - 1.
    if (boundary < 2 ** 53) {
      const span = boundary + 1;
      if (Math.floor(start / span) !== Math.floor(end / span))
        this.errPrintk(
          dev,
          "sg-segment-boundary",
          `mapping sg segment across boundary [start=${hex16(start)}] [end=${hex16(end)}] [boundary=${hex16(boundary)}]`,
          { dmaAddr: start, size: sgDmaLen(s) },
        );
    }
  }

  /** `BUS_NOTIFY_UNBOUND_DRIVER` → `dma_debug_device_change`: entries left behind are leaks. */
  private onUnbind(dev: Device): void {
    if (this.globalDisable) return;
    const id = this.devIds.get(dev);
    if (id === undefined || this.devLive[id] === 0) return;
    const E = this.entries;
    let count = 0;
    let last = -1;
    E.forEach((e) => {
      if (E.devId[e] === id) {
        count++;
        last = e;
      }
    });
    if (count === 0) return;
    this.errPrintk(
      dev,
      "leak-at-unbind",
      `device driver has pending DMA allocations while released from device [count=${count}]\nOne of leaked entries details: [device address=${hex16(E.devAddr[last] as number)}] [size=${E.size[last]} bytes] [mapped with ${dmaDirectionName(E.dir[last] as number)}] [mapped as ${DMA_DEBUG_TYPE_NAMES[E.type[last] as number]}]`,
      {
        dmaAddr: E.devAddr[last] as number,
        size: E.size[last] as number,
        dir: E.dir[last] as number,
        phys: this.physOf(last),
        missingCall: apiNames(E.type[last] as number, E.api[last] as number).unmap,
      },
    );
  }

  // ------------------------------------------------------------------ entries

  private allocEntry(): number {
    const { idx, grew } = this.entries.alloc();
    if (grew) {
      const total = this.entries.nrTotal;
      const pre = this.entries.nrPrealloc;
      if (total % pre < DMA_DEBUG_DYNAMIC_ENTRIES)
        this.system.log.info(
          PREFIX,
          `dma_debug_entry pool grown to ${total} (${Math.floor(total / pre)}00%)`,
        );
    }
    return idx;
  }

  /** `add_dma_entry`: hashes the entry and tracks its first cache line (device-writable mappings only). */
  private addDmaEntry(e: number): void {
    const E = this.entries;
    E.add(e);
    const id = E.devId[e] as number;
    this.devLive[id] = (this.devLive[id] as number) + 1;
    const paddr = E.paddr[e] as number;
    if (E.dir[e] === DMA_TO_DEVICE || paddr < 0) return;
    const attrs = E.attrs[e] as number;
    const clean = (attrs & (DMA_ATTR_DEBUGGING_IGNORE_CACHELINES | DMA_ATTR_REQUIRE_COHERENT)) !== 0;
    const cln = Math.floor(paddr / L1_CACHE_BYTES);
    const out = this.overlapOut;
    const rc = this.cachelines.insert(cln, clean, out);
    if (rc !== CACHELINE_EEXIST) return;
    const dev = this.devices[id] as Device;
    if (out.overflow > 0 && !clean && !this.overflowWarned) {
      // WARN_ONCE: once per machine.
      this.overflowWarned = true;
      const msg = `exceeded ${ACTIVE_CACHELINE_MAX_OVERLAP} overlapping mappings of cacheline ${hex16(cln)}`;
      this.system.log.warn(true, PREFIX, msg);
      this.record(dev, "cacheline-overlap-overflow", msg, { phys: cln * L1_CACHE_BYTES });
    }
    if (
      (attrs & DMA_ATTR_SKIP_CPU_SYNC) === 0 &&
      !(clean && out.existingClean) &&
      this.cacheAlignment >= L1_CACHE_BYTES &&
      // CONFIG_DMA_BOUNCE_UNALIGNED_KMALLOC (arm64): small unaligned buffers bounce when swiotlb is up.
      !isSwiotlbActive(dev)
    )
      this.errPrintk(
        dev,
        "cacheline-overlap",
        "cacheline tracking EEXIST, overlapping mappings aren't supported",
        {
          dmaAddr: E.devAddr[e] as number,
          size: E.size[e] as number,
          dir: E.dir[e] as number,
          phys: paddr,
        },
      );
  }

  /** `hash_bucket_del` + `dma_entry_free` (+ `active_cacheline_remove`). */
  private freeEntry(e: number): void {
    const E = this.entries;
    const paddr = E.paddr[e] as number;
    if (E.dir[e] !== DMA_TO_DEVICE && paddr >= 0) this.cachelines.remove(Math.floor(paddr / L1_CACHE_BYTES));
    const r = E.firstRange[e] as number;
    if (r >= 0) this.ranges.removeChain(r);
    const id = E.devId[e] as number;
    this.devLive[id] = (this.devLive[id] as number) - 1;
    E.remove(e);
  }

  /** `get_nr_mapped_entries`: `sg_mapped_ents` of the entry the first segment matches, or 0. */
  private nrMappedEntries(ref: DmaDebugRef): number {
    const e = this.entries.findExact(ref);
    return e < 0 ? 0 : (this.entries.sgMappedEnts[e] as number);
  }

  private setRef(
    dev: Device,
    type: number,
    devAddr: number,
    size: number,
    dir: number,
    sgCallEnts: number,
    paddr: number,
  ): DmaDebugRef {
    const r = this.ref;
    r.devId = this.devId(dev);
    r.type = type;
    r.devAddr = devAddr;
    r.size = size;
    r.dir = dir;
    r.sgCallEnts = sgCallEnts;
    r.paddr = paddr;
    return r;
  }

  private devId(dev: Device): number {
    let id = this.devIds.get(dev);
    if (id === undefined) {
      id = this.devices.length;
      this.devices.push(dev);
      this.devIds.set(dev, id);
      if (!this.devByName.has(dev.name)) this.devByName.set(dev.name, id);
      this.devLive.push(0);
      this.detach.push(dev.onUnbind((d) => this.onUnbind(d)));
    }
    return id;
  }

  private sgPaddr(s: Sg): number {
    return sgPage(s) === NO_PAGE ? -1 : sgPhys(s);
  }

  /** `virt_to_paddr` for a linear-map or vmalloc address; -1 for anything else (the hooks then ignore the call). */
  private virtToPaddr(va: number): number {
    const vm = this.system.vm;
    if (vm.isVmallocAddr(va)) {
      const pfn = vm.vmallocToPage(va);
      return pfn === null ? -1 : pfn * PAGE_SIZE + (va % PAGE_SIZE);
    }
    if (!vm.virtAddrValid(va)) return -1;
    return vm.virtToPhys(va);
  }

  private physOf(e: number): number | null {
    const p = this.entries.paddr[e] as number;
    return p < 0 ? null : p;
  }

  private entryLine(e: number, bucket: number): string {
    const E = this.entries;
    const paddr = E.paddr[e] as number;
    const p = Math.max(0, paddr);
    return `${DMA_DEBUG_TYPE_NAMES[E.type[e] as number]} idx ${bucket} P=${hex16(p)} D=${(E.devAddr[e] as number).toString(16)} L=${(E.size[e] as number).toString(16)} cln=${hex16(Math.floor(p / L1_CACHE_BYTES))} ${dmaDirectionName(E.dir[e] as number)} ${MAP_ERR_NAMES[E.mapErr[e] as number]} attrs=0x${(E.attrs[e] as number).toString(16)}`;
  }

  /**
   * Gives each mapped DMA segment the CPU segments it covers: in order, until their lengths add up
   * to the segment's DMA length (an IOMMU merges consecutive segments; dma-direct and swiotlb map
   * one to one). Leftovers go to the last segment.
   */
  private assignSgRanges(
    made: readonly number[],
    cpuPhys: readonly number[],
    cpuLen: readonly number[],
  ): void {
    const E = this.entries;
    let k = 0;
    for (let m = 0; m < made.length; m++) {
      const e = made[m] as number;
      const want = E.size[e] as number;
      let got = 0;
      while (k < cpuPhys.length && (got < want || m === made.length - 1)) {
        E.firstRange[e] = this.ranges.add(
          cpuPhys[k] as number,
          cpuLen[k] as number,
          e,
          E.firstRange[e] as number,
        );
        got += cpuLen[k] as number;
        k++;
      }
    }
  }

  // ------------------------------------------------------------------ beyond the kernel

  /** A report that is not an `err_printk` (a WARN_ONCE already logged by the caller). */
  private record(dev: Device, kind: DmaDebugReportKind, message: string, detail: ReportDetail): void {
    this.found.push({
      seq: this.reportSeq++,
      kind,
      device: dev.name,
      driver: devDriverString(dev),
      dmaAddr: detail.dmaAddr ?? null,
      size: detail.size ?? null,
      phys: detail.phys ?? null,
      dir: detail.dir ?? null,
      message,
      missingCall: detail.missingCall ?? null,
      printed: true,
    });
  }

  private mappingText(e: number): string {
    const E = this.entries;
    return `mapping [device address=${hex16(E.devAddr[e] as number)}] [size=${E.size[e]} bytes] ${dmaDirectionName(E.dir[e] as number)}`;
  }

  private entryDetail(e: number, phys: number, missingCall: string | null): ReportDetail {
    const E = this.entries;
    return {
      dmaAddr: E.devAddr[e] as number,
      size: E.size[e] as number,
      dir: E.dir[e] as number,
      phys,
      missingCall,
    };
  }

  /** The CPU touched memory: a device-owned streaming buffer (other than reading a TO_DEVICE one) is a report, once per ownership period. */
  private onCpuAccess(phys: number, size: number, write: boolean): void {
    if (this.muted > 0 || this.globalDisable || this.ranges.live === 0) return;
    const E = this.entries;
    this.ranges.overlapping(phys, size, (r, e) => {
      if (E.owner[e] !== OWNER_DEVICE || E.touched[e] !== 0) return;
      if (!write && E.dir[e] === DMA_TO_DEVICE) return;
      const dev = this.devices[E.devId[e] as number] as Device;
      E.touched[e] = 1;
      const at = Math.max(phys, this.ranges.start[r] as number);
      const names = apiNames(E.type[e] as number, E.api[e] as number);
      const after = E.lastOp[e] === OP_SYNC_FOR_DEVICE ? names.forDevice : names.map;
      this.errPrintk(
        dev,
        "cpu-touched-device-owned",
        `CPU ${write ? "wrote" : "read"} a buffer owned by the device at ${hex16(at)} (after ${after}()), ${this.mappingText(e)} — missing ${names.forCpu}() or ${names.unmap}() before the CPU access`,
        this.entryDetail(e, at, names.forCpu),
      );
      return undefined;
    });
  }

  /** A finding of the cache model: name the mapping it hit and the call that was missing. */
  private onCacheFinding(f: CacheFinding): void {
    if (this.globalDisable) return;
    const known = this.devByName.get(f.device);
    const e = this.entryAt(f.line, L1_CACHE_BYTES, known) ?? this.entryAt(f.phys, f.size, known);
    const E = this.entries;
    const line = hex16(f.line);
    if (e === null) {
      if (known === undefined || f.kind === "writeback-clobber" || f.kind === "invalidate-dirty") return;
      const dev = this.devices[known] as Device;
      if (f.kind === "device-read-dirty")
        this.errPrintk(
          dev,
          "device-read-stale",
          `device read stale data: CPU cache line ${line} dirty, at ${hex16(f.phys)}+${f.size} not covered by a live DMA mapping of the device — missing dma_map_*() (or the buffer was unmapped)`,
          { phys: f.line, size: f.size, missingCall: "dma_map_single" },
        );
      else
        this.errPrintk(
          dev,
          "cpu-read-stale",
          `CPU read stale data: cache line ${line} was cached before the device wrote RAM, at ${hex16(f.phys)}+${f.size} not covered by a live DMA mapping of the device (unmapped with DMA_ATTR_SKIP_CPU_SYNC?) — missing dma_sync_single_for_cpu()`,
          { phys: f.line, size: f.size, missingCall: "dma_sync_single_for_cpu" },
        );
      return;
    }
    const dev = this.devices[E.devId[e] as number] as Device;
    const names = apiNames(E.type[e] as number, E.api[e] as number);
    const owner = E.owner[e] as number;
    const mapping = this.mappingText(e);
    switch (f.kind) {
      case "device-read-dirty": {
        let why: string;
        let missing: string | null = names.forDevice;
        if (owner === OWNER_CPU) why = `missing ${names.forDevice}()`;
        else if (owner === OWNER_NONE) {
          why = `${names.map}() memory has a dirty CPU cache line (the CPU mapping is cacheable)`;
          missing = null;
        } else if (E.lastOp[e] === OP_SYNC_FOR_DEVICE)
          why = `buffer written after ${names.forDevice}() — missing ${names.forDevice}() after the CPU's last write`;
        else why = `missing ${names.forDevice}() or buffer written after ${names.map}()`;
        this.errPrintk(
          dev,
          "device-read-stale",
          `device read stale data: CPU cache line ${line} dirty, ${mapping} — ${why}`,
          this.entryDetail(e, f.line, missing),
        );
        return;
      }
      case "cpu-read-stale": {
        let why: string;
        let missing: string | null = names.forCpu;
        if (owner === OWNER_CPU) {
          why = `the device wrote after ${names.forCpu}() — missing ${names.forDevice}() before the device write`;
          missing = names.forDevice;
        } else if (owner === OWNER_NONE) {
          why = `${names.map}() memory was cached by the CPU (the CPU mapping is cacheable)`;
          missing = null;
        } else why = `missing ${names.forCpu}() or ${names.unmap}() before the CPU read`;
        this.errPrintk(
          dev,
          "cpu-read-stale",
          `CPU read stale data: cache line ${line} was cached before ${f.device} wrote RAM, ${mapping} — ${why}`,
          this.entryDetail(e, f.line, missing),
        );
        return;
      }
      case "writeback-clobber":
        this.errPrintk(
          dev,
          "writeback-clobber",
          `device data overwritten: dirty CPU cache line ${line} written back over data ${f.device} wrote, ${mapping} — the CPU wrote the buffer while the device owned it (missing ${names.forCpu}() before the CPU write) or the buffer shares a cache line with CPU data (not ARCH_DMA_MINALIGN aligned)`,
          this.entryDetail(e, f.line, names.forCpu),
        );
        return;
      case "invalidate-dirty":
        this.errPrintk(
          dev,
          "invalidate-dirty",
          `CPU writes discarded: invalidating ${mapping} dropped dirty CPU cache line ${line} — the CPU wrote the buffer while the device owned it (missing ${names.forCpu}() before the CPU write)`,
          this.entryDetail(e, f.line, names.forCpu),
        );
        return;
    }
  }

  /** The live entry overlapping [phys, phys+size), preferring device `devId`; null when none. */
  private entryAt(phys: number, size: number, devId: number | undefined): number | null {
    let any = -1;
    let mine = -1;
    const E = this.entries;
    this.ranges.overlapping(phys, size, (_r, e) => {
      if (any < 0) any = e;
      if (devId !== undefined && E.devId[e] === devId) {
        mine = e;
        return true;
      }
      return undefined;
    });
    if (mine >= 0) return mine;
    if (devId !== undefined) return null;
    return any >= 0 ? any : null;
  }
}

/**
 * Enables dma-debug on a machine (`CONFIG_DMA_API_DEBUG` + `dma_debug_init`): creates a
 * {@link DmaDebug}, sets `system.debug` to it and returns it. Logs "preallocated N debug entries"
 * and "debugging enabled by kernel config". Throws `EINVAL` for `entries` below 1 and `EBUSY` when
 * the machine already has dma-debug.
 * @see kernel/dma/debug.c dma_debug_init
 * @example
 * const debug = dmaDebugInit(system, { allErrors: true });
 * dmaUnmapSingle(dev, 0x1000, 64, DMA_TO_DEVICE);
 * debug.reports()[0]?.kind; // "free-not-allocated"
 */
export function dmaDebugInit(system: DmaSystem, options: DmaDebugOptions = {}): DmaDebug {
  if (system.debug !== null)
    throw new KernelError("EBUSY", "DMA-API: dma_debug_init: dma-debug is already enabled on this machine");
  const debug = new DmaDebug(system, options);
  system.debug = debug;
  return debug;
}

/**
 * Runs `fn` with dma-debug's CPU-ownership check muted when the machine has dma-debug (see
 * {@link DmaDebug.kernelAccess}); just runs it otherwise. For DMA-layer code that touches a
 * mapped buffer with the CPU on the kernel's behalf (swiotlb bounce copies).
 * Model-only.
 */
export function dmaDebugKernelAccess<T>(system: DmaSystem, fn: () => T): T {
  const d = system.debug;
  return d instanceof DmaDebug ? d.kernelAccess(fn) : fn();
}
