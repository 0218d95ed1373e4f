import type { Device } from "./Device.js";
import { findParentPciDev, type PciDev, pciDevId, pciName } from "./PciDev.js";
import type { PciHostBridge } from "./PciHostBridge.js";
import { pciBridgeHasAcsRedir } from "./pciAcs.js";

/** `PCI_P2PDMA_MAP_UNKNOWN`: not computed yet. @see include/linux/pci-p2pdma.h enum pci_p2pdma_map_type */
export const PCI_P2PDMA_MAP_UNKNOWN = 0;
/**
 * `PCI_P2PDMA_MAP_NONE`: not P2PDMA memory; map it the normal way.
 * @see include/linux/pci-p2pdma.h enum pci_p2pdma_map_type
 */
export const PCI_P2PDMA_MAP_NONE = 1;
/**
 * `PCI_P2PDMA_MAP_NOT_SUPPORTED`: the path cannot carry P2P TLPs; mapping fails (-EREMOTEIO).
 * @see include/linux/pci-p2pdma.h enum pci_p2pdma_map_type
 */
export const PCI_P2PDMA_MAP_NOT_SUPPORTED = 2;
/**
 * `PCI_P2PDMA_MAP_BUS_ADDR`: through a switch; program the PCI bus address, bypass the IOMMU.
 * @see include/linux/pci-p2pdma.h enum pci_p2pdma_map_type
 */
export const PCI_P2PDMA_MAP_BUS_ADDR = 3;
/**
 * `PCI_P2PDMA_MAP_THRU_HOST_BRIDGE`: via an allowlisted host bridge; map the CPU address normally.
 * @see include/linux/pci-p2pdma.h enum pci_p2pdma_map_type
 */
export const PCI_P2PDMA_MAP_THRU_HOST_BRIDGE = 4;

/** `enum pci_p2pdma_map_type`. @see include/linux/pci-p2pdma.h enum pci_p2pdma_map_type */
export type PciP2pdmaMapType = 0 | 1 | 2 | 3 | 4;

/**
 * Result of {@link calcMapTypeAndDist}: the map type and the `*dist` out-parameter.
 * Model-only: return value plus the `int *dist` out-parameter of `calc_map_type_and_dist`.
 */
export interface P2pdmaMapTypeAndDist {
  readonly mapType: PciP2pdmaMapType;
  /** Ports traversed: via the common upstream bridge, or both full depths when there is none. */
  readonly dist: number;
}

/**
 * `pci_p2pdma_setup(pdev)`: gives `pdev` the P2PDMA provider state (the map-type cache) if it has
 * none; returns it. The allocation pool of `pci_p2pdma_add_resource` lives in dma-mapping.
 * @see drivers/pci/p2pdma.c pci_p2pdma_setup
 */
export function pciP2pdmaSetup(pdev: PciDev): NonNullable<PciDev["p2pdma"]> {
  pdev.p2pdma ??= { mapTypes: new Map() };
  return pdev.p2pdma;
}

/** `map_types_idx(client)`: `pci_domain_nr << 16 | pci_dev_id`. @see drivers/pci/p2pdma.c map_types_idx */
export function mapTypesIdx(client: PciDev): number {
  return client.hostBridge.domain * 0x10000 + pciDevId(client);
}

function hostBridgeAllowed(host: PciHostBridge, sameHostBridge: boolean, warn: boolean): boolean {
  if (host.p2pdmaAllowlisted) return !(host.p2pdmaReqSameHostBridge && !sameHostBridge);
  if (warn) {
    const h = (v: number) => v.toString(16).padStart(4, "0");
    host.log.warning(host.name, `Host bridge not in P2PDMA whitelist: ${h(host.vendor)}:${h(host.device)}`);
  }
  return false;
}

/**
 * `host_bridge_whitelist(a, b, warn)`: both devices' host bridges forward P2P: the same allowlisted
 * host bridge, or two allowlisted ones without `REQ_SAME_HOST_BRIDGE`.
 * @see drivers/pci/p2pdma.c host_bridge_whitelist, __host_bridge_whitelist (the allowlist decision is
 * `PciHostBridge.p2pdmaAllowlisted`, defaulted from the table by vendor/device)
 */
export function hostBridgeWhitelist(a: PciDev, b: PciDev, warn: boolean): boolean {
  const hostA = a.hostBridge;
  const hostB = b.hostBridge;
  if (hostA === hostB) return hostBridgeAllowed(hostA, true, warn);
  return hostBridgeAllowed(hostA, false, warn) && hostBridgeAllowed(hostB, false, warn);
}

/**
 * `calc_map_type_and_dist(provider, client, &dist, verbose)`: how `client` reaches `provider`'s
 * memory. Walks up from the provider to the first bridge that is also above (or is) the client;
 * distance = steps up from each side. Found, with no ACS redirect on the way (provider side up to
 * and including the common bridge, client side below it): `PCI_P2PDMA_MAP_BUS_ADDR`. Otherwise
 * (no common bridge, e.g. different root ports, or ACS redirect) the TLPs go through the root
 * complex: `THRU_HOST_BRIDGE` when the CPU supports P2P or the host bridge(s) are allowlisted, else
 * `NOT_SUPPORTED`. With no common bridge the distance is the sum of both full depths.
 * With `verbose`, the kernel's `pci_warn`s go to the client's log. The result is stored in the
 * provider's map-type cache when it is a P2PDMA provider.
 *
 * Kernel values: same device 0; two functions behind one port 2; two endpoints below one switch
 * 4; two endpoints below different root ports of one host bridge 4 (no common bridge).
 *
 * @see drivers/pci/p2pdma.c calc_map_type_and_dist (mainline before the ACS-path rework; the
 * model has no 10-bit-tag check and no vendor exceptions such as Intel GPU functions)
 */
export function calcMapTypeAndDist(provider: PciDev, client: PciDev, verbose = false): P2pdmaMapTypeAndDist {
  let mapType: PciP2pdmaMapType = PCI_P2PDMA_MAP_THRU_HOST_BRIDGE;
  const acsList: string[] = [];
  let distA = 0;
  let distB = 0;
  let a: PciDev | null = provider;
  let common: PciDev | null = null;

  outer: while (a !== null) {
    distB = 0;
    if (pciBridgeHasAcsRedir(a)) acsList.push(pciName(a));
    for (let bb: PciDev | null = client; bb !== null; bb = bb.upstream) {
      if (a === bb) {
        common = a;
        break outer;
      }
      distB++;
    }
    a = a.upstream;
    distA++;
  }

  let acsRedirects = false;
  const dist = distA + distB;
  if (common !== null) {
    for (let bb: PciDev | null = client; bb !== null && bb !== common; bb = bb.upstream) {
      if (pciBridgeHasAcsRedir(bb)) acsList.push(pciName(bb));
    }
    if (acsList.length === 0) {
      mapType = PCI_P2PDMA_MAP_BUS_ADDR;
    } else {
      if (verbose) {
        client.log.warning(
          pciName(client),
          `ACS redirect is set between the client and provider (${pciName(provider)})`,
        );
        client.log.warning(
          pciName(client),
          `to disable ACS redirect for this path, add the kernel parameter: pci=disable_acs_redir=${acsList.join(";")}`,
        );
      }
      acsRedirects = true;
    }
  }
  if (mapType !== PCI_P2PDMA_MAP_BUS_ADDR) {
    if (!provider.hostBridge.cpuSupportsP2pdma && !hostBridgeWhitelist(provider, client, acsRedirects)) {
      if (verbose) {
        client.log.warning(
          pciName(client),
          `cannot be used for peer-to-peer DMA as the client and provider (${pciName(provider)}) do not share an upstream bridge or whitelisted host bridge`,
        );
      }
      mapType = PCI_P2PDMA_MAP_NOT_SUPPORTED;
    }
  }
  provider.p2pdma?.mapTypes.set(mapTypesIdx(client), mapType);
  return { mapType, dist };
}

/**
 * `pci_p2pdma_map_type(provider, dev)`: the cached map type for `dev` using `provider`'s P2P memory,
 * computed verbosely on first use. `NOT_SUPPORTED` when the provider has no P2PDMA state (see
 * {@link pciP2pdmaSetup}) or `dev` is not itself a PCI device.
 * @see drivers/pci/p2pdma.c pci_p2pdma_map_type (the model takes the provider device rather than its
 * pgmap / `struct p2pdma_provider`)
 */
export function pciP2pdmaMapType(provider: PciDev, dev: Device): PciP2pdmaMapType {
  if (provider.p2pdma === null) return PCI_P2PDMA_MAP_NOT_SUPPORTED;
  const client = findParentPciDev(dev);
  if (client !== dev || client === null) return PCI_P2PDMA_MAP_NOT_SUPPORTED;
  const cached = provider.p2pdma.mapTypes.get(mapTypesIdx(client)) as PciP2pdmaMapType | undefined;
  if (cached !== undefined && cached !== PCI_P2PDMA_MAP_UNKNOWN) return cached;
  return calcMapTypeAndDist(provider, client, true).mapType;
}

/**
 * `pci_p2pdma_distance_many(provider, clients, num_clients, verbose)`: the summed distance from
 * `provider` to every client (each client's nearest PCI ancestor is used), or -1 when the list is
 * empty, a client has no PCI ancestor, or any path is `NOT_SUPPORTED`. Paths through an
 * allowlisted host bridge count. With `verbose` every client is checked and warnings logged.
 * @see drivers/pci/p2pdma.c pci_p2pdma_distance_many (returns the kernel's -1 sentinel, no throw)
 */
export function pciP2pdmaDistanceMany(provider: PciDev, clients: readonly Device[], verbose = false): number {
  if (clients.length === 0) return -1;
  let notSupported = false;
  let total = 0;
  for (const c of clients) {
    const pciClient = findParentPciDev(c);
    if (pciClient === null) {
      if (verbose) c.log.warning(c.name, "cannot be used for peer-to-peer DMA as it is not a PCI device");
      return -1;
    }
    const { mapType, dist } = calcMapTypeAndDist(provider, pciClient, verbose);
    if (mapType === PCI_P2PDMA_MAP_NOT_SUPPORTED) notSupported = true;
    if (notSupported && !verbose) break;
    total += dist;
  }
  return notSupported ? -1 : total;
}

/**
 * The kernel name of a map type, for messages and traces.
 * Model-only: the enum names for messages and traces.
 */
export function pciP2pdmaMapTypeName(t: PciP2pdmaMapType): string {
  return [
    "PCI_P2PDMA_MAP_UNKNOWN",
    "PCI_P2PDMA_MAP_NONE",
    "PCI_P2PDMA_MAP_NOT_SUPPORTED",
    "PCI_P2PDMA_MAP_BUS_ADDR",
    "PCI_P2PDMA_MAP_THRU_HOST_BRIDGE",
  ][t] as string;
}
