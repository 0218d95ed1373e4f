import type { Machine } from "../Machine.js";
import type { MachineConfig } from "../machineSchema.js";

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
  /** `--policy`: the IOMMU default-domain policy the run asked for (already applied to the config). */
  policy?: "strict" | "lazy";
}

/** A named scenario `dmakit run <name>` can run against a booted machine. */
export interface Scenario {
  readonly name: string;
  readonly summary: string;
  /** Bugs `--inject-bug` accepts, with what each does. */
  readonly bugs: ReadonlyMap<string, string>;
  /** The machine `dmakit run <name>` boots without `--machine`; default the CLI's `arm64-soc`. */
  readonly defaultMachine?: string;
  /**
   * Adjusts the description before boot (e.g. the IOMMU policy the scenario needs). Returns the
   * config to boot; the input is left untouched.
   */
  prepare?(config: MachineConfig, options: ScenarioOptions): MachineConfig;
  run(machine: Machine, options?: ScenarioOptions): ScenarioResult;
}
