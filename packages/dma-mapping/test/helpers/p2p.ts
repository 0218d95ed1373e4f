import { type PciDev, pciP2pdmaSetup } from "@dmakit/core";
import { MEMORY_DEVICE_PCI_P2PDMA, MemoryBackedMmio } from "@dmakit/mm-pages";
import { P2PDMA_PROVIDERS } from "../../src/index.js";
import { makeMachine, type TestMachine } from "./machine.js";

/**
 * Makes `size` bytes of `provider`'s BAR at CPU address `bar` P2PDMA memory, as
 * `pci_p2pdma_add_resource` does: RAM-like MMIO, ZONE_DEVICE pages owned by the provider with the
 * bus offset of the host bridge window, `pci_p2pdma_setup`, and the machine's provider resolver.
 */
export function p2pdmaProvide(
  m: TestMachine,
  provider: PciDev,
  bar: number,
  size: number,
  busOffset: number,
): void {
  m.mem.phys.addMmioRegion({
    start: bar,
    size,
    name: `${provider.name} bar`,
    handler: new MemoryBackedMmio(size),
  });
  m.mem.phys.memremapPages({
    start: bar,
    size,
    type: MEMORY_DEVICE_PCI_P2PDMA,
    owner: provider.name,
    busOffset,
  });
  pciP2pdmaSetup(provider);
  m.system.set(P2PDMA_PROVIDERS, (name) => (name === provider.name ? provider : null));
}

/**
 * An x86-like VT-d machine with a switch holding a P2P provider (`nvme0`, 1 MiB of P2PDMA BAR
 * memory) and a client (`nic0`); plus `far` (`gpu0`) on another root port, which reaches the
 * provider only through the host bridge (allowed when `allowlisted`).
 */
export function p2pMachine(allowlisted: boolean) {
  const m = makeMachine({
    coherent: true,
    iommu: "strict",
    windows: [{ cpuStart: 0x40_0000_0000, busStart: 0x8_0000_0000, size: 0x1000_0000 }],
  });
  m.hb.p2pdmaAllowlisted = allowlisted;
  const rp = m.hb.addRootPort({ acs: true });
  const sw = m.hb.addSwitch(rp, [{ acs: false }, { acs: false }]);
  const provider = m.hb.addEndpoint(sw.downstream[0]!, { name: "nvme0", dmaMask: 2 ** 64 });
  const client = m.hb.addEndpoint(sw.downstream[1]!, { name: "nic0", dmaMask: 2 ** 64 });
  m.attach(provider);
  m.attach(client);
  const far = m.endpoint("gpu0");
  const bar = 0x40_0000_0000;
  const busOffset = 0x8_0000_0000 - 0x40_0000_0000;
  p2pdmaProvide(m, provider, bar, 0x10_0000, busOffset);
  return { m, provider, client, far, bar, busOffset };
}
