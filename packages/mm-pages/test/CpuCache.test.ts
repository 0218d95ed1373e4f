import { KernelLog, Prng, SZ_64M } from "@dmakit/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CpuCache, L1_CACHE_BYTES, MemoryBackedMmio, PhysMem } from "../src/index.js";

const RAM = 0x8000_0000;
const BUF = RAM + 0x10_0000;
const SPAN = 4 * 4096;

function machine(coherent: boolean, capacityLines?: number) {
  const log = new KernelLog();
  const mem = new PhysMem({ banks: [{ start: RAM, size: SZ_64M }] }, { log });
  const cache =
    capacityLines === undefined
      ? new CpuCache(mem, { coherent })
      : new CpuCache(mem, { coherent, capacityLines, prng: new Prng(7) });
  return { log, mem, cache };
}

const bytes = (n: number, v: number) => new Uint8Array(n).fill(v);

describe("CpuCache: the classic non-coherent bugs", () => {
  it("a device reading RAM under a dirty line reads stale data, and the cache says so", () => {
    const { cache, log, mem } = machine(false);
    cache.cpuWrite(BUF + 100, bytes(200, 0xab));
    const dev = new Uint8Array(200);
    expect(cache.deviceRead(BUF + 100, dev, { device: "cam0" })).toBe(1);
    expect(dev.every((b) => b === 0)).toBe(true); // RAM never saw the CPU's bytes
    const [f] = cache.findings();
    expect(f).toMatchObject({
      kind: "device-read-dirty",
      phys: BUF + 100,
      size: 200,
      line: BUF + 64,
      lines: 4, // bytes 100..299 touch the lines at 64, 128, 192 and 256
      device: "cam0",
    });
    expect(log.find({ prefix: "cache", message: "stale read: device cam0 read" })).toHaveLength(1);
    // Clean to PoC: now the device sees the data and nothing more is reported.
    expect(cache.cleanRange(BUF + 100, 200)).toBe(0);
    cache.deviceRead(BUF + 100, dev, { device: "cam0" });
    expect(dev.every((b) => b === 0xab)).toBe(true);
    expect(cache.findings()).toHaveLength(1);
    const ram = new Uint8Array(200);
    mem.read(BUF + 100, ram);
    expect(ram.every((b) => b === 0xab)).toBe(true);
    expect(cache.stats()).toMatchObject({ linesCleaned: 4, bytesWrittenBack: 4 * 64, dirtyLines: 0 });
  });

  it("the CPU reading a line cached before a device wrote RAM sees stale data, and the cache says so", () => {
    const { cache } = machine(false);
    const cpu = new Uint8Array(64);
    cache.cpuRead(BUF, cpu); // line now cached (zeros)
    cache.deviceWrite(BUF, bytes(64, 0x5a), { device: "nvme0" });
    expect(cache.cpuRead(BUF, cpu)).toBe(1);
    expect(cpu.every((b) => b === 0)).toBe(true);
    expect(cache.findings()[0]).toMatchObject({
      kind: "cpu-read-stale",
      line: BUF,
      device: "nvme0",
      lines: 1,
    });
    expect(cache.lineState(BUF)).toBe("clean+stale");
    cache.invalidateRange(BUF, 64);
    expect(cache.lineState(BUF)).toBe("invalid");
    expect(cache.cpuRead(BUF, cpu)).toBe(0);
    expect(cpu.every((b) => b === 0x5a)).toBe(true);
    expect(cache.stats().linesInvalidated).toBe(1);
  });

  it("invalidate cleans+invalidates partial lines at the ends, like dcache_inval_poc", () => {
    const { cache, mem } = machine(false);
    // The CPU owns bytes 0..15 of the line; the DMA buffer starts at byte 16.
    cache.cpuWrite(BUF, bytes(16, 0x11));
    cache.cleanRange(BUF + 16, 64 - 16);
    cache.deviceWrite(BUF + 16, bytes(48, 0x22), { device: "dev" });
    cache.invalidateRange(BUF + 16, 48);
    const ram = new Uint8Array(64);
    mem.read(BUF, ram);
    expect(ram.subarray(0, 16).every((b) => b === 0x11)).toBe(true); // the CPU's bytes survived
    expect(ram.subarray(16).every((b) => b === 0x22)).toBe(true);
    expect(cache.findings()).toEqual([]);
  });

  it("a CPU write into a line the device owns is written back over the device's data (cache-line sharing)", () => {
    const { cache, mem } = machine(false);
    cache.cleanRange(BUF + 16, 48);
    cache.cpuRead(BUF, new Uint8Array(16)); // neighbouring field cached
    cache.deviceWrite(BUF + 16, bytes(48, 0x22), { device: "eth0" });
    cache.cpuWrite(BUF, bytes(4, 0x33)); // CPU updates the neighbour while DMA is in flight
    expect(cache.invalidateRange(BUF + 16, 48)).toBe(1);
    expect(cache.findings()[0]).toMatchObject({ kind: "writeback-clobber", device: "eth0", line: BUF });
    const ram = new Uint8Array(64);
    mem.read(BUF, ram);
    expect(ram[20]).toBe(0); // the device's 0x22 was overwritten by the stale cached copy
  });

  it("invalidating a dirty whole line is a lost CPU write", () => {
    const { cache } = machine(false);
    cache.cpuWrite(BUF, bytes(128, 1));
    expect(cache.invalidateRange(BUF, 128)).toBe(1);
    expect(cache.findings()[0]).toMatchObject({ kind: "invalidate-dirty", lines: 2 });
    const out = new Uint8Array(128);
    cache.cpuRead(BUF, out);
    expect(out.every((b) => b === 0)).toBe(true);
  });

  it("a coherent device snoops: sees dirty lines, and its writes reach the CPU", () => {
    const { cache } = machine(false);
    cache.cpuWrite(BUF, bytes(100, 9));
    const dev = new Uint8Array(100);
    cache.deviceRead(BUF, dev, { coherent: true });
    expect(dev.every((b) => b === 9)).toBe(true);
    cache.deviceWrite(BUF + 10, bytes(20, 4), { coherent: true });
    const cpu = new Uint8Array(100);
    cache.cpuRead(BUF, cpu);
    expect([cpu[0], cpu[10], cpu[29], cpu[30], cpu[99]]).toEqual([9, 4, 4, 9, 9]);
    expect(cache.findings()).toEqual([]);
    expect(cache.stats().snoops).toBe(1);
  });

  it("MMIO is uncached", () => {
    const { cache, mem } = machine(false);
    const bar = new MemoryBackedMmio(0x10000);
    mem.addMmioRegion({ start: 0x1_0000_0000, size: 0x10000, name: "bar", handler: bar });
    cache.cpuWrite(0x1_0000_0000, bytes(8, 7));
    const b = new Uint8Array(8);
    bar.read(0, b);
    expect(b.every((x) => x === 7)).toBe(true);
    expect(cache.stats().residentLines).toBe(0);
  });

  it("a bounded cache evicts deterministically and writes dirty lines back", () => {
    const run = () => {
      const { cache, mem } = machine(false, 128);
      cache.cpuWrite(BUF, bytes(4 * 4096, 3));
      const ram = new Uint8Array(4 * 4096);
      mem.read(BUF, ram);
      return { stats: cache.stats(), inRam: ram.reduce((n, b) => n + (b === 3 ? 1 : 0), 0) };
    };
    const a = run();
    expect(a.stats.residentLines).toBe(128);
    expect(a.stats.evictions).toBe(256 - 128);
    expect(a.inRam).toBe(128 * L1_CACHE_BYTES);
    expect(run()).toEqual(a);
  });

  it("rejects a bounded cache without a prng or below two pages", () => {
    const log = new KernelLog();
    const mem = new PhysMem({ banks: [{ start: RAM, size: SZ_64M }] }, { log });
    expect(() => new CpuCache(mem, { coherent: false, capacityLines: 64, prng: new Prng(1) })).toThrow(
      /EINVAL/,
    );
    expect(() => new CpuCache(mem, { coherent: false, capacityLines: 256 })).toThrow(/prng/);
  });
});

type Op =
  | { t: "cw"; off: number; len: number }
  | { t: "cr"; off: number; len: number }
  | { t: "dw"; off: number; len: number }
  | { t: "dr"; off: number; len: number };

const opArb: fc.Arbitrary<Op> = fc
  .tuple(
    fc.constantFrom("cw", "cr", "dw", "dr"),
    fc.integer({ min: 0, max: SPAN - 1 }),
    fc.integer({ min: 1, max: 700 }),
  )
  .map(([t, off, len]) => ({ t, off, len: Math.min(len, SPAN - off) }) as Op);

/**
 * Runs ops against the cache with the streaming-DMA protocol (clean before the device touches the
 * buffer, invalidate before the CPU looks at what the device wrote), dropping the maintenance steps
 * whose index is in `skip`. Every write stores a value unique to its op, so stale data always differs.
 */
function runOps(cache: CpuCache, ops: Op[], maintain: boolean, skip: Set<number>) {
  const ref = new Uint8Array(SPAN);
  let step = 0;
  const maint = (fn: () => void) => {
    if (maintain && !skip.has(step)) fn();
    step++;
  };
  const events: { i: number; ok: boolean; findingsBefore: number; findingsAfter: number }[] = [];
  ops.forEach((op, i) => {
    const at = BUF + op.off;
    const value = (i % 254) + 1;
    const before = cache.findings().length;
    let ok = true;
    switch (op.t) {
      case "cw":
        cache.cpuWrite(at, bytes(op.len, value));
        ref.fill(value, op.off, op.off + op.len);
        break;
      case "cr": {
        const out = new Uint8Array(op.len);
        cache.cpuRead(at, out);
        ok = out.every((b, k) => b === ref[op.off + k]);
        break;
      }
      case "dw":
        maint(() => cache.cleanRange(at, op.len));
        cache.deviceWrite(at, bytes(op.len, value), { device: "dev0" });
        ref.fill(value, op.off, op.off + op.len);
        maint(() => cache.invalidateRange(at, op.len));
        break;
      case "dr": {
        maint(() => cache.cleanRange(at, op.len));
        const out = new Uint8Array(op.len);
        cache.deviceRead(at, out, { device: "dev0" });
        ok = out.every((b, k) => b === ref[op.off + k]);
        break;
      }
    }
    events.push({ i, ok, findingsBefore: before, findingsAfter: cache.findings().length });
  });
  return { events, steps: step };
}

describe("CpuCache: property tests against a reference byte array", () => {
  it("non-coherent, correct maintenance: data always matches, no findings (unbounded and bounded)", () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), fc.boolean(), (ops, bounded) => {
        const { cache } = machine(false, bounded ? 128 : undefined);
        const { events } = runOps(cache, ops, true, new Set());
        expect(events.every((e) => e.ok)).toBe(true);
        expect(cache.findings()).toEqual([]);
      }),
      { numRuns: 150 },
    );
  });

  it("coherent platform: no maintenance at all, data always matches, no findings", () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), (ops) => {
        const { cache } = machine(true);
        const { events } = runOps(cache, ops, false, new Set());
        expect(events.every((e) => e.ok)).toBe(true);
        expect(cache.findings()).toEqual([]);
        expect(cache.stats().maintenanceOps).toBe(0);
      }),
      { numRuns: 150 },
    );
  });

  it("non-coherent, maintenance steps removed: no stale read goes unreported", () => {
    let runsWithStaleRead = 0;
    fc.assert(
      fc.property(
        fc.array(opArb, { minLength: 1, maxLength: 40, size: "max" }),
        fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 6 }),
        (ops, skipped) => {
          const { cache } = machine(false);
          const { events } = runOps(cache, ops, true, new Set(skipped));
          // The first wrong read is reported at that read or by an earlier finding (a lost write).
          const firstBad = events.find((e) => !e.ok);
          if (firstBad !== undefined) {
            runsWithStaleRead++;
            expect(firstBad.findingsAfter).toBeGreaterThan(0);
          }
        },
      ),
      { numRuns: 300 },
    );
    // The property only bites in runs where a removed step really left stale data behind.
    expect(runsWithStaleRead).toBeGreaterThanOrEqual(5);
  });

  it("removing the clean before a device read of CPU-written data is reported and the data is really stale", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: SPAN - 1 }), fc.integer({ min: 1, max: 2000 }), (off, n) => {
        const len = Math.min(n, SPAN - off);
        const { cache } = machine(false);
        const ops: Op[] = [
          { t: "cw", off, len },
          { t: "dr", off, len },
        ];
        const { events } = runOps(cache, ops, true, new Set([0]));
        expect(events[1]?.ok).toBe(false);
        expect(cache.findings().map((f) => f.kind)).toEqual(["device-read-dirty"]);
        expect(cache.findings()[0]?.line).toBe(BUF + off - ((BUF + off) % 64));
      }),
      { numRuns: 100 },
    );
  });

  it("removing the invalidate after a device write is reported at the CPU read and the data is really stale", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: SPAN - 1 }), fc.integer({ min: 1, max: 2000 }), (off, n) => {
        const len = Math.min(n, SPAN - off);
        const { cache } = machine(false);
        const ops: Op[] = [
          { t: "cr", off, len },
          { t: "dw", off, len },
          { t: "cr", off, len },
        ];
        // Steps: 0 = clean before the device write, 1 = invalidate after it.
        const { events } = runOps(cache, ops, true, new Set([1]));
        expect(events[2]?.ok).toBe(false);
        expect(cache.findings().map((f) => f.kind)).toEqual(["cpu-read-stale"]);
        expect(cache.findings()[0]?.device).toBe("dev0");
      }),
      { numRuns: 100 },
    );
  });
});
