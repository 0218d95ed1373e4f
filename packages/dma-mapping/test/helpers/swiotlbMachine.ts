import { Device, type DeviceOptions, KernelLog, SimClock, SZ_1G } from "@dmakit/core";
import { bootMemory, CpuCache, KernelVm, type MemoryLayout } from "@dmakit/mm-pages";
import {
  type DmaConfigureOptions,
  DmaSystem,
  dmaConfigure,
  type SwiotlbInitOptions,
  type SwiotlbMem,
  swiotlbInit,
} from "../../src/index.js";

/** A small machine for swiotlb tests: RAM, cache, linear map, DMA layer, optionally a pool. */
export interface SwiotlbMachine {
  readonly log: KernelLog;
  readonly clock: SimClock;
  readonly cache: CpuCache;
  readonly vm: KernelVm;
  readonly system: DmaSystem;
  readonly mem: SwiotlbMem | null;
  /** A configured device (`dmaConfigure`). */
  device(options: Partial<DeviceOptions> & { name: string }, dma?: DmaConfigureOptions): Device;
}

export interface SwiotlbMachineOptions {
  /** Default: one 2 GiB bank at 0x8000_0000 (ZONE_DMA32 up to 4 GiB). */
  readonly layout?: MemoryLayout;
  readonly coherent?: boolean;
  /** swiotlbInit options; null = no pool. Default: a 1 MiB pool. */
  readonly swiotlb?: SwiotlbInitOptions | null;
  readonly numCpus?: number;
}

export function swiotlbMachine(options: SwiotlbMachineOptions = {}): SwiotlbMachine {
  const clock = new SimClock();
  const log = new KernelLog({ now: () => clock.now() });
  const memory = bootMemory(options.layout ?? { banks: [{ start: 0x8000_0000, size: 2 * SZ_1G }] }, { log });
  const cache = new CpuCache(memory.phys, { coherent: options.coherent ?? true });
  const vm = new KernelVm({ mem: memory.phys, cache, pages: memory.pages });
  const system = new DmaSystem({
    mem: memory,
    cache,
    vm,
    log,
    clock,
    ...(options.numCpus !== undefined ? { numCpus: options.numCpus } : {}),
  });
  const mem = options.swiotlb === null ? null : swiotlbInit(system, options.swiotlb ?? { size: 1 << 20 });
  return {
    log,
    clock,
    cache,
    vm,
    system,
    mem,
    device(opts, dma = {}) {
      const dev = new Device({ log, ...opts });
      dmaConfigure(dev, system, dma);
      return dev;
    },
  };
}
