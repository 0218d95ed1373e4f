import { KernelError } from "@dmakit/core";
import type { IoPgtable, IoPgtableCfg, IoPgtableInitFns, IoPgtableOps } from "./IoPgtable.js";
import { IO_PGTABLE_NUM_FMTS, type IoPgtableFmt, ioPgtableFmtName } from "./ioPgtableFmt.js";

/**
 * The table of page-table formats: `io_pgtable_init_table[]`, as an object.
 *
 * Where formats are registered: the kernel fills a static array at build time. The model keeps a
 * {@link IoPgtableRegistry} object. {@link defaultIoPgtableRegistry} is the one module-level
 * instance: implementation packages add their formats to it when imported (the SMMUv3 package
 * registers `ARM_64_LPAE_S1`/`_S2`, the VT-d package `INTEL_VTD_SL`), so
 * `allocIoPgtableOps(fmt, cfg, cookie)` works without wiring. It holds code (which function builds
 * which format), never machine state: page tables, their memory and their TLBs belong to the
 * machine that allocated them. Tests, or a machine that wants a private or replaced format, create
 * their own registry and pass it as the last argument.
 *
 * @see drivers/iommu/io-pgtable.c io_pgtable_init_table
 */
export class IoPgtableRegistry {
  private readonly fns: Array<IoPgtableInitFns | undefined> = new Array(IO_PGTABLE_NUM_FMTS);
  // ops → table, for free (the kernel uses container_of); weak so freed tables are not retained.
  private readonly tables = new WeakMap<IoPgtableOps, IoPgtable>();

  /**
   * Registers `initFns` for `fmt`. Registering the same object again is a no-op (a package imported
   * twice); another object for an already registered format throws `EEXIST` unless `replace` is set.
   * `EINVAL` for a format id out of range.
   */
  register(fmt: IoPgtableFmt, initFns: IoPgtableInitFns, options: { replace?: boolean } = {}): void {
    if (!Number.isInteger(fmt) || fmt < 0 || fmt >= IO_PGTABLE_NUM_FMTS)
      throw new KernelError(
        "EINVAL",
        `io-pgtable: format id ${fmt} out of range [0, ${IO_PGTABLE_NUM_FMTS})`,
      );
    const cur = this.fns[fmt];
    if (cur !== undefined && cur !== initFns && options.replace !== true)
      throw new KernelError("EEXIST", `io-pgtable: format ${ioPgtableFmtName(fmt)} already registered`);
    this.fns[fmt] = initFns;
  }

  /** Removes `fmt`'s registration (tables already allocated keep working until freed). */
  unregister(fmt: IoPgtableFmt): void {
    this.fns[fmt] = undefined;
  }

  /** The init functions registered for `fmt`, or undefined. */
  get(fmt: IoPgtableFmt): IoPgtableInitFns | undefined {
    return this.fns[fmt];
  }

  /** The formats registered, ascending. */
  formats(): IoPgtableFmt[] {
    const out: IoPgtableFmt[] = [];
    for (let f = 0; f < this.fns.length; f++) if (this.fns[f] !== undefined) out.push(f as IoPgtableFmt);
    return out;
  }

  /** See {@link allocIoPgtableOps}. */
  allocIoPgtableOps(fmt: IoPgtableFmt, cfg: IoPgtableCfg, cookie: unknown): IoPgtableOps | null {
    if (fmt < 0 || fmt >= IO_PGTABLE_NUM_FMTS) return null;
    const fns = this.fns[fmt];
    if (fns === undefined) return null;
    const iop = fns.alloc(cfg, cookie);
    if (iop === null) return null;
    this.tables.set(iop.ops, iop);
    return iop.ops;
  }

  /** See {@link freeIoPgtableOps}. */
  freeIoPgtableOps(ops: IoPgtableOps | null): void {
    if (ops === null) return;
    const iop = this.tables.get(ops);
    if (iop === undefined)
      throw new KernelError("EINVAL", "io-pgtable: free_io_pgtable_ops: ops not allocated by this registry");
    this.tables.delete(ops);
    iop.cfg.tlb?.tlbFlushAll(iop.cookie);
    const fns = this.fns[iop.fmt];
    if (fns === undefined)
      throw new KernelError("EINVAL", `io-pgtable: format ${ioPgtableFmtName(iop.fmt)} no longer registered`);
    fns.free(iop);
  }

  /** `io_pgtable_ops_to_pgtable(ops)`: the table behind `ops`, or undefined if not from this registry. */
  pgtableOf(ops: IoPgtableOps): IoPgtable | undefined {
    return this.tables.get(ops);
  }
}

/**
 * The registry implementation packages add their formats to on import. A table of code, not
 * machine state (see {@link IoPgtableRegistry}).
 * @see drivers/iommu/io-pgtable.c io_pgtable_init_table (a static array there; filled on import here)
 */
export const defaultIoPgtableRegistry = new IoPgtableRegistry();

/**
 * Registers a page-table format (the model's way of adding to `io_pgtable_init_table[]`), in
 * `registry` (default: {@link defaultIoPgtableRegistry}). Same object twice: no-op; a different
 * one: `EEXIST`.
 * @see drivers/iommu/io-pgtable.c io_pgtable_init_table
 */
export function registerIoPgtableFormat(
  fmt: IoPgtableFmt,
  initFns: IoPgtableInitFns,
  registry: IoPgtableRegistry = defaultIoPgtableRegistry,
): void {
  registry.register(fmt, initFns);
}

/**
 * `alloc_io_pgtable_ops(fmt, cfg, cookie)`: allocates a table of format `fmt` through its registered
 * init functions. Returns null (the kernel's NULL) when the format is unknown or unregistered or its
 * `alloc` refuses the config. The format may narrow `cfg.pgsizeBitmap` and fills `cfg.fmtCfg`.
 * Model difference: the table shares the caller's `cfg` object (the kernel copies it into the
 * table after `alloc`).
 * @see drivers/iommu/io-pgtable.c alloc_io_pgtable_ops
 */
export function allocIoPgtableOps(
  fmt: IoPgtableFmt,
  cfg: IoPgtableCfg,
  cookie: unknown,
  registry: IoPgtableRegistry = defaultIoPgtableRegistry,
): IoPgtableOps | null {
  return registry.allocIoPgtableOps(fmt, cfg, cookie);
}

/**
 * `free_io_pgtable_ops(ops)`: flushes the whole TLB context (`tlb_flush_all`), then frees every table
 * page. Null is ignored. `EINVAL` when `ops` did not come from `registry`.
 * @see drivers/iommu/io-pgtable.c free_io_pgtable_ops
 */
export function freeIoPgtableOps(
  ops: IoPgtableOps | null,
  registry: IoPgtableRegistry = defaultIoPgtableRegistry,
): void {
  registry.freeIoPgtableOps(ops);
}
