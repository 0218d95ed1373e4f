import { type Device, devIsPci } from "@dmakit/core";
import { devIommuGet } from "./devIommu.js";
import type { IommuGroup } from "./IommuGroup.js";
import { IOMMU_RESV_RESERVED, type IommuResvRegion } from "./IommuResvRegion.js";

/**
 * `iommu_get_resv_regions(dev, list)`: the driver's reserved regions for `dev` (fresh copies;
 * nothing to put back). Empty when the device has no IOMMU or the driver reports none.
 * @see drivers/iommu/iommu.c iommu_get_resv_regions
 */
export function iommuGetResvRegions(dev: Device): IommuResvRegion[] {
  const ops = devIommuGet(dev)?.iommuDev?.ops;
  return (ops?.getResvRegions?.(dev) ?? []).map((r) => ({ ...r }));
}

/**
 * `iommu_insert_resv_region(new, regions)`: inserts keeping the list sorted by start (then type)
 * and merges overlapping or adjacent regions of the same type.
 * @see drivers/iommu/iommu.c iommu_insert_resv_region
 */
export function iommuInsertResvRegion(nr: IommuResvRegion, regions: IommuResvRegion[]): void {
  const copy = { ...nr };
  let at = regions.findIndex(
    (it) => copy.start < it.start || (copy.start === it.start && copy.type <= it.type),
  );
  if (at < 0) at = regions.length;
  regions.splice(at, 0, copy);
  const stack: IommuResvRegion[] = [];
  for (const it of regions) {
    if (it.type !== nr.type) {
      stack.push(it);
      continue;
    }
    let top: IommuResvRegion | undefined;
    for (let i = stack.length - 1; i >= 0; i--)
      if ((stack[i] as IommuResvRegion).type === it.type) {
        top = stack[i];
        break;
      }
    if (top === undefined) {
      stack.push(it);
      continue;
    }
    const topEnd = top.start + top.length - 1;
    const itEnd = it.start + it.length - 1;
    if (it.start > topEnd + 1) stack.push(it);
    else top.length = Math.max(topEnd, itEnd) - top.start + 1;
  }
  regions.length = 0;
  regions.push(...stack);
}

/**
 * `iommu_get_group_resv_regions(group, head)`: the union of the members' reserved regions, sorted
 * and merged per type (what `/sys/kernel/iommu_groups/N/reserved_regions` prints).
 * @see drivers/iommu/iommu.c iommu_get_group_resv_regions
 */
export function iommuGetGroupResvRegions(group: IommuGroup): IommuResvRegion[] {
  const out: IommuResvRegion[] = [];
  for (const dev of group.devices) {
    if (devIommuGet(dev)?.iommuDev == null) break;
    for (const r of iommuGetResvRegions(dev)) iommuInsertResvRegion(r, out);
  }
  return out;
}

/**
 * The PCI host bridge's memory windows as `IOMMU_RESV_RESERVED` regions at their bus addresses:
 * IOVAs a device behind that bridge cannot use because the bridge routes them as peer (BAR) space.
 * Drivers add these in `getResvRegions`; dma-iommu does the same with `iova_reserve_pci_windows`.
 * Empty for non-PCI devices.
 * @see drivers/iommu/dma-iommu.c iova_reserve_pci_windows
 */
export function pciHostBridgeResvRegions(dev: Device): IommuResvRegion[] {
  if (!devIsPci(dev)) return [];
  return dev.hostBridge.windows.map((w) => ({
    start: w.busStart,
    length: w.size,
    prot: 0,
    type: IOMMU_RESV_RESERVED,
  }));
}
