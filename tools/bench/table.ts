import type { BenchFigure } from "./BenchSuite.js";
import { checkTarget, type TargetVerdict } from "./target.js";

const NUMBER = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 4 });

/** A figure's value for humans: 4 significant digits with thousands separators (`12,350,000`). */
export function formatValue(value: number): string {
  return NUMBER.format(value);
}

const VERDICT_TEXT: Record<TargetVerdict, string> = {
  pass: "pass",
  fail: "FAIL",
  none: "-",
  invalid: "bad target",
};

/** Renders figures as a plain-text table: id, value, unit, target, verdict. */
export function formatTable(figures: readonly BenchFigure[]): string {
  const header = ["id", "value", "unit", "target", "result"];
  const rows = figures.map((f) => [
    f.id,
    formatValue(f.value),
    f.unit,
    f.target ?? "",
    VERDICT_TEXT[checkTarget(f.value, f.target)],
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, c) => (c === 1 ? cell.padStart(widths[c] ?? 0) : cell.padEnd(widths[c] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}
