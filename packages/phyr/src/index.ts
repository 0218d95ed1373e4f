export { DmaRangeList } from "./DmaRangeList.js";
export type { RangeEntry, RangeListFootprint } from "./internal/RangeList.js";
export { PhysRangeList } from "./PhysRangeList.js";
export {
  PHYR_F_BUS_ADDR,
  PHYR_F_MASK,
  PHYR_F_MMIO,
  PHYR_F_PINNED,
  PHYR_F_SWIOTLB,
  phyrFlagsToString,
} from "./phyrFlags.js";
export { PHYR_ADDR_LIMIT, PHYR_MAX_ENTRIES, PHYR_MAX_LEN, PHYS_VEC_SIZE } from "./phyrLimits.js";
