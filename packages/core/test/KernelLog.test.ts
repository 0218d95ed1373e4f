import { describe, expect, it } from "vitest";
import { formatRecord, KernelLog, SimClock } from "../src/index.js";

describe("KernelLog", () => {
  it("WARN records only when the condition holds and returns it", () => {
    const log = new KernelLog();
    expect(log.warn(false, "DMA-API", "never")).toBe(false);
    expect(log.records().length).toBe(0);
    expect(log.warn(true, "DMA-API", "device driver frees DMA memory with wrong function")).toBe(true);
    expect(log.warnCount).toBe(1);
    expect(log.records()[0]).toMatchObject({ level: "warning", warn: true, prefix: "DMA-API" });
  });

  it("WARN_ONCE records once per key, still returns the condition", () => {
    const log = new KernelLog();
    expect(log.warnOnce(true, "k1", "p", "first")).toBe(true);
    expect(log.warnOnce(true, "k1", "p", "second")).toBe(true);
    expect(log.warnOnce(false, "k2", "p", "not yet")).toBe(false);
    expect(log.warnOnce(true, "k2", "p", "k2 now")).toBe(true);
    expect(log.find({ warn: true }).map((r) => r.message)).toEqual(["first", "k2 now"]);
    // Clearing dmesg does not re-arm WARN_ONCE.
    log.clear();
    log.warnOnce(true, "k1", "p", "again");
    expect(log.records().length).toBe(0);
  });

  it("find filters by level, prefix, substring, regexp and warn", () => {
    const log = new KernelLog();
    log.info("iommu", "Adding to iommu group 3");
    log.err("cam0", "timeout waiting for frame");
    log.warning("cam0", "plain warning");
    log.warn(true, "cam0", "WARN here");
    expect(log.find({ prefix: "cam0" }).length).toBe(3);
    expect(log.find({ level: "err" }).map((r) => r.message)).toEqual(["timeout waiting for frame"]);
    expect(log.find({ message: "group" }).length).toBe(1);
    expect(log.find({ message: /^WARN/ }).length).toBe(1);
    expect(log.find({ level: "warning", warn: false }).map((r) => r.message)).toEqual(["plain warning"]);
    expect(log.find().length).toBe(4);
  });

  it("dmesg format: [%5lu.%06lu] with truncated microseconds", () => {
    const clock = new SimClock();
    const log = new KernelLog({ now: () => clock.now() });
    clock.advance(123_456);
    log.info("iommu", "hello");
    clock.advance(999_999_999 - 123_456);
    log.warn(true, "DMA-API", "bad");
    clock.advance(123_456_000_000);
    log.info("", "no prefix");
    expect(log.dmesg().split("\n")).toEqual([
      "[    0.000123] iommu: hello",
      "[    0.999999] WARNING: DMA-API: bad",
      "[  124.455999] no prefix",
    ]);
    expect(
      formatRecord({ timeNs: 100_000 * 1e9, level: "info", prefix: "x", message: "y", warn: false }),
    ).toBe("[100000.000000] x: y");
  });

  it("drops the oldest records beyond capacity and counts them", () => {
    const log = new KernelLog({ capacity: 3 });
    for (let i = 0; i < 5; i++) log.info("t", `m${i}`);
    expect(log.records().map((r) => r.message)).toEqual(["m2", "m3", "m4"]);
    expect(log.droppedCount).toBe(2);
    const none = new KernelLog({ capacity: 0 });
    none.info("t", "x");
    expect(none.records().length).toBe(0);
    expect(none.droppedCount).toBe(1);
  });
});
