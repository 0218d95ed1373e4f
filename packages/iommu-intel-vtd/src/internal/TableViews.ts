import type { PhysMem } from "@dmakit/mm-pages";

/**
 * 32-bit word views of the 4 KiB pages that hold VT-d tables (root, context, second-level), cached
 * by pfn so the walkers do one Map probe per level instead of building a typed array per access.
 * A descriptor is two words: `v[2 * i]` (bits 31:0) and `v[2 * i + 1]` (bits 63:32). Words are in
 * host byte order, which is little-endian on every platform Node runs on, as `PhysMem.readU32` is.
 *
 * Why one cache per PhysMem (a WeakMap keyed by the machine's memory, not a global table of state):
 * the driver's tables and the hardware walker must read the same bytes, and a cached view must be
 * dropped when its page is freed (the sparse store may later replace the page's backing chunk).
 * Every VT-d table page of a machine is freed through {@link TableViews.drop}, whoever allocated it.
 */
export class TableViews {
  readonly phys: PhysMem;
  private readonly map = new Map<number, Uint32Array>();

  constructor(phys: PhysMem) {
    this.phys = phys;
  }

  /** The live 1024-word view of table page `pfn`. */
  get(pfn: number): Uint32Array {
    let v = this.map.get(pfn);
    if (v === undefined) {
      const u8 = this.phys.pageView(pfn);
      v = new Uint32Array(u8.buffer, u8.byteOffset, 1024);
      this.map.set(pfn, v);
    }
    return v;
  }

  /** Forgets the view of `pfn` (its page is being freed). */
  drop(pfn: number): void {
    this.map.delete(pfn);
  }
}

const byPhys = new WeakMap<PhysMem, TableViews>();

/** The view cache shared by everything that reads VT-d tables in `phys`. */
export function tableViewsFor(phys: PhysMem): TableViews {
  let t = byPhys.get(phys);
  if (t === undefined) {
    t = new TableViews(phys);
    byPhys.set(phys, t);
  }
  return t;
}

/** The pfn a descriptor (`lo`, `hi` words) points to: bits 51:12. */
export function descPfn(lo: number, hi: number): number {
  return (lo >>> 12) + (hi & 0xfffff) * 1048576;
}

/** Pages covered by one entry at `level` (1 → 1, 2 → 512, 3 → 512², ...), i.e. `lvl_to_nr_pages`. */
export const LEVEL_PAGES: readonly number[] = [0, 1, 512, 512 ** 2, 512 ** 3, 512 ** 4, 512 ** 5];
