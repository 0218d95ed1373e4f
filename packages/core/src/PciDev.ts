import { Device, type DeviceOptions } from "./Device.js";
import type { PciHostBridge } from "./PciHostBridge.js";

/** `PCI_EXP_TYPE_ENDPOINT`: PCI Express endpoint. @see include/uapi/linux/pci_regs.h */
export const PCI_EXP_TYPE_ENDPOINT = 0x0;
/** `PCI_EXP_TYPE_LEG_END`: legacy endpoint. @see include/uapi/linux/pci_regs.h */
export const PCI_EXP_TYPE_LEG_END = 0x1;
/** `PCI_EXP_TYPE_ROOT_PORT`: root port. @see include/uapi/linux/pci_regs.h */
export const PCI_EXP_TYPE_ROOT_PORT = 0x4;
/** `PCI_EXP_TYPE_UPSTREAM`: switch upstream port. @see include/uapi/linux/pci_regs.h */
export const PCI_EXP_TYPE_UPSTREAM = 0x5;
/** `PCI_EXP_TYPE_DOWNSTREAM`: switch downstream port. @see include/uapi/linux/pci_regs.h */
export const PCI_EXP_TYPE_DOWNSTREAM = 0x6;
/** `PCI_EXP_TYPE_PCI_BRIDGE`: PCIe-to-PCI/PCI-X bridge. @see include/uapi/linux/pci_regs.h */
export const PCI_EXP_TYPE_PCI_BRIDGE = 0x7;
/** `PCI_EXP_TYPE_PCIE_BRIDGE`: PCI/PCI-X-to-PCIe bridge. @see include/uapi/linux/pci_regs.h */
export const PCI_EXP_TYPE_PCIE_BRIDGE = 0x8;
/** `PCI_EXP_TYPE_RC_END`: root complex integrated endpoint. @see include/uapi/linux/pci_regs.h */
export const PCI_EXP_TYPE_RC_END = 0x9;
/** `PCI_EXP_TYPE_RC_EC`: root complex event collector. @see include/uapi/linux/pci_regs.h */
export const PCI_EXP_TYPE_RC_EC = 0xa;

/** `PCI_ACS_SV`: source validation. @see include/uapi/linux/pci_regs.h */
export const PCI_ACS_SV = 0x0001;
/** `PCI_ACS_TB`: translation blocking. @see include/uapi/linux/pci_regs.h */
export const PCI_ACS_TB = 0x0002;
/** `PCI_ACS_RR`: P2P request redirect. @see include/uapi/linux/pci_regs.h */
export const PCI_ACS_RR = 0x0004;
/** `PCI_ACS_CR`: P2P completion redirect. @see include/uapi/linux/pci_regs.h */
export const PCI_ACS_CR = 0x0008;
/** `PCI_ACS_UF`: upstream forwarding. @see include/uapi/linux/pci_regs.h */
export const PCI_ACS_UF = 0x0010;
/** `PCI_ACS_EC`: P2P egress control. @see include/uapi/linux/pci_regs.h */
export const PCI_ACS_EC = 0x0020;
/** `PCI_ACS_DT`: direct translated P2P. @see include/uapi/linux/pci_regs.h */
export const PCI_ACS_DT = 0x0040;

/** `PCI_DEVFN(slot, func)`. @see include/uapi/linux/pci.h */
export function PCI_DEVFN(slot: number, func: number): number {
  return ((slot & 0x1f) << 3) | (func & 0x07);
}
/** `PCI_SLOT(devfn)`. @see include/uapi/linux/pci.h */
export function PCI_SLOT(devfn: number): number {
  return (devfn >> 3) & 0x1f;
}
/** `PCI_FUNC(devfn)`. @see include/uapi/linux/pci.h */
export function PCI_FUNC(devfn: number): number {
  return devfn & 0x07;
}

/**
 * One memory BAR of a PCI function: `pci_resource_start/len` (CPU physical) and `pci_bus_address`
 * (what a peer puts on the bus). @see include/linux/pci.h pci_resource_start, pci_bus_address
 */
export interface PciBar {
  /** BAR index 0..5. */
  readonly bar: number;
  /** CPU physical address (`pci_resource_start`). */
  readonly cpuAddr: number;
  /** PCI bus address (`pci_bus_address`), CPU address minus the host bridge window offset. */
  readonly busAddr: number;
  readonly size: number;
  readonly prefetchable: boolean;
}

/**
 * The per-provider P2PDMA state the model keeps: the cached map types, keyed like `map_types_idx`.
 * @see drivers/pci/p2pdma.c struct pci_p2pdma (the model keeps only `map_types`; the pool lives in dma-mapping)
 */
export interface PciP2pdma {
  /** `p2pdma->map_types`: client index → map type (clear it after changing ACS settings). */
  readonly mapTypes: Map<number, number>;
}

/**
 * What {@link PciHostBridge.addDevice} needs beyond a {@link DeviceOptions}.
 * Model-only: the kernel's PCI core fills `struct pci_dev` from config space during enumeration.
 */
export interface PciDevInit extends Omit<DeviceOptions, "bus" | "parent" | "name"> {
  name: string;
  hostBridge: PciHostBridge;
  upstream: PciDev | null;
  busNr: number;
  devfn: number;
  vendor: number;
  device: number;
  /** PCIe port type (`PCI_EXP_TYPE_*`), or null for a conventional PCI device. */
  pcieType: number | null;
  acsCap: number;
  acsCtrl: number;
  multifunction: boolean;
  externalFacing: boolean;
  secondaryBus: number | null;
  bars: readonly PciBar[];
}

/**
 * `struct pci_dev`: a PCI function, which is a {@link Device} with `bus === "pci"`. Bridges (root
 * ports, switch ports) are PciDevs with a `secondaryBus`. Create them through {@link PciHostBridge}.
 *
 * @see include/linux/pci.h struct pci_dev. The model differs: no config space; the ACS capability
 * is two numbers (`acsCap`, `acsCtrl`, 0/0 = no ACS capability, i.e. `acs_cap == 0`); the device's
 * bus is represented by `upstream` (the bridge whose secondary bus it sits on, null on the root
 * bus) and `busNr`; no SR-IOV (no `pci_physfn` indirection) and no quirks.
 */
export class PciDev extends Device {
  readonly hostBridge: PciHostBridge;
  /** `pdev->bus->self`: the bridge above, or null on the root bus. */
  readonly upstream: PciDev | null;
  /** `pdev->bus->number`. */
  readonly busNr: number;
  readonly devfn: number;
  readonly vendor: number;
  readonly device: number;
  /** `pci_pcie_type(pdev)`, or null when `!pci_is_pcie(pdev)`. */
  readonly pcieType: number | null;
  /** ACS capability register (`PCI_ACS_CAP`); 0 = no ACS extended capability. */
  acsCap: number;
  /** ACS control register (`PCI_ACS_CTRL`). */
  acsCtrl: number;
  /** `pdev->multifunction`. */
  multifunction: boolean;
  /** `pdev->external_facing` (a port towards untrusted devices, e.g. Thunderbolt). */
  readonly externalFacing: boolean;
  /** Bridges: `pdev->subordinate->number`; null for non-bridges. */
  readonly secondaryBus: number | null;
  /** Memory BARs. */
  readonly bars: readonly PciBar[];
  /** `pdev->p2pdma`: set by `pci_p2pdma_add_resource` (see `pciP2pdmaSetup`), null otherwise. */
  p2pdma: PciP2pdma | null = null;

  constructor(init: PciDevInit) {
    super({ ...init, bus: "pci", parent: init.upstream ?? init.hostBridge });
    this.hostBridge = init.hostBridge;
    this.upstream = init.upstream;
    this.busNr = init.busNr;
    this.devfn = init.devfn;
    this.vendor = init.vendor;
    this.device = init.device;
    this.pcieType = init.pcieType;
    this.acsCap = init.acsCap;
    this.acsCtrl = init.acsCtrl;
    this.multifunction = init.multifunction;
    this.externalFacing = init.externalFacing;
    this.secondaryBus = init.secondaryBus;
    this.bars = init.bars;
  }

  /** The BAR with index `bar`, or undefined. */
  getBar(bar: number): PciBar | undefined {
    return this.bars.find((b) => b.bar === bar);
  }
}

/** `dev_is_pci(dev)`. @see include/linux/pci.h dev_is_pci */
export function devIsPci(dev: Device | null | undefined): dev is PciDev {
  return dev instanceof PciDev;
}

/**
 * `pci_upstream_bridge(dev)`: the bridge above `dev`, or null when `dev` is on a root bus.
 * @see include/linux/pci.h pci_upstream_bridge (no SR-IOV physfn step in the model)
 */
export function pciUpstreamBridge(dev: PciDev): PciDev | null {
  return dev.upstream;
}

/** `pci_is_root_bus(dev->bus)`. @see include/linux/pci.h pci_is_root_bus */
export function pciIsOnRootBus(dev: PciDev): boolean {
  return dev.upstream === null;
}

/** `pci_dev_id(dev)`: the requester ID `bus << 8 | devfn`. @see include/linux/pci.h pci_dev_id */
export function pciDevId(dev: PciDev): number {
  return (dev.busNr << 8) | dev.devfn;
}

/** `pci_domain_nr(dev->bus)`. @see include/linux/pci.h pci_domain_nr */
export function pciDomainNr(dev: PciDev): number {
  return dev.hostBridge.domain;
}

/** `pci_name(dev)`: `"%04x:%02x:%02x.%d"`, e.g. `0000:01:00.0`. @see include/linux/pci.h pci_name */
export function pciName(dev: PciDev): string {
  return formatPciName(dev.hostBridge.domain, dev.busNr, dev.devfn);
}

/**
 * The `pci_name` format for explicit numbers.
 * Model-only: the `pci_name` format split out so callers without a {@link PciDev} can use it. @see include/linux/pci.h pci_name
 */
export function formatPciName(domain: number, busNr: number, devfn: number): string {
  const h = (v: number, w: number) => v.toString(16).padStart(w, "0");
  return `${h(domain, 4)}:${h(busNr, 2)}:${h(PCI_SLOT(devfn), 2)}.${PCI_FUNC(devfn)}`;
}

/** `pci_is_pcie(dev)`. @see include/linux/pci.h pci_is_pcie */
export function pciIsPcie(dev: PciDev): boolean {
  return dev.pcieType !== null;
}

/** `pci_is_bridge(dev)`. @see include/linux/pci.h pci_is_bridge */
export function pciIsBridge(dev: PciDev): boolean {
  return dev.secondaryBus !== null;
}

/**
 * `find_parent_pci_dev(dev)`: `dev` itself if it is PCI, else its nearest PCI ancestor, else null.
 * @see drivers/pci/p2pdma.c find_parent_pci_dev (no reference counting in the model)
 */
export function findParentPciDev(dev: Device): PciDev | null {
  for (let d: Device | null = dev; d !== null; d = d.parent) if (d instanceof PciDev) return d;
  return null;
}

/**
 * `pci_resource_start(dev, bar)`: CPU physical start of a BAR, 0 when unassigned.
 * @see include/linux/pci.h pci_resource_start
 */
export function pciResourceStart(dev: PciDev, bar: number): number {
  return dev.getBar(bar)?.cpuAddr ?? 0;
}

/**
 * `pci_resource_len(dev, bar)`: size of a BAR, 0 when unassigned.
 * @see include/linux/pci.h pci_resource_len
 */
export function pciResourceLen(dev: PciDev, bar: number): number {
  return dev.getBar(bar)?.size ?? 0;
}

/**
 * `pci_bus_address(dev, bar)`: bus address of a BAR, 0 when unassigned.
 * @see include/linux/pci.h pci_bus_address
 */
export function pciBusAddress(dev: PciDev, bar: number): number {
  return dev.getBar(bar)?.busAddr ?? 0;
}
