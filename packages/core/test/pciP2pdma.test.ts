import { describe, expect, it } from "vitest";
import {
  calcMapTypeAndDist,
  Device,
  KernelLog,
  PCI_ACS_RR,
  PCI_ACS_SV,
  PCI_EXP_TYPE_DOWNSTREAM,
  PCI_P2PDMA_MAP_BUS_ADDR,
  PCI_P2PDMA_MAP_NOT_SUPPORTED,
  PCI_P2PDMA_MAP_THRU_HOST_BRIDGE,
  PciHostBridge,
  type PciHostBridgeOptions,
  pciDisableAcsRedir,
  pciName,
  pciP2pdmaDistanceMany,
  pciP2pdmaMapType,
  pciP2pdmaMapTypeName,
  pciP2pdmaSetup,
} from "../src/index.js";

/** RP (ACS) → switch with two downstream ports → one endpoint each; plus a second root port. */
function topo(dspAcs: boolean, hb: PciHostBridgeOptions = {}) {
  const log = new KernelLog();
  const host = new PciHostBridge({ vendor: 0x8086, device: 0x1234, log, ...hb });
  const rp = host.addRootPort({ acs: true });
  const sw = host.addSwitch(rp, [{ acs: dspAcs }, { acs: dspAcs }]);
  const [dspA, dspB] = sw.downstream as [typeof rp, typeof rp];
  const epA = host.addEndpoint(dspA, { name: "nvme0" });
  const epB = host.addEndpoint(dspB, { name: "gpu0" });
  const rp2 = host.addRootPort({ acs: true });
  const epC = host.addEndpoint(rp2, { name: "nic0" });
  return { log, host, rp, sw, dspA, dspB, epA, epB, rp2, epC };
}

describe("calc_map_type_and_dist", () => {
  it("numbers the topology like a PCI scan would", () => {
    const t = topo(false);
    expect(pciName(t.rp)).toBe("0000:00:01.0");
    expect(pciName(t.sw.upstream)).toBe("0000:01:00.0");
    expect(pciName(t.dspA)).toBe("0000:02:00.0");
    expect(pciName(t.dspB)).toBe("0000:02:01.0");
    expect(pciName(t.epA)).toBe("0000:03:00.0");
    expect(pciName(t.epB)).toBe("0000:04:00.0");
  });

  it("two endpoints below one switch without ACS: BUS_ADDR, distance 4", () => {
    const t = topo(false);
    expect(calcMapTypeAndDist(t.epA, t.epB)).toEqual({ mapType: PCI_P2PDMA_MAP_BUS_ADDR, dist: 4 });
    expect(calcMapTypeAndDist(t.epB, t.epA)).toEqual({ mapType: PCI_P2PDMA_MAP_BUS_ADDR, dist: 4 });
  });

  it("the same device: BUS_ADDR, distance 0", () => {
    const t = topo(true);
    expect(calcMapTypeAndDist(t.epA, t.epA)).toEqual({ mapType: PCI_P2PDMA_MAP_BUS_ADDR, dist: 0 });
  });

  it("ACS redirect on the switch ports: through the host bridge, or not supported", () => {
    const t = topo(true);
    expect(calcMapTypeAndDist(t.epA, t.epB, true)).toEqual({
      mapType: PCI_P2PDMA_MAP_NOT_SUPPORTED,
      dist: 4,
    });
    const msgs = t.log.records().map((r) => r.message);
    expect(msgs).toContain("ACS redirect is set between the client and provider (0000:03:00.0)");
    expect(msgs).toContain(
      "to disable ACS redirect for this path, add the kernel parameter: pci=disable_acs_redir=0000:02:00.0;0000:02:01.0",
    );
    expect(msgs).toContain("Host bridge not in P2PDMA whitelist: 8086:1234");
    const allow = topo(true, { p2pdmaAllowlisted: true });
    expect(calcMapTypeAndDist(allow.epA, allow.epB)).toEqual({
      mapType: PCI_P2PDMA_MAP_THRU_HOST_BRIDGE,
      dist: 4,
    });
    // Non-verbose: nothing logged.
    expect(allow.log.records().length).toBe(0);
  });

  it("ACS redirect on one side only still redirects", () => {
    const log = new KernelLog();
    const host = new PciHostBridge({ log });
    const rp = host.addRootPort({ acs: true });
    const sw = host.addSwitch(rp, [{ acs: false }, { acs: true }]);
    const a = host.addEndpoint(sw.downstream[0]!);
    const b = host.addEndpoint(sw.downstream[1]!);
    expect(calcMapTypeAndDist(a, b).mapType).toBe(PCI_P2PDMA_MAP_NOT_SUPPORTED);
    expect(calcMapTypeAndDist(b, a).mapType).toBe(PCI_P2PDMA_MAP_NOT_SUPPORTED);
    pciDisableAcsRedir(sw.downstream[1]!);
    expect(calcMapTypeAndDist(a, b)).toEqual({ mapType: PCI_P2PDMA_MAP_BUS_ADDR, dist: 4 });
  });

  it("ACS on the root port above the common switch does not matter", () => {
    const t = topo(false);
    expect(t.rp.acsCtrl & PCI_ACS_RR).toBe(PCI_ACS_RR);
    expect(calcMapTypeAndDist(t.epA, t.epB).mapType).toBe(PCI_P2PDMA_MAP_BUS_ADDR);
  });

  it("different root ports share no bridge: distance is both depths", () => {
    const t = topo(false);
    // epA: epA, dspA, usp, rp = 4 steps; epC: epC, rp2 = 2 steps.
    expect(calcMapTypeAndDist(t.epA, t.epC, true)).toEqual({
      mapType: PCI_P2PDMA_MAP_NOT_SUPPORTED,
      dist: 6,
    });
    expect(t.log.find({ message: "do not share an upstream bridge or whitelisted host bridge" }).length).toBe(
      1,
    );
    // Not an ACS case: the kernel does not print the allowlist warning then.
    expect(t.log.find({ message: "whitelist:" }).length).toBe(0);
    const allow = topo(false, { device: 0x2020 }); // Skylake-E, on the kernel's allowlist
    expect(allow.host.p2pdmaAllowlisted).toBe(true);
    expect(calcMapTypeAndDist(allow.epA, allow.epC)).toEqual({
      mapType: PCI_P2PDMA_MAP_THRU_HOST_BRIDGE,
      dist: 6,
    });
    const rp1 = allow.host.addRootPort();
    const e1 = allow.host.addEndpoint(rp1);
    expect(calcMapTypeAndDist(e1, allow.epC)).toEqual({ mapType: PCI_P2PDMA_MAP_THRU_HOST_BRIDGE, dist: 4 });
    const zen = topo(false, { cpuSupportsP2pdma: true });
    expect(calcMapTypeAndDist(zen.epA, zen.epC).mapType).toBe(PCI_P2PDMA_MAP_THRU_HOST_BRIDGE);
  });

  it("functions of one device behind one port: distance 2", () => {
    const host = new PciHostBridge();
    const rp = host.addRootPort({ acs: false });
    const f0 = host.addEndpoint(rp, { fn: 0 });
    const f1 = host.addEndpoint(rp, { fn: 1 });
    expect(f0.multifunction && f1.multifunction).toBe(true);
    expect(calcMapTypeAndDist(f0, f1)).toEqual({ mapType: PCI_P2PDMA_MAP_BUS_ADDR, dist: 2 });
  });

  it("cascaded switches: distance counts every port", () => {
    const host = new PciHostBridge();
    const rp = host.addRootPort({ acs: true });
    const sw1 = host.addSwitch(rp, [{}, {}]);
    const sw2 = host.addSwitch(sw1.downstream[1]!, [{}]);
    const a = host.addEndpoint(sw1.downstream[0]!);
    const b = host.addEndpoint(sw2.downstream[0]!);
    expect(calcMapTypeAndDist(a, b)).toEqual({ mapType: PCI_P2PDMA_MAP_BUS_ADDR, dist: 6 });
  });

  it("host bridges: REQ_SAME_HOST_BRIDGE entries refuse cross-bridge paths", () => {
    const mk = (device: number) => {
      const h0 = new PciHostBridge({ domain: 0, device });
      const h1 = new PciHostBridge({ domain: 1, device });
      return [h0.addEndpoint(h0.addRootPort()), h1.addEndpoint(h1.addRootPort())] as const;
    };
    const [x0, x1] = mk(0x2f00); // Xeon E5 v3: same host bridge only
    expect(calcMapTypeAndDist(x0, x1)).toEqual({ mapType: PCI_P2PDMA_MAP_NOT_SUPPORTED, dist: 4 });
    const [s0, s1] = mk(0x2030);
    expect(calcMapTypeAndDist(s0, s1)).toEqual({ mapType: PCI_P2PDMA_MAP_THRU_HOST_BRIDGE, dist: 4 });
    expect(pciName(s1)).toBe("0001:01:00.0");
  });
});

describe("pci_p2pdma_map_type", () => {
  it("needs a provider with P2PDMA state and a PCI client; caches like the kernel", () => {
    const t = topo(false);
    expect(pciP2pdmaMapType(t.epA, t.epB)).toBe(PCI_P2PDMA_MAP_NOT_SUPPORTED);
    const p2p = pciP2pdmaSetup(t.epA);
    expect(pciP2pdmaMapType(t.epA, t.epB)).toBe(PCI_P2PDMA_MAP_BUS_ADDR);
    expect(p2p.mapTypes.size).toBe(1);
    // The kernel does not recompute after ACS changes; the model keeps that until the cache is cleared.
    t.dspB.acsCtrl = PCI_ACS_SV | PCI_ACS_RR;
    t.dspB.acsCap = PCI_ACS_SV | PCI_ACS_RR;
    expect(pciP2pdmaMapType(t.epA, t.epB)).toBe(PCI_P2PDMA_MAP_BUS_ADDR);
    p2p.mapTypes.clear();
    expect(pciP2pdmaMapType(t.epA, t.epB)).toBe(PCI_P2PDMA_MAP_NOT_SUPPORTED);
    const child = new Device({ name: "nvme0n1", parent: t.epB });
    expect(pciP2pdmaMapType(t.epA, child)).toBe(PCI_P2PDMA_MAP_NOT_SUPPORTED);
    expect(pciP2pdmaMapType(t.epA, new Device({ name: "plat" }))).toBe(PCI_P2PDMA_MAP_NOT_SUPPORTED);
    expect(pciP2pdmaMapTypeName(PCI_P2PDMA_MAP_BUS_ADDR)).toBe("PCI_P2PDMA_MAP_BUS_ADDR");
  });
});

describe("pci_p2pdma_distance_many", () => {
  it("sums distances, uses the nearest PCI ancestor, and returns -1 on any failure", () => {
    const t = topo(false);
    expect(pciP2pdmaDistanceMany(t.epA, [])).toBe(-1);
    expect(pciP2pdmaDistanceMany(t.epA, [t.epB, t.epA])).toBe(4);
    const ns = new Device({ name: "nvme1n1", parent: t.epB });
    expect(pciP2pdmaDistanceMany(t.epA, [ns, t.epB])).toBe(8);
    expect(pciP2pdmaDistanceMany(t.epA, [t.epB, t.epC])).toBe(-1);
    const plat = new Device({ name: "dsp", log: t.log });
    expect(pciP2pdmaDistanceMany(t.epA, [plat], true)).toBe(-1);
    expect(t.log.find({ prefix: "dsp", message: "not a PCI device" }).length).toBe(1);
    const allow = topo(false, { p2pdmaAllowlisted: true });
    // Through-host-bridge paths count with their distance.
    expect(pciP2pdmaDistanceMany(allow.epA, [allow.epB, allow.epC])).toBe(4 + 6);
  });

  it("verbose checks every client and warns for each", () => {
    const t = topo(false);
    const other = t.host.addEndpoint(t.host.addRootPort());
    expect(pciP2pdmaDistanceMany(t.epA, [t.epC, other], true)).toBe(-1);
    expect(t.log.find({ message: "do not share an upstream bridge" }).length).toBe(2);
  });

  it("a downstream port type check", () => {
    const t = topo(false);
    expect(t.dspA.pcieType).toBe(PCI_EXP_TYPE_DOWNSTREAM);
  });
});
