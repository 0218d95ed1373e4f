import type { TraceEvent, TraceSink, TraceValue } from "./Tracer.js";

/**
 * One entry of the Chrome trace-event format's `traceEvents` array.
 * Model-only: the Chrome trace-event format, read by {@link ChromeTraceWriter}'s consumers.
 */
export interface ChromeTraceEvent {
  name: string;
  cat?: string;
  ph: "i" | "X" | "B" | "E" | "M";
  /** Microseconds. */
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  /** Instant-event scope: thread. */
  s?: "t";
  args?: { [k: string]: TraceValue };
}

/**
 * A trace sink that collects events in the Chrome trace-event JSON format (`{"traceEvents": [...]}`),
 * which Perfetto UI and chrome://tracing open. Timestamps are the simulated clock in microseconds;
 * each lane becomes a thread (tid in order of first appearance, named by a `thread_name` metadata
 * event), all in one process `pid`. Deterministic: the same events give the same bytes.
 *
 * Not a kernel structure: the kernel's counterpart is the ftrace text/binary output (tracefs `trace`).
 * Model-only: an output format for the simulated trace.
 */
export class ChromeTraceWriter implements TraceSink {
  readonly pid: number;
  private readonly processName: string;
  private readonly tids = new Map<string, number>();
  private readonly out: ChromeTraceEvent[] = [];

  constructor(options: { pid?: number; processName?: string } = {}) {
    this.pid = options.pid ?? 1;
    this.processName = options.processName ?? "dmakit";
  }

  write(e: TraceEvent): void {
    const tid = this.tidOf(e.lane);
    const ev: ChromeTraceEvent = {
      name: e.name,
      cat: e.system,
      ph: e.ph,
      ts: e.tsNs / 1000,
      pid: this.pid,
      tid,
    };
    if (e.ph === "X") ev.dur = (e.durNs ?? 0) / 1000;
    if (e.ph === "i") ev.s = "t";
    ev.args = e.text !== undefined ? { ...e.fields, text: e.text } : { ...e.fields };
    this.out.push(ev);
  }

  /** The `traceEvents` array: process and thread name metadata first, then events in order. */
  traceEvents(): ChromeTraceEvent[] {
    const meta: ChromeTraceEvent[] = [
      { name: "process_name", ph: "M", ts: 0, pid: this.pid, tid: 0, args: { name: this.processName } },
    ];
    for (const [lane, tid] of this.tids) {
      meta.push({ name: "thread_name", ph: "M", ts: 0, pid: this.pid, tid, args: { name: lane } });
    }
    return [...meta, ...this.out];
  }

  /** The JSON object Perfetto opens. */
  toJSON(): { traceEvents: ChromeTraceEvent[]; displayTimeUnit: "ns" } {
    return { traceEvents: this.traceEvents(), displayTimeUnit: "ns" };
  }

  /** The trace file's text. */
  toString(): string {
    return JSON.stringify(this.toJSON());
  }

  /** Number of events written (without metadata). */
  get size(): number {
    return this.out.length;
  }

  private tidOf(lane: string): number {
    let tid = this.tids.get(lane);
    if (tid === undefined) {
      tid = this.tids.size + 1;
      this.tids.set(lane, tid);
    }
    return tid;
  }
}
