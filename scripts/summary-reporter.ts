import type { Reporter } from "vitest/reporters";

/** Prints one plain closing line, "N passed, N failed, N skipped", after the default reporter. */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: Parameters<NonNullable<Reporter["onTestRunEnd"]>>[0]): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const mod of testModules) {
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === "passed") passed++;
        else if (state === "failed") failed++;
        else skipped++;
      }
    }
    console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
  }
}
