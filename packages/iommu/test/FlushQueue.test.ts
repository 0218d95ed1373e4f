import { isKernelError, NSEC_PER_MSEC, SimClock } from "@dmakit/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  FlushQueue,
  type FlushQueueOptions,
  IOMMU_DMA_OPTS_SINGLE_QUEUE,
  IOVA_DEFAULT_FQ_SIZE,
  IOVA_SINGLE_FQ_SIZE,
  IOVA_SINGLE_FQ_TIMEOUT,
  initIovaDomain,
} from "../src/index.js";

interface Harness {
  clock: SimClock;
  fq: FlushQueue;
  calls: string[];
  freed: Array<[number, number]>;
  pgtables: number[][];
  flushes: () => number;
}

function harness(options: Partial<FlushQueueOptions> = {}): Harness {
  const clock = options.clock ?? new SimClock();
  const calls: string[] = [];
  const freed: Array<[number, number]> = [];
  const pgtables: number[][] = [];
  let flushes = 0;
  const fq = new FlushQueue({
    clock,
    flushIotlbAll: () => {
      flushes++;
      calls.push("flush");
    },
    freeIova: (pfn, pages) => {
      freed.push([pfn, pages]);
      calls.push(`iova ${pfn}`);
    },
    freePgtablePages: (pfns) => {
      pgtables.push([...pfns]);
      calls.push(`pgtable ${pfns.join(",")}`);
    },
    ...options,
  });
  return { clock, fq, calls, freed, pgtables, flushes: () => flushes };
}

describe("FlushQueue", () => {
  it("frees an entry only after a flush, when the 10 ms timer fires", () => {
    const h = harness();
    h.fq.queueIova(0x1000, 4, [77, 78]);
    expect(h.fq.fqTimerOn).toBe(true);
    expect(h.fq.pendingCount).toBe(1);
    expect(h.fq.isPending(0x1003)).toBe(true);
    expect(h.fq.isPending(0x1004)).toBe(false);
    h.clock.advance(10 * NSEC_PER_MSEC - 1);
    expect(h.freed).toEqual([]);
    expect(h.flushes()).toBe(0);
    h.clock.advance(1);
    expect(h.calls).toEqual(["flush", "pgtable 77,78", "iova 4096"]);
    expect(h.freed).toEqual([[0x1000, 4]]);
    expect(h.fq.pendingCount).toBe(0);
    expect(h.fq.fqTimerOn).toBe(false);
    const s = h.fq.stats();
    expect([s.flushStartCnt, s.flushFinishCnt, s.flushesTimeout, s.flushesFull]).toEqual([1, 1, 1, 0]);
    expect(s.maxStaleNs).toBe(10 * NSEC_PER_MSEC);
  });

  it("arms the timer once for a burst; later entries wait less", () => {
    const h = harness();
    h.fq.queueIova(1, 1);
    h.clock.advance(4 * NSEC_PER_MSEC);
    h.fq.queueIova(2, 1);
    expect(h.fq.oldestQueuedNs()).toBe(0);
    expect(h.clock.pending).toBe(1);
    h.clock.advance(6 * NSEC_PER_MSEC);
    expect(h.freed.map((f) => f[0])).toEqual([1, 2]);
    const s = h.fq.stats();
    expect(s.totalStaleNs).toBe(16 * NSEC_PER_MSEC);
    expect(s.maxStaleNs).toBe(10 * NSEC_PER_MSEC);
    // The next entry re-arms it relative to its own queue time.
    h.clock.advance(3 * NSEC_PER_MSEC);
    h.fq.queueIova(3, 1);
    h.clock.advance(9 * NSEC_PER_MSEC);
    expect(h.fq.pendingCount).toBe(1);
    h.clock.advance(1 * NSEC_PER_MSEC);
    expect(h.fq.pendingCount).toBe(0);
    expect(h.flushes()).toBe(2);
  });

  it("flushes immediately when the ring is full (it holds fq_size - 1 entries)", () => {
    const h = harness();
    for (let i = 0; i < IOVA_DEFAULT_FQ_SIZE - 1; i++) h.fq.queueIova(i + 1, 1);
    expect(h.flushes()).toBe(0);
    expect(h.fq.pendingCount).toBe(IOVA_DEFAULT_FQ_SIZE - 1);
    h.fq.queueIova(1000, 1);
    expect(h.flushes()).toBe(1);
    expect(h.freed.length).toBe(IOVA_DEFAULT_FQ_SIZE - 1);
    expect(h.fq.pending().map((e) => e.iovaPfn)).toEqual([1000]);
    expect(h.fq.stats().flushesFull).toBe(1);
    // The entry queued after the flush has counter 1 and waits for the next one.
    expect(h.fq.pending()[0]!.counter).toBe(1);
    h.clock.advance(10 * NSEC_PER_MSEC);
    expect(h.freed.length).toBe(IOVA_DEFAULT_FQ_SIZE);
  });

  it("does not free an entry queued while a flush is running (start/finish counters)", () => {
    const clock = new SimClock();
    let fq!: FlushQueue;
    let inner = false;
    const freed: number[] = [];
    fq = new FlushQueue({
      clock,
      numCpus: 2,
      flushIotlbAll: () => {
        // Another CPU unmaps during the invalidation: its IOVA is not covered by this flush.
        if (inner) return;
        inner = true;
        const cpu = fq.cpu;
        fq.cpu = 1;
        fq.queueIova(500, 1);
        fq.cpu = cpu;
      },
      freeIova: (pfn) => freed.push(pfn),
      freePgtablePages: () => {},
    });
    fq.queueIova(100, 1);
    clock.advance(10 * NSEC_PER_MSEC);
    expect(freed).toEqual([100]);
    const e = fq.pending();
    expect(e.map((x) => [x.ring, x.iovaPfn, x.counter])).toEqual([[1, 500, 1]]);
    expect(fq.fqFlushStartCnt).toBe(1);
    expect(fq.fqFlushFinishCnt).toBe(1);
    // Its own timer (armed by the nested queue) covers it.
    clock.advance(10 * NSEC_PER_MSEC);
    expect(freed).toEqual([100, 500]);
  });

  it("keeps per-CPU rings; a full-ring flush on one CPU lets the other free lazily at its next queue", () => {
    const h = harness({ numCpus: 2, fqSize: 8 });
    h.fq.cpu = 1;
    h.fq.queueIova(900, 1);
    h.fq.cpu = 0;
    for (let i = 0; i < 8; i++) h.fq.queueIova(i + 1, 1);
    expect(h.flushes()).toBe(1);
    expect(h.fq.stats().pendingPerRing).toEqual([1, 1]);
    expect(h.freed.map((f) => f[0])).not.toContain(900);
    h.fq.cpu = 1;
    h.fq.queueIova(901, 1);
    expect(h.freed.map((f) => f[0])).toContain(900);
    expect(h.fq.stats().pendingPerRing).toEqual([1, 1]);
  });

  it("has a single-queue variant of 32768 entries and a 1000 ms timeout", () => {
    const h = harness({ numCpus: 4, queueType: IOMMU_DMA_OPTS_SINGLE_QUEUE });
    expect(h.fq.fqSize).toBe(IOVA_SINGLE_FQ_SIZE);
    expect(h.fq.fqTimeoutMs).toBe(IOVA_SINGLE_FQ_TIMEOUT);
    for (let cpu = 0; cpu < 4; cpu++) {
      h.fq.cpu = cpu;
      h.fq.queueIova(cpu + 1, 1);
    }
    expect(h.fq.stats().pendingPerRing).toEqual([4]);
    h.clock.advance(999 * NSEC_PER_MSEC);
    expect(h.freed).toEqual([]);
    h.clock.advance(1 * NSEC_PER_MSEC);
    expect(h.freed.length).toBe(4);
  });

  it("destroy cancels the timer and frees queued page-table pages but not the IOVAs", () => {
    const h = harness();
    h.fq.queueIova(5, 1, [9]);
    h.fq.queueIova(6, 1, []);
    h.fq.destroy();
    expect(h.pgtables).toEqual([[9]]);
    expect(h.freed).toEqual([]);
    expect(h.clock.pending).toBe(0);
    expect(h.fq.pendingCount).toBe(0);
    expect(() => h.fq.queueIova(7, 1)).toThrow(/freed flush queue/);
  });

  it("rejects a ring size that is not a power of 2", () => {
    let err: unknown;
    try {
      harness({ fqSize: 100 });
    } catch (e) {
      err = e;
    }
    expect(isKernelError(err, "EINVAL")).toBe(true);
  });

  it("returns IOVAs to an IovaDomain's rcache after the flush", () => {
    const clock = new SimClock();
    const iovad = initIovaDomain(4096, 1, { clock });
    const fq = new FlushQueue({
      clock,
      flushIotlbAll: () => {},
      freeIova: (pfn, pages) => iovad.freeIovaFast(pfn, pages),
      freePgtablePages: () => {},
    });
    const pfn = iovad.allocIovaFast(2, 0xfffff, true);
    fq.queueIova(pfn, 2);
    // Still allocated while queued: a new allocation must not reuse it.
    expect(iovad.allocIovaFast(2, 0xfffff, true)).not.toBe(pfn);
    clock.advance(10 * NSEC_PER_MSEC);
    expect(iovad.stats().cachedPfns).toBe(1);
    expect(iovad.allocIovaFast(2, 0xfffff, true)).toBe(pfn);
  });

  it("property: every queued entry is freed exactly once, only after a flush that started after it", () => {
    type Op = { k: "q"; cpu: number } | { k: "t"; ms: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ k: fc.constant("q" as const), cpu: fc.integer({ min: 0, max: 2 }) }),
      fc.record({ k: fc.constant("t" as const), ms: fc.integer({ min: 1, max: 12 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { minLength: 20, maxLength: 300, size: "max" }), (ops) => {
        const clock = new SimClock();
        let flushes = 0;
        const queuedAtFlush = new Map<number, number>();
        const freedAt = new Map<number, number>();
        const fq = new FlushQueue({
          clock,
          numCpus: 3,
          fqSize: 16,
          flushIotlbAll: () => {
            flushes++;
          },
          freeIova: (pfn) => {
            expect(freedAt.has(pfn)).toBe(false);
            freedAt.set(pfn, flushes);
          },
          freePgtablePages: () => {},
        });
        let next = 1;
        for (const o of ops) {
          if (o.k === "q") {
            fq.cpu = o.cpu;
            queuedAtFlush.set(next, flushes);
            fq.queueIova(next++, 1);
          } else {
            clock.advance(o.ms * NSEC_PER_MSEC);
          }
        }
        clock.runUntilIdle();
        expect(fq.pendingCount).toBe(0);
        expect(freedAt.size).toBe(next - 1);
        for (const [pfn, f] of freedAt) expect(f).toBeGreaterThan(queuedAtFlush.get(pfn)!);
        expect(fq.stats().maxStaleNs).toBeLessThanOrEqual(10 * NSEC_PER_MSEC);
      }),
      { numRuns: 100 },
    );
  });
});
