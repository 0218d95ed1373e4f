import { bootScenario } from "./boot.js";
import { captureScenario } from "./capture.js";
import type { Scenario } from "./Scenario.js";

export { bootScenario } from "./boot.js";
export {
  type CaptureReport,
  captureScenario,
  formatCaptureText,
  runCapture,
} from "./capture.js";
export type { Scenario, ScenarioOptions, ScenarioResult } from "./Scenario.js";

/** The scenario `dmakit run` runs when none is named. */
export const DEFAULT_SCENARIO = "capture";

/** The scenarios the CLI knows, by name. */
export const scenarios: ReadonlyMap<string, Scenario> = new Map([
  [captureScenario.name, captureScenario],
  [bootScenario.name, bootScenario],
]);
