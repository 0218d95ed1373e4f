import {
  PCI_ACS_CR,
  PCI_ACS_EC,
  PCI_ACS_RR,
  PCI_ACS_SV,
  PCI_ACS_UF,
  PCI_EXP_TYPE_DOWNSTREAM,
  PCI_EXP_TYPE_ENDPOINT,
  PCI_EXP_TYPE_LEG_END,
  PCI_EXP_TYPE_PCI_BRIDGE,
  PCI_EXP_TYPE_PCIE_BRIDGE,
  PCI_EXP_TYPE_RC_EC,
  PCI_EXP_TYPE_RC_END,
  PCI_EXP_TYPE_ROOT_PORT,
  PCI_EXP_TYPE_UPSTREAM,
  PCI_SLOT,
  type PciDev,
} from "./PciDev.js";

/**
 * `REQ_ACS_FLAGS`: what the IOMMU core needs enabled on a path to call a device isolated.
 * @see drivers/iommu/iommu.c REQ_ACS_FLAGS
 */
export const REQ_ACS_FLAGS = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF;

/**
 * `pci_acs_flags_enabled(pdev, acs_flags)`: false without an ACS capability; capabilities the
 * device does not implement count as hard-wired enabled, except egress control.
 * @see drivers/pci/pci.c pci_acs_flags_enabled
 */
export function pciAcsFlagsEnabled(pdev: PciDev, acsFlags: number): boolean {
  if (pdev.acsCap === 0) return false;
  const flags = acsFlags & (pdev.acsCap | PCI_ACS_EC);
  return (pdev.acsCtrl & flags) === flags;
}

/**
 * `pci_acs_enabled(pdev, acs_flags)`: conventional PCI and PCI bridges never isolate; root and
 * downstream ports need the flags; endpoints and upstream ports need them only when multifunction,
 * single-function ones are isolated by construction.
 * @see drivers/pci/pci.c pci_acs_enabled (no device-specific quirks in the model)
 */
export function pciAcsEnabled(pdev: PciDev, acsFlags: number): boolean {
  switch (pdev.pcieType) {
    case null:
    case PCI_EXP_TYPE_PCIE_BRIDGE:
    case PCI_EXP_TYPE_PCI_BRIDGE:
    case PCI_EXP_TYPE_RC_EC:
      return false;
    case PCI_EXP_TYPE_DOWNSTREAM:
    case PCI_EXP_TYPE_ROOT_PORT:
      return pciAcsFlagsEnabled(pdev, acsFlags);
    case PCI_EXP_TYPE_ENDPOINT:
    case PCI_EXP_TYPE_UPSTREAM:
    case PCI_EXP_TYPE_LEG_END:
    case PCI_EXP_TYPE_RC_END:
      if (!pdev.multifunction) break;
      return pciAcsFlagsEnabled(pdev, acsFlags);
  }
  return true;
}

/**
 * `pci_acs_path_enabled(start, end, acs_flags)`: ACS is enabled on `start` and every bridge above
 * it up to `end` (inclusive), or up to the root bus when `end` is null. With a non-null `end` that
 * is not above `start`, false.
 * @see drivers/pci/pci.c pci_acs_path_enabled
 */
export function pciAcsPathEnabled(start: PciDev, end: PciDev | null, acsFlags: number): boolean {
  let parent: PciDev | null = start;
  let pdev: PciDev;
  do {
    pdev = parent as PciDev;
    if (!pciAcsEnabled(pdev, acsFlags)) return false;
    if (pdev.upstream === null) return end === null;
    parent = pdev.upstream;
  } while (pdev !== end);
  return true;
}

/**
 * `pci_bridge_has_acs_redir(pdev)`: the device has an ACS capability with P2P request redirect,
 * completion redirect or egress control enabled, so peer TLPs through it go up to the root.
 * @see drivers/pci/p2pdma.c pci_bridge_has_acs_redir
 */
export function pciBridgeHasAcsRedir(pdev: PciDev): boolean {
  return pdev.acsCap !== 0 && (pdev.acsCtrl & (PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC)) !== 0;
}

/**
 * `pci=disable_acs_redir=<dev>`: clears RR, CR and EC on `pdev`, allowing P2P through it (and
 * breaking isolation below it).
 * @see drivers/pci/pci.c pci_disable_acs_redir
 */
export function pciDisableAcsRedir(pdev: PciDev): void {
  pdev.acsCtrl &= ~(PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC);
}

/**
 * The device that stands for `pdev`'s IOMMU group: devices with the same key must share a group.
 * Walks up from `pdev` while the bridge above has no ACS path to the root (`pci_acs_path_enabled(
 * bus->self, NULL, REQ_ACS_FLAGS)`), then, if the reached device is a multifunction device without
 * ACS, picks the lowest function of its slot that also lacks ACS.
 *
 * @see drivers/iommu/iommu.c pci_device_group, get_pci_function_alias_group. Simplifications: no
 * DMA alias quirks (`pci_for_each_dma_alias`; devices behind a PCIe-to-PCI bridge still end up
 * keyed to the bridge, since such a bridge never has ACS), no ACS quirks, and the key is
 * computed, not found from groups already allocated, so it does not depend on probe order. Like
 * the kernel, devices below two different non-ACS downstream ports of one switch get different
 * keys (each port's subtree is one group).
 */
export function pciDeviceGroupKey(pdev: PciDev): PciDev {
  let p = pdev;
  for (let self = p.upstream; self !== null; self = p.upstream) {
    if (pciAcsPathEnabled(self, null, REQ_ACS_FLAGS)) break;
    p = self;
  }
  if (!p.multifunction || pciAcsEnabled(p, REQ_ACS_FLAGS)) return p;
  let best = p;
  for (const d of p.hostBridge.devices()) {
    if (d.busNr !== p.busNr || PCI_SLOT(d.devfn) !== PCI_SLOT(p.devfn) || d.devfn >= best.devfn) continue;
    if (d.multifunction && !pciAcsEnabled(d, REQ_ACS_FLAGS)) best = d;
  }
  return best;
}
