import { isPowerOf2, KernelError, NSEC_PER_MSEC, type SimClock, type TimerHandle } from "@dmakit/core";

/** Entries per per-CPU flush queue ring. @see drivers/iommu/dma-iommu.c IOVA_DEFAULT_FQ_SIZE */
export const IOVA_DEFAULT_FQ_SIZE = 256;
/** Entries of the single shared ring (`shadow_on_flush`). @see drivers/iommu/dma-iommu.c */
export const IOVA_SINGLE_FQ_SIZE = 32768;
/** Milliseconds after the first queued entry at which the timer flushes. @see drivers/iommu/dma-iommu.c */
export const IOVA_DEFAULT_FQ_TIMEOUT = 10;
/** Timeout of the single-queue variant, in milliseconds. @see drivers/iommu/dma-iommu.c */
export const IOVA_SINGLE_FQ_TIMEOUT = 1000;

/** `enum iommu_dma_queue_type`. @see drivers/iommu/dma-iommu.c enum iommu_dma_queue_type */
export const IOMMU_DMA_OPTS_PER_CPU_QUEUE = 0;
/** `IOMMU_DMA_OPTS_SINGLE_QUEUE`. @see drivers/iommu/dma-iommu.c enum iommu_dma_queue_type */
export const IOMMU_DMA_OPTS_SINGLE_QUEUE = 1;

/**
 * What the flush queue needs from its domain; the kernel reaches these through the cookie.
 * Model-only: the cookie's calls as an interface.
 */
export interface FlushQueueCallbacks {
  /** `domain->ops->flush_iotlb_all(domain)`: invalidates the whole IOTLB for the domain. */
  flushIotlbAll(): void;
  /** `free_iova_fast(&cookie->iovad, pfn, pages)`: returns the IOVA range to the allocator. */
  freeIova(pfn: number, pages: number): void;
  /** `iommu_put_pages_list(&freelist)`: frees page-table pages unlinked by the unmap. */
  freePgtablePages(pfns: readonly number[]): void;
}

/**
 * Options for {@link FlushQueue}.
 * @see drivers/iommu/dma-iommu.c struct iommu_dma_options (plus the model's clock and CPU count)
 */
export interface FlushQueueOptions extends FlushQueueCallbacks {
  clock: SimClock;
  /** Possible CPUs: one ring each in the per-CPU variant. Default 1. */
  numCpus?: number;
  /** `IOMMU_DMA_OPTS_PER_CPU_QUEUE` (default) or `IOMMU_DMA_OPTS_SINGLE_QUEUE`. */
  queueType?: typeof IOMMU_DMA_OPTS_PER_CPU_QUEUE | typeof IOMMU_DMA_OPTS_SINGLE_QUEUE;
  /** Ring entries, a power of 2 (`fq_size`). Default by queue type: 256 or 32768. */
  fqSize?: number;
  /** Timer period in ms (`fq_timeout`). Default by queue type: 10 or 1000. */
  fqTimeoutMs?: number;
}

/**
 * One queued entry, as reported by {@link FlushQueue.pending}.
 * @see drivers/iommu/dma-iommu.c struct iova_fq_entry (the model adds the ring and the queueing time)
 */
export interface FlushQueueEntry {
  /** Ring (CPU) it sits on; 0 for the single queue. */
  ring: number;
  iovaPfn: number;
  pages: number;
  /** Page-table pages to free after the invalidation. */
  freelist: readonly number[];
  /** `fq_flush_start_cnt` when it was queued; freed once `fq_flush_finish_cnt` exceeds it. */
  counter: number;
  /** Simulated time it was queued (the unmap); the stale-IOTLB window runs from here. */
  queuedAtNs: number;
}

/**
 * Counters of a {@link FlushQueue}, for reports and for measuring the stale-IOTLB window.
 * Model-only: counters for reports.
 */
export interface FlushQueueStats {
  /** Entries queued and not yet freed (their IOVAs may still hit stale IOTLB entries). */
  pending: number;
  /** Per ring. */
  pendingPerRing: number[];
  /** `fq_flush_start_cnt` / `fq_flush_finish_cnt`. */
  flushStartCnt: number;
  flushFinishCnt: number;
  /** Flushes by cause: the ring was full at queue time, or the timer fired. */
  flushesFull: number;
  flushesTimeout: number;
  /** Entries ever queued / freed. */
  queued: number;
  freed: number;
  /** Longest time an entry waited between queueing and being freed, in ns. */
  maxStaleNs: number;
  /** Sum over freed entries of the time they waited, in ns (divide by `freed` for the mean). */
  totalStaleNs: number;
  /** `fq_timer_on`. */
  timerOn: boolean;
}

/**
 * The DMA_FQ lazy-invalidation flush queue: an unmapped IOVA (and any page-table pages the unmap
 * freed) is queued instead of invalidated at once; a later `flush_iotlb_all` — when a ring fills or
 * the timer fires — covers every entry queued before it started, and only then are the IOVA and
 * the pages released. Until then a device can still reach the unmapped memory through a stale
 * IOTLB entry: {@link pending} and {@link stats} make that window measurable.
 *
 * Rings are struct-of-arrays typed arrays; "current CPU" is the settable {@link cpu} field.
 * Locks and barriers are not modelled (calls are atomic).
 *
 * @see drivers/iommu/dma-iommu.c iommu_dma_init_fq, queue_iova, fq_ring_free, fq_flush_iotlb,
 *   fq_flush_timeout, iommu_dma_free_fq
 */
export class FlushQueue {
  readonly queueType: number;
  readonly fqSize: number;
  readonly fqTimeoutMs: number;
  readonly numRings: number;
  readonly numCpus: number;
  readonly clock: SimClock;
  /** `fq_flush_start_cnt`: flushes started. */
  fqFlushStartCnt = 0;
  /** `fq_flush_finish_cnt`: flushes finished. */
  fqFlushFinishCnt = 0;
  /** `fq_timer_on`: the timer is armed. */
  fqTimerOn = false;

  private readonly cb: FlushQueueCallbacks;
  private readonly modMask: number;
  private readonly head: Int32Array;
  private readonly tail: Int32Array;
  private readonly iovaPfn: Float64Array;
  private readonly pages: Float64Array;
  private readonly counter: Float64Array;
  private readonly queuedAt: Float64Array;
  private readonly freelist: Array<readonly number[] | null>;
  private timer: TimerHandle | null = null;
  private curCpu = 0;
  private flushesFull = 0;
  private flushesTimeout = 0;
  private queued = 0;
  private freed = 0;
  private maxStaleNs = 0;
  private totalStaleNs = 0;
  private destroyed = false;

  /**
   * `iommu_dma_init_fq(domain)`: counters to 0, one empty ring per CPU (or one shared ring),
   * timer disarmed. Throws EINVAL when `fqSize` is not a power of 2 of at least 2.
   */
  constructor(options: FlushQueueOptions) {
    const qt = options.queueType ?? IOMMU_DMA_OPTS_PER_CPU_QUEUE;
    const single = qt === IOMMU_DMA_OPTS_SINGLE_QUEUE;
    const size = options.fqSize ?? (single ? IOVA_SINGLE_FQ_SIZE : IOVA_DEFAULT_FQ_SIZE);
    if (!isPowerOf2(size) || size < 2)
      throw new KernelError("EINVAL", `iommu-dma: flush queue size ${size} is not a power of 2 >= 2`);
    const numCpus = options.numCpus ?? 1;
    if (!Number.isInteger(numCpus) || numCpus < 1)
      throw new KernelError("EINVAL", `iommu-dma: flush queue numCpus ${numCpus} < 1`);
    const timeout = options.fqTimeoutMs ?? (single ? IOVA_SINGLE_FQ_TIMEOUT : IOVA_DEFAULT_FQ_TIMEOUT);
    if (!(timeout >= 0)) throw new KernelError("EINVAL", `iommu-dma: flush queue timeout ${timeout} ms < 0`);
    this.queueType = qt;
    this.fqSize = size;
    this.fqTimeoutMs = timeout;
    this.numRings = single ? 1 : numCpus;
    this.numCpus = numCpus;
    this.clock = options.clock;
    this.cb = {
      flushIotlbAll: options.flushIotlbAll,
      freeIova: options.freeIova,
      freePgtablePages: options.freePgtablePages,
    };
    this.modMask = size - 1;
    this.head = new Int32Array(this.numRings);
    this.tail = new Int32Array(this.numRings);
    const total = this.numRings * size;
    this.iovaPfn = new Float64Array(total);
    this.pages = new Float64Array(total);
    this.counter = new Float64Array(total);
    this.queuedAt = new Float64Array(total);
    this.freelist = new Array(total).fill(null);
  }

  /** The CPU the caller runs on (selects the ring in the per-CPU variant). */
  get cpu(): number {
    return this.curCpu;
  }

  set cpu(cpu: number) {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.numCpus)
      throw new KernelError("EINVAL", `iommu-dma: flush queue cpu ${cpu} outside 0..${this.numCpus - 1}`);
    this.curCpu = cpu;
  }

  /** `fq_flush_iotlb(cookie)`: one invalidation bracketed by the two counters. */
  fqFlushIotlb(): void {
    this.fqFlushStartCnt++;
    this.cb.flushIotlbAll();
    this.fqFlushFinishCnt++;
  }

  /**
   * `fq_ring_free_locked(cookie, fq)`: frees, oldest first, every entry of `ring` queued before the
   * last finished flush started (`counter < fq_flush_finish_cnt`): page-table pages first, then the
   * IOVA. Stops at the first entry a finished flush does not cover.
   */
  private fqRingFree(ring: number): void {
    const finish = this.fqFlushFinishCnt;
    const base = ring * this.fqSize;
    const tail = this.tail[ring]!;
    let idx = this.head[ring]!;
    const now = this.clock.now();
    while (idx !== tail) {
      const e = base + idx;
      if (this.counter[e]! >= finish) break;
      const fl = this.freelist[e];
      this.freelist[e] = null;
      if (fl && fl.length > 0) this.cb.freePgtablePages(fl);
      const waited = now - this.queuedAt[e]!;
      if (waited > this.maxStaleNs) this.maxStaleNs = waited;
      this.totalStaleNs += waited;
      this.freed++;
      idx = (idx + 1) & this.modMask;
      // Advance head before the callback can re-enter queueIova.
      this.head[ring] = idx;
      this.cb.freeIova(this.iovaPfn[e]!, this.pages[e]!);
    }
  }

  /**
   * `queue_iova(cookie, pfn, pages, freelist)`: frees what earlier flushes already cover, flushes
   * now if the ring is still full (`(tail + 1) & mask == head`, so a ring holds `fqSize - 1`
   * entries), appends the entry stamped with `fq_flush_start_cnt` and the current time, and arms
   * the timer if it is off. `freelist` passes to the queue (the kernel splices the list).
   */
  queueIova(pfn: number, pages: number, freelist: readonly number[] | null = null): void {
    if (this.destroyed) throw new KernelError("EINVAL", "iommu-dma: queue_iova on a freed flush queue");
    const ring = this.queueType === IOMMU_DMA_OPTS_SINGLE_QUEUE ? 0 : this.curCpu;
    this.fqRingFree(ring);
    if (((this.tail[ring]! + 1) & this.modMask) === this.head[ring]!) {
      this.flushesFull++;
      this.fqFlushIotlb();
      this.fqRingFree(ring);
    }
    const idx = this.tail[ring]!;
    this.tail[ring] = (idx + 1) & this.modMask;
    const e = ring * this.fqSize + idx;
    this.iovaPfn[e] = pfn;
    this.pages[e] = pages;
    this.counter[e] = this.fqFlushStartCnt;
    this.queuedAt[e] = this.clock.now();
    this.freelist[e] = freelist;
    this.queued++;
    if (!this.fqTimerOn) {
      this.fqTimerOn = true;
      this.timer = this.clock.schedule(
        this.fqTimeoutMs * NSEC_PER_MSEC,
        () => this.fqFlushTimeout(),
        "iommu-dma: fq_flush_timeout",
      );
    }
  }

  /**
   * `fq_flush_timeout(timer)`: the timer callback — clears `fq_timer_on`, flushes the IOTLB once and
   * frees every covered entry of every ring. Callable directly (e.g. to drain before a check).
   */
  fqFlushTimeout(): void {
    this.timer = null;
    this.fqTimerOn = false;
    this.flushesTimeout++;
    this.fqFlushIotlb();
    for (let r = 0; r < this.numRings; r++) this.fqRingFree(r);
  }

  /**
   * `iommu_dma_free_fq(cookie)`: deletes the timer and frees the queued page-table pages, but not
   * the queued IOVAs ("The IOVAs will be torn down separately", by `put_iova_domain`).
   */
  destroy(): void {
    if (this.timer) this.clock.cancel(this.timer);
    this.timer = null;
    this.fqTimerOn = false;
    for (let r = 0; r < this.numRings; r++) {
      const base = r * this.fqSize;
      for (let idx = this.head[r]!; idx !== this.tail[r]!; idx = (idx + 1) & this.modMask) {
        const fl = this.freelist[base + idx];
        this.freelist[base + idx] = null;
        if (fl && fl.length > 0) this.cb.freePgtablePages(fl);
      }
      this.head[r] = 0;
      this.tail[r] = 0;
    }
    this.destroyed = true;
  }

  /** Entries queued and not yet freed, all rings. */
  get pendingCount(): number {
    let n = 0;
    for (let r = 0; r < this.numRings; r++) n += (this.tail[r]! - this.head[r]!) & this.modMask;
    return n;
  }

  /** Simulated time the oldest pending entry was queued, or null when none is pending. */
  oldestQueuedNs(): number | null {
    let t: number | null = null;
    for (let r = 0; r < this.numRings; r++) {
      if (this.head[r] === this.tail[r]) continue;
      const q = this.queuedAt[r * this.fqSize + this.head[r]!]!;
      if (t === null || q < t) t = q;
    }
    return t;
  }

  /** The pending entries, ring by ring, oldest first (allocates; for reports and tests). */
  pending(): FlushQueueEntry[] {
    const out: FlushQueueEntry[] = [];
    for (let r = 0; r < this.numRings; r++) {
      const base = r * this.fqSize;
      for (let idx = this.head[r]!; idx !== this.tail[r]!; idx = (idx + 1) & this.modMask) {
        const e = base + idx;
        out.push({
          ring: r,
          iovaPfn: this.iovaPfn[e]!,
          pages: this.pages[e]!,
          freelist: this.freelist[e] ?? [],
          counter: this.counter[e]!,
          queuedAtNs: this.queuedAt[e]!,
        });
      }
    }
    return out;
  }

  /** True when `pfn` lies in a pending entry's range (a stale IOTLB entry may still map it). */
  isPending(pfn: number): boolean {
    for (let r = 0; r < this.numRings; r++) {
      const base = r * this.fqSize;
      for (let idx = this.head[r]!; idx !== this.tail[r]!; idx = (idx + 1) & this.modMask) {
        const e = base + idx;
        const lo = this.iovaPfn[e]!;
        if (pfn >= lo && pfn < lo + this.pages[e]!) return true;
      }
    }
    return false;
  }

  stats(): FlushQueueStats {
    const pendingPerRing: number[] = [];
    let pending = 0;
    for (let r = 0; r < this.numRings; r++) {
      const n = (this.tail[r]! - this.head[r]!) & this.modMask;
      pendingPerRing.push(n);
      pending += n;
    }
    return {
      pending,
      pendingPerRing,
      flushStartCnt: this.fqFlushStartCnt,
      flushFinishCnt: this.fqFlushFinishCnt,
      flushesFull: this.flushesFull,
      flushesTimeout: this.flushesTimeout,
      queued: this.queued,
      freed: this.freed,
      maxStaleNs: this.maxStaleNs,
      totalStaleNs: this.totalStaleNs,
      timerOn: this.fqTimerOn,
    };
  }
}
