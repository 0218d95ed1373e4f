import { hex, KernelError, PAGE_SIZE, type Prng } from "@dmakit/core";
import type { PhysMem } from "./PhysMem.js";

/** `L1_CACHE_SHIFT` on x86_64 and arm64: 64-byte cache lines. @see arch/arm64/include/asm/cache.h */
export const L1_CACHE_SHIFT = 6;
/**
 * `L1_CACHE_BYTES` = 64: the model's cache line size (arm64 `cache_line_size()` on most cores).
 * @see arch/arm64/include/asm/cache.h
 */
export const L1_CACHE_BYTES = 1 << L1_CACHE_SHIFT;
/**
 * `ARCH_DMA_MINALIGN` on arm64: 128, the largest cache writeback granule of any arm64 core. DMA
 * buffers aligned and sized to it never share a cache line with other data. The model's own lines
 * are {@link L1_CACHE_BYTES} long, so sharing bugs show up below 64 bytes of misalignment.
 * @see arch/arm64/include/asm/cache.h
 */
export const ARCH_DMA_MINALIGN = 128;

const LINE_SHIFT = L1_CACHE_SHIFT;
const LINE = L1_CACHE_BYTES;
const LINES_PER_PAGE = PAGE_SIZE / LINE;

const VALID = 1;
const DIRTY = 2;
/** A non-coherent device wrote RAM under this valid line after the CPU cached it. */
const STALE = 4;

/**
 * What the cache model noticed:
 * - `device-read-dirty`: a non-coherent device read RAM while the CPU held a dirty line for it
 *   (missing clean before the device reads: `dma_sync_*_for_device`, `arch_sync_dma_for_device`).
 * - `cpu-read-stale`: the CPU read a line it had cached before a non-coherent device wrote RAM
 *   (missing invalidate before the CPU reads: `dma_sync_*_for_cpu`, `arch_sync_dma_for_cpu`).
 * - `writeback-clobber`: a dirty line was written back over bytes a non-coherent device had
 *   written to RAM meanwhile (the CPU wrote a line the device owned: cache-line sharing, a buffer
 *   not aligned to `ARCH_DMA_MINALIGN`, or a CPU write while the device owned the buffer).
 * - `invalidate-dirty`: an invalidate discarded a dirty line (CPU writes to a buffer the device
 *   owned are lost).
 * Model-only: the kernel cannot observe stale cache lines.
 */
export type CacheFindingKind =
  | "device-read-dirty"
  | "cpu-read-stale"
  | "writeback-clobber"
  | "invalidate-dirty";

/**
 * One finding of the cache model, as data for dma-debug style reports.
 * Model-only: the kernel cannot observe stale cache lines.
 */
export interface CacheFinding {
  /** Running number of the finding in this cache (0, 1, ...). */
  readonly seq: number;
  readonly kind: CacheFindingKind;
  /** Start of the access or maintenance operation that exposed the problem. */
  readonly phys: number;
  /** Its length in bytes. */
  readonly size: number;
  /** Physical address of the first offending cache line. */
  readonly line: number;
  /** How many lines of the access were affected. */
  readonly lines: number;
  /** The device involved: the reader for `device-read-dirty`, the writer otherwise; `"cpu"` when none. */
  readonly device: string;
  /** The line written to the machine's log. */
  readonly message: string;
}

/** Options of a {@link CpuCache}. Model-only: configuration of the cache model. */
export interface CpuCacheOptions {
  /**
   * True for a platform whose devices snoop CPU caches (x86, arm64 with `dma-coherent` devices):
   * device accesses default to coherent. False for a non-coherent SoC: devices see RAM only.
   */
  readonly coherent: boolean;
  /**
   * Capacity in cache lines. Absent (or `Infinity`): an unbounded write-back cache where lines
   * stay until maintained, so every missing maintenance step is exposed, deterministically.
   * A number (at least 2 pages' worth, 128 lines): lines are evicted at random (seeded by
   * {@link prng}) when the cache is full, which hides some bugs, as real caches do.
   */
  readonly capacityLines?: number;
  /** Seeded generator for eviction choices; required when {@link capacityLines} is set. */
  readonly prng?: Prng;
  /** Called with each finding as it is recorded (dma-debug hooks in here). */
  readonly onFinding?: (finding: CacheFinding) => void;
  /** Prefix of the log lines; default `"cache"`. */
  readonly logPrefix?: string;
}

/** Options of a device access. Model-only: how the cache model treats one device access. */
export interface DeviceAccessOptions {
  /** Whether this device snoops the CPU caches; default: the platform's {@link CpuCacheOptions.coherent}. */
  readonly coherent?: boolean;
  /** The device's name, used in findings; default `"device"`. */
  readonly device?: string;
}

/** Counters of a {@link CpuCache}. Model-only: counters of the cache model. */
export interface CpuCacheStats {
  /** Dirty lines written back by clean and clean+invalidate maintenance. */
  readonly linesCleaned: number;
  /** Valid lines dropped by invalidate and clean+invalidate maintenance. */
  readonly linesInvalidated: number;
  /** Bytes written back to RAM for any reason (maintenance, eviction, snoops). */
  readonly bytesWrittenBack: number;
  /** Lines evicted because the bounded cache was full. */
  readonly evictions: number;
  /** Dirty lines a coherent device write snooped (wrote back and invalidated). */
  readonly snoops: number;
  /** CPU line accesses that hit / missed. */
  readonly hits: number;
  readonly misses: number;
  /** Maintenance calls made and bytes they covered (the cost the DMA layer adds). */
  readonly maintenanceOps: number;
  readonly maintenanceBytes: number;
  /** Lines currently valid / dirty. */
  readonly residentLines: number;
  readonly dirtyLines: number;
  /** Pages with a cached copy (the model's memory footprint is this × 4 KiB). */
  readonly cachedPages: number;
}

/**
 * A CPU data cache between the CPUs and RAM, write-back and write-allocate, with 64-byte lines,
 * and the maintenance operations that `arch_sync_dma_for_device` / `arch_sync_dma_for_cpu` issue
 * on a non-coherent platform (arm64 `dc cvac` / `dc ivac` / `dc civac` by VA to the point of
 * coherency; the model maintains by physical address).
 *
 * - CPU accesses ({@link cpuRead}, {@link cpuWrite}) of RAM go through the cache; of MMIO, around it
 *   (device memory is mapped uncached).
 * - A coherent device's accesses snoop: reads see dirty lines, writes write back and invalidate
 *   the lines they hit. A non-coherent device's accesses go to RAM only.
 * - The two classic bugs are noticed, recorded as {@link CacheFinding}s and logged: a non-coherent
 *   device reading RAM under a dirty line, and the CPU reading a line cached before a device wrote
 *   RAM; so are lost writes (a dirty line written back over device data, or discarded).
 *
 * Storage: per cached page, one 4 KiB copy and 64 line-state bytes in typed-array slabs (slots),
 * allocated on first touch; no object per line. Capacity: unbounded by default (lines stay until
 * maintained, every missing step shows) or bounded with seeded random eviction (see
 * {@link CpuCacheOptions.capacityLines}). The model has no speculative prefetch: a line only
 * enters the cache when the CPU touches it.
 *
 * @see arch/arm64/mm/cache.S dcache_clean_poc, dcache_inval_poc, dcache_clean_inval_poc;
 *      arch/arm64/mm/dma-mapping.c arch_sync_dma_for_device, arch_sync_dma_for_cpu
 */
export class CpuCache {
  readonly mem: PhysMem;
  readonly coherent: boolean;
  readonly capacityLines: number;
  private readonly prng: Prng | undefined;
  private readonly onFinding: ((f: CacheFinding) => void) | undefined;
  private readonly logPrefix: string;
  // Registered after construction (dma-debug); null keeps the finding path free of extra work.
  private findingListeners: Array<(f: CacheFinding) => void> | null = null;
  // CPU-access watchers (dma-debug ownership checks); null when none, so cpuRead/cpuWrite pay one check.
  private cpuWatchers: Array<(phys: number, size: number, write: boolean) => void> | null = null;

  // Slot slabs: slot s caches page slotPfn[s]; its lines' states are state[s*64 ..], data data[s*4096 ..].
  private data = new Uint8Array(0);
  private state = new Uint8Array(0);
  private writer = new Uint16Array(0);
  private slotPfn = new Float64Array(0);
  private slotValid = new Uint8Array(0);
  private activePos = new Int32Array(0);
  private active = new Int32Array(0);
  private activeCount = 0;
  private freeSlots: number[] = [];
  private nslots = 0;
  private readonly slotByPfn = new Map<number, number>();
  private lastPfn = -1;
  private lastSlot = -1;
  private busySlot = -1;
  private validTotal = 0;

  private readonly deviceIds = new Map<string, number>();
  private readonly deviceNames: string[] = ["cpu"];
  private readonly found: CacheFinding[] = [];
  private bankStart = 0;
  private bankEnd = 0;

  private cLinesCleaned = 0;
  private cLinesInvalidated = 0;
  private cBytesWrittenBack = 0;
  private cEvictions = 0;
  private cSnoops = 0;
  private cHits = 0;
  private cMisses = 0;
  private cMaintOps = 0;
  private cMaintBytes = 0;

  // Per-access accumulator of offending lines (one finding per access, not one per line).
  private accLine = -1;
  private accLines = 0;
  private accWriter = 0;

  constructor(mem: PhysMem, options: CpuCacheOptions) {
    this.mem = mem;
    this.coherent = options.coherent;
    const cap = options.capacityLines ?? Number.POSITIVE_INFINITY;
    if (!(cap === Number.POSITIVE_INFINITY || (Number.isInteger(cap) && cap >= 2 * LINES_PER_PAGE)))
      throw new KernelError(
        "EINVAL",
        `cache: capacity ${cap} lines is below the minimum of ${2 * LINES_PER_PAGE} lines (2 pages)`,
      );
    if (cap !== Number.POSITIVE_INFINITY && options.prng === undefined)
      throw new KernelError(
        "EINVAL",
        `cache: a bounded cache (${cap} lines) needs a seeded prng for eviction`,
      );
    this.capacityLines = cap;
    this.prng = options.prng;
    this.onFinding = options.onFinding;
    this.logPrefix = options.logPrefix ?? "cache";
    // The machine's first cache becomes its CPU: kernel stores like __GFP_ZERO's clear_page go through it.
    if (mem.cpuStore === null) mem.cpuStore = this;
  }

  // ---------------------------------------------------------------- CPU side

  /** A CPU load of `dst.length` bytes at `phys` (RAM through the cache, MMIO uncached). Returns the number of findings recorded. */
  cpuRead(phys: number, dst: Uint8Array): number {
    const len = dst.length;
    if (this.cpuWatchers !== null) this.notifyCpuAccess(phys, len, false);
    const before = this.found.length;
    this.accReset();
    let off = 0;
    while (off < len) {
      const at = phys + off;
      const pfn = Math.floor(at / PAGE_SIZE);
      const pageOff = at - pfn * PAGE_SIZE;
      const n = Math.min(len - off, PAGE_SIZE - pageOff);
      if (!this.isRamPage(pfn)) {
        this.mem.read(at, dst.subarray(off, off + n));
        off += n;
        continue;
      }
      const slot = this.slotFor(pfn);
      this.busySlot = slot;
      const first = pageOff >> LINE_SHIFT;
      const last = (pageOff + n - 1) >> LINE_SHIFT;
      const base = slot * LINES_PER_PAGE;
      const st = this.state;
      let run = -1;
      for (let l = first; l <= last; l++) {
        const s = st[base + l] as number;
        if ((s & VALID) === 0) {
          this.makeRoom();
          st[base + l] = VALID;
          this.lineBecameValid(slot);
          this.cMisses++;
          if (run < 0) run = l;
        } else {
          if (run >= 0) {
            this.fillRun(pfn, slot, run, l);
            run = -1;
          }
          this.cHits++;
          if ((s & STALE) !== 0)
            this.accAdd(pfn * PAGE_SIZE + (l << LINE_SHIFT), this.writer[base + l] as number);
        }
      }
      if (run >= 0) this.fillRun(pfn, slot, run, last + 1);
      const d = slot * PAGE_SIZE + pageOff;
      dst.set(this.data.subarray(d, d + n), off);
      off += n;
    }
    this.busySlot = -1;
    if (this.accLines > 0) this.accReport("cpu-read-stale", phys, len);
    return this.found.length - before;
  }

  /** A CPU store of `src` at `phys` (RAM: write-allocate into the cache, lines become dirty; MMIO: uncached). Returns the number of findings recorded. */
  cpuWrite(phys: number, src: Uint8Array): number {
    const len = src.length;
    if (this.cpuWatchers !== null) this.notifyCpuAccess(phys, len, true);
    const before = this.found.length;
    let off = 0;
    while (off < len) {
      const at = phys + off;
      const pfn = Math.floor(at / PAGE_SIZE);
      const pageOff = at - pfn * PAGE_SIZE;
      const n = Math.min(len - off, PAGE_SIZE - pageOff);
      if (!this.isRamPage(pfn)) {
        this.mem.write(at, src.subarray(off, off + n));
        off += n;
        continue;
      }
      const slot = this.slotFor(pfn);
      this.busySlot = slot;
      const first = pageOff >> LINE_SHIFT;
      const last = (pageOff + n - 1) >> LINE_SHIFT;
      const base = slot * LINES_PER_PAGE;
      const end = pageOff + n;
      const st = this.state;
      for (let l = first; l <= last; l++) {
        const s = st[base + l] as number;
        const ls = l << LINE_SHIFT;
        const full = pageOff <= ls && end >= ls + LINE;
        if ((s & VALID) === 0) {
          this.makeRoom();
          if (!full) this.fillRun(pfn, slot, l, l + 1);
          this.lineBecameValid(slot);
          this.cMisses++;
          st[base + l] = VALID | DIRTY;
        } else {
          this.cHits++;
          // A whole-line store replaces whatever the device left in RAM: no stale bytes remain.
          st[base + l] = full ? VALID | DIRTY : s | DIRTY;
        }
      }
      this.data.set(src.subarray(off, off + n), slot * PAGE_SIZE + pageOff);
      off += n;
    }
    this.busySlot = -1;
    return this.found.length - before;
  }

  /** A CPU `memset` of `len` bytes at `phys` to `value` (e.g. `clear_page`), through the cache. */
  cpuFill(phys: number, len: number, value: number): number {
    const chunk = new Uint8Array(Math.min(len, PAGE_SIZE)).fill(value);
    let n = 0;
    for (let off = 0; off < len; off += chunk.length) {
      const k = Math.min(chunk.length, len - off);
      n += this.cpuWrite(phys + off, k === chunk.length ? chunk : chunk.subarray(0, k));
    }
    return n;
  }

  // ---------------------------------------------------------------- device side

  /**
   * A device's DMA read of `dst.length` bytes at `phys`. A coherent device snoops (sees dirty
   * lines); a non-coherent one reads RAM, and a dirty line under the range is a finding
   * (`device-read-dirty`). Returns the number of findings recorded.
   */
  deviceRead(phys: number, dst: Uint8Array, options: DeviceAccessOptions = {}): number {
    const coherent = options.coherent ?? this.coherent;
    const before = this.found.length;
    this.mem.read(phys, dst);
    if (this.activeCount === 0) return 0;
    this.accReset();
    const len = dst.length;
    let off = 0;
    while (off < len) {
      const at = phys + off;
      const pfn = Math.floor(at / PAGE_SIZE);
      const pageOff = at - pfn * PAGE_SIZE;
      const n = Math.min(len - off, PAGE_SIZE - pageOff);
      const slot = this.slotOf(pfn);
      if (slot >= 0) {
        const base = slot * LINES_PER_PAGE;
        const last = (pageOff + n - 1) >> LINE_SHIFT;
        let run = -1;
        for (let l = pageOff >> LINE_SHIFT; l <= last + 1; l++) {
          const dirty = l <= last && ((this.state[base + l] as number) & DIRTY) !== 0;
          if (!coherent) {
            if (dirty) this.accAdd(pfn * PAGE_SIZE + (l << LINE_SHIFT), 0);
          } else if (dirty) {
            if (run < 0) run = l;
          } else if (run >= 0) {
            // Snooped dirty lines [run, l) overlay what RAM returned.
            const a = Math.max(pageOff, run << LINE_SHIFT);
            const b = Math.min(pageOff + n, l << LINE_SHIFT);
            const d = slot * PAGE_SIZE;
            dst.set(this.data.subarray(d + a, d + b), off + (a - pageOff));
            run = -1;
          }
        }
      }
      off += n;
    }
    if (this.accLines > 0) {
      this.accWriter = this.deviceId(options.device ?? "device");
      this.accReport("device-read-dirty", phys, len);
    }
    return this.found.length - before;
  }

  /**
   * A device's DMA write of `src` at `phys`. A coherent device's write snoops: lines it hits are
   * written back (if dirty) and invalidated before RAM takes the new bytes. A non-coherent
   * device's write goes to RAM only; cached lines over it become stale (a later CPU read of them
   * is a `cpu-read-stale` finding). Returns the number of findings recorded.
   */
  deviceWrite(phys: number, src: Uint8Array, options: DeviceAccessOptions = {}): number {
    const coherent = options.coherent ?? this.coherent;
    const before = this.found.length;
    if (this.activeCount === 0) {
      this.mem.write(phys, src);
      return 0;
    }
    const id = coherent ? 0 : this.deviceId(options.device ?? "device");
    if (coherent) {
      this.accReset();
      this.forLines(phys, src.length, (pfn, slot, l0, l1) => {
        const base = slot * LINES_PER_PAGE;
        for (let l = l0; l < l1; l++) {
          const s = this.state[base + l] as number;
          if ((s & VALID) === 0) continue;
          if ((s & DIRTY) !== 0) {
            this.writeBackLine(pfn, slot, l, s);
            this.cSnoops++;
          }
          this.dropLine(slot, l);
        }
      });
      if (this.accLines > 0) this.accReport("writeback-clobber", phys, src.length);
      this.mem.write(phys, src);
    } else {
      this.mem.write(phys, src);
      this.forLines(phys, src.length, (_pfn, slot, l0, l1) => {
        const base = slot * LINES_PER_PAGE;
        for (let l = l0; l < l1; l++) {
          const s = this.state[base + l] as number;
          if ((s & VALID) === 0) continue;
          this.state[base + l] = s | STALE;
          this.writer[base + l] = id;
        }
      });
    }
    return this.found.length - before;
  }

  // ---------------------------------------------------------------- maintenance

  /**
   * Clean to the point of coherency: writes dirty lines overlapping [phys, phys+size) back to RAM;
   * they stay valid and clean. Returns the number of findings recorded (a dirty line over device
   * data is a `writeback-clobber`).
   * @see arch/arm64/mm/cache.S dcache_clean_poc (`dc cvac` per line)
   */
  cleanRange(phys: number, size: number): number {
    const before = this.found.length;
    this.countMaint(size);
    this.accReset();
    this.forLines(phys, size, (pfn, slot, l0, l1) => {
      const base = slot * LINES_PER_PAGE;
      let run = -1;
      for (let l = l0; l <= l1; l++) {
        const s = l < l1 ? (this.state[base + l] as number) : 0;
        if ((s & DIRTY) !== 0) {
          if (run < 0) run = l;
          if ((s & STALE) !== 0)
            this.accAdd(pfn * PAGE_SIZE + (l << LINE_SHIFT), this.writer[base + l] as number);
          this.state[base + l] = s & ~(DIRTY | STALE);
        } else if (run >= 0) {
          this.writeBackRun(pfn, slot, run, l);
          this.cLinesCleaned += l - run;
          run = -1;
        }
      }
    });
    if (this.accLines > 0) this.accReport("writeback-clobber", phys, size);
    return this.found.length - before;
  }

  /**
   * Invalidate to the point of coherency, as arm64 does it: a partial line at either end of the
   * range is cleaned and invalidated (so bytes outside the range survive), whole lines are
   * invalidated and their contents dropped. Returns the number of findings recorded (dropping a
   * dirty whole line is `invalidate-dirty`; writing back a partial line over device data is
   * `writeback-clobber`).
   * @see arch/arm64/mm/cache.S dcache_inval_poc (`dc civac` on partial ends, `dc ivac` otherwise)
   */
  invalidateRange(phys: number, size: number): number {
    if (size <= 0) return 0;
    const before = this.found.length;
    this.countMaint(size);
    const end = phys + size;
    const startLine = phys - (phys % LINE);
    const endLine = end - (end % LINE);
    if (end % LINE !== 0) this.cleanInvalLines(phys, size, endLine, endLine + LINE);
    let from = startLine;
    if (phys % LINE !== 0) {
      this.cleanInvalLines(phys, size, startLine, startLine + LINE);
      from = startLine + LINE;
    }
    if (from < endLine) {
      this.accReset();
      this.forLines(from, endLine - from, (pfn, slot, l0, l1) => {
        const base = slot * LINES_PER_PAGE;
        for (let l = l0; l < l1; l++) {
          const s = this.state[base + l] as number;
          if ((s & VALID) === 0) continue;
          if ((s & DIRTY) !== 0) this.accAdd(pfn * PAGE_SIZE + (l << LINE_SHIFT), 0);
          this.dropLine(slot, l);
          this.cLinesInvalidated++;
        }
      });
      if (this.accLines > 0) this.accReport("invalidate-dirty", phys, size);
    }
    return this.found.length - before;
  }

  /**
   * Clean and invalidate to the point of coherency: dirty lines are written back, then every line
   * overlapping the range is dropped. Returns the number of findings recorded.
   * @see arch/arm64/mm/cache.S dcache_clean_inval_poc (`dc civac` per line)
   */
  cleanInvalidateRange(phys: number, size: number): number {
    if (size <= 0) return 0;
    const before = this.found.length;
    this.countMaint(size);
    const startLine = phys - (phys % LINE);
    const end = phys + size;
    this.cleanInvalLines(phys, size, startLine, end % LINE === 0 ? end : end - (end % LINE) + LINE);
    return this.found.length - before;
  }

  /** Writes back and drops every line (`wbinvd` on x86; a set/way flush). Findings as for {@link cleanInvalidateRange}. */
  flushAll(): number {
    const before = this.found.length;
    const pfns = [...this.slotByPfn.keys()].sort((a, b) => a - b);
    for (const pfn of pfns)
      this.cleanInvalLines(pfn * PAGE_SIZE, PAGE_SIZE, pfn * PAGE_SIZE, (pfn + 1) * PAGE_SIZE);
    return this.found.length - before;
  }

  // ---------------------------------------------------------------- findings and counters

  /**
   * Adds a callback run with each finding after it is recorded, like the `onFinding` option but
   * for consumers that attach after the cache exists (dma-debug). Returns a function that removes it.
   */
  addFindingListener(fn: (finding: CacheFinding) => void): () => void {
    if (this.findingListeners === null) this.findingListeners = [];
    this.findingListeners.push(fn);
    return () => {
      const l = this.findingListeners;
      const i = l === null ? -1 : l.indexOf(fn);
      if (l === null || i < 0) return;
      l.splice(i, 1);
      if (l.length === 0) this.findingListeners = null;
    };
  }

  /**
   * Watches CPU accesses: `fn(phys, size, write)` runs before each {@link cpuRead} / {@link cpuWrite}
   * (and so {@link cpuFill}) touches memory. Model-only: dma-debug uses it to catch the CPU touching
   * a buffer the device owns. Without watchers the access path costs one null check. Returns a
   * function that removes the watcher.
   */
  watchCpuAccess(fn: (phys: number, size: number, write: boolean) => void): () => void {
    if (this.cpuWatchers === null) this.cpuWatchers = [];
    this.cpuWatchers.push(fn);
    return () => {
      const w = this.cpuWatchers;
      const i = w === null ? -1 : w.indexOf(fn);
      if (w === null || i < 0) return;
      w.splice(i, 1);
      if (w.length === 0) this.cpuWatchers = null;
    };
  }

  private notifyCpuAccess(phys: number, size: number, write: boolean): void {
    for (const fn of (this.cpuWatchers as Array<(p: number, s: number, w: boolean) => void>).slice())
      fn(phys, size, write);
  }

  /** Every finding recorded so far, oldest first. */
  findings(): readonly CacheFinding[] {
    return this.found;
  }

  /** Findings with `seq >= from` (for consumers that poll). */
  findingsSince(from: number): readonly CacheFinding[] {
    const at = this.found.findIndex((f) => f.seq >= from);
    return at < 0 ? [] : this.found.slice(at);
  }

  /** Forgets recorded findings (sequence numbers keep counting). */
  clearFindings(): void {
    this.seqBase += this.found.length;
    this.found.length = 0;
  }
  private seqBase = 0;

  /** Counters and occupancy. */
  stats(): CpuCacheStats {
    let dirty = 0;
    for (let i = 0; i < this.activeCount; i++) {
      const base = (this.active[i] as number) * LINES_PER_PAGE;
      for (let l = 0; l < LINES_PER_PAGE; l++) if (((this.state[base + l] as number) & DIRTY) !== 0) dirty++;
    }
    return {
      linesCleaned: this.cLinesCleaned,
      linesInvalidated: this.cLinesInvalidated,
      bytesWrittenBack: this.cBytesWrittenBack,
      evictions: this.cEvictions,
      snoops: this.cSnoops,
      hits: this.cHits,
      misses: this.cMisses,
      maintenanceOps: this.cMaintOps,
      maintenanceBytes: this.cMaintBytes,
      residentLines: this.validTotal,
      dirtyLines: dirty,
      cachedPages: this.activeCount,
    };
  }

  /** State of the line holding `phys`: `"invalid"`, `"clean"`, `"dirty"`, with `"+stale"` when a device wrote RAM under it. */
  lineState(phys: number): string {
    const pfn = Math.floor(phys / PAGE_SIZE);
    const slot = this.slotOf(pfn);
    if (slot < 0) return "invalid";
    const s = this.state[slot * LINES_PER_PAGE + ((phys - pfn * PAGE_SIZE) >> LINE_SHIFT)] as number;
    if ((s & VALID) === 0) return "invalid";
    return ((s & DIRTY) !== 0 ? "dirty" : "clean") + ((s & STALE) !== 0 ? "+stale" : "");
  }

  /** Bytes the model holds for cached copies and line state (typed-array slabs). */
  get byteLength(): number {
    return (
      this.data.byteLength +
      this.state.byteLength +
      this.writer.byteLength +
      this.slotPfn.byteLength +
      this.slotValid.byteLength +
      this.active.byteLength +
      this.activePos.byteLength
    );
  }

  // ---------------------------------------------------------------- internals

  private countMaint(size: number): void {
    this.cMaintOps++;
    this.cMaintBytes += size;
  }

  /** Clean+invalidate lines [fromPhys, toPhys) (line-aligned); findings name the operation's range. */
  private cleanInvalLines(phys: number, size: number, fromPhys: number, toPhys: number): void {
    this.accReset();
    this.forLines(fromPhys, toPhys - fromPhys, (pfn, slot, l0, l1) => {
      const base = slot * LINES_PER_PAGE;
      for (let l = l0; l < l1; l++) {
        const s = this.state[base + l] as number;
        if ((s & VALID) === 0) continue;
        if ((s & DIRTY) !== 0) {
          this.writeBackLine(pfn, slot, l, s);
          this.cLinesCleaned++;
        }
        this.dropLine(slot, l);
        this.cLinesInvalidated++;
      }
    });
    if (this.accLines > 0) this.accReport("writeback-clobber", phys, size);
  }

  /** Calls `fn(pfn, slot, l0, l1)` for each cached page overlapping [phys, phys+size), lines l0..l1-1. */
  private forLines(
    phys: number,
    size: number,
    fn: (pfn: number, slot: number, l0: number, l1: number) => void,
  ): void {
    if (size <= 0 || this.activeCount === 0) return;
    const end = phys + size;
    let at = phys;
    while (at < end) {
      const pfn = Math.floor(at / PAGE_SIZE);
      const pageEnd = (pfn + 1) * PAGE_SIZE;
      const to = Math.min(end, pageEnd);
      const slot = this.slotOf(pfn);
      if (slot >= 0) {
        const base = pfn * PAGE_SIZE;
        fn(pfn, slot, (at - base) >> LINE_SHIFT, ((to - base + LINE - 1) >> LINE_SHIFT) | 0);
      }
      at = to;
    }
  }

  private writeBackLine(pfn: number, slot: number, l: number, s: number): void {
    if ((s & STALE) !== 0)
      this.accAdd(pfn * PAGE_SIZE + (l << LINE_SHIFT), this.writer[slot * LINES_PER_PAGE + l] as number);
    this.writeBackRun(pfn, slot, l, l + 1);
    this.state[slot * LINES_PER_PAGE + l] = s & ~(DIRTY | STALE);
  }

  private writeBackRun(pfn: number, slot: number, l0: number, l1: number): void {
    const d = slot * PAGE_SIZE;
    this.mem
      .pageView(pfn)
      .set(this.data.subarray(d + (l0 << LINE_SHIFT), d + (l1 << LINE_SHIFT)), l0 << LINE_SHIFT);
    this.cBytesWrittenBack += (l1 - l0) << LINE_SHIFT;
  }

  private fillRun(pfn: number, slot: number, l0: number, l1: number): void {
    const d = slot * PAGE_SIZE;
    this.mem.read(
      pfn * PAGE_SIZE + (l0 << LINE_SHIFT),
      this.data.subarray(d + (l0 << LINE_SHIFT), d + (l1 << LINE_SHIFT)),
    );
  }

  private lineBecameValid(slot: number): void {
    this.slotValid[slot] = (this.slotValid[slot] as number) + 1;
    this.validTotal++;
  }

  /** Drops a valid line (no writeback); frees the slot when its last line goes. */
  private dropLine(slot: number, l: number): void {
    this.state[slot * LINES_PER_PAGE + l] = 0;
    this.validTotal--;
    const left = (this.slotValid[slot] as number) - 1;
    this.slotValid[slot] = left;
    if (left === 0 && slot !== this.busySlot) this.freeSlot(slot);
  }

  /** Bounded cache: evicts one random line (never from the page being accessed) when full. */
  private makeRoom(): void {
    if (this.validTotal < this.capacityLines) return;
    const prng = this.prng as Prng;
    let i = prng.below(this.activeCount);
    let slot = this.active[i] as number;
    if (slot === this.busySlot) {
      i = (i + 1) % this.activeCount;
      slot = this.active[i] as number;
    }
    const base = slot * LINES_PER_PAGE;
    let l = prng.below(LINES_PER_PAGE);
    while (((this.state[base + l] as number) & VALID) === 0) l = (l + 1) & (LINES_PER_PAGE - 1);
    const s = this.state[base + l] as number;
    if ((s & DIRTY) !== 0) {
      const pfn = this.slotPfn[slot] as number;
      const acc = [this.accLine, this.accLines, this.accWriter] as const;
      this.accReset();
      this.writeBackLine(pfn, slot, l, s);
      if (this.accLines > 0) this.accReport("writeback-clobber", pfn * PAGE_SIZE + (l << LINE_SHIFT), LINE);
      [this.accLine, this.accLines, this.accWriter] = acc;
    }
    this.cEvictions++;
    this.dropLine(slot, l);
  }

  private isRamPage(pfn: number): boolean {
    const phys = pfn * PAGE_SIZE;
    if (phys >= this.bankStart && phys < this.bankEnd) return true;
    const b = this.mem.bankAt(phys);
    if (b === undefined) return false;
    this.bankStart = b.start;
    this.bankEnd = b.start + b.size;
    return true;
  }

  private slotOf(pfn: number): number {
    if (pfn === this.lastPfn) return this.lastSlot;
    const s = this.slotByPfn.get(pfn);
    if (s === undefined) return -1;
    this.lastPfn = pfn;
    this.lastSlot = s;
    return s;
  }

  private slotFor(pfn: number): number {
    const s = this.slotOf(pfn);
    if (s >= 0) return s;
    let slot = this.freeSlots.pop();
    if (slot === undefined) {
      if (this.nslots * LINES_PER_PAGE >= this.state.length) this.grow();
      slot = this.nslots++;
    }
    this.slotByPfn.set(pfn, slot);
    this.slotPfn[slot] = pfn;
    this.slotValid[slot] = 0;
    this.activePos[slot] = this.activeCount;
    this.active[this.activeCount++] = slot;
    this.lastPfn = pfn;
    this.lastSlot = slot;
    return slot;
  }

  private freeSlot(slot: number): void {
    const pfn = this.slotPfn[slot] as number;
    this.slotByPfn.delete(pfn);
    if (this.lastPfn === pfn) {
      this.lastPfn = -1;
      this.lastSlot = -1;
    }
    const pos = this.activePos[slot] as number;
    const moved = this.active[--this.activeCount] as number;
    this.active[pos] = moved;
    this.activePos[moved] = pos;
    this.freeSlots.push(slot);
  }

  private grow(): void {
    const slots = Math.max(16, this.nslots * 2);
    const g = <T extends Uint8Array | Uint16Array | Int32Array | Float64Array>(a: T, b: T): T => {
      b.set(a as ArrayLike<number>);
      return b;
    };
    this.data = g(this.data, new Uint8Array(slots * PAGE_SIZE));
    this.state = g(this.state, new Uint8Array(slots * LINES_PER_PAGE));
    this.writer = g(this.writer, new Uint16Array(slots * LINES_PER_PAGE));
    this.slotPfn = g(this.slotPfn, new Float64Array(slots));
    this.slotValid = g(this.slotValid, new Uint8Array(slots));
    this.activePos = g(this.activePos, new Int32Array(slots));
    this.active = g(this.active, new Int32Array(slots));
  }

  private deviceId(name: string): number {
    let id = this.deviceIds.get(name);
    if (id === undefined) {
      id = this.deviceNames.length;
      if (id > 0xffff) id = 0xffff;
      else {
        this.deviceNames.push(name);
        this.deviceIds.set(name, id);
      }
    }
    return id;
  }

  private accReset(): void {
    this.accLine = -1;
    this.accLines = 0;
    this.accWriter = 0;
  }

  private accAdd(linePhys: number, writer: number): void {
    if (this.accLines === 0) {
      this.accLine = linePhys;
      this.accWriter = writer;
    }
    this.accLines++;
  }

  private accReport(kind: CacheFindingKind, phys: number, size: number): void {
    const device = this.deviceNames[this.accWriter] ?? "device";
    const line = this.accLine;
    const n = this.accLines;
    const range = `${hex(phys)}+${hex(size)}`;
    let message: string;
    switch (kind) {
      case "device-read-dirty":
        message = `stale read: device ${device} read ${range} while CPU cache line ${hex(line)} is dirty (${n} dirty line${n === 1 ? "" : "s"} not cleaned)`;
        break;
      case "cpu-read-stale":
        message = `stale read: CPU read ${range} from cache line ${hex(line)} cached before device ${device} wrote RAM (${n} line${n === 1 ? "" : "s"} not invalidated)`;
        break;
      case "writeback-clobber":
        message = `lost write: dirty CPU cache line ${hex(line)} written back over data device ${device} wrote to RAM (${n} line${n === 1 ? "" : "s"}, range ${range})`;
        break;
      case "invalidate-dirty":
        message = `lost write: invalidating ${range} discarded dirty CPU cache line ${hex(line)} (${n} line${n === 1 ? "" : "s"})`;
        break;
    }
    const f: CacheFinding = {
      seq: this.seqBase + this.found.length,
      kind,
      phys,
      size,
      line,
      lines: n,
      device,
      message,
    };
    this.found.push(f);
    this.mem.log.warning(this.logPrefix, message);
    this.onFinding?.(f);
    if (this.findingListeners !== null) for (const fn of this.findingListeners.slice()) fn(f);
    this.accReset();
  }
}
