import { registerArmLpaeFormats } from "./ArmLpaeIoPgtable.js";

export {
  ArmLpaeIoPgtable,
  type ArmLpaeS1Cfg,
  type ArmLpaeS2Cfg,
  ioPgtableArm64LpaeS1InitFns,
  ioPgtableArm64LpaeS2InitFns,
  registerArmLpaeFormats,
} from "./ArmLpaeIoPgtable.js";
export { BuddyPgtableMemory } from "./BuddyPgtableMemory.js";

// Importing the package adds its formats to the core's default io-pgtable registry, as the
// kernel's io_pgtable_init_table lists them at build time.
registerArmLpaeFormats();
