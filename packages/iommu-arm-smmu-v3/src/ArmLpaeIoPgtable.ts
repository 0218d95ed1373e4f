import { hex, KernelError, type KernelLog } from "@dmakit/core";
import {
  ARM_64_LPAE_S1,
  ARM_64_LPAE_S2,
  IO_PGTABLE_QUIRK_ARM_HD,
  IO_PGTABLE_QUIRK_ARM_NS,
  IO_PGTABLE_QUIRK_ARM_OUTER_WBWA,
  IO_PGTABLE_QUIRK_ARM_S2FWB,
  IO_PGTABLE_QUIRK_ARM_TTBR1,
  IO_PGTABLE_QUIRK_NO_WARN,
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  type IommuIotlbGather,
  type IoPgtable,
  type IoPgtableCfg,
  type IoPgtableFmt,
  type IoPgtableInitFns,
  type IoPgtableOps,
  type IoPgtableRegistry,
  iommuIotlbGatherQueued,
  ioPgtableTlbAddPage,
  ioPgtableTlbFlushWalk,
  registerIoPgtableFormat,
} from "@dmakit/iommu";
import {
  ARM_LPAE_MAIR,
  ARM_LPAE_MAIR_ATTR_IDX_CACHE,
  ARM_LPAE_MAIR_ATTR_IDX_DEV,
  ARM_LPAE_MAX_ADDR_BITS,
  ARM_LPAE_MAX_LEVELS,
  ARM_LPAE_PTE_AF,
  ARM_LPAE_PTE_AP_RDONLY,
  ARM_LPAE_PTE_AP_UNPRIV,
  ARM_LPAE_PTE_ATTR_HI_MASK_HI,
  ARM_LPAE_PTE_ATTR_LO_MASK,
  ARM_LPAE_PTE_ATTRINDX_SHIFT,
  ARM_LPAE_PTE_HAP_READ,
  ARM_LPAE_PTE_HAP_WRITE,
  ARM_LPAE_PTE_MEMATTR_DEV,
  ARM_LPAE_PTE_MEMATTR_NC,
  ARM_LPAE_PTE_MEMATTR_OIWB,
  ARM_LPAE_PTE_NS,
  ARM_LPAE_PTE_NSTABLE_HI,
  ARM_LPAE_PTE_nG,
  ARM_LPAE_PTE_SH_IS,
  ARM_LPAE_PTE_TYPE_BLOCK,
  ARM_LPAE_PTE_TYPE_PAGE,
  ARM_LPAE_PTE_TYPE_TABLE,
  ARM_LPAE_PTE_XN_HI,
  ARM_LPAE_S2_MAX_CONCAT_PAGES,
  ARM_LPAE_TCR_RGN_WBWA,
  ARM_LPAE_TCR_SH_IS,
  ARM_LPAE_TCR_TG0_4K,
  ARM_LPAE_TCR_TG0_16K,
  ARM_LPAE_TCR_TG0_64K,
  ARM_LPAE_VTCR_SL0_MASK,
  armLpaePsEncode,
} from "./armLpaeDefs.js";

/**
 * Stage-1 register values the format hands the SMMU driver (`cfg->arm_lpae_s1_cfg`): TTBR0, the
 * TCR fields a context descriptor holds, and MAIR.
 * @see include/linux/io-pgtable.h struct io_pgtable_cfg arm_lpae_s1_cfg
 */
export interface ArmLpaeS1Cfg {
  /** Physical address of the top-level table. */
  ttbr: number;
  tcr: { ips: number; tg: number; sh: number; orgn: number; irgn: number; tsz: number };
  mair: number;
}

/**
 * Stage-2 register values (`cfg->arm_lpae_s2_cfg`): VTTBR and the VTCR fields an STE holds.
 * @see include/linux/io-pgtable.h struct io_pgtable_cfg arm_lpae_s2_cfg
 */
export interface ArmLpaeS2Cfg {
  vttbr: number;
  vtcr: { ps: number; tg: number; sh: number; orgn: number; irgn: number; sl: number; tsz: number };
}

const TWO32 = 0x100000000;
const PAGE_SHIFT = 12;

/**
 * `struct arm_lpae_io_pgtable`: one ARM 64-bit LPAE page table (stage 1 or stage 2, 4K/16K/64K
 * granule), its descriptors in simulated RAM, and its `io_pgtable_ops` (the object is its own ops).
 *
 * Geometry follows `arm_lpae_alloc_pgtable`: `bits_per_level = pg_shift - 3`, levels =
 * ⌈(ias − pg_shift) / bits_per_level⌉, the top level indexed by the remaining `pgd_bits`; a stage-2
 * table that would need four levels concatenates up to 16 top-level tables one level down.
 *
 * Model differences from `drivers/iommu/io-pgtable-arm.c` (6.x):
 * - A partial unmap of a block splits it (`arm_lpae_split_blk_unmap`, as kernels before 6.13 did;
 *   6.13 removed split-on-unmap).
 * - Mapping a block where a next-level table holds valid leaves throws `EEXIST` (the kernel would
 *   silently unmap and free that table); an empty leftover table is replaced and freed as the
 *   kernel does.
 * - `mapPages` also rejects a misaligned `iova`/`paddr` with `EINVAL` (the kernel relies on
 *   `iommu_map`), and caps a run at the end of a (possibly small) top-level table.
 * - Tables are read and written through cached 32-bit views of their pages (host little-endian);
 *   no cache maintenance is modelled (`coherent_walk`).
 * @see drivers/iommu/io-pgtable-arm.c
 */
export class ArmLpaeIoPgtable implements IoPgtable<ArmLpaeS1Cfg | ArmLpaeS2Cfg>, IoPgtableOps {
  readonly fmt: IoPgtableFmt;
  readonly cookie: unknown;
  readonly cfg: IoPgtableCfg<ArmLpaeS1Cfg | ArmLpaeS2Cfg>;
  /** 1 for `ARM_64_LPAE_S1`, 2 for `ARM_64_LPAE_S2`. */
  readonly stage: 1 | 2;
  /** `data->pg_shift`: log2 of the granule. */
  readonly pgShift: number;
  /** `ARM_LPAE_GRANULE(data)`. */
  readonly granule: number;
  /** `data->bits_per_level`. */
  readonly bitsPerLevel: number;
  /** `ARM_LPAE_PTES_PER_TABLE(data)`. */
  readonly ptesPerTable: number;
  /** Levels walked (after concatenation). */
  readonly levels: number;
  /** `data->start_level`. */
  readonly startLevel: number;
  /** `data->pgd_bits`: index bits of the top level (including concatenation). */
  readonly pgdBits: number;
  /** `ARM_LPAE_PGD_SIZE(data)` in bytes. */
  readonly pgdSize: number;
  /** First pfn of the top-level table. */
  readonly pgdPfn: number;
  /** Table pages this table holds right now (4 KiB pages). */
  tablePages = 0;

  private readonly log: KernelLog;
  private readonly pgdOrder: number;
  private readonly tableOrder: number;
  private readonly pgdEntries: number;
  /** 2^ARM_LPAE_LVL_SHIFT(l): the block size at level l. */
  private readonly blk = new Float64Array(ARM_LPAE_MAX_LEVELS + 1);
  private readonly idxMask = new Int32Array(ARM_LPAE_MAX_LEVELS);
  /** Address bits of the low word of a descriptor: [31:pg_shift]. */
  private readonly addrLoMask: number;
  private readonly views = new Map<number, Uint32Array>();
  // viewOf's memo of recent lookups (pfn -1 = empty); emptied whenever a table page is freed.
  private readonly memoPfn = new Float64Array(4).fill(-1);
  private readonly memoView: Array<Uint32Array | null> = [null, null, null, null];
  private memoNext = 0;
  private lastSize = -1;
  private lastLevel = -1;
  private readonly iasLimit: number;
  private readonly oasLimit: number;
  // Cursor set by at(): the view and word offset of the last descriptor located.
  private v: Uint32Array = new Uint32Array(2);
  private o = 0;

  private constructor(
    fmt: IoPgtableFmt,
    cfg: IoPgtableCfg<ArmLpaeS1Cfg | ArmLpaeS2Cfg>,
    cookie: unknown,
    g: { pgShift: number; startLevel: number; pgdBits: number },
  ) {
    this.fmt = fmt;
    this.cfg = cfg;
    this.cookie = cookie;
    this.stage = fmt === ARM_64_LPAE_S1 ? 1 : 2;
    this.log = cfg.iommuDev?.log ?? cfg.mem.phys.log;
    this.pgShift = g.pgShift;
    this.granule = 2 ** g.pgShift;
    this.bitsPerLevel = g.pgShift - 3;
    this.ptesPerTable = 2 ** this.bitsPerLevel;
    this.startLevel = g.startLevel;
    this.levels = ARM_LPAE_MAX_LEVELS - g.startLevel;
    this.pgdBits = g.pgdBits;
    this.pgdEntries = 2 ** g.pgdBits;
    this.pgdSize = this.pgdEntries * 8;
    this.pgdOrder = Math.max(0, Math.ceil(Math.log2(this.pgdSize)) - PAGE_SHIFT);
    this.tableOrder = g.pgShift - PAGE_SHIFT;
    this.addrLoMask = ~(this.granule - 1) >>> 0;
    this.iasLimit = 2 ** cfg.ias;
    this.oasLimit = 2 ** cfg.oas;
    for (let l = 0; l <= ARM_LPAE_MAX_LEVELS; l++)
      this.blk[l] = 2 ** ((ARM_LPAE_MAX_LEVELS - l) * this.bitsPerLevel + 3);
    for (let l = 0; l < ARM_LPAE_MAX_LEVELS; l++)
      this.idxMask[l] = (l === g.startLevel ? this.pgdEntries : this.ptesPerTable) - 1;
    const pgd = this.allocTable(this.pgdOrder, 0);
    if (pgd === null) throw new KernelError("ENOMEM", "arm-lpae io-pgtable: no memory for the pgd");
    this.pgdPfn = pgd;
  }

  /** `io_pgtable_ops` of this table: the table itself. */
  get ops(): IoPgtableOps {
    return this;
  }

  /** Physical address of the top-level table (TTBR0 / VTTBR). */
  get pgdPhys(): number {
    return this.pgdPfn * 4096;
  }

  /** Block (leaf) size at `level` (`ARM_LPAE_BLOCK_SIZE`). */
  blockSize(level: number): number {
    return this.blk[level] as number;
  }

  /**
   * `arm_64_lpae_alloc_pgtable_s1` / `_s2` (with `arm_lpae_restrict_pgsizes` and
   * `arm_lpae_alloc_pgtable`): narrows `cfg.pgsizeBitmap` to the granule's sizes, clamps ias/oas to
   * 48, computes the geometry (and stage-2 concatenation), fills `cfg.fmtCfg` and allocates a
   * zeroed pgd. Returns null for an unsupported config (quirk, sizes, oas), as the kernel does;
   * throws `ENOMEM` when the pgd cannot be allocated.
   */
  static alloc(fmt: IoPgtableFmt, cfg: IoPgtableCfg, cookie: unknown): ArmLpaeIoPgtable | null {
    const s1 = fmt === ARM_64_LPAE_S1;
    if (!s1 && fmt !== ARM_64_LPAE_S2) return null;
    const allowed = s1
      ? IO_PGTABLE_QUIRK_ARM_NS |
        IO_PGTABLE_QUIRK_ARM_TTBR1 |
        IO_PGTABLE_QUIRK_ARM_OUTER_WBWA |
        IO_PGTABLE_QUIRK_ARM_HD |
        IO_PGTABLE_QUIRK_NO_WARN
      : IO_PGTABLE_QUIRK_ARM_S2FWB | IO_PGTABLE_QUIRK_NO_WARN;
    if ((cfg.quirks & ~allowed) !== 0) return null;
    // TTBR1 (upper half) tables are not modelled.
    if ((cfg.quirks & IO_PGTABLE_QUIRK_ARM_TTBR1) !== 0) return null;
    restrictPgsizes(cfg);
    if ((cfg.pgsizeBitmap & (0x1000 | 0x4000 | 0x10000)) === 0) return null;
    if (cfg.ias > ARM_LPAE_MAX_ADDR_BITS || cfg.oas > ARM_LPAE_MAX_ADDR_BITS) return null;
    const ps = armLpaePsEncode(cfg.oas);
    if (ps < 0) return null;
    const pgShift = ffs32(cfg.pgsizeBitmap);
    const bpl = pgShift - 3;
    const vaBits = cfg.ias - pgShift;
    const levels = Math.ceil(vaBits / bpl);
    let startLevel = ARM_LPAE_MAX_LEVELS - levels;
    let pgdBits = vaBits - bpl * (levels - 1);
    if (!s1 && startLevel === 0) {
      const pgdPages = 2 ** pgdBits;
      if (pgdPages <= ARM_LPAE_S2_MAX_CONCAT_PAGES) {
        pgdBits += bpl;
        startLevel++;
      }
    }
    const data = new ArmLpaeIoPgtable(fmt, cfg as IoPgtableCfg<ArmLpaeS1Cfg | ArmLpaeS2Cfg>, cookie, {
      pgShift,
      startLevel,
      pgdBits,
    });
    const tg =
      pgShift === 12 ? ARM_LPAE_TCR_TG0_4K : pgShift === 14 ? ARM_LPAE_TCR_TG0_16K : ARM_LPAE_TCR_TG0_64K;
    if (s1) {
      const c: ArmLpaeS1Cfg = {
        ttbr: data.pgdPhys,
        tcr: {
          ips: ps,
          tg,
          sh: ARM_LPAE_TCR_SH_IS,
          orgn: ARM_LPAE_TCR_RGN_WBWA,
          irgn: ARM_LPAE_TCR_RGN_WBWA,
          tsz: 64 - cfg.ias,
        },
        mair: ARM_LPAE_MAIR,
      };
      cfg.fmtCfg = c;
    } else {
      // SL0 counts differently for the 4K granule (arm_64_lpae_alloc_pgtable_s2).
      let sl = startLevel;
      if (pgShift === 12) sl++;
      const c: ArmLpaeS2Cfg = {
        vttbr: data.pgdPhys,
        vtcr: {
          ps,
          tg,
          sh: ARM_LPAE_TCR_SH_IS,
          orgn: ARM_LPAE_TCR_RGN_WBWA,
          irgn: ARM_LPAE_TCR_RGN_WBWA,
          sl: ~sl & ARM_LPAE_VTCR_SL0_MASK,
          tsz: 64 - cfg.ias,
        },
      };
      cfg.fmtCfg = c;
    }
    return data;
  }

  // ------------------------------------------------------------------ io_pgtable_ops

  /**
   * `arm_lpae_map_pages`: see {@link IoPgtableOps.mapPages}. Installs up to the end of the leaf
   * table (`arm_lpae_max_entries`) and returns the bytes mapped; all-or-nothing within one call.
   * `ERANGE` for an iova beyond ias or a paddr beyond oas (WARN), `EINVAL` for a size not in
   * the bitmap or misalignment, `EEXIST` over a valid entry (WARN unless NO_WARN), `ENOMEM`.
   * @see drivers/iommu/io-pgtable-arm.c arm_lpae_map_pages, __arm_lpae_map, arm_lpae_init_pte
   */
  mapPages(iova: number, paddr: number, pgsize: number, pgcount: number, prot: number, gfp: number): number {
    const target = this.levelOfSize(pgsize);
    if (target < 0 || !(pgcount >= 1))
      throw new KernelError(
        "EINVAL",
        `arm-lpae io-pgtable: map: page size ${hex(pgsize)} not in pgsize_bitmap ${hex(this.cfg.pgsizeBitmap)} (count ${pgcount})`,
      );
    // pgsize ≤ 1 GiB: the low 32 bits decide alignment.
    if ((((iova >>> 0) | (paddr >>> 0)) & (pgsize - 1)) !== 0)
      throw new KernelError(
        "EINVAL",
        `arm-lpae io-pgtable: map: iova ${hex(iova)} / pa ${hex(paddr)} not aligned to ${hex(pgsize)}`,
      );
    if (!(iova >= 0 && iova < this.iasLimit) || !(paddr >= 0 && paddr < this.oasLimit)) {
      this.log.warn(
        true,
        "arm-lpae io-pgtable",
        `WARN: map: iova ${hex(iova)} / pa ${hex(paddr)} out of range`,
      );
      throw new KernelError(
        "ERANGE",
        `arm-lpae io-pgtable: map: iova ${hex(iova)} beyond ias ${this.cfg.ias} or pa ${hex(paddr)} beyond oas ${this.cfg.oas}`,
      );
    }
    if ((prot & (IOMMU_READ | IOMMU_WRITE)) === 0) return 0;
    let lo0: number;
    const hi0 = (prot & IOMMU_NOEXEC) !== 0 ? ARM_LPAE_PTE_XN_HI : 0;
    if (this.stage === 1) {
      lo0 = ARM_LPAE_PTE_nG;
      if ((prot & IOMMU_WRITE) === 0) lo0 |= ARM_LPAE_PTE_AP_RDONLY;
      if ((prot & IOMMU_PRIV) === 0) lo0 |= ARM_LPAE_PTE_AP_UNPRIV;
      if ((prot & IOMMU_MMIO) !== 0) lo0 |= ARM_LPAE_MAIR_ATTR_IDX_DEV << ARM_LPAE_PTE_ATTRINDX_SHIFT;
      else if ((prot & IOMMU_CACHE) !== 0) lo0 |= ARM_LPAE_MAIR_ATTR_IDX_CACHE << ARM_LPAE_PTE_ATTRINDX_SHIFT;
    } else {
      lo0 = 0;
      if ((prot & IOMMU_READ) !== 0) lo0 |= ARM_LPAE_PTE_HAP_READ;
      if ((prot & IOMMU_WRITE) !== 0) lo0 |= ARM_LPAE_PTE_HAP_WRITE;
      if ((prot & IOMMU_MMIO) !== 0) lo0 |= ARM_LPAE_PTE_MEMATTR_DEV;
      else if ((prot & IOMMU_CACHE) !== 0) lo0 |= ARM_LPAE_PTE_MEMATTR_OIWB;
      else lo0 |= ARM_LPAE_PTE_MEMATTR_NC;
    }
    if ((this.cfg.quirks & IO_PGTABLE_QUIRK_ARM_NS) !== 0) lo0 |= ARM_LPAE_PTE_NS;
    let pfn = this.pgdPfn;
    let lvl = this.startLevel;
    for (; lvl < target; lvl++) {
      this.at(pfn, this.idx(iova, lvl));
      const v = this.v;
      const o = this.o;
      const lo = v[o] as number;
      const hi = v[o + 1] as number;
      if (lo === 0 && hi === 0) {
        const t = this.allocTable(this.tableOrder, gfp);
        if (t === null)
          throw new KernelError("ENOMEM", `arm-lpae io-pgtable: no memory for a level-${lvl + 1} table`);
        const tp = t * 4096;
        v[o] = ((tp >>> 0) | ARM_LPAE_PTE_TYPE_TABLE) >>> 0;
        v[o + 1] =
          (Math.floor(tp / TWO32) |
            ((this.cfg.quirks & IO_PGTABLE_QUIRK_ARM_NS) !== 0 ? ARM_LPAE_PTE_NSTABLE_HI : 0)) >>>
          0;
        pfn = t;
      } else if ((lo & 3) === ARM_LPAE_PTE_TYPE_TABLE) {
        pfn = this.tablePfn(lo, hi);
      } else {
        this.eexist(iova, lvl);
      }
    }
    // Leaf run: validate every target entry before writing any.
    const idx = this.idx(iova, lvl);
    let max = this.ptesPerTable - (idx & (this.ptesPerTable - 1));
    if (lvl === this.startLevel && this.pgdEntries - idx < max) max = this.pgdEntries - idx;
    const num = Math.min(pgcount, max);
    let tables = 0;
    for (let i = 0; i < num; i++) {
      this.at(pfn, idx + i);
      const lo = this.v[this.o] as number;
      const hi = this.v[this.o + 1] as number;
      if (lo === 0 && hi === 0) continue;
      if (this.isLeaf(lo, lvl)) this.eexist(iova + i * pgsize, lvl);
      if ((lo & 3) === ARM_LPAE_PTE_TYPE_TABLE) {
        if (this.subtreeHasLeaf(this.tablePfn(lo, hi), lvl + 1)) this.eexist(iova + i * pgsize, lvl);
        tables++;
      } else this.eexist(iova + i * pgsize, lvl);
    }
    if (tables > 0) {
      // arm_lpae_init_pte: an (empty) table where the block goes is unmapped and freed first.
      for (let i = 0; i < num; i++) {
        this.at(pfn, idx + i);
        const lo = this.v[this.o] as number;
        const hi = this.v[this.o + 1] as number;
        if ((lo & 3) !== ARM_LPAE_PTE_TYPE_TABLE) continue;
        this.v[this.o] = 0;
        this.v[this.o + 1] = 0;
        ioPgtableTlbFlushWalk(this, iova + i * pgsize, pgsize, this.granule);
        this.freeSubtree(this.tablePfn(lo, hi), lvl + 1);
      }
    }
    const type = lvl === ARM_LPAE_MAX_LEVELS - 1 ? ARM_LPAE_PTE_TYPE_PAGE : ARM_LPAE_PTE_TYPE_BLOCK;
    const lo1 = lo0 | type | ARM_LPAE_PTE_AF | ARM_LPAE_PTE_SH_IS;
    let pa = paddr;
    let v = this.v;
    let page = -1;
    for (let i = 0; i < num; i++, pa += pgsize) {
      const e = idx + i;
      const p = pfn + (e >>> 9);
      if (p !== page) {
        page = p;
        v = this.viewOf(p);
      }
      const o = (e & 511) << 1;
      v[o] = ((pa >>> 0) | lo1) >>> 0;
      v[o + 1] = (Math.floor(pa / TWO32) | hi0) >>> 0;
    }
    return num * pgsize;
  }

  /**
   * `arm_lpae_unmap_pages`: see {@link IoPgtableOps.unmapPages}. Returns bytes unmapped, 0 at a
   * hole (WARN unless NO_WARN) or for bad arguments (WARN). A table entry at the unmap size is
   * cleared whole (walk flush, table freed); a block larger than the unmap size is split.
   * @see drivers/iommu/io-pgtable-arm.c arm_lpae_unmap_pages, __arm_lpae_unmap, arm_lpae_split_blk_unmap
   */
  unmapPages(iova: number, pgsize: number, pgcount: number, gather: IommuIotlbGather | null): number {
    if (this.levelOfSize(pgsize) < 0 || !(pgcount >= 1)) {
      this.log.warn(true, "arm-lpae io-pgtable", `WARN: unmap: bad page size ${hex(pgsize)} x ${pgcount}`);
      return 0;
    }
    if (!(iova >= 0 && iova < this.iasLimit)) {
      this.log.warn(true, "arm-lpae io-pgtable", `WARN: unmap: iova ${hex(iova)} beyond ias ${this.cfg.ias}`);
      return 0;
    }
    return this.unmapAt(gather, iova, pgsize, pgcount, this.startLevel, this.pgdPfn);
  }

  /**
   * `arm_lpae_iova_to_phys`: software walk; 0 when unmapped.
   * @see drivers/iommu/io-pgtable-arm.c arm_lpae_iova_to_phys
   */
  iovaToPhys(iova: number): number {
    if (!(iova >= 0 && iova < this.iasLimit)) return 0;
    let pfn = this.pgdPfn;
    for (let lvl = this.startLevel; lvl < ARM_LPAE_MAX_LEVELS; lvl++) {
      this.at(pfn, this.idx(iova, lvl));
      const lo = this.v[this.o] as number;
      const hi = this.v[this.o + 1] as number;
      if (lo === 0 && hi === 0) return 0;
      if (this.isLeaf(lo, lvl)) {
        const bs = this.blk[lvl] as number;
        return this.leafPaddr(lo, hi) + (iova - Math.floor(iova / bs) * bs);
      }
      pfn = this.tablePfn(lo, hi);
    }
    return 0;
  }

  /**
   * `arm_lpae_free_pgtable`: frees every table page (the caller flushed the TLB first).
   * @see drivers/iommu/io-pgtable-arm.c arm_lpae_free_pgtable
   */
  freePgtable(): void {
    this.freeSubtree(this.pgdPfn, this.startLevel);
  }

  /**
   * Reads the descriptor covering `iova` at `level` as `[lo, hi]` halves, or null when the walk
   * stops above `level`. For tests and debuggers (`ptdump`-like), not a hot path.
   */
  readPte(iova: number, level: number): [number, number] | null {
    let pfn = this.pgdPfn;
    for (let lvl = this.startLevel; lvl <= level; lvl++) {
      this.at(pfn, this.idx(iova, lvl));
      const lo = this.v[this.o] as number;
      const hi = this.v[this.o + 1] as number;
      if (lvl === level) return [lo, hi];
      if (lo === 0 && hi === 0) return null;
      if (this.isLeaf(lo, lvl)) return null;
      pfn = this.tablePfn(lo, hi);
    }
    return null;
  }

  // ------------------------------------------------------------------ internals

  private unmapAt(
    gather: IommuIotlbGather | null,
    iova: number,
    size: number,
    pgcount: number,
    lvl: number,
    pfn: number,
  ): number {
    if (lvl === ARM_LPAE_MAX_LEVELS) {
      this.log.warn(true, "arm-lpae io-pgtable", "WARN: unmap ran out of page table");
      return 0;
    }
    const idx = this.idx(iova, lvl);
    this.at(pfn, idx);
    const lo = this.v[this.o] as number;
    const hi = this.v[this.o + 1] as number;
    if (lo === 0 && hi === 0) {
      this.noEntry(iova);
      return 0;
    }
    if (size === this.blk[lvl]) {
      let max = this.ptesPerTable - (idx & (this.ptesPerTable - 1));
      if (lvl === this.startLevel && this.pgdEntries - idx < max) max = this.pgdEntries - idx;
      const num = Math.min(pgcount, max);
      let i = 0;
      let v = this.v;
      let page = -1;
      for (; i < num; i++) {
        const e = idx + i;
        const p = pfn + (e >>> 9);
        if (p !== page) {
          page = p;
          v = this.viewOf(p);
        }
        const o = (e & 511) << 1;
        const l = v[o] as number;
        const h = v[o + 1] as number;
        if (l === 0 && h === 0) {
          this.noEntry(iova + i * size);
          break;
        }
        v[o] = 0;
        v[o + 1] = 0;
        if (!this.isLeaf(l, lvl)) {
          ioPgtableTlbFlushWalk(this, iova + i * size, size, this.granule);
          this.freeSubtree(this.tablePfn(l, h), lvl + 1);
        }
      }
      if (gather !== null && !iommuIotlbGatherQueued(gather))
        for (let j = 0; j < i; j++) ioPgtableTlbAddPage(this, gather, iova + j * size, size);
      return i * size;
    }
    if (this.isLeaf(lo, lvl))
      return this.splitBlkUnmap(gather, iova, size, lo, hi, lvl + 1, pfn, idx, pgcount);
    return this.unmapAt(gather, iova, size, pgcount, lvl + 1, this.tablePfn(lo, hi));
  }

  /**
   * `arm_lpae_split_blk_unmap`: replaces the block at (`ptPfn`, `ptIdx`) by a next-level table
   * mapping the same range, minus the part being unmapped (recursing when the unmap size is
   * smaller still). Returns the bytes unmapped; 0 (nothing changed) when no table page is free.
   */
  private splitBlkUnmap(
    gather: IommuIotlbGather | null,
    iova: number,
    size: number,
    blkLo: number,
    blkHi: number,
    lvl: number,
    ptPfn: number,
    ptIdx: number,
    pgcount: number,
  ): number {
    const t = this.allocTable(this.tableOrder, 0);
    if (t === null) return 0;
    const splitSz = this.blk[lvl] as number;
    let unmapIdxStart = -1;
    let numEntries = 0;
    if (size === splitSz) {
      unmapIdxStart = this.idx(iova, lvl);
      const max = this.ptesPerTable - unmapIdxStart;
      numEntries = Math.min(pgcount, max);
    }
    const protLo = blkLo & ARM_LPAE_PTE_ATTR_LO_MASK;
    const protHi = blkHi & ARM_LPAE_PTE_ATTR_HI_MASK_HI;
    const type = lvl === ARM_LPAE_MAX_LEVELS - 1 ? ARM_LPAE_PTE_TYPE_PAGE : ARM_LPAE_PTE_TYPE_BLOCK;
    const lo1 = protLo | type | ARM_LPAE_PTE_AF | ARM_LPAE_PTE_SH_IS;
    let pa = this.leafPaddr(blkLo, blkHi);
    let v = this.v;
    let page = -1;
    for (let i = 0; i < this.ptesPerTable; i++, pa += splitSz) {
      if (i >= unmapIdxStart && i < unmapIdxStart + numEntries) continue;
      const p = t + (i >>> 9);
      if (p !== page) {
        page = p;
        v = this.viewOf(p);
      }
      const o = (i & 511) << 1;
      v[o] = ((pa >>> 0) | lo1) >>> 0;
      v[o + 1] = (Math.floor(pa / TWO32) | protHi) >>> 0;
    }
    // arm_lpae_install_table
    this.at(ptPfn, ptIdx);
    const tp = t * 4096;
    this.v[this.o] = ((tp >>> 0) | ARM_LPAE_PTE_TYPE_TABLE) >>> 0;
    this.v[this.o + 1] = Math.floor(tp / TWO32) >>> 0;
    if (unmapIdxStart >= 0) {
      for (let i = 0; i < numEntries; i++) ioPgtableTlbAddPage(this, gather, iova + i * size, size);
      return numEntries * size;
    }
    return this.unmapAt(gather, iova, size, pgcount, lvl, t);
  }

  private noEntry(iova: number): void {
    if ((this.cfg.quirks & IO_PGTABLE_QUIRK_NO_WARN) === 0)
      this.log.warn(true, "arm-lpae io-pgtable", `WARN: unmap: iova ${hex(iova)} is not mapped`);
  }

  private eexist(iova: number, lvl: number): never {
    if ((this.cfg.quirks & IO_PGTABLE_QUIRK_NO_WARN) === 0)
      this.log.warn(
        true,
        "arm-lpae io-pgtable",
        `WARN: map: iova ${hex(iova)} already mapped at level ${lvl} (unmap first)`,
      );
    throw new KernelError("EEXIST", `arm-lpae io-pgtable: iova ${hex(iova)} already mapped at level ${lvl}`);
  }

  /** Level whose block size is `size` if `size` is in the bitmap, else -1. */
  private levelOfSize(size: number): number {
    if (size === this.lastSize) return this.lastLevel;
    const l = this.levelOfSizeSlow(size);
    this.lastSize = size;
    this.lastLevel = l;
    return l;
  }

  private levelOfSizeSlow(size: number): number {
    for (let l = this.startLevel; l < ARM_LPAE_MAX_LEVELS; l++)
      if (this.blk[l] === size) return Math.floor(this.cfg.pgsizeBitmap / size) % 2 === 1 ? l : -1;
    return -1;
  }

  private idx(iova: number, lvl: number): number {
    return Math.floor(iova / (this.blk[lvl] as number)) & (this.idxMask[lvl] as number);
  }

  private isLeaf(lo: number, lvl: number): boolean {
    return lvl === ARM_LPAE_MAX_LEVELS - 1
      ? (lo & 3) === ARM_LPAE_PTE_TYPE_PAGE
      : (lo & 3) === ARM_LPAE_PTE_TYPE_BLOCK;
  }

  private tablePfn(lo: number, hi: number): number {
    return (hi & 0xffff) * 0x100000 + ((lo & this.addrLoMask) >>> PAGE_SHIFT);
  }

  private leafPaddr(lo: number, hi: number): number {
    return (hi & 0xffff) * TWO32 + ((lo & this.addrLoMask) >>> 0);
  }

  private at(pfn: number, idx: number): void {
    this.v = this.viewOf(pfn + (idx >>> 9));
    this.o = (idx & 511) << 1;
  }

  private viewOf(pfn: number): Uint32Array {
    // The last few table pages looked up (a walk touches one per level): skips the Map probe.
    const m = this.memoPfn;
    if (m[0] === pfn) return this.memoView[0] as Uint32Array;
    if (m[1] === pfn) return this.memoView[1] as Uint32Array;
    if (m[2] === pfn) return this.memoView[2] as Uint32Array;
    if (m[3] === pfn) return this.memoView[3] as Uint32Array;
    const v = this.views.get(pfn);
    if (v === undefined)
      throw new KernelError(
        "EFAULT",
        `arm-lpae io-pgtable: pfn ${hex(pfn)} is not a table page of this table`,
      );
    const k = this.memoNext;
    this.memoNext = (k + 1) & 3;
    m[k] = pfn;
    this.memoView[k] = v;
    return v;
  }

  private allocTable(order: number, gfp: number): number | null {
    const mem = this.cfg.mem;
    const pfn = mem.allocTablePage(order, gfp);
    if (pfn === null) return null;
    const n = 2 ** order;
    for (let k = 0; k < n; k++) {
      // Views are taken after allocation: zeroing may have replaced the page's backing chunk.
      const b = mem.phys.pageView(pfn + k);
      this.views.set(pfn + k, new Uint32Array(b.buffer, b.byteOffset, 1024));
    }
    this.tablePages += n;
    return pfn;
  }

  private freeTable(pfn: number, order: number): void {
    this.memoPfn.fill(-1);
    const n = 2 ** order;
    for (let k = 0; k < n; k++) this.views.delete(pfn + k);
    this.tablePages -= n;
    this.cfg.mem.freeTablePage(pfn, order);
  }

  /** `__arm_lpae_free_pgtable`: frees the table at `pfn` (level `lvl`) and every table below it. */
  private freeSubtree(pfn: number, lvl: number): void {
    const entries = lvl === this.startLevel ? this.pgdEntries : this.ptesPerTable;
    if (lvl < ARM_LPAE_MAX_LEVELS - 1) {
      for (let i = 0; i < entries; i++) {
        const v = this.viewOf(pfn + (i >>> 9));
        const o = (i & 511) << 1;
        const lo = v[o] as number;
        if ((lo & 3) !== ARM_LPAE_PTE_TYPE_TABLE) continue;
        this.freeSubtree(this.tablePfn(lo, v[o + 1] as number), lvl + 1);
      }
    }
    this.freeTable(pfn, lvl === this.startLevel ? this.pgdOrder : this.tableOrder);
  }

  private subtreeHasLeaf(pfn: number, lvl: number): boolean {
    for (let i = 0; i < this.ptesPerTable; i++) {
      const v = this.viewOf(pfn + (i >>> 9));
      const o = (i & 511) << 1;
      const lo = v[o] as number;
      if (lo === 0 && v[o + 1] === 0) continue;
      if (this.isLeaf(lo, lvl)) return true;
      if (lvl < ARM_LPAE_MAX_LEVELS - 1 && (lo & 3) === ARM_LPAE_PTE_TYPE_TABLE) {
        if (this.subtreeHasLeaf(this.tablePfn(lo, v[o + 1] as number), lvl + 1)) return true;
      } else return true;
    }
    return false;
  }
}

function ffs32(x: number): number {
  for (let n = 0; n < 53; n++) if (Math.floor(x / 2 ** n) % 2 === 1) return n;
  return -1;
}

/**
 * `arm_lpae_restrict_pgsizes`: picks the granule (4K if asked, else the smallest size ≥ 4K) and
 * keeps only that granule's page sizes: 4K|2M|1G, 16K|32M, 64K|512M; clamps ias/oas to 48.
 * @see drivers/iommu/io-pgtable-arm.c arm_lpae_restrict_pgsizes
 */
function restrictPgsizes(cfg: IoPgtableCfg): void {
  const bm = cfg.pgsizeBitmap;
  let granule = 0;
  if (Math.floor(bm / 0x1000) % 2 === 1) granule = 0x1000;
  else if (bm % 0x1000 !== 0) granule = 2 ** (31 - Math.clz32(bm % 0x1000));
  else if (bm !== 0) granule = 2 ** ffs32(bm);
  let sizes = 0;
  if (granule === 0x1000) sizes = 0x1000 + 0x200000 + 0x40000000;
  else if (granule === 0x4000) sizes = 0x4000 + 0x2000000;
  else if (granule === 0x10000) sizes = 0x10000 + 0x20000000;
  let out = 0;
  for (const s of [0x1000, 0x4000, 0x10000, 0x200000, 0x2000000, 0x20000000, 0x40000000])
    if ((sizes & s) !== 0 && Math.floor(bm / s) % 2 === 1) out += s;
  cfg.pgsizeBitmap = out;
  cfg.ias = Math.min(cfg.ias, ARM_LPAE_MAX_ADDR_BITS);
  cfg.oas = Math.min(cfg.oas, ARM_LPAE_MAX_ADDR_BITS);
}

function initFns(fmt: IoPgtableFmt): IoPgtableInitFns {
  return {
    alloc: (cfg, cookie) => ArmLpaeIoPgtable.alloc(fmt, cfg, cookie),
    free: (iop) => (iop as ArmLpaeIoPgtable).freePgtable(),
  };
}

/**
 * `io_pgtable_arm_64_lpae_s1_init_fns`.
 * @see drivers/iommu/io-pgtable-arm.c io_pgtable_arm_64_lpae_s1_init_fns
 */
export const ioPgtableArm64LpaeS1InitFns: IoPgtableInitFns = initFns(ARM_64_LPAE_S1);

/**
 * `io_pgtable_arm_64_lpae_s2_init_fns`.
 * @see drivers/iommu/io-pgtable-arm.c io_pgtable_arm_64_lpae_s2_init_fns
 */
export const ioPgtableArm64LpaeS2InitFns: IoPgtableInitFns = initFns(ARM_64_LPAE_S2);

/**
 * Adds `ARM_64_LPAE_S1` and `ARM_64_LPAE_S2` to `registry` (default: the core's default registry;
 * importing this package does that already). Idempotent.
 * @see drivers/iommu/io-pgtable.c io_pgtable_init_table
 */
export function registerArmLpaeFormats(registry?: IoPgtableRegistry): void {
  registerIoPgtableFormat(ARM_64_LPAE_S1, ioPgtableArm64LpaeS1InitFns, registry);
  registerIoPgtableFormat(ARM_64_LPAE_S2, ioPgtableArm64LpaeS2InitFns, registry);
}
