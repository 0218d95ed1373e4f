import { KernelError } from "./KernelError.js";

/**
 * A scheduled callback; {@link SimClock.cancel} takes it back before it runs.
 * Model-only: stands for the `struct timer_list` / `struct hrtimer` a caller keeps.
 */
export interface TimerHandle {
  readonly id: number;
  readonly dueNs: number;
  readonly label: string;
}

interface TimerEntry extends TimerHandle {
  fn: () => void;
  cancelled: boolean;
}

/**
 * The machine's clock and event scheduler. Time is simulated nanoseconds and moves only when the
 * model says so (`advance`, `runUntilIdle`); nothing reads the wall clock. Events due at the same
 * time run in the order they were scheduled, so runs are deterministic.
 *
 * Kernel counterparts: `ktime_get_ns()` for {@link now}, `timer_setup`/`mod_timer`/`hrtimer_start`
 * for {@link schedule}, `timer_delete` for {@link cancel}.
 * Model-only: simulated time and a deterministic event queue.
 */
export class SimClock {
  private nowNs = 0;
  private seq = 0;
  private readonly heap: TimerEntry[] = [];

  /** `ktime_get_ns()`: nanoseconds since boot. */
  now(): number {
    return this.nowNs;
  }

  /** Number of callbacks scheduled and not yet run or cancelled. */
  get pending(): number {
    let n = 0;
    for (const e of this.heap) if (!e.cancelled) n++;
    return n;
  }

  /**
   * Runs `fn` when the clock reaches now + `delayNs` (delays below 0 count as 0).
   * Throws `EINVAL` for a NaN or infinite delay, which would corrupt the queue order.
   */
  schedule(delayNs: number, fn: () => void, label = "timer"): TimerHandle {
    if (!Number.isFinite(delayNs))
      throw new KernelError("EINVAL", `clock: ${label}: delay ${delayNs} ns is not finite`);
    const entry: TimerEntry = {
      id: ++this.seq,
      dueNs: this.nowNs + Math.max(0, delayNs),
      label,
      fn,
      cancelled: false,
    };
    this.push(entry);
    return entry;
  }

  /** Cancels a scheduled callback; returns true if it had not run yet (like `timer_delete`). */
  cancel(handle: TimerHandle): boolean {
    const e = handle as TimerEntry;
    if (e.cancelled || !this.heap.includes(e)) return false;
    e.cancelled = true;
    return true;
  }

  /** Moves time forward by `ns` (time spent doing work), running every callback that falls due. */
  advance(ns: number): void {
    this.runUntil(this.nowNs + Math.max(0, ns));
  }

  /** Runs callbacks in time order until the clock reaches `tNs` (callbacks may schedule more). */
  runUntil(tNs: number): void {
    for (;;) {
      const top = this.heap[0];
      if (top === undefined || top.dueNs > tNs) break;
      this.pop();
      if (top.cancelled) continue;
      this.nowNs = Math.max(this.nowNs, top.dueNs);
      top.fn();
    }
    this.nowNs = Math.max(this.nowNs, tNs);
  }

  /**
   * Runs every pending callback, jumping time to each one's due time, until none is left.
   * Returns how many ran. `maxEvents` stops a self-rearming timer from running forever.
   */
  runUntilIdle(maxEvents = 1_000_000): number {
    let ran = 0;
    while (ran < maxEvents) {
      const top = this.pop();
      if (top === undefined) break;
      if (top.cancelled) continue;
      this.nowNs = Math.max(this.nowNs, top.dueNs);
      top.fn();
      ran++;
    }
    return ran;
  }

  private push(e: TimerEntry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i] as TimerEntry, h[p] as TimerEntry)) break;
      [h[i], h[p]] = [h[p] as TimerEntry, h[i] as TimerEntry];
      i = p;
    }
  }

  private pop(): TimerEntry | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (top === undefined || last === undefined) return undefined;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l] as TimerEntry, h[m] as TimerEntry)) m = l;
        if (r < h.length && before(h[r] as TimerEntry, h[m] as TimerEntry)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m] as TimerEntry, h[i] as TimerEntry];
        i = m;
      }
    }
    return top;
  }
}

function before(a: TimerEntry, b: TimerEntry): boolean {
  return a.dueNs < b.dueNs || (a.dueNs === b.dueNs && a.id < b.id);
}

/**
 * Nanoseconds per millisecond, for `msecs_to_jiffies`-style arithmetic on the simulated clock.
 * @see include/vdso/time64.h
 */
export const NSEC_PER_MSEC = 1_000_000;
/** Nanoseconds per second. @see include/vdso/time64.h */
export const NSEC_PER_SEC = 1_000_000_000;
