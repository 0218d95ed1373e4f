import { defineConfig } from "vitest/config";
import SummaryReporter from "./scripts/summary-reporter.js";

// Resolve workspace packages to their TypeScript source (see "exports" → "@dmakit/source"),
// so tests never need a prior build.
const source = "@dmakit/source";

export default defineConfig({
  resolve: { conditions: [source, "module", "browser", "development|production"] },
  ssr: { resolve: { conditions: [source, "module", "node", "development|production"] } },
  test: {
    include: ["packages/*/test/**/*.test.ts", "apps/*/test/**/*.test.ts"],
    reporters: ["default", new SummaryReporter()],
    // Two cores on CI: forks keep typed-array-heavy suites from fighting over one heap.
    pool: "forks",
    testTimeout: 60_000,
  },
});
