import type { KernelLog, SimClock, Tracer } from "@dmakit/core";
import type { IommuSubsystem } from "@dmakit/iommu";
import type { CmaArea, CpuCache, KernelVm, MemorySystem, PageAllocator, PhysMem } from "@dmakit/mm-pages";
import type { DmaDebugHooks } from "./DmaDebugHooks.js";

/**
 * A typed slot for one module's per-machine DMA state (the swiotlb pool, the atomic pools, ...).
 * Model-only.
 */
export class DmaSystemKey<T> {
  readonly name: string;
  /** Phantom field: keeps `T` part of the key's type. */
  declare readonly _type?: T;
  constructor(name: string) {
    this.name = name;
  }
}

/** What a machine hands its DMA layer. Model-only. */
export interface DmaSystemOptions {
  readonly mem: MemorySystem;
  readonly cache: CpuCache;
  readonly vm: KernelVm;
  readonly log: KernelLog;
  readonly clock: SimClock;
  readonly tracer?: Tracer;
  /** The machine's IOMMU core, if it has IOMMUs. */
  readonly iommu?: IommuSubsystem;
  /** `dma_default_coherent`: devices without a `dma-coherent` property are coherent (x86: true). */
  readonly defaultCoherent?: boolean;
  /** Number of CPUs (per-CPU IOVA caches and flush queues). */
  readonly numCpus?: number;
}

/** Counters every DMA path adds to, for reports. Model-only. */
export interface DmaStats {
  /** Streaming mappings made (`dma_map_*` calls that returned a valid handle or count > 0). */
  mappings: number;
  unmappings: number;
  /** Failed map calls (DMA_MAPPING_ERROR, 0 or a negative errno returned). */
  mapErrors: number;
  syncs: number;
  /** Bytes copied into or out of swiotlb bounce buffers. */
  bytesBounced: number;
  /** Coherent / page allocations made and freed. */
  allocations: number;
  frees: number;
}

/**
 * The DMA layer of one machine: what `kernel/dma/` keeps in file-scope variables (the swiotlb pool
 * `io_tlb_default_mem`, the atomic pools, `dma_default_coherent`, dma-debug's hash) lives here, one
 * object per machine, so two machines never share state. Devices are bound to it by `dmaConfigure`.
 *
 * Modules keep their own state in typed slots ({@link DmaSystemKey}) so this container does not
 * need to know them; dma-debug is a direct field because every map and unmap consults it.
 * Model-only.
 */
export class DmaSystem {
  readonly phys: PhysMem;
  readonly pages: PageAllocator;
  readonly cma: readonly CmaArea[];
  readonly mem: MemorySystem;
  readonly cache: CpuCache;
  readonly vm: KernelVm;
  readonly log: KernelLog;
  readonly clock: SimClock;
  readonly tracer: Tracer | null;
  readonly iommu: IommuSubsystem | null;
  /** `dma_default_coherent`. */
  readonly defaultCoherent: boolean;
  readonly numCpus: number;
  /** `CONFIG_DMA_API_DEBUG` for this machine: the hooks every map/unmap/sync/alloc calls, or null. */
  debug: DmaDebugHooks | null = null;
  readonly stats: DmaStats = {
    mappings: 0,
    unmappings: 0,
    mapErrors: 0,
    syncs: 0,
    bytesBounced: 0,
    allocations: 0,
    frees: 0,
  };
  private readonly slots = new Map<DmaSystemKey<unknown>, unknown>();

  constructor(options: DmaSystemOptions) {
    this.mem = options.mem;
    this.phys = options.mem.phys;
    this.pages = options.mem.pages;
    this.cma = options.mem.cma;
    this.cache = options.cache;
    this.vm = options.vm;
    this.log = options.log;
    this.clock = options.clock;
    this.tracer = options.tracer ?? null;
    this.iommu = options.iommu ?? null;
    this.defaultCoherent = options.defaultCoherent ?? options.cache.coherent;
    this.numCpus = options.numCpus ?? 1;
  }

  /** A module's state slot, or undefined when the module has not been set up on this machine. */
  get<T>(key: DmaSystemKey<T>): T | undefined {
    return this.slots.get(key as DmaSystemKey<unknown>) as T | undefined;
  }

  set<T>(key: DmaSystemKey<T>, value: T): void {
    this.slots.set(key as DmaSystemKey<unknown>, value);
  }

  delete<T>(key: DmaSystemKey<T>): boolean {
    return this.slots.delete(key as DmaSystemKey<unknown>);
  }
}
