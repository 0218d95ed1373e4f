/** `PCI_VENDOR_ID_INTEL`. @see include/linux/pci_ids.h */
export const PCI_VENDOR_ID_INTEL = 0x8086;
/** `PCI_VENDOR_ID_AMD`. @see include/linux/pci_ids.h */
export const PCI_VENDOR_ID_AMD = 0x1022;
/** `PCI_VENDOR_ID_GOOGLE`. @see include/linux/pci_ids.h */
export const PCI_VENDOR_ID_GOOGLE = 0x1ae0;
/**
 * `PCI_ANY_ID` as used in the whitelist's device field.
 * @see include/linux/mod_devicetable.h PCI_ANY_ID (the kernel's is `(~0)`)
 */
export const PCI_ANY_ID = 0xffff_ffff;

/**
 * One `pci_p2pdma_whitelist` entry.
 * @see drivers/pci/p2pdma.c pci_p2pdma_whitelist (the kernel's entries are `{vendor, device, flags}`)
 */
export interface PciP2pdmaWhitelistEntry {
  readonly vendor: number;
  readonly device: number;
  /** `REQ_SAME_HOST_BRIDGE`: only paths that stay within one host bridge (cross-socket QPI/UPI is slow). */
  readonly reqSameHostBridge: boolean;
}

/**
 * The kernel's host bridges known to forward peer-to-peer TLPs: the default for
 * `PciHostBridge.p2pdmaAllowlisted`.
 * @see drivers/pci/p2pdma.c pci_p2pdma_whitelist (the model lists the long-standing entries:
 * Xeon E5/E7 v3 with REQ_SAME_HOST_BRIDGE, Skylake-E root ports, Ice Lake 0x09a2, Google SoCs;
 * newer Intel accelerator IDs are left out; AMD Zen is covered by `cpu_supports_p2pdma`)
 */
export const PCI_P2PDMA_WHITELIST: readonly PciP2pdmaWhitelistEntry[] = [
  { vendor: PCI_VENDOR_ID_INTEL, device: 0x3c00, reqSameHostBridge: true },
  { vendor: PCI_VENDOR_ID_INTEL, device: 0x3c01, reqSameHostBridge: true },
  { vendor: PCI_VENDOR_ID_INTEL, device: 0x2f00, reqSameHostBridge: true },
  { vendor: PCI_VENDOR_ID_INTEL, device: 0x2f01, reqSameHostBridge: true },
  { vendor: PCI_VENDOR_ID_INTEL, device: 0x2030, reqSameHostBridge: false },
  { vendor: PCI_VENDOR_ID_INTEL, device: 0x2031, reqSameHostBridge: false },
  { vendor: PCI_VENDOR_ID_INTEL, device: 0x2032, reqSameHostBridge: false },
  { vendor: PCI_VENDOR_ID_INTEL, device: 0x2033, reqSameHostBridge: false },
  { vendor: PCI_VENDOR_ID_INTEL, device: 0x2020, reqSameHostBridge: false },
  { vendor: PCI_VENDOR_ID_INTEL, device: 0x09a2, reqSameHostBridge: false },
  { vendor: PCI_VENDOR_ID_GOOGLE, device: PCI_ANY_ID, reqSameHostBridge: false },
];

/**
 * The whitelist entry matching a host bridge's IDs, or undefined.
 * @see drivers/pci/p2pdma.c __host_bridge_whitelist (the ID match only; the model returns the entry)
 */
export function findP2pdmaWhitelistEntry(
  vendor: number,
  device: number,
): PciP2pdmaWhitelistEntry | undefined {
  return PCI_P2PDMA_WHITELIST.find(
    (e) => e.vendor === vendor && (e.device === PCI_ANY_ID || e.device === device),
  );
}
