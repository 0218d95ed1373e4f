import { KernelLog, type PciDev, PciHostBridge, pciDevId, SimClock } from "@dmakit/core";
import {
  IommuSubsystem,
  iommuFwspecAddIds,
  iommuFwspecInit,
  iommuProbeDevice,
  type PgtableMemory,
  pgtableMemoryFromAllocator,
} from "@dmakit/iommu";
import { PageAllocator, PhysMem } from "@dmakit/mm-pages";
import { DmarDomain, DmarHardware, type DmarHardwareOptions, IntelIommu } from "../../src/index.js";

export const RAM_BASE = 0x8000_0000;

export interface VtdMachine {
  log: KernelLog;
  clock: SimClock;
  phys: PhysMem;
  pages: PageAllocator;
  mem: PgtableMemory;
  hw: DmarHardware;
  vtd: IntelIommu;
  iommu: IommuSubsystem;
  hb: PciHostBridge;
  dev: PciDev;
  sid: number;
}

/** A small x86 machine: 256 MiB of RAM at 2 GiB, one VT-d unit, one PCIe endpoint behind a root port. */
export function makeVtdMachine(hwOpts: Partial<DmarHardwareOptions> = {}, withClock = false): VtdMachine {
  const clock = new SimClock();
  const log = new KernelLog({ now: () => clock.now() });
  const phys = new PhysMem({ banks: [{ start: RAM_BASE, size: 256 * 1024 * 1024 }] }, { log });
  const pages = new PageAllocator(phys);
  const mem = pgtableMemoryFromAllocator(phys, pages);
  const hw = new DmarHardware({ phys, log, ...(withClock ? { clock } : {}), ...hwOpts });
  const vtd = new IntelIommu({ hardware: hw, mem, log });
  const iommu = new IommuSubsystem({ log });
  iommu.iommuDeviceRegister(vtd.iommuDevice);
  const hb = new PciHostBridge();
  const rp = hb.addRootPort({ acs: true });
  const dev = hb.addEndpoint(rp, { name: "nvme0" });
  iommuFwspecInit(dev, vtd.iommuDevice);
  iommuFwspecAddIds(dev, [pciDevId(dev)]);
  iommuProbeDevice(iommu, dev);
  return { log, clock, phys, pages, mem, hw, vtd, iommu, hb, dev, sid: pciDevId(dev) };
}

/** A second endpoint on its own root port, probed. */
export function addDevice(m: VtdMachine, name: string): PciDev {
  const rp = m.hb.addRootPort({ acs: true });
  const dev = m.hb.addEndpoint(rp, { name });
  iommuFwspecInit(dev, m.vtd.iommuDevice);
  iommuFwspecAddIds(dev, [pciDevId(dev)]);
  iommuProbeDevice(m.iommu, dev);
  return dev;
}

export function asDmar(d: unknown): DmarDomain {
  if (!(d instanceof DmarDomain)) throw new Error("not a DmarDomain");
  return d;
}
