// The quick example of README.md, verbatim, with assertions on the values its comments show.

import {
  bitMask,
  calcMapTypeAndDist,
  Device,
  DMA_MAPPING_ERROR,
  dmaGetMaxSegSize,
  isKernelError,
  KernelLog,
  PCI_P2PDMA_MAP_BUS_ADDR,
  PciHostBridge,
  physToDma,
  SimClock,
} from "@dmakit/core";
import { describe, expect, it } from "vitest";

describe("README quick example", () => {
  it("runs as written in README.md", () => {
    const clock = new SimClock();
    const log = new KernelLog({ now: () => clock.now() }); // dmesg times come from the simulated clock

    // A platform device whose bus sees RAM at 0x8000_0000 as DMA address 0 (devicetree dma-ranges).
    const cam = new Device({
      name: "cam0",
      bus: "platform",
      log,
      dmaMask: bitMask(32),
      dmaRangeMap: [{ cpuStart: 0x8000_0000, dmaStart: 0, size: 0x4000_0000 }],
    });
    const busAddr = physToDma(cam, 0x8010_0000); // 0x100000
    const unreachable = physToDma(cam, 0x1000) === DMA_MAPPING_ERROR; // true: no window covers it
    const maxSeg = dmaGetMaxSegSize(cam); // 65536, the kernel's default

    // WARN_ONCE records once and carries on; failures throw KernelError carrying the errno.
    clock.advance(1_500_000);
    log.warnOnce(true, "cam0:fifo", "cam0", "FIFO overrun");
    log.warnOnce(true, "cam0:fifo", "cam0", "FIFO overrun");
    const dmesg = log.dmesg(); // "[    0.001500] WARNING: cam0: FIFO overrun"
    cam.bindDriver("camdrv");
    let ret = 0;
    try {
      cam.bindDriver("other");
    } catch (e) {
      if (isKernelError(e, "EBUSY")) ret = e.ret; // -16
    }

    // Two endpoints below one PCIe switch reach each other's BARs by PCI bus address.
    const hb = new PciHostBridge({ log });
    const sw = hb.addSwitch(hb.addRootPort({ acs: true }), [{}, {}]);
    const nvme = hb.addEndpoint(sw.downstream[0]!, { name: "nvme0" });
    const gpu = hb.addEndpoint(sw.downstream[1]!, { name: "gpu0" });
    const p2p = calcMapTypeAndDist(nvme, gpu);
    const viaSwitch = p2p.mapType === PCI_P2PDMA_MAP_BUS_ADDR; // true, p2p.dist === 4

    // The values the README's comments show.
    expect(busAddr).toBe(0x100000);
    expect(unreachable).toBe(true);
    expect(maxSeg).toBe(65536);
    expect(dmesg).toBe("[    0.001500] WARNING: cam0: FIFO overrun");
    expect(ret).toBe(-16);
    expect(viaSwitch).toBe(true);
    expect(p2p.dist).toBe(4);
  });
});
