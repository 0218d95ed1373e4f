import { type MachineReport, machineReport } from "../report.js";
import { formatReportText } from "../reportText.js";
import type { Scenario } from "./Scenario.js";

/** `dmakit run boot`: the booted machine's memory map, zones, CMA, IOMMUs, buses and devices. */
export const bootScenario: Scenario = {
  name: "boot",
  summary: "boot the machine and show its memory map, zones, CMA areas, IOMMUs, buses and devices",
  bugs: new Map(),
  run(machine) {
    const report: MachineReport = machineReport(machine);
    return { json: report, text: formatReportText(report), ok: true };
  },
};
