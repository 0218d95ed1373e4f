export { type CliIo, DEFAULT_MACHINE, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, runCli } from "./cli.js";
export {
  builtinMachineNames,
  loadBuiltinMachine,
  loadMachineFile,
  parseMachine,
  resolveMachine,
} from "./loadMachine.js";
export { type IommuUnit, Machine, type MachineBootOptions } from "./Machine.js";
export { MachineConfigError, type MachineConfigIssue } from "./MachineConfigError.js";
export {
  type IommuConfig,
  iommuRegSize,
  type MachineConfig,
  type MachineDescription,
  machineSchema,
  type PciConfig,
  type PciEndpointConfig,
  type PlatformDeviceConfig,
} from "./machineSchema.js";
export { parseSize } from "./parseSize.js";
export {
  type CmaReport,
  type DeviceReport,
  type IommuReport,
  type MachineReport,
  type MemoryMapEntry,
  machineReport,
  type ZoneReport,
} from "./report.js";
export { formatReportText } from "./reportText.js";
export {
  bootScenario,
  type CaptureReport,
  captureScenario,
  DEFAULT_SCENARIO,
  formatCaptureText,
  runCapture,
  type Scenario,
  type ScenarioOptions,
  type ScenarioResult,
  scenarios,
} from "./scenarios/index.js";
