import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { BenchFigure } from "../../../tools/bench/BenchSuite.js";
import { discoverSuites, filterName } from "../../../tools/bench/discover.js";
import { formatResults, mergeFigures, parseResults, validateFigures } from "../../../tools/bench/results.js";
import { formatTable } from "../../../tools/bench/table.js";
import { checkTarget, parseTarget } from "../../../tools/bench/target.js";

describe("parseTarget", () => {
  it("reads operator and bound, with exponents and spacing", () => {
    expect(parseTarget(">= 5e6")).toEqual({ op: ">=", bound: 5_000_000 });
    expect(parseTarget("<=16")).toEqual({ op: "<=", bound: 16 });
    expect(parseTarget("  > 0.5 ")).toEqual({ op: ">", bound: 0.5 });
    expect(parseTarget("< 1.5E-3")).toEqual({ op: "<", bound: 0.0015 });
    expect(parseTarget("== 0")).toEqual({ op: "==", bound: 0 });
  });

  it("rejects what is not a target", () => {
    for (const bad of ["5e6", ">= ", "=> 5", ">= 5 ops/s", "", ">= abc", "!= 3"]) {
      expect(parseTarget(bad), bad).toBeUndefined();
    }
  });
});

describe("checkTarget", () => {
  it("is inclusive for >= and <=, strict for > and <", () => {
    expect(checkTarget(5e6, ">= 5e6")).toBe("pass");
    expect(checkTarget(4_999_999, ">= 5e6")).toBe("fail");
    expect(checkTarget(16, "<= 16")).toBe("pass");
    expect(checkTarget(16.01, "<= 16")).toBe("fail");
    expect(checkTarget(16, "< 16")).toBe("fail");
    expect(checkTarget(16, "> 16")).toBe("fail");
    expect(checkTarget(17, "> 16")).toBe("pass");
  });

  it("distinguishes no target from a malformed one", () => {
    expect(checkTarget(1, undefined)).toBe("none");
    expect(checkTarget(1, "at least 5")).toBe("invalid");
    expect(checkTarget(Number.NaN, ">= 0")).toBe("fail");
  });
});

const fig = (id: string, value: number, target?: string): BenchFigure =>
  target === undefined ? { id, value, unit: "ops/s" } : { id, value, unit: "ops/s", target };

describe("mergeFigures", () => {
  it("replaces same ids, keeps other packages' figures and sorts by id", () => {
    const existing = [
      fig("phyr.append", 1),
      fig("mm-pages.buddy.alloc-free.order0", 2),
      fig("mm-pages.cma", 3),
    ];
    const fresh = [fig("mm-pages.buddy.alloc-free.order0", 20, ">= 5e6"), fig("mm-pages.new", 4)];
    expect(mergeFigures(existing, fresh)).toEqual([
      fig("mm-pages.buddy.alloc-free.order0", 20, ">= 5e6"),
      fig("mm-pages.cma", 3),
      fig("mm-pages.new", 4),
      fig("phyr.append", 1),
    ]);
  });

  it("does not modify its inputs", () => {
    const existing = [fig("b.x", 1), fig("a.x", 2)];
    mergeFigures(existing, [fig("b.x", 9)]);
    expect(existing).toEqual([fig("b.x", 1), fig("a.x", 2)]);
  });
});

describe("results file", () => {
  it("round-trips through formatResults / parseResults with fields in contract order", () => {
    const figures: BenchFigure[] = [
      { note: "1024 pages", target: "<= 16", unit: "bytes/page", value: 8, id: "a.b" },
    ];
    const text = formatResults(figures);
    expect(text).toBe(
      '{\n  "results": [\n    {\n      "id": "a.b",\n      "value": 8,\n      "unit": "bytes/page",\n' +
        '      "target": "<= 16",\n      "note": "1024 pages"\n    }\n  ]\n}\n',
    );
    expect(parseResults(text)).toEqual(figures);
  });

  it("treats a missing file as empty and a malformed one as an error", () => {
    expect(parseResults(undefined)).toEqual([]);
    expect(() => parseResults("{")).toThrow(/not valid JSON/);
    expect(() => parseResults('{"figures":[]}')).toThrow(/expected \{"results"/);
  });

  it("validateFigures names the figure and the problem", () => {
    const bad = [
      fig("nodots", 1),
      fig("a.b", Number.POSITIVE_INFINITY),
      { id: "a.c", value: 1, unit: "furlongs" } as unknown as BenchFigure,
      fig("a.d", 1),
      fig("a.d", 2),
    ];
    expect(validateFigures(bad, "x.bench.ts")).toEqual([
      'x.bench.ts: figure 0 (nodots): id must look like "pkg.area.case"',
      "x.bench.ts: figure 1 (a.b): value must be a finite number, got Infinity",
      'x.bench.ts: figure 2 (a.c): unknown unit "furlongs"',
      "x.bench.ts: figure 4 (a.d): duplicate id",
    ]);
    expect(validateFigures([fig("a.b", 1, ">= 0")], "ok")).toEqual([]);
  });
});

describe("formatTable", () => {
  it("shows value, target and verdict per figure", () => {
    const lines = formatTable([
      fig("a.fast", 12_345_678, ">= 5e6"),
      fig("a.slow", 3, ">= 5e6"),
      fig("a.free", 1.5),
    ])
      .split("\n")
      .map((l) => l.split(/\s{2,}/));
    expect(lines[0]).toEqual(["id", "value", "unit", "target", "result"]);
    expect(lines[2]).toEqual(["a.fast", "12,350,000", "ops/s", ">= 5e6", "pass"]);
    expect(lines[3]).toEqual(["a.slow", "3", "ops/s", ">= 5e6", "FAIL"]);
    expect(lines[4]).toEqual(["a.free", "1.5", "ops/s", "-"]);
  });
});

describe("discoverSuites / filterName", () => {
  it("finds packages/*/bench and apps/*/bench *.bench.ts files in path order", () => {
    const root = mkdtempSync(join(tmpdir(), "dmakit-bench-"));
    for (const [dir, file] of [
      ["packages/zeta/bench", "b.bench.ts"],
      ["packages/zeta/bench", "a.bench.ts"],
      ["packages/alpha/bench", "x.bench.ts"],
      ["packages/alpha/bench", "helper.ts"],
      ["packages/alpha/test", "y.bench.ts"],
      ["apps/dmakit/bench", "boot.bench.ts"],
    ] as const) {
      mkdirSync(join(root, dir), { recursive: true });
      writeFileSync(join(root, dir, file), "");
    }
    expect(discoverSuites(root).map((s) => [s.folder, s.rel])).toEqual([
      ["alpha", join("packages", "alpha", "bench", "x.bench.ts")],
      ["zeta", join("packages", "zeta", "bench", "a.bench.ts")],
      ["zeta", join("packages", "zeta", "bench", "b.bench.ts")],
      ["dmakit", join("apps", "dmakit", "bench", "boot.bench.ts")],
    ]);
  });

  it("accepts folder, scoped and path spellings of a package", () => {
    expect(filterName("mm-pages")).toBe("mm-pages");
    expect(filterName("@dmakit/mm-pages")).toBe("mm-pages");
    expect(filterName("packages/mm-pages/")).toBe("mm-pages");
    expect(filterName("./apps/dmakit")).toBe("dmakit");
  });
});
