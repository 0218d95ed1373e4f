export {
  builtinMachineNames,
  loadBuiltinMachine,
  loadMachineFile,
  parseMachine,
  resolveMachine,
} from "./loadMachine.js";
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
