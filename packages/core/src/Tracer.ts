/**
 * A value a tracepoint field may hold (what `TP_STRUCT__entry` fields become in the model).
 * Model-only: the field types a tracepoint may carry.
 */
export type TraceValue = number | string | boolean | null;

/** The fields of one tracepoint. Model-only: the field record of a {@link Tracepoint}. */
export type TraceFields = { readonly [field: string]: TraceValue };

/**
 * A tracepoint's static description: its name and field types. Holds no state, so a module-level
 * constant is fine; the {@link Tracer} a machine owns does the recording.
 * @see include/linux/tracepoint.h DECLARE_TRACE, include/trace/events/dma.h (e.g. `dma:dma_map_phys`)
 */
export interface Tracepoint<F extends TraceFields> {
  /** Event name, e.g. `"dma_map_phys"`. */
  readonly name: string;
  /** Trace system (`TRACE_SYSTEM`), e.g. `"dma"`; the Chrome trace category. */
  readonly system: string;
  /** `TP_printk`: renders the fields as one line of text. */
  readonly printk: ((fields: F) => string) | undefined;
  /** Phantom field carrying `F`; never set. */
  readonly __fields?: F;
}

/**
 * `TRACE_EVENT(name, ...)`: declares a tracepoint with typed fields. `name` may be `"system:event"`.
 * @example
 * const DMA_MAP_PHYS = defineTracepoint<{ dev: string; phys: number; dma: number; size: number }>(
 *   "dma:dma_map_phys", (f) => `${f.dev} phys=${hex(f.phys)} dma=${hex(f.dma)} size=${f.size}`);
 * if (tracer.enabled) tracer.emit(DMA_MAP_PHYS, { dev: dev.name, phys, dma, size });
 * @see include/linux/tracepoint.h, include/trace/events/dma.h
 */
export function defineTracepoint<F extends TraceFields>(
  name: string,
  printk?: (fields: F) => string,
): Tracepoint<F> {
  const i = name.indexOf(":");
  return {
    system: i < 0 ? "dmakit" : name.slice(0, i),
    name: i < 0 ? name : name.slice(i + 1),
    printk,
  };
}

/**
 * Chrome trace-event phases the model emits: instant, complete, begin, end.
 * Model-only: Chrome trace-event phases.
 */
export type TracePhase = "i" | "X" | "B" | "E";

/**
 * One recorded event, as sinks receive it.
 * Model-only: one event as the model's sinks receive it (the kernel writes ring-buffer records).
 */
export interface TraceEvent {
  readonly name: string;
  readonly system: string;
  readonly ph: TracePhase;
  /** Simulated time in nanoseconds. */
  readonly tsNs: number;
  /** Duration in nanoseconds for `"X"` events. */
  readonly durNs?: number;
  /** Lane (Chrome thread): usually a device or CPU name; default `"kernel"`. */
  readonly lane: string;
  readonly fields: TraceFields;
  /** The `TP_printk` text, when the tracepoint has one. */
  readonly text?: string;
}

/**
 * Receives events from a {@link Tracer}.
 * Model-only: where the {@link Tracer} delivers events (ftrace has its ring buffer instead).
 */
export interface TraceSink {
  write(event: TraceEvent): void;
}

/**
 * A machine's trace bus: tracepoints are emitted into it and every attached sink receives them.
 * With no sink attached `enabled` is false and `emit` returns at once; callers check `enabled`
 * first so they do not even build the fields object (the kernel's static-key `trace_*_enabled()`).
 * @see include/linux/tracepoint.h (static keys, `trace_<event>_enabled`), kernel/trace/trace.c.
 * The model has no per-event enable files: a sink filters what it keeps.
 */
export class Tracer {
  private sinks: TraceSink[] = [];
  private readonly now: () => number;

  /** @param options.now the simulated clock, e.g. `() => clock.now()`; default always 0. */
  constructor(options: { now?: () => number } = {}) {
    this.now = options.now ?? (() => 0);
  }

  /** True when at least one sink is attached. */
  get enabled(): boolean {
    return this.sinks.length > 0;
  }

  /** Attaches a sink; returns a function that detaches it. */
  attach(sink: TraceSink): () => void {
    this.sinks = [...this.sinks, sink];
    return () => this.detach(sink);
  }

  /** Detaches a sink; returns false when it was not attached. */
  detach(sink: TraceSink): boolean {
    const n = this.sinks.length;
    this.sinks = this.sinks.filter((s) => s !== sink);
    return this.sinks.length !== n;
  }

  /** Records an instant event (`ph: "i"`) at the current simulated time. */
  emit<F extends TraceFields>(tp: Tracepoint<F>, fields: F, lane = "kernel"): void {
    if (this.sinks.length === 0) return;
    this.write(tp, "i", this.now(), undefined, lane, fields);
  }

  /** Records a complete event (`ph: "X"`) that started at `startNs` and lasted `durNs`. */
  complete<F extends TraceFields>(
    tp: Tracepoint<F>,
    startNs: number,
    durNs: number,
    fields: F,
    lane = "kernel",
  ): void {
    if (this.sinks.length === 0) return;
    this.write(tp, "X", startNs, durNs, lane, fields);
  }

  /** Opens a duration slice (`ph: "B"`) on `lane`; close it with {@link end}. */
  begin<F extends TraceFields>(tp: Tracepoint<F>, fields: F, lane = "kernel"): void {
    if (this.sinks.length === 0) return;
    this.write(tp, "B", this.now(), undefined, lane, fields);
  }

  /** Closes the innermost slice opened by {@link begin} on `lane` (`ph: "E"`). */
  end<F extends TraceFields>(tp: Tracepoint<F>, fields: F, lane = "kernel"): void {
    if (this.sinks.length === 0) return;
    this.write(tp, "E", this.now(), undefined, lane, fields);
  }

  private write<F extends TraceFields>(
    tp: Tracepoint<F>,
    ph: TracePhase,
    tsNs: number,
    durNs: number | undefined,
    lane: string,
    fields: F,
  ): void {
    const text = tp.printk?.(fields);
    const ev: TraceEvent = {
      name: tp.name,
      system: tp.system,
      ph,
      tsNs,
      lane,
      fields,
      ...(durNs !== undefined ? { durNs } : {}),
      ...(text !== undefined ? { text } : {}),
    };
    for (const s of this.sinks) s.write(ev);
  }
}
