import { formatPciName, hex, KernelError, KernelLog, type SimClock } from "@dmakit/core";
import {
  type IommuFaultKind,
  type IommuFaultRecord,
  type IommuHardware,
  type IommuTransaction,
  type IommuTranslation,
  Iotlb,
} from "@dmakit/iommu";
import type { PhysMem } from "@dmakit/mm-pages";
import { descPfn, LEVEL_PAGES, type TableViews, tableViewsFor } from "./internal/TableViews.js";
import {
  agawToWidth,
  CONTEXT_TT_PASS_THROUGH,
  DMA_CCMD_ICC_HI,
  DMA_FECTL_IM,
  DMA_FECTL_IP,
  DMA_FRCD_F,
  DMA_FSTS_ICE,
  DMA_FSTS_IQE,
  DMA_FSTS_ITE,
  DMA_FSTS_PFO,
  DMA_FSTS_PPF,
  DMA_FSTS_PRO,
  DMA_GCMD_SRTP,
  DMA_GCMD_TE,
  DMA_GSTS_RTPS,
  DMA_GSTS_TES,
  DMA_PTE_LARGE_PAGE,
  DMA_TLB_IVT_HI,
  DMAR_CAP_REG,
  DMAR_CCMD_REG,
  DMAR_ECAP_REG,
  DMAR_FECTL_REG,
  DMAR_FR_BEYOND_MGAW,
  DMAR_FR_CONTEXT_NOT_PRESENT,
  DMAR_FR_INVALID_CONTEXT,
  DMAR_FR_PTE_READ,
  DMAR_FR_PTE_RESERVED,
  DMAR_FR_PTE_WRITE,
  DMAR_FR_ROOT_NOT_PRESENT,
  DMAR_FSTS_REG,
  DMAR_GCMD_REG,
  DMAR_GSTS_REG,
  DMAR_RTADDR_REG,
  DMAR_VER_REG,
  dmarGetFaultReason,
  PRIMARY_FAULT_REG_LEN,
  VTD_PAGE_SIZE,
} from "./vtdConstants.js";

/**
 * How a {@link DmarHardware} unit is built: its capability registers and sizes.
 * Model-only: stands for the unit's CAP/ECAP registers and the DMAR table.
 */
export interface DmarHardwareOptions {
  /** Unit name, e.g. `"dmar0"`. */
  name?: string;
  /** The machine's memory: root, context and second-level tables are read from it. */
  phys: PhysMem;
  /** The machine's kernel log (only for hardware-side notes; the driver logs faults). */
  log?: KernelLog;
  /** Simulated clock: fault timestamps, and fault-event interrupts are delivered through it. */
  clock?: SimClock;
  /** `cap.NFR`: number of fault recording registers; default 8. */
  nfr?: number;
  /** SAGAW bit 2: 4-level (48-bit) tables; default true. */
  fourLevel?: boolean;
  /** SAGAW bit 3: 5-level (57-bit) tables; default false. */
  fiveLevel?: boolean;
  /** `cap.MGAW` in bits; default 57 with five-level support, else 48. */
  mgaw?: number;
  /** `cap.SLLPS` as a level count: 0 none, 1 = 2 MiB, 2 = 2 MiB and 1 GiB; default 2. */
  superpages?: number;
  /** `cap.PSI`: page-selective IOTLB invalidation; default true. */
  psi?: boolean;
  /** `cap.MAMV`: largest address mask for page-selective invalidation; default 18 (1 GiB). */
  mamv?: number;
  /** `cap.ND` (domain ids = 2^(4 + 2·nd)); default 6 (65536). */
  nd?: number;
  /** IOTLB entries; default 256. */
  iotlbCapacity?: number;
  /** Whether the unit compresses faults from one source id (VT-d 7.2.1); default true. */
  faultCollapsing?: boolean;
  /** `ecap.C`: table walks snoop CPU caches; default true. */
  coherent?: boolean;
}

/** `cap.FRO` used by the model: fault recording registers at 0x400. */
const FRCD_OFFSET = 0x400;
/** `ecap.IRO` used by the model: IVA at 0x500, IOTLB register at 0x508. */
const IOTLB_REG_OFFSET = 0x500;
const TWO32 = 4294967296;

const FAULT_LABEL: readonly string[] = ["DMA Write", "DMA Read"];

/**
 * The hardware half of one Intel VT-d remapping unit (DRHD), legacy (non-scalable) mode.
 *
 * Software programs it through 32-bit register accesses ({@link readl}/{@link writel} at the
 * kernel's `DMAR_*_REG` offsets; 64-bit registers as two dwords): the root table address and
 * translation enable (`GCMD`/`GSTS`), context-cache invalidation (`CCMD`), register-based IOTLB
 * invalidation (`IVA`/`IOTLB` at `ecap.IRO`), fault status (`FSTS`), fault event control (`FECTL`)
 * and the fault recording registers (`FRCD`, at `cap.FRO`).
 *
 * A DMA request from requester id `bus << 8 | devfn` looks up the context cache, on a miss reads
 * the root entry (256 by bus) and context entry (256 by devfn) from RAM, then the IOTLB (tagged by
 * domain id), and on a miss walks the second-level table in RAM. Faults are logged in the FRCD
 * registers as VT-d 7.2.1 specifies: nothing is recorded while `FSTS.PFO` is set; with fault
 * compression, nothing while an FRCD with F set holds the same source id; if the FRCD at the
 * internal index still has F set, `PFO` is set and the fault dropped; else it is recorded, F set,
 * and when `PPF` was clear `FSTS.FRI` takes the index and a fault event is raised.
 *
 * Invalidation commands take effect on completion: a write setting `CCMD.ICC` or `IOTLB.IVT` is
 * held pending and carried out when software polls the register (or {@link completeInvalidations}
 * runs), so translations keep using stale entries until then.
 *
 * Model differences: no scalable mode, PASIDs, queued invalidation, interrupt remapping,
 * paging-structure caches or device TLBs; the context cache holds every present entry it read.
 * @see Intel VT-d specification 3.4 (legacy root/context), 6.5.2 (IOTLB invalidation), 7.2.1
 */
export class DmarHardware implements IommuHardware {
  readonly name: string;
  readonly phys: PhysMem;
  readonly log: KernelLog;
  readonly clock: SimClock | null;
  readonly iotlb: Iotlb;
  /** `cap` as (lo, hi) dwords. */
  readonly capLo: number;
  readonly capHi: number;
  readonly ecapLo: number;
  readonly ecapHi: number;
  readonly nfr: number;
  readonly sagaw: number;
  readonly mgaw: number;
  readonly superpages: number;
  readonly psi: boolean;
  readonly mamv: number;
  readonly faultCollapsing: boolean;
  /** Called when a fault event interrupt is delivered (the driver installs `dmar_fault`). */
  onFaultEvent: (() => void) | null = null;

  private readonly regs: Uint32Array;
  private readonly views: TableViews;
  private rootPfn = -1;
  private fri = 0;
  private pendingFaults = 0;
  private ccPending = false;
  private iotlbPending = false;
  private irqScheduled = false;
  private readonly frcdRec: Array<IommuFaultRecord | null>;
  // Context cache, by source id.
  private readonly ccValid = new Uint8Array(0x10000);
  private readonly ccTT = new Uint8Array(0x10000);
  private readonly ccLevels = new Uint8Array(0x10000);
  private readonly ccFpd = new Uint8Array(0x10000);
  private readonly ccDid = new Uint16Array(0x10000);
  private readonly ccPgd = new Float64Array(0x10000);
  private readonly ccMaxAddr = new Float64Array(0x10000);
  /**
   * Where the IOTLB last held (domain id, 4 KiB page): a direct-mapped index of slot hints for
   * `Iotlb.lookupHint`, which checks each hint exactly, so a stale hint only costs a normal lookup.
   */
  private readonly slotHint = new Int32Array(4096).fill(-1);
  /** `GSTS.TES`, kept as a field for the translate fast path. */
  private te = false;

  private faultCount = 0;
  private recorded = 0;
  private collapsed = 0;
  private overflowed = 0;
  private droppedPfo = 0;
  private ccMisses = 0;

  constructor(options: DmarHardwareOptions) {
    this.name = options.name ?? "dmar0";
    this.phys = options.phys;
    this.log = options.log ?? new KernelLog();
    this.clock = options.clock ?? null;
    this.nfr = options.nfr ?? 8;
    if (!Number.isInteger(this.nfr) || this.nfr < 1 || this.nfr > 256)
      throw new KernelError("EINVAL", `${this.name}: NFR ${this.nfr} outside 1..256`);
    const five = options.fiveLevel ?? false;
    const four = options.fourLevel ?? true;
    this.sagaw = (four ? 1 << 2 : 0) | (five ? 1 << 3 : 0);
    if (this.sagaw === 0)
      throw new KernelError("EINVAL", `${this.name}: SAGAW is empty (no 4- or 5-level support)`);
    this.mgaw = options.mgaw ?? (five ? 57 : 48);
    this.superpages = options.superpages ?? 2;
    this.psi = options.psi ?? true;
    this.mamv = options.mamv ?? 18;
    this.faultCollapsing = options.faultCollapsing ?? true;
    const nd = options.nd ?? 6;
    this.iotlb = new Iotlb({ capacity: options.iotlbCapacity ?? 256, name: `${this.name}-iotlb` });
    this.views = tableViewsFor(this.phys);
    this.frcdRec = new Array<IommuFaultRecord | null>(this.nfr).fill(null);

    const fro = FRCD_OFFSET / 16;
    const sllps = this.superpages >= 2 ? 3 : this.superpages === 1 ? 1 : 0;
    // cap: ND 2:0, SAGAW 12:8, MGAW 21:16, FRO 33:24, SLLPS 37:34, PSI 39, NFR 47:40, MAMV 53:48.
    this.capLo = (nd | (this.sagaw << 8) | ((this.mgaw - 1) << 16) | ((fro & 0xff) << 24)) >>> 0;
    this.capHi =
      ((fro >>> 8) | (sllps << 2) | (this.psi ? 1 << 7 : 0) | ((this.nfr - 1) << 8) | (this.mamv << 16)) >>>
      0;
    // ecap: C bit 0, PT bit 6, SC bit 7, IRO 17:8.
    this.ecapLo =
      (((options.coherent ?? true) ? 1 : 0) | (1 << 6) | (1 << 7) | ((IOTLB_REG_OFFSET / 16) << 8)) >>> 0;
    this.ecapHi = 0;
    this.regs = new Uint32Array(
      (Math.max(FRCD_OFFSET + this.nfr * PRIMARY_FAULT_REG_LEN, IOTLB_REG_OFFSET + 16) + 15) >> 2,
    );
    this.regs[DMAR_VER_REG >> 2] = 0x10;
    this.regs[DMAR_CAP_REG >> 2] = this.capLo;
    this.regs[(DMAR_CAP_REG >> 2) + 1] = this.capHi;
    this.regs[DMAR_ECAP_REG >> 2] = this.ecapLo;
    this.regs[(DMAR_ECAP_REG >> 2) + 1] = this.ecapHi;
  }

  /** `cap_fault_reg_offset(cap)`. */
  get faultRegOffset(): number {
    return FRCD_OFFSET;
  }

  /** `ecap_iotlb_offset(ecap)`. */
  get iotlbRegOffset(): number {
    return IOTLB_REG_OFFSET;
  }

  /** `cap_ndoms(cap)`: number of domain ids. */
  get ndoms(): number {
    return 2 ** (4 + 2 * (this.capLo & 7));
  }

  /** `ecap.SC`: snoop control (the SNP bit in second-level entries is honoured). */
  get ecapSnoopControl(): boolean {
    return (this.ecapLo & (1 << 7)) !== 0;
  }

  /** True while translation is enabled (`GSTS.TES`). */
  get translationEnabled(): boolean {
    return ((this.regs[DMAR_GSTS_REG >> 2] as number) & DMA_GSTS_TES) !== 0;
  }

  // ------------------------------------------------------------------ registers

  /**
   * 32-bit register read. Polling `CCMD` or `IOTLB` (upper dword) completes a pending invalidation
   * first, so the kernel's `IOMMU_WAIT_OP` loop sees the command bit clear.
   */
  readl(offset: number): number {
    if (
      (offset === DMAR_CCMD_REG + 4 && this.ccPending) ||
      (offset === IOTLB_REG_OFFSET + 12 && this.iotlbPending)
    )
      this.completeInvalidations();
    if (offset === DMAR_FSTS_REG) return this.fsts();
    return (this.regs[offset >> 2] ?? 0) as number;
  }

  /** 32-bit register write with the registers' side effects (RW1C bits, commands). */
  writel(offset: number, value: number): void {
    const v = value >>> 0;
    const i = offset >> 2;
    if (offset === DMAR_GCMD_REG) {
      let sts = this.regs[DMAR_GSTS_REG >> 2] as number;
      if ((v & DMA_GCMD_SRTP) !== 0) {
        const lo = this.regs[DMAR_RTADDR_REG >> 2] as number;
        const hi = this.regs[(DMAR_RTADDR_REG >> 2) + 1] as number;
        this.rootPfn = descPfn(lo, hi);
        sts |= DMA_GSTS_RTPS;
      }
      this.te = (v & DMA_GCMD_TE) !== 0;
      sts = this.te ? sts | DMA_GSTS_TES : sts & ~DMA_GSTS_TES;
      this.regs[DMAR_GSTS_REG >> 2] = sts >>> 0;
      this.regs[i] = v & ~DMA_GCMD_SRTP;
      return;
    }
    if (
      offset === DMAR_GSTS_REG ||
      offset === DMAR_VER_REG ||
      (offset >= DMAR_CAP_REG && offset < DMAR_GCMD_REG)
    )
      return;
    if (offset === DMAR_FSTS_REG) {
      const rw1c = v & (DMA_FSTS_PFO | DMA_FSTS_IQE | DMA_FSTS_ICE | DMA_FSTS_ITE | DMA_FSTS_PRO);
      this.regs[i] = ((this.regs[i] as number) & ~rw1c) >>> 0;
      return;
    }
    if (offset === DMAR_FECTL_REG) {
      const was = this.regs[i] as number;
      let now = (v & DMA_FECTL_IM) | (was & DMA_FECTL_IP);
      if ((now & DMA_FECTL_IM) === 0 && (now & DMA_FECTL_IP) !== 0) {
        now &= ~DMA_FECTL_IP;
        this.deliverInterrupt();
      }
      this.regs[i] = now >>> 0;
      return;
    }
    if (offset >= FRCD_OFFSET && offset < FRCD_OFFSET + this.nfr * PRIMARY_FAULT_REG_LEN) {
      if ((offset & 15) === 12) {
        // Only F is writable (RW1C); the rest of the record is read-only.
        if ((v & DMA_FRCD_F) !== 0 && ((this.regs[i] as number) & DMA_FRCD_F) !== 0) {
          this.regs[i] = ((this.regs[i] as number) & ~DMA_FRCD_F) >>> 0;
          this.frcdRec[(offset - FRCD_OFFSET) >> 4] = null;
          this.pendingFaults--;
        }
      }
      return;
    }
    this.regs[i] = v;
    if (offset === DMAR_CCMD_REG + 4 && (v & DMA_CCMD_ICC_HI) !== 0) this.ccPending = true;
    if (offset === IOTLB_REG_OFFSET + 12 && (v & DMA_TLB_IVT_HI) !== 0) this.iotlbPending = true;
  }

  private fsts(): number {
    const raw = this.regs[DMAR_FSTS_REG >> 2] as number;
    return ((raw & ~DMA_FSTS_PPF) | (this.pendingFaults > 0 ? DMA_FSTS_PPF : 0)) >>> 0;
  }

  /** True while an invalidation command is written but not carried out. */
  get invalidationPending(): boolean {
    return this.ccPending || this.iotlbPending;
  }

  /** Carries out pending context-cache and IOTLB invalidation commands and clears ICC / IVT. */
  completeInvalidations(): void {
    if (this.ccPending) {
      this.ccPending = false;
      const ci = DMAR_CCMD_REG >> 2;
      const lo = this.regs[ci] as number;
      const hi = this.regs[ci + 1] as number;
      const gran = (hi >>> 29) & 3;
      if (gran === 1) this.ccValid.fill(0);
      else if (gran === 2) {
        const did = lo & 0xffff;
        for (let s = 0; s < 0x10000; s++) if (this.ccDid[s] === did) this.ccValid[s] = 0;
      } else if (gran === 3) {
        const sid = lo >>> 16;
        const fm = hi & 3;
        const mask = fm === 0 ? 0 : ((1 << fm) - 1) << (3 - fm);
        for (let f = 0; f <= mask; f++) if ((f & ~mask) === 0) this.ccValid[(sid & ~mask) | f] = 0;
      }
      // CAIG (bits 60:59) reports the granularity performed; ICC clears.
      this.regs[ci + 1] = ((hi & ~DMA_CCMD_ICC_HI & ~(3 << 27)) | (gran << 27)) >>> 0;
    }
    if (this.iotlbPending) {
      this.iotlbPending = false;
      const ri = (IOTLB_REG_OFFSET + 8) >> 2;
      const hi = this.regs[ri + 1] as number;
      let gran = (hi >>> 28) & 3;
      const did = hi & 0xffff;
      if (gran === 3 && !this.psi) gran = 2;
      if (gran === 1) this.iotlb.invalidateAll();
      else if (gran === 2) this.iotlb.invalidateTag(did);
      else if (gran === 3) {
        const ivaLo = this.regs[IOTLB_REG_OFFSET >> 2] as number;
        const ivaHi = this.regs[(IOTLB_REG_OFFSET >> 2) + 1] as number;
        const am = ivaLo & 0x3f;
        if (am > this.mamv) {
          gran = 2;
          this.iotlb.invalidateTag(did);
        } else {
          const size = VTD_PAGE_SIZE * 2 ** am;
          const addr = (ivaLo >>> 12) * VTD_PAGE_SIZE + ivaHi * TWO32;
          this.iotlb.invalidateRange(did, addr - (addr % size), size);
        }
      }
      // IAIG (bits 58:57) reports the granularity performed; IVT clears.
      this.regs[ri + 1] = ((hi & ~DMA_TLB_IVT_HI & ~(3 << 25)) | (gran << 25)) >>> 0;
    }
  }

  // ------------------------------------------------------------------ translation

  /**
   * Translates one DMA request. Requests from a source id whose root or context entry is not
   * present, beyond the address width, to a non-present entry or without the needed R/W permission
   * fault with the VT-d reason code and are aborted; the fault is logged in the FRCD registers as
   * described on the class. With translation disabled (`GSTS.TES` clear) DMA is untranslated.
   */
  translate(txn: IommuTransaction): IommuTranslation {
    const sid = txn.streamId & 0xffff;
    const iova = txn.iova;
    const write = txn.write;
    if (!this.te) return { ok: true, phys: iova, len: txn.size, prot: 3, iotlbHit: false };
    if (this.ccValid[sid] === 0) {
      const r = this.loadContext(sid);
      if (r !== 0) return this.fault(sid, iova, write, r, "config", -1, false);
    }
    if (this.ccTT[sid] === CONTEXT_TT_PASS_THROUGH)
      return { ok: true, phys: iova, len: txn.size, prot: 3, iotlbHit: false };
    if (iova >= (this.ccMaxAddr[sid] as number) || iova < 0)
      return this.fault(sid, iova, write, DMAR_FR_BEYOND_MGAW, "address-size", -1, this.ccFpd[sid] === 1);
    const did = this.ccDid[sid] as number;
    const tlb = this.iotlb;
    const h = ((iova / VTD_PAGE_SIZE) ^ (did << 5)) & 4095;
    const slot = tlb.lookupHint(did, iova, this.slotHint[h] as number);
    if (slot >= 0) {
      this.slotHint[h] = slot;
      const prot = tlb.protOf(slot);
      if ((prot & (write ? 2 : 1)) === 0)
        return this.fault(
          sid,
          iova,
          write,
          write ? DMAR_FR_PTE_WRITE : DMAR_FR_PTE_READ,
          "permission",
          0,
          this.ccFpd[sid] === 1,
        );
      const room = tlb.iovaOf(slot) + tlb.sizeOf(slot) - iova;
      return {
        ok: true,
        phys: tlb.physOf(slot, iova),
        len: Math.min(txn.size, room),
        prot,
        iotlbHit: true,
      };
    }
    return this.walk(sid, did, iova, txn.size, write);
  }

  private walk(sid: number, did: number, iova: number, size: number, write: boolean): IommuTranslation {
    let table = this.ccPgd[sid] as number;
    let prot = 3;
    let reads = 0;
    const pfn = Math.floor(iova / VTD_PAGE_SIZE);
    for (let level = this.ccLevels[sid] as number; level >= 1; level--) {
      let v: Uint32Array;
      try {
        v = this.views.get(table);
      } catch {
        return this.fault(sid, iova, write, 0x7, "translation", level, this.ccFpd[sid] === 1);
      }
      const idx = (pfn / (LEVEL_PAGES[level] as number)) & 511;
      const lo = v[2 * idx] as number;
      reads++;
      const perm = lo & 3;
      if (perm === 0) {
        this.iotlb.recordWalk(reads);
        return this.fault(
          sid,
          iova,
          write,
          write ? DMAR_FR_PTE_WRITE : DMAR_FR_PTE_READ,
          "translation",
          level,
          this.ccFpd[sid] === 1,
        );
      }
      prot &= perm;
      const large = level > 1 && (lo & DMA_PTE_LARGE_PAGE) !== 0;
      if (large && level - 1 > this.superpages) {
        this.iotlb.recordWalk(reads);
        return this.fault(
          sid,
          iova,
          write,
          DMAR_FR_PTE_RESERVED,
          "translation",
          level,
          this.ccFpd[sid] === 1,
        );
      }
      if (level === 1 || large) {
        const pageSize = (LEVEL_PAGES[level] as number) * VTD_PAGE_SIZE;
        const phys = descPfn(lo, v[2 * idx + 1] as number) * VTD_PAGE_SIZE + (iova % pageSize);
        this.slotHint[((iova / VTD_PAGE_SIZE) ^ (did << 5)) & 4095] = this.iotlb.insert(
          did,
          iova,
          phys,
          pageSize,
          prot,
        );
        this.iotlb.recordWalk(reads);
        if ((prot & (write ? 2 : 1)) === 0)
          return this.fault(
            sid,
            iova,
            write,
            write ? DMAR_FR_PTE_WRITE : DMAR_FR_PTE_READ,
            "permission",
            level,
            this.ccFpd[sid] === 1,
          );
        const room = pageSize - (iova % pageSize);
        return { ok: true, phys, len: Math.min(size, room), prot, iotlbHit: false };
      }
      table = descPfn(lo, v[2 * idx + 1] as number);
    }
    throw new KernelError("EINVAL", `${this.name}: context of ${hex(sid)} has no table levels`);
  }

  /** Reads root and context entries for `sid` into the context cache; returns 0 or a fault reason. */
  private loadContext(sid: number): number {
    this.ccMisses++;
    if (this.rootPfn < 0) return DMAR_FR_ROOT_NOT_PRESENT;
    const bus = sid >>> 8;
    const devfn = sid & 0xff;
    let rv: Uint32Array;
    let cv: Uint32Array;
    try {
      rv = this.views.get(this.rootPfn);
    } catch {
      return 0x8;
    }
    const rlo = rv[bus * 4] as number;
    if ((rlo & 1) === 0) return DMAR_FR_ROOT_NOT_PRESENT;
    try {
      cv = this.views.get(descPfn(rlo, rv[bus * 4 + 1] as number));
    } catch {
      return 0x9;
    }
    const c0 = cv[devfn * 4] as number;
    if ((c0 & 1) === 0) return DMAR_FR_CONTEXT_NOT_PRESENT;
    const c2 = cv[devfn * 4 + 2] as number;
    const tt = (c0 >>> 2) & 3;
    const aw = c2 & 7;
    if (tt === 3) return DMAR_FR_INVALID_CONTEXT;
    if (tt !== CONTEXT_TT_PASS_THROUGH && (this.sagaw & (1 << aw)) === 0) return DMAR_FR_INVALID_CONTEXT;
    this.ccTT[sid] = tt;
    this.ccFpd[sid] = (c0 >>> 1) & 1;
    this.ccDid[sid] = (c2 >>> 8) & 0xffff;
    this.ccLevels[sid] = aw + 2;
    this.ccPgd[sid] = descPfn(c0, cv[devfn * 4 + 1] as number);
    this.ccMaxAddr[sid] = 2 ** Math.min(this.mgaw, agawToWidth(aw));
    this.ccValid[sid] = 1;
    return 0;
  }

  private fault(
    sid: number,
    iova: number,
    write: boolean,
    reason: number,
    kind: IommuFaultKind,
    level: number,
    fpd: boolean,
  ): IommuTranslation {
    this.faultCount++;
    const name = formatPciName(0, sid >>> 8, sid & 0xff).slice(5);
    const addr = iova - (iova % VTD_PAGE_SIZE);
    const record: IommuFaultRecord = {
      kind,
      iova,
      streamId: sid,
      write,
      code: `DMAR:0x${reason.toString(16).padStart(2, "0")}`,
      reason,
      level,
      message: `[${FAULT_LABEL[write ? 0 : 1]}] Request device [${name}] PASID ffffffff fault addr ${addr.toString(16)} [fault reason ${reason.toString().padStart(2, "0")}] ${dmarGetFaultReason(reason)}`,
      timeNs: this.clock?.now() ?? 0,
    };
    if (!fpd) this.recordFault(record);
    return { ok: false, fault: record };
  }

  /** Primary fault logging, VT-d 7.2.1. */
  private recordFault(rec: IommuFaultRecord): void {
    const fi = DMAR_FSTS_REG >> 2;
    if (((this.regs[fi] as number) & DMA_FSTS_PFO) !== 0) {
      this.droppedPfo++;
      return;
    }
    const base = FRCD_OFFSET >> 2;
    if (this.faultCollapsing && this.pendingFaults > 0)
      for (let i = 0; i < this.nfr; i++) {
        const w = base + i * 4;
        if (
          ((this.regs[w + 3] as number) & DMA_FRCD_F) !== 0 &&
          ((this.regs[w + 2] as number) & 0xffff) === rec.streamId
        ) {
          this.collapsed++;
          return;
        }
      }
    const idx = this.fri;
    const w = base + idx * 4;
    if (((this.regs[w + 3] as number) & DMA_FRCD_F) !== 0) {
      this.regs[fi] = ((this.regs[fi] as number) | DMA_FSTS_PFO) >>> 0;
      this.overflowed++;
      this.raiseFaultEvent();
      return;
    }
    const page = rec.iova - (rec.iova % VTD_PAGE_SIZE);
    this.regs[w] = (page % TWO32) >>> 0;
    this.regs[w + 1] = Math.floor(page / TWO32);
    this.regs[w + 2] = rec.streamId;
    this.regs[w + 3] = (DMA_FRCD_F | (rec.write ? 0 : 1 << 30) | (rec.reason & 0xff)) >>> 0;
    this.frcdRec[idx] = rec;
    this.recorded++;
    const wasPending = this.pendingFaults > 0;
    this.pendingFaults++;
    if (!wasPending) {
      this.regs[fi] = (((this.regs[fi] as number) & ~0xff00) | (idx << 8)) >>> 0;
      this.raiseFaultEvent();
    }
    this.fri = (idx + 1) % this.nfr;
  }

  private raiseFaultEvent(): void {
    const ci = DMAR_FECTL_REG >> 2;
    if (((this.regs[ci] as number) & DMA_FECTL_IM) !== 0) {
      this.regs[ci] = ((this.regs[ci] as number) | DMA_FECTL_IP) >>> 0;
      return;
    }
    this.deliverInterrupt();
  }

  private deliverInterrupt(): void {
    if (this.clock === null || this.onFaultEvent === null || this.irqScheduled) return;
    this.irqScheduled = true;
    this.clock.schedule(
      0,
      () => {
        this.irqScheduled = false;
        this.onFaultEvent?.();
      },
      `${this.name}: fault event`,
    );
  }

  // ------------------------------------------------------------------ IommuHardware

  /** The fault records held in FRCD registers with F set, oldest first (from `FSTS.FRI`). */
  faults(): readonly IommuFaultRecord[] {
    const out: IommuFaultRecord[] = [];
    const start = (this.fsts() >>> 8) & 0xff;
    for (let k = 0; k < this.nfr; k++) {
      const r = this.frcdRec[(start + k) % this.nfr];
      if (r != null) out.push(r);
    }
    return out;
  }

  /** Takes the pending records and clears their F bits and `FSTS.PFO`, as a fault handler would. */
  drainFaults(): IommuFaultRecord[] {
    const out = [...this.faults()];
    for (let i = 0; i < this.nfr; i++) this.writel(FRCD_OFFSET + i * PRIMARY_FAULT_REG_LEN + 12, DMA_FRCD_F);
    this.writel(DMAR_FSTS_REG, DMA_FSTS_PFO);
    return out;
  }

  /** Report counters: the IOTLB's, plus `iommu.translate.fault` and `vtd.*` fault-logging counts. */
  counters(): Readonly<Record<string, number>> {
    return {
      ...this.iotlb.counters("iommu"),
      "iommu.translate.fault": this.faultCount,
      "vtd.fault.recorded": this.recorded,
      "vtd.fault.collapsed": this.collapsed,
      "vtd.fault.overflow": this.overflowed,
      "vtd.fault.dropped-pfo": this.droppedPfo,
      "vtd.context-cache.miss": this.ccMisses,
    };
  }
}
