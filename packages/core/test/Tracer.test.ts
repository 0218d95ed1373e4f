import { describe, expect, it } from "vitest";
import { ChromeTraceWriter, defineTracepoint, hex, SimClock, TraceRing, Tracer } from "../src/index.js";

const DMA_MAP_PHYS = defineTracepoint<{ dev: string; phys: number; dma: number; size: number }>(
  "dma:dma_map_phys",
  (f) => `${f.dev} phys_addr=${hex(f.phys)} dma_addr=${hex(f.dma)} size=${f.size}`,
);
const WORK = defineTracepoint<{ job: number }>("work");

function machine() {
  const clock = new SimClock();
  const tracer = new Tracer({ now: () => clock.now() });
  return { clock, tracer };
}

describe("Tracer", () => {
  it("splits system:name", () => {
    expect(DMA_MAP_PHYS.system).toBe("dma");
    expect(DMA_MAP_PHYS.name).toBe("dma_map_phys");
    expect(WORK.system).toBe("dmakit");
  });

  it("is disabled and drops events with no sink", () => {
    const { tracer } = machine();
    expect(tracer.enabled).toBe(false);
    let built = 0;
    const fields = () => {
      built++;
      return { job: 1 };
    };
    if (tracer.enabled) tracer.emit(WORK, fields());
    expect(built).toBe(0);
    const ring = new TraceRing();
    const detach = tracer.attach(ring);
    expect(tracer.enabled).toBe(true);
    if (tracer.enabled) tracer.emit(WORK, fields());
    expect(built).toBe(1);
    detach();
    expect(tracer.enabled).toBe(false);
    tracer.emit(WORK, { job: 2 });
    expect(ring.size).toBe(1);
    expect(tracer.detach(ring)).toBe(false);
  });

  it("stamps events with the simulated clock and the printk text", () => {
    const { clock, tracer } = machine();
    const ring = new TraceRing();
    tracer.attach(ring);
    clock.advance(1500);
    tracer.emit(DMA_MAP_PHYS, { dev: "cam0", phys: 0x8000_0000, dma: 0x1000, size: 4096 }, "cam0");
    clock.advance(2_000_000_500);
    tracer.emit(WORK, { job: 7 });
    const [a, b] = ring.events();
    expect(a?.tsNs).toBe(1500);
    expect(a?.lane).toBe("cam0");
    expect(a?.text).toBe("cam0 phys_addr=0x80000000 dma_addr=0x1000 size=4096");
    expect(b?.tsNs).toBe(2_000_002_000);
    expect(ring.find({ name: "dma:dma_map_phys" }).length).toBe(1);
    expect(ring.find({ name: "dma_map_phys", lane: "gpu0" }).length).toBe(0);
    expect(ring.find({ where: (e) => e.fields.job === 7 }).length).toBe(1);
    expect(ring.format().split("\n")).toEqual([
      "cam0 [0.000001] dma:dma_map_phys: cam0 phys_addr=0x80000000 dma_addr=0x1000 size=4096",
      'kernel [2.000002] dmakit:work: {"job":7}',
    ]);
  });

  it("ring keeps the newest events and counts drops", () => {
    const { tracer } = machine();
    const ring = new TraceRing({ capacity: 3 });
    const evens = new TraceRing({ filter: (e) => (e.fields.job as number) % 2 === 0 });
    tracer.attach(ring);
    tracer.attach(evens);
    for (let i = 0; i < 5; i++) tracer.emit(WORK, { job: i });
    expect(ring.events().map((e) => e.fields.job)).toEqual([2, 3, 4]);
    expect(ring.dropped).toBe(2);
    expect(evens.events().map((e) => e.fields.job)).toEqual([0, 2, 4]);
    ring.clear();
    expect(ring.size).toBe(0);
    tracer.emit(WORK, { job: 9 });
    expect(ring.events().map((e) => e.fields.job)).toEqual([9]);
  });
});

describe("ChromeTraceWriter", () => {
  it("writes the traceEvents format with µs timestamps and named lanes", () => {
    const { clock, tracer } = machine();
    const w = new ChromeTraceWriter({ pid: 7, processName: "soc" });
    tracer.attach(w);
    clock.advance(2500);
    tracer.emit(WORK, { job: 1 }, "gpu0");
    tracer.begin(WORK, { job: 2 }, "cam0");
    clock.advance(1000);
    tracer.end(WORK, { job: 2 }, "cam0");
    tracer.complete(WORK, 100, 3000, { job: 3 }, "gpu0");
    const json = JSON.parse(w.toString()) as ReturnType<ChromeTraceWriter["toJSON"]>;
    const ev = json.traceEvents;
    expect(ev.slice(0, 3)).toEqual([
      { name: "process_name", ph: "M", ts: 0, pid: 7, tid: 0, args: { name: "soc" } },
      { name: "thread_name", ph: "M", ts: 0, pid: 7, tid: 1, args: { name: "gpu0" } },
      { name: "thread_name", ph: "M", ts: 0, pid: 7, tid: 2, args: { name: "cam0" } },
    ]);
    expect(ev[3]).toEqual({
      name: "work",
      cat: "dmakit",
      ph: "i",
      ts: 2.5,
      pid: 7,
      tid: 1,
      s: "t",
      args: { job: 1 },
    });
    expect(ev[4]?.ph).toBe("B");
    expect(ev[4]?.tid).toBe(2);
    expect(ev[5]).toMatchObject({ ph: "E", ts: 3.5, tid: 2 });
    expect(ev[6]).toMatchObject({ ph: "X", ts: 0.1, dur: 3, tid: 1 });
    expect(w.size).toBe(4);
  });

  it("is deterministic", () => {
    const run = () => {
      const { clock, tracer } = machine();
      const w = new ChromeTraceWriter();
      tracer.attach(w);
      for (let i = 0; i < 10; i++) {
        clock.advance(i * 37);
        tracer.emit(DMA_MAP_PHYS, { dev: `d${i % 3}`, phys: i * 4096, dma: i, size: 4096 }, `d${i % 3}`);
      }
      return w.toString();
    };
    const out = run();
    expect(run()).toBe(out);
    // And the text is the trace of those ten events: times in µs (37·i(i+1)/2 ns), lanes as threads.
    const events = (
      JSON.parse(out) as { traceEvents: { name: string; ts: number; tid: number }[] }
    ).traceEvents.filter((e) => e.name === "dma_map_phys");
    expect(events.map((e) => e.ts)).toEqual(
      Array.from({ length: 10 }, (_, i) => (37 * i * (i + 1)) / 2 / 1000),
    );
    expect(events.map((e) => e.tid)).toEqual([1, 2, 3, 1, 2, 3, 1, 2, 3, 1]);
  });
});
