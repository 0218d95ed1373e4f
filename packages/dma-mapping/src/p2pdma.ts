import {
  type Device,
  hex,
  type KernelLog,
  PCI_P2PDMA_MAP_BUS_ADDR,
  PCI_P2PDMA_MAP_NONE,
  PCI_P2PDMA_MAP_NOT_SUPPORTED,
  type PciDev,
  type PciP2pdmaMapType,
  pciP2pdmaMapType,
  pciP2pdmaMapTypeName,
} from "@dmakit/core";
import type { DevPagemap, PhysMem } from "@dmakit/mm-pages";
import { type DmaSystem, DmaSystemKey } from "./DmaSystem.js";
import { devDmaState } from "./dmaDevice.js";

/**
 * Resolves a P2PDMA pgmap's provider: `DevPagemap.owner` (a device name) to the PCI device whose
 * BAR the memory lives in, or null when the machine knows no such PCI device.
 *
 * The kernel needs no resolver: `to_p2p_pgmap(pgmap)->provider` is a pointer. The model's pgmap
 * (in @dmakit/mm-pages, below the PCI layer) only names its owner, so whoever assembles the machine
 * fills the {@link P2PDMA_PROVIDERS} slot of its {@link DmaSystem}.
 * Model-only.
 */
export type P2pdmaProviderResolver = (owner: string) => PciDev | null;

/**
 * The {@link DmaSystem} slot holding the machine's {@link P2pdmaProviderResolver}. Without it (or
 * when it returns null for a pgmap's owner), P2PDMA pages map as `PCI_P2PDMA_MAP_NOT_SUPPORTED`,
 * as the kernel does for a provider without `p2pdma` state.
 * @example
 * system.set(P2PDMA_PROVIDERS, (name) => (name === gpu.name ? gpu : null));
 * Model-only.
 */
export const P2PDMA_PROVIDERS = new DmaSystemKey<P2pdmaProviderResolver>("p2pdma-providers");

/**
 * `struct pci_p2pdma_map_state` (6.16 layout): the pgmap last looked at, its map type for the
 * mapping device, and its `bus_offset`, cached across the entries of one scatterlist or range list.
 * Start each list with a fresh state (`new PciP2pdmaMapState()`, the kernel's `= {}`).
 * @see include/linux/pci-p2pdma.h struct pci_p2pdma_map_state
 */
export class PciP2pdmaMapState {
  /** `state->pgmap`: the pgmap the cached `map` was computed for; null before the first P2P page. */
  pgmap: DevPagemap | null = null;
  /** `state->map`. */
  map: PciP2pdmaMapType = 0;
  /** `state->bus_off`: PCI bus address minus CPU physical address for `pgmap`. */
  busOff = 0;
  /** Model-only: the log of the machine that filled the state, for the WARN of {@link pciP2pdmaBusAddrMap}. */
  log: KernelLog | null = null;
  /** Model-only: that WARN fired (WARN_ON_ONCE). */
  warned = false;
}

/** The provider's map type for `dev`, or NOT_SUPPORTED when the provider cannot be resolved. */
function mapTypeFor(system: DmaSystem, pgmap: DevPagemap, dev: Device): PciP2pdmaMapType {
  const provider = system.get(P2PDMA_PROVIDERS)?.(pgmap.owner) ?? null;
  if (provider === null) {
    system.log.warnOnce(
      true,
      `p2pdma:noprovider:${pgmap.owner}`,
      dev.name,
      `p2pdma: pgmap ${pgmap.id} owner "${pgmap.owner}" is not a known PCI P2PDMA provider`,
    );
    return PCI_P2PDMA_MAP_NOT_SUPPORTED;
  }
  return pciP2pdmaMapType(provider, dev);
}

/**
 * `pci_p2pdma_state(state, dev, page)`: for a P2PDMA page, the map type of its provider's memory
 * for `dev` (recomputed, with the bus offset, only when the pgmap differs from the cached one);
 * `PCI_P2PDMA_MAP_NONE` for any other page. `pfn` is the page.
 * @see include/linux/pci-p2pdma.h pci_p2pdma_state, drivers/pci/p2pdma.c pci_p2pdma_map_type
 */
export function pciP2pdmaState(state: PciP2pdmaMapState, dev: Device, pfn: number): PciP2pdmaMapType {
  const system = devDmaState(dev).system;
  return pciP2pdmaStateIn(system.phys, system, state, dev, pfn);
}

/** @internal {@link pciP2pdmaState} with the machine already looked up (hot loops). */
export function pciP2pdmaStateIn(
  phys: PhysMem,
  system: DmaSystem,
  state: PciP2pdmaMapState,
  dev: Device,
  pfn: number,
): PciP2pdmaMapType {
  if (!phys.isZoneDevicePage(pfn)) return PCI_P2PDMA_MAP_NONE;
  const pgmap = phys.pagePgmap(pfn);
  if (pgmap === undefined || !phys.isPciP2pdmaPage(pfn)) return PCI_P2PDMA_MAP_NONE;
  if (state.pgmap !== pgmap) {
    state.pgmap = pgmap;
    state.map = mapTypeFor(system, pgmap, dev);
    state.busOff = pgmap.busOffset;
    state.log = system.log;
  }
  return state.map;
}

/**
 * `pci_p2pdma_bus_addr_map(state, paddr)`: the PCI bus address of `phys` in the cached pgmap,
 * `phys + bus_off`. WARNs (once per state, in the log of the machine that filled the state) when
 * the cached map type is not `PCI_P2PDMA_MAP_BUS_ADDR`, and still returns the sum, as the kernel does.
 * @see include/linux/pci-p2pdma.h pci_p2pdma_bus_addr_map
 */
export function pciP2pdmaBusAddrMap(state: PciP2pdmaMapState, phys: number): number {
  if (state.map !== PCI_P2PDMA_MAP_BUS_ADDR && !state.warned) {
    state.warned = true;
    state.log?.warn(
      true,
      "p2pdma",
      `WARN: pci_p2pdma_bus_addr_map: map type ${pciP2pdmaMapTypeName(state.map)} is not PCI_P2PDMA_MAP_BUS_ADDR (phys ${hex(phys)})`,
    );
  }
  return phys + state.busOff;
}
