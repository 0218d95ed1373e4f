import type { BenchFigure, BenchUnit } from "./BenchSuite.js";

/** The shape of `bench/results.json`. */
export interface BenchResults {
  results: BenchFigure[];
}

const UNITS: ReadonlySet<string> = new Set<BenchUnit>([
  "ops/s",
  "pages/s",
  "entries/s",
  "GB/s",
  "ns/op",
  "ms",
  "bytes/page",
  "bytes/entry",
  "bytes",
]);

const ID_RE = /^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)+$/i;

/**
 * Problems with the figures one suite returned (empty when fine): ids must be dotted and stable
 * (`pkg.area.case`), unique, values finite numbers, units from the `BenchUnit` list.
 */
export function validateFigures(figures: readonly BenchFigure[], source: string): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  figures.forEach((f, i) => {
    const where = `${source}: figure ${i}${typeof f?.id === "string" ? ` (${f.id})` : ""}`;
    if (typeof f !== "object" || f === null) {
      problems.push(`${where}: not an object`);
      return;
    }
    if (typeof f.id !== "string" || !ID_RE.test(f.id))
      problems.push(`${where}: id must look like "pkg.area.case"`);
    else if (seen.has(f.id)) problems.push(`${where}: duplicate id`);
    else seen.add(f.id);
    if (typeof f.value !== "number" || !Number.isFinite(f.value))
      problems.push(`${where}: value must be a finite number, got ${String(f.value)}`);
    if (!UNITS.has(f.unit)) problems.push(`${where}: unknown unit ${JSON.stringify(f.unit)}`);
    if (f.target !== undefined && typeof f.target !== "string")
      problems.push(`${where}: target must be a string`);
  });
  return problems;
}

/**
 * Merges fresh figures into existing ones: a fresh figure replaces the existing figure with the same
 * id, every other existing figure is kept. The result is sorted by id so the file diffs cleanly.
 */
export function mergeFigures(existing: readonly BenchFigure[], fresh: readonly BenchFigure[]): BenchFigure[] {
  const byId = new Map<string, BenchFigure>();
  for (const f of existing) byId.set(f.id, f);
  for (const f of fresh) byId.set(f.id, f);
  return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Keeps only the JSON fields of the contract, in a fixed order (`id, value, unit, target?, note?`). */
export function normalizeFigure(f: BenchFigure): BenchFigure {
  const out: BenchFigure = { id: f.id, value: f.value, unit: f.unit };
  if (f.target !== undefined) out.target = f.target;
  if (f.note !== undefined) out.note = f.note;
  return out;
}

/**
 * Parses the text of an existing results file. A missing file is `undefined` text (→ no figures);
 * a file that is not `{"results":[...]}` throws, so a merge never silently drops figures.
 */
export function parseResults(text: string | undefined, source = "bench/results.json"): BenchFigure[] {
  if (text === undefined || text.trim() === "") return [];
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new Error(`${source}: not valid JSON (${(e as Error).message})`);
  }
  const results = (data as { results?: unknown } | null)?.results;
  if (!Array.isArray(results)) throw new Error(`${source}: expected {"results": [...]}`);
  const problems = validateFigures(results as BenchFigure[], source);
  if (problems.length > 0) throw new Error(problems.join("\n"));
  return results as BenchFigure[];
}

/** Serialises figures the way `bench/results.json` is written (two-space JSON, trailing newline). */
export function formatResults(figures: readonly BenchFigure[]): string {
  const body: BenchResults = { results: figures.map(normalizeFigure) };
  return `${JSON.stringify(body, null, 2)}\n`;
}
