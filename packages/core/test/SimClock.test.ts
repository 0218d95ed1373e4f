import { describe, expect, it } from "vitest";
import { isKernelError, SimClock } from "../src/index.js";

describe("SimClock", () => {
  it("runs callbacks by due time, then insertion order", () => {
    const c = new SimClock();
    const order: string[] = [];
    c.schedule(30, () => order.push("c30"));
    c.schedule(10, () => order.push("a10"));
    c.schedule(10, () => order.push("b10"));
    c.schedule(0, () => order.push("z0"));
    c.schedule(20, () => order.push("x20"));
    for (let i = 0; i < 5; i++) c.schedule(15, () => order.push(`m${i}`));
    expect(c.pending).toBe(10);
    c.runUntilIdle();
    expect(order).toEqual(["z0", "a10", "b10", "m0", "m1", "m2", "m3", "m4", "x20", "c30"]);
    expect(c.now()).toBe(30);
    expect(c.pending).toBe(0);
  });

  it("callbacks see their due time", () => {
    const c = new SimClock();
    const seen: number[] = [];
    c.schedule(5, () => seen.push(c.now()));
    c.schedule(7, () => seen.push(c.now()));
    c.advance(100);
    expect(seen).toEqual([5, 7]);
    expect(c.now()).toBe(100);
  });

  it("advance runs only what falls due and moves time", () => {
    const c = new SimClock();
    let ran = 0;
    c.schedule(10, () => ran++);
    c.schedule(11, () => ran++);
    c.advance(10);
    expect(ran).toBe(1);
    expect(c.now()).toBe(10);
    c.advance(-5);
    expect(c.now()).toBe(10);
    c.runUntil(5);
    expect(c.now()).toBe(10);
    c.advance(1);
    expect(ran).toBe(2);
  });

  it("cancel takes a callback back once", () => {
    const c = new SimClock();
    let ran = 0;
    const h = c.schedule(10, () => ran++);
    const h2 = c.schedule(20, () => ran++);
    expect(c.cancel(h)).toBe(true);
    expect(c.cancel(h)).toBe(false);
    expect(c.pending).toBe(1);
    c.runUntilIdle();
    expect(ran).toBe(1);
    expect(c.cancel(h2)).toBe(false);
  });

  it("callbacks may schedule callbacks, including at the same time", () => {
    const c = new SimClock();
    const order: string[] = [];
    c.schedule(10, () => {
      order.push("a");
      c.schedule(0, () => order.push("a-child-0"));
      c.schedule(5, () => order.push("a-child-5"));
    });
    c.schedule(10, () => order.push("b"));
    c.schedule(12, () => order.push("c"));
    c.advance(12);
    expect(order).toEqual(["a", "b", "a-child-0", "c"]);
    expect(c.runUntilIdle()).toBe(1);
    expect(order.at(-1)).toBe("a-child-5");
    expect(c.now()).toBe(15);
  });

  it("runUntilIdle stops a self-rearming timer at maxEvents", () => {
    const c = new SimClock();
    const tick = () => {
      c.schedule(1000, tick);
    };
    c.schedule(1000, tick);
    expect(c.runUntilIdle(50)).toBe(50);
    expect(c.now()).toBe(50_000);
    expect(c.pending).toBe(1);
  });

  it("rejects non-finite delays", () => {
    const c = new SimClock();
    try {
      c.schedule(Number.NaN, () => {});
      expect.unreachable();
    } catch (e) {
      expect(isKernelError(e, "EINVAL")).toBe(true);
    }
    expect(c.pending).toBe(0);
  });
});
