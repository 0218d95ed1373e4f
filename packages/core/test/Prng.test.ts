import { describe, expect, it } from "vitest";
import { isKernelError, Prng } from "../src/index.js";

describe("Prng", () => {
  it("is deterministic per seed", () => {
    const a = new Prng(42);
    const b = new Prng(42);
    const xs = Array.from({ length: 100 }, () => a.u32());
    const ys = Array.from({ length: 100 }, () => b.u32());
    expect(xs).toEqual(ys);
    expect(xs.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff)).toBe(true);
  });

  it("different (even adjacent) seeds give different streams", () => {
    const s = [0, 1, 2, 3].map((seed) => {
      const p = new Prng(seed);
      return Array.from({ length: 8 }, () => p.u32()).join(",");
    });
    expect(new Set(s).size).toBe(4);
  });

  it("below() stays in range, including above 2^32", () => {
    const p = new Prng(7);
    for (let i = 0; i < 2000; i++) {
      const v = p.below(10);
      expect(v >= 0 && v < 10 && Number.isInteger(v)).toBe(true);
    }
    for (const n of [2 ** 32 + 1, 2 ** 40, 2 ** 53 - 1]) {
      for (let i = 0; i < 500; i++) {
        const v = p.below(n);
        expect(Number.isInteger(v) && v >= 0 && v < n).toBe(true);
      }
    }
    expect(p.below(1)).toBe(0);
    for (const bad of [0, -3, 0.5, Number.NaN]) {
      let caught: unknown;
      try {
        p.below(bad);
      } catch (e) {
        caught = e;
      }
      expect(isKernelError(caught, "EINVAL")).toBe(true);
    }
  });

  it("large ranges use the high half too", () => {
    const p = new Prng(3);
    let high = 0;
    for (let i = 0; i < 1000; i++) if (p.below(2 ** 40) >= 2 ** 39) high++;
    expect(high).toBeGreaterThan(400);
    expect(high).toBeLessThan(600);
  });

  it("passes a chi-square sanity check over 16 buckets", () => {
    const p = new Prng(12345);
    const k = 16;
    const n = 16_000;
    const counts = new Array<number>(k).fill(0);
    for (let i = 0; i < n; i++) counts[p.below(k)]!++;
    const expected = n / k;
    const chi2 = counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
    // 15 degrees of freedom: p = 0.001 at 37.7.
    expect(chi2).toBeLessThan(37.7);
    // And the low bits of u32 are not stuck.
    const bits = new Array<number>(32).fill(0);
    for (let i = 0; i < 4000; i++) {
      const v = p.u32();
      for (let b = 0; b < 32; b++) if ((v >>> b) & 1) bits[b]!++;
    }
    expect(bits.every((c) => c > 1700 && c < 2300)).toBe(true);
  });

  it("int, float, fill and shuffle", () => {
    const p = new Prng(9);
    for (let i = 0; i < 200; i++) {
      const v = p.int(-3, 3);
      expect(v >= -3 && v <= 3).toBe(true);
      const f = p.float();
      expect(f >= 0 && f < 1).toBe(true);
    }
    const buf = p.fill(new Uint8Array(37));
    expect(buf.some((x) => x !== 0)).toBe(true);
    const arr = Array.from({ length: 20 }, (_, i) => i);
    const sh = p.shuffle(arr.slice());
    expect(sh.slice().sort((a, b) => a - b)).toEqual(arr);
    expect(sh).not.toEqual(arr);
  });
});
