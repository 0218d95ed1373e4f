import { existsSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";

/** A bench file found in the workspace. */
export interface SuiteFile {
  /** Folder name of the package or app (`mm-pages`, `dmakit`); what `--filter` matches. */
  readonly folder: string;
  /** Absolute path of the `*.bench.ts` file. */
  readonly path: string;
  /** Path relative to the workspace root, for messages. */
  readonly rel: string;
}

/**
 * Lists `packages/*\/bench/*.bench.ts` and `apps/*\/bench/*.bench.ts` under `root`, sorted by path
 * so runs are in a stable order.
 */
export function discoverSuites(root: string): SuiteFile[] {
  const found: SuiteFile[] = [];
  for (const top of ["packages", "apps"]) {
    const topDir = join(root, top);
    if (!existsSync(topDir)) continue;
    for (const folder of readdirSync(topDir).sort()) {
      const benchDir = join(topDir, folder, "bench");
      if (!existsSync(benchDir) || !statSync(benchDir).isDirectory()) continue;
      for (const file of readdirSync(benchDir).sort()) {
        if (!file.endsWith(".bench.ts")) continue;
        const path = join(benchDir, file);
        found.push({ folder, path, rel: relative(root, path) });
      }
    }
  }
  return found;
}

/** Normalises a `--filter` value: `@dmakit/mm-pages`, `packages/mm-pages` and `mm-pages` all name `mm-pages`. */
export function filterName(filter: string): string {
  return filter
    .trim()
    .replace(/^@dmakit\//, "")
    .replace(/^\.?\/?(packages|apps)\//, "")
    .replace(/\/+$/, "");
}
