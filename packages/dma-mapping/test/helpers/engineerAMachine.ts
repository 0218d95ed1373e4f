import {
  Device,
  type DeviceOptions,
  KernelLog,
  SimClock,
  SZ_256M,
  type TraceEvent,
  TraceRing,
  Tracer,
} from "@dmakit/core";
import {
  bootMemory,
  CpuCache,
  KernelVm,
  type MemorySystem,
  type RamBank,
  type ZoneLimits,
} from "@dmakit/mm-pages";
import { SgPool } from "@dmakit/scatterlist";
import { type DmaConfigureOptions, DmaSystem, dmaConfigure } from "../../src/index.js";

/** RAM below 4 GiB at 2 GiB and RAM above 4 GiB at 34 GiB, 256 MiB each. */
export const LOW_RAM = 0x8000_0000;
export const HIGH_RAM = 0x8_8000_0000;

export interface AMachineOptions {
  /** Platform coherence (x86-like true, arm64 SoC false). Default false. */
  readonly coherent?: boolean;
  readonly banks?: readonly RamBank[];
  readonly zones?: ZoneLimits;
  /** Attach a trace ring. */
  readonly trace?: boolean;
}

export interface AMachine {
  readonly log: KernelLog;
  readonly clock: SimClock;
  readonly mem: MemorySystem;
  readonly cache: CpuCache;
  readonly vm: KernelVm;
  readonly system: DmaSystem;
  readonly tracer: Tracer;
  readonly events: TraceEvent[];
  readonly pool: SgPool;
  /** A platform device bound to the DMA layer (non-coherent unless the machine or `opts` say otherwise). */
  device(name: string, opts?: Partial<Omit<DeviceOptions, "name">>, dma?: DmaConfigureOptions): Device;
  /** CPU write through the cache. */
  cpuWrite(phys: number, bytes: readonly number[] | Uint8Array): void;
  /** CPU read through the cache. */
  cpuRead(phys: number, len: number): Uint8Array;
  /** A non-coherent device reading RAM (what it sees). */
  devRead(phys: number, len: number, coherent?: boolean): Uint8Array;
  /** A non-coherent device writing RAM. */
  devWrite(phys: number, bytes: readonly number[] | Uint8Array, coherent?: boolean): void;
}

/** Engineer A's small machine: boot memory, a CPU cache, the kernel VM and a DmaSystem. */
export function aMachine(options: AMachineOptions = {}): AMachine {
  const clock = new SimClock();
  const log = new KernelLog({ now: () => clock.now() });
  const coherent = options.coherent ?? false;
  const mem = bootMemory(
    {
      banks: options.banks ?? [
        { start: LOW_RAM, size: SZ_256M },
        { start: HIGH_RAM, size: SZ_256M },
      ],
      ...(options.zones ? { zones: options.zones } : {}),
    },
    { log },
  );
  const cache = new CpuCache(mem.phys, { coherent });
  const vm = new KernelVm({ mem: mem.phys, cache, pages: mem.pages });
  const tracer = new Tracer({ now: () => clock.now() });
  const events: TraceEvent[] = [];
  if (options.trace) {
    const ring = new TraceRing();
    tracer.attach({
      write(e) {
        ring.write(e);
        events.push(e);
      },
    });
  }
  const system = new DmaSystem({ mem, cache, vm, log, clock, tracer });
  const pool = new SgPool();
  return {
    log,
    clock,
    mem,
    cache,
    vm,
    system,
    tracer,
    events,
    pool,
    device(name, opts = {}, dma = {}) {
      const dev = new Device({ name, bus: "platform", log, dmaCoherent: coherent, ...opts });
      dmaConfigure(dev, system, dma);
      return dev;
    },
    cpuWrite(phys, bytes) {
      cache.cpuWrite(phys, Uint8Array.from(bytes));
    },
    cpuRead(phys, len) {
      const b = new Uint8Array(len);
      cache.cpuRead(phys, b);
      return b;
    },
    devRead(phys, len, devCoherent = coherent) {
      const b = new Uint8Array(len);
      cache.deviceRead(phys, b, { coherent: devCoherent, device: "dev" });
      return b;
    },
    devWrite(phys, bytes, devCoherent = coherent) {
      cache.deviceWrite(phys, Uint8Array.from(bytes), { coherent: devCoherent, device: "dev" });
    },
  };
}

/** `n` bytes counting up from `seed`. */
export function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (seed + i * 7) & 0xff;
  return b;
}
