import type { TraceEvent, TraceSink } from "./Tracer.js";

/**
 * A bounded in-memory trace sink: keeps the newest `capacity` events (oldest dropped first, as the
 * ftrace ring buffer in overwrite mode) and lets tests query them.
 * @see kernel/trace/ring_buffer.c (overwrite mode); the model stores event objects, not binary records.
 */
export class TraceRing implements TraceSink {
  readonly capacity: number;
  private buf: (TraceEvent | undefined)[];
  private head = 0;
  private count = 0;
  private droppedEvents = 0;
  private readonly filter: ((e: TraceEvent) => boolean) | undefined;

  /** @param options.filter keep only events it accepts (like writing to `set_event`). */
  constructor(options: { capacity?: number; filter?: (e: TraceEvent) => boolean } = {}) {
    this.capacity = Math.max(1, options.capacity ?? 65_536);
    this.buf = new Array(this.capacity);
    this.filter = options.filter;
  }

  write(e: TraceEvent): void {
    if (this.filter && !this.filter(e)) return;
    this.buf[(this.head + this.count) % this.capacity] = e;
    if (this.count < this.capacity) this.count++;
    else {
      this.head = (this.head + 1) % this.capacity;
      this.droppedEvents++;
    }
  }

  /** Events held, oldest first. */
  events(): TraceEvent[] {
    const out: TraceEvent[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.buf[(this.head + i) % this.capacity] as TraceEvent);
    return out;
  }

  /** Events matching a name (`"dma_map_phys"` or `"dma:dma_map_phys"`), a lane and/or a predicate. */
  find(filter: { name?: string; lane?: string; where?: (e: TraceEvent) => boolean } = {}): TraceEvent[] {
    return this.events().filter(
      (e) =>
        (filter.name === undefined || filter.name === e.name || filter.name === `${e.system}:${e.name}`) &&
        (filter.lane === undefined || filter.lane === e.lane) &&
        (filter.where === undefined || filter.where(e)),
    );
  }

  /** Number of events held. */
  get size(): number {
    return this.count;
  }

  /** Events overwritten because the ring was full. */
  get dropped(): number {
    return this.droppedEvents;
  }

  /** Empties the ring (keeps the dropped count). */
  clear(): void {
    this.buf = new Array(this.capacity);
    this.head = 0;
    this.count = 0;
  }

  /** The ring as `trace` file text: `lane [ts] system:name: text`. */
  format(): string {
    return this.events()
      .map((e) => {
        const secs = `${Math.floor(e.tsNs / 1e9)}.${String(Math.floor((e.tsNs % 1e9) / 1e3)).padStart(6, "0")}`;
        const body = e.text ?? JSON.stringify(e.fields);
        return `${e.lane} [${secs}] ${e.system}:${e.name}: ${body}`;
      })
      .join("\n");
  }
}
