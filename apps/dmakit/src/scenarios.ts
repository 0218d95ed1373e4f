import type { Machine } from "./Machine.js";
import { type MachineReport, machineReport } from "./report.js";
import { formatReportText } from "./reportText.js";

/** What a scenario hands back to the CLI. */
export interface ScenarioResult {
  /** The `--json` output. */
  json: unknown;
  /** The text output. */
  text: string;
}

/** A named scenario `dmakit run <name>` can run against a booted machine. */
export interface Scenario {
  readonly name: string;
  readonly summary: string;
  run(machine: Machine): ScenarioResult;
}

const boot: Scenario = {
  name: "boot",
  summary: "boot the machine and show its memory map, zones, CMA areas, IOMMUs, buses and devices",
  run(machine) {
    const report: MachineReport = machineReport(machine);
    return { json: report, text: formatReportText(report) };
  },
};

/** The scenarios the CLI knows, by name. */
export const scenarios: ReadonlyMap<string, Scenario> = new Map([[boot.name, boot]]);
