import { describe, expect, it } from "vitest";
import {
  PCI_ACS_CR,
  PCI_ACS_RR,
  PCI_ACS_SV,
  PCI_ACS_UF,
  PCI_EXP_TYPE_PCI_BRIDGE,
  PciHostBridge,
  pciAcsEnabled,
  pciAcsPathEnabled,
  pciDeviceGroupKey,
  REQ_ACS_FLAGS,
} from "../src/index.js";

describe("pci_acs_enabled / pci_acs_path_enabled", () => {
  it("follows the per-type rules", () => {
    const host = new PciHostBridge();
    const rpOn = host.addRootPort({ acs: true });
    const rpOff = host.addRootPort({ acs: false });
    const ep = host.addEndpoint(rpOn);
    expect(pciAcsEnabled(rpOn, REQ_ACS_FLAGS)).toBe(true);
    expect(pciAcsEnabled(rpOff, REQ_ACS_FLAGS)).toBe(false);
    // Single-function endpoint: isolated by construction.
    expect(pciAcsEnabled(ep, REQ_ACS_FLAGS)).toBe(true);
    const conv = host.addEndpoint(rpOff, { pcieType: null });
    expect(pciAcsEnabled(conv, REQ_ACS_FLAGS)).toBe(false);
    // Unimplemented capabilities count as enabled; implemented ones must be set.
    const partial = host.addRootPort({
      acs: { cap: PCI_ACS_SV | PCI_ACS_RR, ctrl: PCI_ACS_SV | PCI_ACS_RR },
    });
    expect(pciAcsEnabled(partial, REQ_ACS_FLAGS)).toBe(true);
    const off = host.addRootPort({
      acs: { cap: PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF, ctrl: PCI_ACS_SV },
    });
    expect(pciAcsEnabled(off, REQ_ACS_FLAGS)).toBe(false);
  });

  it("walks to the root or to end", () => {
    const host = new PciHostBridge();
    const rp = host.addRootPort({ acs: false });
    const sw = host.addSwitch(rp, [{ acs: true }]);
    const dsp = sw.downstream[0]!;
    expect(pciAcsPathEnabled(dsp, null, REQ_ACS_FLAGS)).toBe(false);
    expect(pciAcsPathEnabled(dsp, sw.upstream, REQ_ACS_FLAGS)).toBe(true);
    expect(pciAcsPathEnabled(dsp, dsp, REQ_ACS_FLAGS)).toBe(true);
    rp.acsCap = REQ_ACS_FLAGS;
    rp.acsCtrl = REQ_ACS_FLAGS;
    expect(pciAcsPathEnabled(dsp, null, REQ_ACS_FLAGS)).toBe(true);
    // `end` not above `start`: the walk reaches the root bus and fails.
    const other = host.addRootPort({ acs: true });
    expect(pciAcsPathEnabled(dsp, other, REQ_ACS_FLAGS)).toBe(false);
  });
});

describe("pciDeviceGroupKey (pci_device_group)", () => {
  it("endpoints behind non-ACS switch ports group with their port", () => {
    const host = new PciHostBridge();
    const rp = host.addRootPort({ acs: true });
    const sw = host.addSwitch(rp, [{ acs: false }, { acs: false }, { acs: true }]);
    const [d0, d1, d2] = sw.downstream as [typeof rp, typeof rp, typeof rp];
    const e0 = host.addEndpoint(d0);
    const e1 = host.addEndpoint(d1);
    const e2 = host.addEndpoint(d2);
    expect(pciDeviceGroupKey(e0)).toBe(d0);
    expect(pciDeviceGroupKey(d0)).toBe(d0);
    expect(pciDeviceGroupKey(e1)).toBe(d1);
    expect(pciDeviceGroupKey(e2)).toBe(e2);
    expect(pciDeviceGroupKey(sw.upstream)).toBe(sw.upstream);
  });

  it("a root port without ACS puts its whole hierarchy in one group", () => {
    const host = new PciHostBridge();
    const rp = host.addRootPort({ acs: false });
    const sw = host.addSwitch(rp, [{ acs: true }, { acs: true }]);
    const a = host.addEndpoint(sw.downstream[0]!);
    const b = host.addEndpoint(sw.downstream[1]!);
    expect(pciDeviceGroupKey(a)).toBe(rp);
    expect(pciDeviceGroupKey(b)).toBe(rp);
    expect(pciDeviceGroupKey(sw.upstream)).toBe(rp);
    const rp2 = host.addRootPort({ acs: true });
    const c = host.addEndpoint(rp2);
    expect(pciDeviceGroupKey(c)).toBe(c);
  });

  it("functions of a multifunction device without ACS share; with ACS they do not", () => {
    const host = new PciHostBridge();
    const rp = host.addRootPort({ acs: true });
    const f0 = host.addEndpoint(rp, { fn: 0 });
    const f1 = host.addEndpoint(rp, { fn: 1 });
    const f2 = host.addEndpoint(rp, { fn: 2, acs: true });
    expect(pciDeviceGroupKey(f1)).toBe(f0);
    expect(pciDeviceGroupKey(f0)).toBe(f0);
    expect(pciDeviceGroupKey(f2)).toBe(f2);
  });

  it("conventional PCI devices behind a PCIe-to-PCI bridge group with the bridge", () => {
    const host = new PciHostBridge();
    const rp = host.addRootPort({ acs: true });
    const br = host.addDevice(rp, { pcieType: PCI_EXP_TYPE_PCI_BRIDGE });
    const a = host.addEndpoint(br, { pcieType: null });
    const b = host.addEndpoint(br, { pcieType: null });
    expect(pciDeviceGroupKey(a)).toBe(br);
    expect(pciDeviceGroupKey(b)).toBe(br);
    expect(pciDeviceGroupKey(br)).toBe(br);
  });
});
