import type { Machine } from "../Machine.js";

/** What a scenario hands back to the CLI. */
export interface ScenarioResult {
  /** The `--json` output. */
  json: unknown;
  /** The text output. */
  text: string;
  /**
   * False when the run did not do what it set out to: bytes that did not verify, a dma-debug
   * finding on a clean run, or an injected bug nobody caught. The CLI exits 1 then.
   */
  ok: boolean;
}

/** Options of one run. */
export interface ScenarioOptions {
  /** A deliberate driver bug to inject (one of {@link Scenario.bugs}). */
  injectBug?: string;
}

/** A named scenario `dmakit run <name>` can run against a booted machine. */
export interface Scenario {
  readonly name: string;
  readonly summary: string;
  /** Bugs `--inject-bug` accepts, with what each does. */
  readonly bugs: ReadonlyMap<string, string>;
  run(machine: Machine, options?: ScenarioOptions): ScenarioResult;
}
