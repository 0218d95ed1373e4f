import { bootScenario } from "./boot.js";
import { captureScenario } from "./capture.js";
import { p2pScenario } from "./p2p.js";
import type { Scenario } from "./Scenario.js";
import { staleIotlbScenario } from "./staleIotlb.js";

export { bootScenario } from "./boot.js";
export {
  type CaptureReport,
  captureScenario,
  formatCaptureText,
  runCapture,
} from "./capture.js";
export { formatP2pText, type P2pReport, p2pScenario, runP2p } from "./p2p.js";
export type { Scenario, ScenarioOptions, ScenarioResult } from "./Scenario.js";
export { ScenarioUnsupportedError } from "./ScenarioUnsupportedError.js";
export {
  formatStaleIotlbText,
  runStaleIotlb,
  type StaleIotlbReport,
  type StaleProbe,
  staleIotlbScenario,
} from "./staleIotlb.js";

/** The scenario `dmakit run` runs when none is named. */
export const DEFAULT_SCENARIO = "capture";

/** The scenarios the CLI knows, by name. */
export const scenarios: ReadonlyMap<string, Scenario> = new Map([
  [captureScenario.name, captureScenario],
  [bootScenario.name, bootScenario],
  [p2pScenario.name, p2pScenario],
  [staleIotlbScenario.name, staleIotlbScenario],
]);
