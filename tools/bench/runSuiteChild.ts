/**
 * Child process of `pnpm bench`: runs one suite file and writes its figures as JSON to the file named
 * by the second argument. Each suite gets a fresh process so that one suite's heap (a 1.5 GiB
 * machine, a million pfns) and JIT state cannot slow the next one's figures.
 */
import { writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import type { BenchFigure, BenchSuite } from "./BenchSuite.js";

function isSuite(x: unknown): x is BenchSuite {
  return (
    typeof x === "object" &&
    x !== null &&
    typeof (x as BenchSuite).package === "string" &&
    typeof (x as BenchSuite).run === "function"
  );
}

async function main(path: string, out: string): Promise<void> {
  const mod = (await import(pathToFileURL(path).href)) as { default?: unknown };
  if (!isSuite(mod.default)) throw new Error(`${path}: default export is not a BenchSuite`);
  const figures: BenchFigure[] = await mod.default.run();
  writeFileSync(out, JSON.stringify({ package: mod.default.package, figures }));
}

const [path, out] = process.argv.slice(2);
if (path === undefined || out === undefined) {
  process.stderr.write("usage: runSuiteChild <suite.bench.ts> <out.json>\n");
  process.exitCode = 2;
} else {
  main(path, out).catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  });
}
