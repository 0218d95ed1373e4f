/**
 * `pnpm bench [--filter <pkg>]...`: runs the workspace's benchmark suites one after another, prints a
 * table of figures against their targets and writes `bench/results.json`.
 *
 * Without `--filter` every suite runs and, when all succeed, the file is rewritten with exactly the
 * fresh figures (stale ids disappear). With `--filter` (or when a suite fails) fresh figures are
 * merged into the existing file: same ids replaced, every other figure kept.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { BenchFigure } from "./BenchSuite.js";
import { discoverSuites, filterName, type SuiteFile } from "./discover.js";
import { formatResults, mergeFigures, normalizeFigure, parseResults, validateFigures } from "./results.js";
import { formatTable } from "./table.js";
import { checkTarget } from "./target.js";

const USAGE = `usage: pnpm bench [options]

  -f, --filter <pkg>  run only this package's suites (folder or @dmakit/ name; repeatable)
  -l, --list          list the suites that would run, run nothing
      --strict        exit 1 when a figure misses its target
      --out <file>    results file (default: bench/results.json)
      --root <dir>    workspace root (default: the repository holding this script)
  -h, --help          this text`;

/**
 * Runs one suite in a child Node process with the same loader flags (tsx, the source condition),
 * so every suite starts from a fresh heap. The child writes `{ package, figures }` to a temp file.
 */
async function runSuite(file: SuiteFile): Promise<BenchFigure[]> {
  const dir = mkdtempSync(join(tmpdir(), "dmakit-bench-"));
  const out = join(dir, "figures.json");
  try {
    const child = join(dirname(fileURLToPath(import.meta.url)), "runSuiteChild.ts");
    const code = await new Promise<number | null>((done, fail) => {
      const p = spawn(process.execPath, [...process.execArgv, child, file.path, out], {
        stdio: ["ignore", "inherit", "inherit"],
      });
      p.on("error", fail);
      p.on("exit", done);
    });
    if (code !== 0) throw new Error(`${file.rel}: suite process exited with ${String(code)}`);
    const { package: pkg, figures } = JSON.parse(readFileSync(out, "utf8")) as {
      package: string;
      figures: BenchFigure[];
    };
    if (pkg !== file.folder)
      throw new Error(`${file.rel}: suite says package "${pkg}" but lives in "${file.folder}"`);
    if (!Array.isArray(figures)) throw new Error(`${file.rel}: run() did not return an array`);
    const problems = validateFigures(figures, file.rel);
    if (problems.length > 0) throw new Error(problems.join("\n"));
    return figures.map(normalizeFigure);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(argv: string[]): Promise<number> {
  // pnpm forwards a literal "--" when invoked as `pnpm bench -- --filter x`.
  const args = argv[0] === "--" ? argv.slice(1) : argv;
  let values: ReturnType<typeof parse>["values"];
  try {
    values = parse(args).values;
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const root = resolve(values.root ?? join(dirname(fileURLToPath(import.meta.url)), "..", ".."));
  const out = resolve(root, values.out ?? join("bench", "results.json"));
  const filters = (values.filter ?? []).map(filterName);

  const all = discoverSuites(root);
  const known = new Set(all.map((s) => s.folder));
  const isFolder = (f: string): boolean =>
    existsSync(join(root, "packages", f)) || existsSync(join(root, "apps", f));
  const unknown = filters.filter((f) => !isFolder(f));
  if (unknown.length > 0) {
    process.stderr.write(
      `bench: no package ${unknown.map((u) => `"${u}"`).join(", ")}; packages with suites: ${[...known].join(", ") || "(none)"}\n`,
    );
    return 2;
  }
  for (const f of filters)
    if (!known.has(f)) process.stderr.write(`bench: ${f} has no bench/*.bench.ts yet\n`);
  const selected = filters.length > 0 ? all.filter((s) => filters.includes(s.folder)) : all;
  if (values.list) {
    for (const s of selected) process.stdout.write(`${s.folder}\t${s.rel}\n`);
    return 0;
  }
  if (selected.length === 0) {
    process.stderr.write("bench: no suites found (packages/*/bench/*.bench.ts, apps/*/bench/*.bench.ts)\n");
    return 0;
  }

  // Read the existing file before spending minutes on benchmarks: a corrupt file is an error now.
  const existing = parseResults(existsSync(out) ? readFileSync(out, "utf8") : undefined, out);

  const fresh: BenchFigure[] = [];
  const freshIds = new Set<string>();
  let failed = 0;
  for (const [i, file] of selected.entries()) {
    process.stderr.write(`[${i + 1}/${selected.length}] ${file.rel} ...`);
    const t0 = performance.now();
    try {
      const figures = await runSuite(file);
      const dup = figures.find((f) => freshIds.has(f.id));
      if (dup) throw new Error(`${file.rel}: id ${dup.id} already reported by another suite`);
      for (const f of figures) freshIds.add(f.id);
      fresh.push(...figures);
      process.stderr.write(
        ` ${plural(figures.length, "figure")}, ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
      );
    } catch (e) {
      failed++;
      process.stderr.write(` failed\n${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    }
  }

  const replace = filters.length === 0 && failed === 0;
  const merged = replace ? mergeFigures([], fresh) : mergeFigures(existing, fresh);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, formatResults(merged));

  const shown = merged.filter((f) => freshIds.has(f.id));
  if (shown.length > 0) process.stdout.write(`${formatTable(shown)}\n`);
  const misses = shown.filter((f) => checkTarget(f.value, f.target) !== "pass" && f.target !== undefined);
  process.stdout.write(
    `\n${plural(shown.length, "figure")} from ${selected.length - failed}/${selected.length} suites` +
      `${misses.length > 0 ? `, ${misses.length} missing their target` : ""}` +
      `; ${replace ? "wrote" : "merged into"} ${out}\n`,
  );
  if (failed > 0) return 1;
  return values.strict && misses.length > 0 ? 1 : 0;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function parse(args: string[]) {
  return parseArgs({
    args,
    options: {
      filter: { type: "string", short: "f", multiple: true },
      list: { type: "boolean", short: "l" },
      strict: { type: "boolean" },
      out: { type: "string" },
      root: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: false,
    strict: true,
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
