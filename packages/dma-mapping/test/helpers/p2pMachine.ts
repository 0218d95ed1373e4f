import { pciP2pdmaSetup } from "@dmakit/core";
import { MEMORY_DEVICE_PCI_P2PDMA, MemoryBackedMmio } from "@dmakit/mm-pages";
import { P2PDMA_PROVIDERS } from "../../src/index.js";
import { type IommuDmaMachine, makeIommuDmaMachine } from "./iommuDmaMachine.js";

/** A switch with a P2P provider (BAR with P2PDMA pages) and a client; plus a client on another root port. */
export function p2pMachine(allowlisted: boolean) {
  const m: IommuDmaMachine = makeIommuDmaMachine({
    windows: [{ cpuStart: 0x40_0000_0000, busStart: 0x8_0000_0000, size: 0x1000_0000 }],
  });
  m.hb.p2pdmaAllowlisted = allowlisted;
  const rp = m.hb.addRootPort({ acs: true });
  const sw = m.hb.addSwitch(rp, [{ acs: false }, { acs: false }]);
  const provider = m.hb.addEndpoint(sw.downstream[0]!, { name: "nvme0", dmaMask: 2 ** 64 });
  const client = m.hb.addEndpoint(sw.downstream[1]!, { name: "nic0", dmaMask: 2 ** 64 });
  m.attach(provider);
  m.attach(client);
  const far = m.addEndpoint("gpu0");
  const bar = 0x40_0000_0000;
  m.mem.phys.addMmioRegion({
    start: bar,
    size: 0x10_0000,
    name: "nvme0 bar4",
    handler: new MemoryBackedMmio(0x10_0000),
  });
  const busOffset = 0x8_0000_0000 - 0x40_0000_0000;
  m.mem.phys.memremapPages({
    start: bar,
    size: 0x10_0000,
    type: MEMORY_DEVICE_PCI_P2PDMA,
    owner: "nvme0",
    busOffset,
  });
  pciP2pdmaSetup(provider);
  m.system.set(P2PDMA_PROVIDERS, (name) => (name === provider.name ? provider : null));
  return { m, provider, client, far, bar, busOffset };
}
