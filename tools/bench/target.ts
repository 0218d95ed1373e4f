/** A parsed target such as `">= 5e6"`: the figure passes when `value <op> bound` holds. */
export interface BenchTarget {
  readonly op: ">=" | "<=" | ">" | "<" | "==";
  readonly bound: number;
}

const TARGET_RE = /^\s*(>=|<=|==|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)\s*$/i;

/**
 * Parses a target string from a `BenchFigure` (`">= 5e6"`, `"<= 16"`, `"> 0.5"`, `"== 0"`).
 * Returns `undefined` for a string that is not a target, so the runner can report it rather than crash.
 */
export function parseTarget(text: string): BenchTarget | undefined {
  const m = TARGET_RE.exec(text);
  if (!m) return undefined;
  const bound = Number(m[2]);
  if (!Number.isFinite(bound)) return undefined;
  return { op: m[1] as BenchTarget["op"], bound };
}

/** Verdict for one figure: `pass`/`fail` against its target, `none` without one, `invalid` for a bad target. */
export type TargetVerdict = "pass" | "fail" | "none" | "invalid";

/** Checks `value` against a target string (or none). */
export function checkTarget(value: number, target: string | undefined): TargetVerdict {
  if (target === undefined) return "none";
  const t = parseTarget(target);
  if (!t) return "invalid";
  if (!Number.isFinite(value)) return "fail";
  switch (t.op) {
    case ">=":
      return value >= t.bound ? "pass" : "fail";
    case "<=":
      return value <= t.bound ? "pass" : "fail";
    case ">":
      return value > t.bound ? "pass" : "fail";
    case "<":
      return value < t.bound ? "pass" : "fail";
    case "==":
      return value === t.bound ? "pass" : "fail";
  }
}
