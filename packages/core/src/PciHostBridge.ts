import { BUS_NOTIFY_ADD_DEVICE, BusNotifier } from "./BusNotifier.js";
import { Device } from "./Device.js";
import type { DeviceDmaParameters } from "./DeviceDmaParameters.js";
import { KernelError } from "./KernelError.js";
import type { KernelLog } from "./KernelLog.js";
import {
  formatPciName,
  PCI_ACS_CR,
  PCI_ACS_RR,
  PCI_ACS_SV,
  PCI_ACS_TB,
  PCI_ACS_UF,
  PCI_DEVFN,
  PCI_EXP_TYPE_DOWNSTREAM,
  PCI_EXP_TYPE_ENDPOINT,
  PCI_EXP_TYPE_PCI_BRIDGE,
  PCI_EXP_TYPE_PCIE_BRIDGE,
  PCI_EXP_TYPE_ROOT_PORT,
  PCI_EXP_TYPE_UPSTREAM,
  PCI_SLOT,
  type PciBar,
  PciDev,
} from "./PciDev.js";
import { findP2pdmaWhitelistEntry } from "./pciP2pdmaWhitelist.js";
import { hex } from "./units.js";

/**
 * A host bridge memory window: CPU `[cpuStart, cpuStart+size)` is bus `[busStart, ...)`.
 * @see include/linux/resource_ext.h struct resource_entry (`offset` = cpuStart - busStart)
 */
export interface PciHostBridgeWindow {
  readonly cpuStart: number;
  readonly busStart: number;
  readonly size: number;
}

/**
 * ACS setting of a new port: `true` = capability present and enabled the way `pci_enable_acs` does
 * with an IOMMU (SV, RR, CR, UF; TB capable but off), `false`/absent = no ACS capability, or raw
 * register values.
 * Model-only: stands for the ACS capability the kernel reads from config space.
 */
export type PciAcsOption = boolean | { readonly cap: number; readonly ctrl: number };

/**
 * A BAR as given to {@link PciHostBridge.addDevice}; `busAddr` defaults through the windows.
 * Model-only: stands for the BAR the kernel sizes and assigns during enumeration.
 */
export interface PciBarInit {
  readonly bar: number;
  readonly cpuAddr: number;
  readonly size: number;
  readonly busAddr?: number;
  readonly prefetchable?: boolean;
}

/**
 * Options of {@link PciHostBridge.addDevice}.
 * Model-only: stands for what enumeration reads from config space.
 */
export interface PciDevOptions {
  /** Device name; default `pci_name` (`0000:01:00.0`). */
  name?: string;
  vendor?: number;
  device?: number;
  /** `PCI_EXP_TYPE_*`, or null for conventional PCI. Default PCI_EXP_TYPE_ENDPOINT. */
  pcieType?: number | null;
  /** Slot on the parent's bus; default the next free slot (0 below a root or downstream port). */
  slot?: number;
  /** Function number; default 0. Adding a function > 0 marks the slot multifunction. */
  fn?: number;
  multifunction?: boolean;
  acs?: PciAcsOption;
  /** Ports only: devices below are untrusted (`pdev->external_facing`). */
  externalFacing?: boolean;
  untrusted?: boolean;
  bars?: readonly PciBarInit[];
  dmaMask?: number | null;
  coherentDmaMask?: number;
  busDmaLimit?: number;
  dmaCoherent?: boolean;
  dmaParms?: DeviceDmaParameters | null;
}

/**
 * Options of the {@link PciHostBridge} constructor.
 * Model-only: stands for firmware (ACPI/devicetree) host bridge description.
 */
export interface PciHostBridgeOptions {
  /** PCI domain (segment) number. Default 0. */
  domain?: number;
  /** Root bus number. Default 0. */
  busStart?: number;
  /** Vendor/device ID of the host bridge function (the 00.0 device the P2PDMA allowlist checks). */
  vendor?: number;
  device?: number;
  /** On `pci_p2pdma_whitelist`; default: looked up from vendor/device in the kernel's table. */
  p2pdmaAllowlisted?: boolean;
  /** Allowlisted only for paths within this host bridge (`REQ_SAME_HOST_BRIDGE`); default from the table. */
  p2pdmaReqSameHostBridge?: boolean;
  /** `cpu_supports_p2pdma()` (AMD Zen and later): every host bridge forwards P2P. Default false. */
  cpuSupportsP2pdma?: boolean;
  /** Memory windows for CPU↔bus address translation of BARs; none = identity. */
  windows?: readonly PciHostBridgeWindow[];
  /** Default `dma_coherent` of devices below (PCIe snoops on most platforms). Default true. */
  dmaCoherent?: boolean;
  log?: KernelLog;
  /** The `pci_bus_type` notifier chain; share one between host bridges of a machine. */
  notifier?: BusNotifier;
  name?: string;
}

const ACS_ON = {
  cap: PCI_ACS_SV | PCI_ACS_TB | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF,
  ctrl: PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF,
};

/**
 * `struct pci_host_bridge` with its root bus: builds a PCI hierarchy of root ports, switches and
 * endpoints, assigns bus numbers and devfns, and carries what P2PDMA asks of the root complex.
 *
 * @see include/linux/pci.h struct pci_host_bridge; drivers/pci/probe.c. The model differs: the host
 * bridge is also the 00.0 "root" function that `__host_bridge_whitelist` reads (its vendor/device
 * here); secondary bus numbers are handed out in creation order, not by a depth-first scan (so a
 * bridge's subordinate range is not contiguous); there is no config space, hotplug or resource
 * assignment: BARs are given.
 *
 * @example
 * const hb = new PciHostBridge({ vendor: 0x8086, device: 0x2020, log });
 * const rp = hb.addRootPort({ acs: true });
 * const sw = hb.addSwitch(rp, [{ acs: false }, { acs: false }]);
 * const nvme = hb.addEndpoint(sw.downstream[0]!, { name: "nvme0" });
 */
export class PciHostBridge extends Device {
  readonly domain: number;
  readonly busStart: number;
  readonly vendor: number;
  readonly device: number;
  p2pdmaAllowlisted: boolean;
  p2pdmaReqSameHostBridge: boolean;
  cpuSupportsP2pdma: boolean;
  readonly windows: readonly PciHostBridgeWindow[];
  readonly pciNotifier: BusNotifier;
  private readonly devCoherent: boolean;
  private nextBus: number;
  private readonly devs: PciDev[] = [];

  constructor(options: PciHostBridgeOptions = {}) {
    const domain = options.domain ?? 0;
    const busStart = options.busStart ?? 0;
    const hex4 = (v: number) => v.toString(16).padStart(4, "0");
    super({
      name: options.name ?? `pci${hex4(domain)}:${busStart.toString(16).padStart(2, "0")}`,
      bus: null,
      ...(options.log ? { log: options.log } : {}),
    });
    this.domain = domain;
    this.busStart = busStart;
    this.nextBus = busStart + 1;
    this.vendor = options.vendor ?? 0x8086;
    this.device = options.device ?? 0;
    const entry = findP2pdmaWhitelistEntry(this.vendor, this.device);
    this.p2pdmaAllowlisted = options.p2pdmaAllowlisted ?? entry !== undefined;
    this.p2pdmaReqSameHostBridge = options.p2pdmaReqSameHostBridge ?? entry?.reqSameHostBridge ?? false;
    this.cpuSupportsP2pdma = options.cpuSupportsP2pdma ?? false;
    this.windows = options.windows ?? [];
    this.pciNotifier = options.notifier ?? new BusNotifier();
    this.devCoherent = options.dmaCoherent ?? true;
  }

  /** Every PCI function below this host bridge, in creation order. */
  devices(): readonly PciDev[] {
    return this.devs;
  }

  /** The function at `busNr`/`devfn`, like `pci_get_domain_bus_and_slot`. */
  getSlot(busNr: number, devfn: number): PciDev | undefined {
    return this.devs.find((d) => d.busNr === busNr && d.devfn === devfn);
  }

  /**
   * Adds a PCI function on the root bus (`parent` null) or on the secondary bus of bridge `parent`.
   * Bridges (root/switch ports, PCI bridges) get the next secondary bus number. Sends
   * `BUS_NOTIFY_ADD_DEVICE`. Throws `EINVAL` for a bad parent, slot or function (a root or downstream
   * port's link has only device 0, as `only_one_child` scans), `EEXIST` for a taken devfn.
   */
  addDevice(parent: PciDev | null, opts: PciDevOptions = {}): PciDev {
    if (parent !== null && (parent.hostBridge !== this || parent.secondaryBus === null)) {
      throw new KernelError(
        "EINVAL",
        `pci ${this.name}: parent ${parent.name} is not a bridge of this host bridge`,
      );
    }
    const busNr = parent === null ? this.busStart : (parent.secondaryBus as number);
    const onlyOneChild =
      parent !== null &&
      (parent.pcieType === PCI_EXP_TYPE_ROOT_PORT || parent.pcieType === PCI_EXP_TYPE_DOWNSTREAM);
    const fn = opts.fn ?? 0;
    let slot = opts.slot;
    if (slot === undefined) {
      if (onlyOneChild || fn !== 0) slot = 0;
      else {
        const used = new Set(this.devs.filter((d) => d.busNr === busNr).map((d) => PCI_SLOT(d.devfn)));
        // Slot 0 of the root bus is the host bridge function itself.
        slot = parent === null ? 1 : 0;
        while (used.has(slot)) slot++;
      }
    }
    if (!Number.isInteger(slot) || slot < 0 || slot > 31 || !Number.isInteger(fn) || fn < 0 || fn > 7) {
      throw new KernelError(
        "EINVAL",
        `pci bus ${hex(busNr)}: slot ${slot} fn ${fn} out of range (0..31, 0..7)`,
      );
    }
    if (onlyOneChild && slot !== 0) {
      throw new KernelError("EINVAL", `pci ${parent?.name}: a PCIe link has only device 0, not slot ${slot}`);
    }
    const devfn = PCI_DEVFN(slot, fn);
    if (this.getSlot(busNr, devfn) !== undefined || (parent === null && devfn === 0)) {
      throw new KernelError(
        "EEXIST",
        `pci ${formatPciName(this.domain, busNr, devfn)}: devfn already in use`,
      );
    }
    const pcieType = opts.pcieType === undefined ? PCI_EXP_TYPE_ENDPOINT : opts.pcieType;
    const isBridge =
      pcieType === PCI_EXP_TYPE_ROOT_PORT ||
      pcieType === PCI_EXP_TYPE_UPSTREAM ||
      pcieType === PCI_EXP_TYPE_DOWNSTREAM ||
      pcieType === PCI_EXP_TYPE_PCI_BRIDGE ||
      pcieType === PCI_EXP_TYPE_PCIE_BRIDGE;
    const acs = opts.acs === true ? ACS_ON : opts.acs ? opts.acs : { cap: 0, ctrl: 0 };
    const bars = (opts.bars ?? []).map((b) => this.makeBar(b));
    let external = false;
    for (let p: PciDev | null = parent; p !== null; p = p.upstream) external ||= p.externalFacing;
    const siblings = this.devs.filter((d) => d.busNr === busNr && PCI_SLOT(d.devfn) === slot);
    const multifunction = opts.multifunction ?? (fn !== 0 || siblings.length > 0);
    const dev = new PciDev({
      name: opts.name ?? formatPciName(this.domain, busNr, devfn),
      hostBridge: this,
      upstream: parent,
      busNr,
      devfn,
      vendor: opts.vendor ?? 0x1af4,
      device: opts.device ?? 0,
      pcieType,
      acsCap: acs.cap,
      acsCtrl: acs.ctrl,
      multifunction,
      externalFacing: opts.externalFacing ?? false,
      secondaryBus: isBridge ? this.nextBus : null,
      bars,
      log: this.log,
      notifier: this.pciNotifier,
      dmaCoherent: opts.dmaCoherent ?? this.devCoherent,
      untrusted: opts.untrusted ?? external,
      ...(opts.dmaMask !== undefined ? { dmaMask: opts.dmaMask } : {}),
      ...(opts.coherentDmaMask !== undefined ? { coherentDmaMask: opts.coherentDmaMask } : {}),
      ...(opts.busDmaLimit !== undefined ? { busDmaLimit: opts.busDmaLimit } : {}),
      ...(opts.dmaParms !== undefined ? { dmaParms: opts.dmaParms } : {}),
    });
    if (isBridge) this.nextBus++;
    if (multifunction) for (const s of siblings) s.multifunction = true;
    this.devs.push(dev);
    this.pciNotifier.callChain(BUS_NOTIFY_ADD_DEVICE, dev);
    return dev;
  }

  /** Adds a root port on the root bus. */
  addRootPort(opts: Omit<PciDevOptions, "pcieType"> = {}): PciDev {
    return this.addDevice(null, { vendor: this.vendor, ...opts, pcieType: PCI_EXP_TYPE_ROOT_PORT });
  }

  /**
   * Adds a switch below `parent` (a root or downstream port): one upstream port and one downstream
   * port per entry of `downstream` (each with its own ACS setting).
   */
  addSwitch(
    parent: PciDev,
    downstream: readonly Omit<PciDevOptions, "pcieType">[],
    upstreamOpts: Omit<PciDevOptions, "pcieType"> = {},
  ): { upstream: PciDev; downstream: PciDev[] } {
    const up = this.addDevice(parent, { vendor: 0x10b5, ...upstreamOpts, pcieType: PCI_EXP_TYPE_UPSTREAM });
    const down = downstream.map((o) =>
      this.addDevice(up, { vendor: 0x10b5, ...o, pcieType: PCI_EXP_TYPE_DOWNSTREAM }),
    );
    return { upstream: up, downstream: down };
  }

  /** Adds an endpoint below `parent` (a bridge) or, with null, an integrated endpoint on the root bus. */
  addEndpoint(parent: PciDev | null, opts: PciDevOptions = {}): PciDev {
    return this.addDevice(parent, opts);
  }

  private makeBar(b: PciBarInit): PciBar {
    if (!Number.isInteger(b.bar) || b.bar < 0 || b.bar > 5) {
      throw new KernelError("EINVAL", `pci ${this.name}: BAR index ${b.bar} out of range 0..5`);
    }
    let busAddr = b.busAddr;
    if (busAddr === undefined) {
      if (this.windows.length === 0) busAddr = b.cpuAddr;
      else {
        const w = this.windows.find(
          (x) => b.cpuAddr >= x.cpuStart && b.cpuAddr + b.size <= x.cpuStart + x.size,
        );
        if (w === undefined) {
          throw new KernelError(
            "EINVAL",
            `pci ${this.name}: BAR${b.bar} ${hex(b.cpuAddr)}+${hex(b.size)} outside every host bridge window`,
          );
        }
        busAddr = b.cpuAddr - w.cpuStart + w.busStart;
      }
    }
    return { bar: b.bar, cpuAddr: b.cpuAddr, busAddr, size: b.size, prefetchable: b.prefetchable ?? true };
  }
}

/** `pci_find_host_bridge(dev->bus)`. @see drivers/pci/host-bridge.c pci_find_host_bridge */
export function pciFindHostBridge(dev: PciDev): PciHostBridge {
  return dev.hostBridge;
}
