import { hex, KernelError, type KernelLog, type SimClock } from "@dmakit/core";
import {
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  type IommuFaultKind,
  type IommuFaultRecord,
  type IommuHardware,
  type IommuTransaction,
  type IommuTranslation,
  Iotlb,
} from "@dmakit/iommu";
import type { PhysMem } from "@dmakit/mm-pages";
import {
  ARM_LPAE_PTE_AF,
  ARM_LPAE_PTE_AP_RDONLY,
  ARM_LPAE_PTE_AP_UNPRIV,
  ARM_LPAE_PTE_HAP_READ,
  ARM_LPAE_PTE_HAP_WRITE,
  armLpaePsDecode,
  armLpaeTgToShift,
} from "./armLpaeDefs.js";
import {
  armSmmuEventName,
  CMDQ_OP_CFGI_ALL,
  CMDQ_OP_CFGI_CD,
  CMDQ_OP_CFGI_CD_ALL,
  CMDQ_OP_CFGI_STE,
  CMDQ_OP_CMD_SYNC,
  CMDQ_OP_PREFETCH_CFG,
  CMDQ_OP_TLBI_EL2_ALL,
  CMDQ_OP_TLBI_NH_ALL,
  CMDQ_OP_TLBI_NH_ASID,
  CMDQ_OP_TLBI_NH_VA,
  CMDQ_OP_TLBI_NSNH_ALL,
  CMDQ_OP_TLBI_S2_IPA,
  CMDQ_OP_TLBI_S12_VMALL,
  CTXDESC_CD_0_AA64_HI,
  CTXDESC_CD_0_R_HI,
  CTXDESC_CD_0_TCR_EPD0,
  CTXDESC_CD_0_V,
  EVT_ID_ACCESS_FAULT,
  EVT_ID_ADDR_SIZE_FAULT,
  EVT_ID_BAD_CD_CONFIG,
  EVT_ID_BAD_STE_CONFIG,
  EVT_ID_BAD_STREAMID_CONFIG,
  EVT_ID_BAD_SUBSTREAMID_CONFIG,
  EVT_ID_PERMISSION_FAULT,
  EVT_ID_TRANSLATION_FAULT,
  EVT_ID_WALK_EABT,
  EVTQ_0_SSV,
  EVTQ_1_CLASS_HI_SHIFT,
  EVTQ_1_InD_HI,
  EVTQ_1_PnU_HI,
  EVTQ_1_RnW_HI,
  EVTQ_1_S2_HI,
  Q_OVERFLOW_FLAG,
  STRTAB_STE_0_CFG_ABORT,
  STRTAB_STE_0_CFG_BYPASS,
  STRTAB_STE_0_CFG_NESTED,
  STRTAB_STE_0_CFG_S1_TRANS,
  STRTAB_STE_0_CFG_S2_TRANS,
  STRTAB_STE_0_V,
  STRTAB_STE_2_S2R_HI,
} from "./armSmmuV3Defs.js";

const TWO32 = 0x100000000;

/** 2^n for n in [0, 64): `2 ** n` with a variable n is a slow Math.pow call in V8. */
const POW2 = Float64Array.from({ length: 64 }, (_, n) => 2 ** n);

/** `2 ** n`, from the table when n is in it. */
function pow2(n: number): number {
  return n >= 0 && n < 64 ? (POW2[n] as number) : 2 ** n;
}

/** `ARM_SMMU_CR0` bits the model honours. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CR0_SMMUEN = 1 << 0;
/** `CR0_EVTQEN`. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CR0_EVTQEN = 1 << 2;
/** `CR0_CMDQEN`. @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h */
export const CR0_CMDQEN = 1 << 3;

/** Options of {@link ArmSmmuV3Hw}. Model-only: configuration of the hardware model. */
export interface ArmSmmuV3HwOptions {
  /** Instance name, e.g. `"smmu0"`. */
  name: string;
  /** The RAM the stream table, context descriptors, queues and page tables live in. */
  phys: PhysMem;
  log: KernelLog;
  /** Timestamps for fault records; none ⇒ 0. */
  clock?: SimClock;
  /** IOTLB entries (default 256). */
  iotlbCapacity?: number;
  /** `SMMU_IDR5.OAS` in bits (default 48): bypass traffic beyond it faults F_ADDR_SIZE. */
  oas?: number;
}

// Stream configuration kinds, decoded from an STE (+ CD) into the configuration cache.
const K_ABORT = 1;
const K_BYPASS = 2;
const K_S1 = 3;
const K_S2 = 4;
const K_NESTED = 5;

/** One decoded STE (and its CD 0): what the SMMU's configuration cache holds for a StreamID. */
class StreamCfg {
  kind = 0;
  // stage 1 (from the CD)
  s1Ttb = 0;
  s1Ias = 0;
  s1Shift = 0;
  s1Start = 0;
  s1PgdBits = 0;
  s1Oas = 0;
  asid = 0;
  s1Record = true;
  s1Epd0 = false;
  // stage 2 (from the STE)
  s2Ttb = 0;
  s2Ias = 0;
  s2Shift = 0;
  s2Start = 0;
  s2PgdBits = 0;
  s2Oas = 0;
  vmid = 0;
  s2Record = true;
  /** IOTLB tag of the translation context. */
  tag = 0;
  // Per-level block sizes and index masks, and the input/output limits, precomputed.
  s1Blk = new Float64Array(4);
  s1Mask = new Int32Array(4);
  s1Limit = 0;
  s1OasLimit = 0;
  s2Blk = new Float64Array(4);
  s2Mask = new Int32Array(4);
  s2Limit = 0;
  s2OasLimit = 0;
}

function levelTables(
  shift: number,
  start: number,
  pgdBits: number,
  blk: Float64Array,
  mask: Int32Array,
): void {
  const bpl = shift - 3;
  for (let l = 0; l < 4; l++) {
    blk[l] = 2 ** ((4 - l) * bpl + 3);
    mask[l] = (1 << (l === start ? pgdBits : bpl)) - 1;
  }
}

const UTLB_SIZE = 64;

/**
 * The SMMUv3 hardware: registers, the linear stream table, context descriptors, the command queue
 * (consumed here) and the event queue (produced here), a configuration cache, a walk cache and the
 * core's {@link Iotlb}. Every translation reads STEs, CDs and page tables from simulated RAM in the
 * architecture's formats; faults are written to the in-memory event queue as 32-byte records
 * (never thrown), with the queue's overflow flag semantics.
 *
 * Caching follows the architecture: STE/CD contents are cached until `CMD_CFGI_*`, translations
 * until `CMD_TLBI_*` — and commands only take effect when the hardware consumes them
 * ({@link processCmdq}; the driver's `CMD_SYNC` waits for that), so the stale window is real.
 *
 * Model limits: linear stream table only; one CD per stream (S1CDMAX = 0, SubstreamID 0);
 * terminate model (no stalls, no PRI/ATS); VMSAv8-64 tables only (AA64); 48-bit addresses; the
 * walk cache is a per-page view cache dropped on every consumed TLBI/CFGI.
 * @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h; Arm IHI 0070 (SMMUv3 architecture)
 */
export class ArmSmmuV3Hw implements IommuHardware {
  readonly name: string;
  readonly phys: PhysMem;
  readonly iotlb: Iotlb;
  private readonly log: KernelLog;
  private readonly clock: SimClock | null;
  private readonly oasBits: number;

  /** `SMMU_CR0`. */
  cr0 = 0;
  /** `SMMU_STRTAB_BASE` (physical address). */
  strtabBase = 0;
  /** `SMMU_STRTAB_BASE_CFG.LOG2SIZE` (linear format). */
  strtabLog2Size = 0;
  /** `SMMU_CMDQ_BASE` address and `LOG2SIZE`. */
  cmdqBase = 0;
  cmdqLog2Size = 0;
  /** `SMMU_CMDQ_PROD` (written by the driver). */
  cmdqProd = 0;
  /** `SMMU_CMDQ_CONS` (advanced by the hardware). */
  cmdqCons = 0;
  /** `SMMU_EVTQ_BASE` address and `LOG2SIZE`. */
  evtqBase = 0;
  evtqLog2Size = 0;
  /** `SMMU_EVTQ_PROD` (advanced by the hardware; bit 31 OVFLG). */
  evtqProd = 0;
  /** `SMMU_EVTQ_CONS` (written by the driver; bit 31 OVACKFLG). */
  evtqCons = 0;

  /** Commands consumed, by opcode name, for reports. */
  readonly commandCounts: Record<string, number> = {};
  /** Events written to the queue, and events lost to overflow. */
  eventsWritten = 0;
  eventsLost = 0;
  faultCount = 0;

  private readonly cfgCache = new Map<number, StreamCfg>();
  private readonly walkCache = new Map<number, Uint32Array>();
  // The last page the walker read (leaf tables repeat across neighbouring walks).
  private lastPfn = -1;
  private lastView: Uint32Array | undefined;
  // The last stream's configuration (one-entry front of the config cache).
  private lastSid = -1;
  private lastCfg: StreamCfg | undefined;
  // IOTLB context tags: (kind, vmid, asid) → 16-bit tag, and back.
  private readonly tagOf = new Map<number, number>();
  private readonly tagKind = new Int32Array(0x10000);
  private readonly tagVmid = new Int32Array(0x10000);
  private readonly tagAsid = new Int32Array(0x10000);
  private nextTag = 0;
  private evtRecords: Array<IommuFaultRecord | undefined> = [];
  // TBU micro-TLB in front of the IOTLB: direct-mapped by (4K page ^ StreamID), flushed whenever
  // the SMMU consumes any invalidation, so it never outlives an IOTLB entry's validity.
  private readonly uSid = new Int32Array(UTLB_SIZE).fill(-1);
  private readonly uBase = new Float64Array(UTLB_SIZE);
  private readonly uSize = new Float64Array(UTLB_SIZE);
  private readonly uPhys = new Float64Array(UTLB_SIZE);
  private readonly uProt = new Int32Array(UTLB_SIZE);
  /** Translations served by the micro-TLB (also counted as IOTLB hits in {@link counters}). */
  utlbHits = 0;

  // Walk outputs (no allocation per walk).
  private wPa = 0;
  private wBlk = 0;
  private wLo = 0;
  private wHi = 0;
  /** Output address of the walked input address, and the IOMMU_* prot of the combined entry. */
  private wOut = 0;
  private wProt = 0;
  private wReads = 0;
  // Fault details for the event record.
  private fS2 = false;
  private fClass = 2;
  private fIpa = 0;
  private fLevel = -1;

  constructor(options: ArmSmmuV3HwOptions) {
    this.name = options.name;
    this.phys = options.phys;
    this.log = options.log;
    this.clock = options.clock ?? null;
    this.oasBits = options.oas ?? 48;
    this.iotlb = new Iotlb({ capacity: options.iotlbCapacity ?? 256, name: `${options.name}-tlb` });
  }

  // ------------------------------------------------------------------ IommuHardware

  /**
   * A device's DMA transaction: STE → (CD → stage 1) → (stage 2) → output, through the IOTLB.
   * A fault is written to the event queue (when recording is enabled for the context) and returned.
   */
  translate(txn: IommuTransaction): IommuTranslation {
    const iova = txn.iova;
    if ((this.cr0 & CR0_SMMUEN) === 0) return this.bypass(txn);
    const sid = txn.streamId;
    const u = (Math.floor(iova / 4096) ^ sid) & (UTLB_SIZE - 1);
    if (this.uSid[u] === sid && txn.pasid === undefined) {
      const off = iova - (this.uBase[u] as number);
      const size = this.uSize[u] as number;
      const prot = this.uProt[u] as number;
      if (
        off >= 0 &&
        off < size &&
        (txn.write ? (prot & IOMMU_WRITE) !== 0 : (prot & IOMMU_READ) !== 0) &&
        (txn.exec !== true || (prot & IOMMU_NOEXEC) === 0) &&
        (txn.priv === true || (prot & IOMMU_PRIV) === 0)
      ) {
        this.utlbHits++;
        const len = size - off;
        return {
          ok: true,
          phys: (this.uPhys[u] as number) + off,
          len: Math.min(len, txn.size),
          prot,
          iotlbHit: true,
        };
      }
    }
    let sc = sid === this.lastSid ? this.lastCfg : this.cfgCache.get(sid);
    if (sc === undefined) {
      const r = this.fetchCfg(sid, txn.pasid ?? 0);
      if (typeof r === "number") return this.fault(txn, r, true);
      sc = r;
    }
    this.lastSid = sid;
    this.lastCfg = sc;
    const kind = sc.kind;
    if (kind === K_BYPASS) return this.bypass(txn);
    if (kind === K_ABORT) return this.abort(txn);
    if ((txn.pasid ?? 0) !== 0) return this.fault(txn, EVT_ID_BAD_SUBSTREAMID_CONFIG, true);
    const iotlb = this.iotlb;
    let slot = iotlb.lookup(sc.tag, iova);
    let hit = true;
    if (slot < 0) {
      hit = false;
      const r = this.walkContext(sc, iova, txn);
      if (r !== 0) return this.fault(txn, r, this.fS2 ? sc.s2Record : sc.s1Record);
      slot = iotlb.insert(sc.tag, iova, this.wOut, this.wBlk, this.wProt);
    }
    const prot = iotlb.protOf(slot);
    if (
      (txn.write ? (prot & IOMMU_WRITE) === 0 : (prot & IOMMU_READ) === 0) ||
      (txn.exec === true && (prot & IOMMU_NOEXEC) !== 0) ||
      (txn.priv !== true && (prot & IOMMU_PRIV) !== 0)
    ) {
      this.fS2 = kind === K_S2;
      this.fClass = 2;
      this.fIpa = 0;
      this.fLevel = -1;
      return this.fault(txn, EVT_ID_PERMISSION_FAULT, kind === K_S2 ? sc.s2Record : sc.s1Record);
    }
    const base = iotlb.iovaOf(slot);
    const size = iotlb.sizeOf(slot);
    const phys = iotlb.physOf(slot, iova);
    if (txn.pasid === undefined) {
      this.uSid[u] = sid;
      this.uBase[u] = base;
      this.uSize[u] = size;
      this.uPhys[u] = phys - (iova - base);
      this.uProt[u] = prot;
    }
    const len = Math.min(base + size - iova, txn.size);
    return { ok: true, phys, len, prot, iotlbHit: hit };
  }

  faults(): readonly IommuFaultRecord[] {
    const out: IommuFaultRecord[] = [];
    const size = 2 ** this.evtqLog2Size;
    let c = this.evtqCons & (2 * size - 1);
    const p = this.evtqProd & (2 * size - 1);
    while (c !== p) {
      const r = this.evtRecords[c & (size - 1)];
      if (r !== undefined) out.push(r);
      c = (c + 1) & (2 * size - 1);
    }
    return out;
  }

  /** Takes every queued event (advancing `EVTQ_CONS`); the overflow flag is left for the driver to acknowledge. */
  drainFaults(): IommuFaultRecord[] {
    const out = this.faults() as IommuFaultRecord[];
    this.evtqCons = (this.evtqProd & ~Q_OVERFLOW_FLAG) | (this.evtqCons & Q_OVERFLOW_FLAG);
    return out;
  }

  /** The decoded record for the event at queue index `idx` (for the driver's event thread). */
  eventRecordAt(idx: number): IommuFaultRecord | undefined {
    return this.evtRecords[idx];
  }

  /** True while `EVTQ_PROD.OVFLG` differs from `EVTQ_CONS.OVACKFLG`: events were lost. */
  evtqOverflowed(): boolean {
    return ((this.evtqProd ^ this.evtqCons) & Q_OVERFLOW_FLAG) !== 0;
  }

  counters(): Readonly<Record<string, number>> {
    return {
      ...this.iotlb.counters("iommu"),
      "iommu.translate.iotlb-hit": this.iotlb.hits + this.utlbHits,
      "iommu.translate.utlb-hit": this.utlbHits,
      "iommu.translate.fault": this.faultCount,
      "iommu.smmu.evtq.written": this.eventsWritten,
      "iommu.smmu.evtq.lost": this.eventsLost,
      "iommu.smmu.walk-cache.pages": this.walkCache.size,
    };
  }

  // ------------------------------------------------------------------ command queue

  /**
   * The SMMU consumes commands from `CMDQ_CONS` up to `CMDQ_PROD`, executing each (TLB and
   * configuration-cache invalidations, `CMD_SYNC`). Returns how many were consumed. The driver
   * calls it while waiting for a `CMD_SYNC` or for queue space; a machine may call it to let the
   * hardware make progress.
   */
  processCmdq(): number {
    if ((this.cr0 & CR0_CMDQEN) === 0) return 0;
    const size = pow2(this.cmdqLog2Size);
    const mask = 2 * size - 1;
    let c = this.cmdqCons & mask;
    const p = this.cmdqProd & mask;
    let n = 0;
    while (c !== p) {
      const at = this.cmdqBase + (c & (size - 1)) * 16;
      const phys = this.phys;
      this.execCmd(phys.readU32(at), phys.readU32(at + 4), phys.readU32(at + 8), phys.readU32(at + 12));
      c = (c + 1) & mask;
      n++;
    }
    this.cmdqCons = c;
    return n;
  }

  private execCmd(w0: number, w1: number, w2: number, w3: number): void {
    const op = w0 & 0xff;
    if (op !== CMDQ_OP_CMD_SYNC && op !== CMDQ_OP_PREFETCH_CFG) {
      this.uSid.fill(-1);
      this.lastSid = -1;
      this.lastPfn = -1;
    }
    switch (op) {
      case CMDQ_OP_CMD_SYNC:
        this.count("CMD_SYNC");
        return;
      case CMDQ_OP_PREFETCH_CFG:
        this.count("PREFETCH_CFG");
        return;
      case CMDQ_OP_CFGI_STE:
        this.count("CFGI_STE");
        this.cfgCache.delete(w1);
        this.walkCache.clear();
        return;
      case CMDQ_OP_CFGI_ALL:
        this.count("CFGI_ALL");
        this.cfgCache.clear();
        this.walkCache.clear();
        return;
      case CMDQ_OP_CFGI_CD:
        this.count("CFGI_CD");
        this.cfgCache.delete(w1);
        this.walkCache.clear();
        return;
      case CMDQ_OP_CFGI_CD_ALL:
        this.count("CFGI_CD_ALL");
        this.cfgCache.delete(w1);
        this.walkCache.clear();
        return;
      case CMDQ_OP_TLBI_NH_ALL:
        this.count("TLBI_NH_ALL");
        this.invalidateTags((k, v) => (k === K_S1 || k === K_NESTED) && v === (w1 & 0xffff));
        return;
      case CMDQ_OP_TLBI_NH_ASID:
        this.count("TLBI_NH_ASID");
        this.invalidateTags(
          (k, v, a) => (k === K_S1 || k === K_NESTED) && v === (w1 & 0xffff) && a === w1 >>> 16,
        );
        return;
      case CMDQ_OP_TLBI_NH_VA:
      case CMDQ_OP_TLBI_S2_IPA: {
        const s1 = op === CMDQ_OP_TLBI_NH_VA;
        this.count(s1 ? "TLBI_NH_VA" : "TLBI_S2_IPA");
        const vmid = w1 & 0xffff;
        const asid = w1 >>> 16;
        const num = (w0 >>> 12) & 0x1f;
        const scale = (w0 >>> 20) & 0x1f;
        const tg = (w2 >>> 10) & 3;
        const addr = (w3 & 0xffff) * TWO32 + ((w2 & 0xfffff000) >>> 0);
        const size = tg === 0 ? 1 : (num + 1) * (POW2[scale] as number) * (POW2[tg * 2 + 10] as number);
        this.walkCache.clear();
        for (let t = 0; t < this.nextTag; t++) {
          const k = this.tagKind[t] as number;
          if (k === 0 || this.tagVmid[t] !== vmid) continue;
          // Combined S1+S2 entries are tagged by IOVA: an IPA invalidation cannot find them
          // (the kernel follows S2 invalidations of a nesting parent with TLBI_NH_ALL).
          if (s1 ? (k === K_S1 || k === K_NESTED) && this.tagAsid[t] === asid : k === K_S2)
            this.iotlb.invalidateRange(t, addr, size);
        }
        return;
      }
      case CMDQ_OP_TLBI_S12_VMALL:
        this.count("TLBI_S12_VMALL");
        this.invalidateTags((_k, v) => v === (w1 & 0xffff));
        return;
      case CMDQ_OP_TLBI_EL2_ALL:
      case CMDQ_OP_TLBI_NSNH_ALL:
        this.count(op === CMDQ_OP_TLBI_NSNH_ALL ? "TLBI_NSNH_ALL" : "TLBI_EL2_ALL");
        this.walkCache.clear();
        this.iotlb.invalidateAll();
        return;
      default:
        // CERROR_ILL: the kernel's arm_smmu_cmdq_skip_err logs and replaces it with a CMD_SYNC.
        this.count("ILLEGAL");
        this.log.err(this.name, `CMDQ error (cons 0x${this.cmdqCons.toString(16)}): Illegal command`);
        this.log.err(this.name, `skipping command in error state: 0x${hex16(w1)}${hex16(w0)}`);
    }
  }

  private count(name: string): void {
    this.commandCounts[name] = (this.commandCounts[name] ?? 0) + 1;
  }

  private invalidateTags(pred: (kind: number, vmid: number, asid: number) => boolean): void {
    this.walkCache.clear();
    for (let t = 0; t < this.nextTag; t++) {
      const k = this.tagKind[t] as number;
      if (k !== 0 && pred(k, this.tagVmid[t] as number, this.tagAsid[t] as number))
        this.iotlb.invalidateTag(t);
    }
  }

  // ------------------------------------------------------------------ configuration fetch

  private fetchCfg(sid: number, ssid: number): StreamCfg | number {
    this.fS2 = false;
    this.fClass = 0;
    this.fIpa = 0;
    this.fLevel = -1;
    if (!(sid >= 0 && sid < 2 ** this.strtabLog2Size)) return EVT_ID_BAD_STREAMID_CONFIG;
    const ste = this.strtabBase + sid * 64;
    const phys = this.phys;
    const d0lo = phys.readU32(ste);
    const d0hi = phys.readU32(ste + 4);
    if ((d0lo & STRTAB_STE_0_V) === 0) return EVT_ID_BAD_STE_CONFIG;
    const cfg = (d0lo >>> 1) & 7;
    const sc = new StreamCfg();
    if (cfg === STRTAB_STE_0_CFG_ABORT) sc.kind = K_ABORT;
    else if (cfg === STRTAB_STE_0_CFG_BYPASS) sc.kind = K_BYPASS;
    else if (cfg === STRTAB_STE_0_CFG_S1_TRANS) sc.kind = K_S1;
    else if (cfg === STRTAB_STE_0_CFG_S2_TRANS) sc.kind = K_S2;
    else if (cfg === STRTAB_STE_0_CFG_NESTED) sc.kind = K_NESTED;
    else return EVT_ID_BAD_STE_CONFIG;
    if (sc.kind === K_S2 || sc.kind === K_NESTED) {
      const d2lo = phys.readU32(ste + 16);
      const d2hi = phys.readU32(ste + 20);
      const d3lo = phys.readU32(ste + 24);
      const d3hi = phys.readU32(ste + 28);
      sc.vmid = d2lo & 0xffff;
      const tsz = d2hi & 0x3f;
      const sl0 = (d2hi >>> 6) & 3;
      const tg = (d2hi >>> 14) & 3;
      const ps = (d2hi >>> 16) & 7;
      sc.s2Record = (d2hi & STRTAB_STE_2_S2R_HI) !== 0;
      sc.s2Shift = armLpaeTgToShift(tg);
      sc.s2Ias = 64 - tsz;
      sc.s2Oas = Math.min(armLpaePsDecode(ps), this.oasBits);
      sc.s2Ttb = (d3hi & 0xffff) * TWO32 + ((d3lo & 0xfffffff0) >>> 0);
      if (sc.s2Shift === 0 || sc.s2Ias > 48 || sc.s2Ias < 24) return EVT_ID_BAD_STE_CONFIG;
      const bpl = sc.s2Shift - 3;
      sc.s2Start = sc.s2Shift === 12 ? 2 - sl0 : 3 - sl0;
      sc.s2PgdBits = sc.s2Ias - sc.s2Shift - bpl * (3 - sc.s2Start);
      // The start level must need between 1 and 16 concatenated tables' worth of index bits.
      if (sc.s2Start < 0 || sc.s2PgdBits < 1 || sc.s2PgdBits > bpl + 4) return EVT_ID_BAD_STE_CONFIG;
      levelTables(sc.s2Shift, sc.s2Start, sc.s2PgdBits, sc.s2Blk, sc.s2Mask);
      sc.s2Limit = 2 ** sc.s2Ias;
      sc.s2OasLimit = 2 ** sc.s2Oas;
    }
    if (sc.kind === K_S1 || sc.kind === K_NESTED) {
      // One CD per stream in the model (S1CDMAX is ignored): only SubstreamID 0 exists.
      if (ssid !== 0) return EVT_ID_BAD_SUBSTREAMID_CONFIG;
      let cd = (d0hi & 0xffff) * TWO32 + ((d0lo & 0xffffffc0) >>> 0);
      if (sc.kind === K_NESTED) {
        // The CD table pointer is an IPA: fetch it through stage 2.
        const r = this.walkS2(sc, cd);
        if (r !== 0) {
          this.fClass = 0;
          return r;
        }
        cd = this.wPa + ((cd >>> 0) & (this.wBlk - 1));
      }
      let c0lo: number;
      let c0hi: number;
      let c1lo: number;
      let c1hi: number;
      try {
        c0lo = phys.readU32(cd);
        c0hi = phys.readU32(cd + 4);
        c1lo = phys.readU32(cd + 8);
        c1hi = phys.readU32(cd + 12);
      } catch {
        return EVT_ID_WALK_EABT;
      }
      if ((c0lo & CTXDESC_CD_0_V) === 0 || (c0hi & CTXDESC_CD_0_AA64_HI) === 0) return EVT_ID_BAD_CD_CONFIG;
      const tsz = c0lo & 0x3f;
      const tg = (c0lo >>> 6) & 3;
      sc.s1Shift = armLpaeTgToShift(tg);
      sc.s1Ias = 64 - tsz;
      if (sc.s1Shift === 0 || sc.s1Ias > 48 || sc.s1Ias < 16) return EVT_ID_BAD_CD_CONFIG;
      sc.s1Epd0 = (c0lo & CTXDESC_CD_0_TCR_EPD0) !== 0;
      sc.s1Oas = Math.min(armLpaePsDecode(c0hi & 7), this.oasBits);
      sc.s1Record = (c0hi & CTXDESC_CD_0_R_HI) !== 0;
      sc.asid = c0hi >>> 16;
      sc.s1Ttb = (c1hi & 0xffff) * TWO32 + ((c1lo & 0xfffffff0) >>> 0);
      const bpl = sc.s1Shift - 3;
      const levels = Math.ceil((sc.s1Ias - sc.s1Shift) / bpl);
      sc.s1Start = 4 - levels;
      sc.s1PgdBits = sc.s1Ias - sc.s1Shift - bpl * (levels - 1);
      levelTables(sc.s1Shift, sc.s1Start, sc.s1PgdBits, sc.s1Blk, sc.s1Mask);
      sc.s1Limit = 2 ** sc.s1Ias;
      sc.s1OasLimit = 2 ** sc.s1Oas;
    }
    if (sc.kind >= K_S1)
      sc.tag = this.ctxTag(sc.kind, sc.kind === K_S1 ? 0 : sc.vmid, sc.kind === K_S2 ? 0 : sc.asid);
    this.cfgCache.set(sid, sc);
    return sc;
  }

  private ctxTag(kind: number, vmid: number, asid: number): number {
    const key = kind * TWO32 + vmid * 0x10000 + asid;
    let t = this.tagOf.get(key);
    if (t === undefined) {
      if (this.nextTag >= 0x10000) {
        // Out of tag space: start over (a real TLB would simply have fewer contexts resident).
        this.iotlb.invalidateAll();
        this.tagOf.clear();
        this.tagKind.fill(0);
        this.nextTag = 0;
        this.cfgCache.clear();
        this.lastSid = -1;
        this.uSid.fill(-1);
      }
      t = this.nextTag++;
      this.tagOf.set(key, t);
      this.tagKind[t] = kind;
      this.tagVmid[t] = vmid;
      this.tagAsid[t] = asid;
    }
    return t;
  }

  // ------------------------------------------------------------------ table walks

  /**
   * Walks the context for `iova`; on success leaves the output address in wOut, the size of the
   * entry to cache in wBlk and its prot in wProt, and returns 0; else an event id.
   */
  private walkContext(sc: StreamCfg, iova: number, txn: IommuTransaction): number {
    this.wReads = 0;
    this.fS2 = false;
    this.fClass = 2;
    this.fIpa = 0;
    this.fLevel = -1;
    let r: number;
    if (sc.kind === K_S2) {
      r = this.walkS2(sc, iova);
      this.iotlb.recordWalk(this.wReads);
      if (r !== 0) return r;
      this.wOut = this.wPa + ((iova >>> 0) & (this.wBlk - 1));
      this.wProt = this.s2Prot(this.wLo, this.wHi);
      return 0;
    }
    if (sc.s1Epd0) return EVT_ID_TRANSLATION_FAULT;
    if (!(iova < sc.s1Limit)) return EVT_ID_TRANSLATION_FAULT;
    r = this.walkStage(
      sc.s1Ttb,
      sc.s1Shift,
      sc.s1Start,
      sc.s1Blk,
      sc.s1Mask,
      iova,
      sc.kind === K_NESTED ? sc : null,
    );
    if (r !== 0) {
      this.iotlb.recordWalk(this.wReads);
      return r;
    }
    const lo = this.wLo;
    const hi = this.wHi;
    if (this.wPa + this.wBlk > sc.s1OasLimit) {
      this.iotlb.recordWalk(this.wReads);
      return EVT_ID_ADDR_SIZE_FAULT;
    }
    if ((lo & ARM_LPAE_PTE_AF) === 0) {
      this.iotlb.recordWalk(this.wReads);
      return EVT_ID_ACCESS_FAULT;
    }
    let prot = IOMMU_READ;
    if ((lo & ARM_LPAE_PTE_AP_RDONLY) === 0) prot |= IOMMU_WRITE;
    if ((lo & ARM_LPAE_PTE_AP_UNPRIV) === 0) prot |= IOMMU_PRIV;
    if ((hi & (txn.priv === true ? 1 << 21 : 1 << 22)) !== 0) prot |= IOMMU_NOEXEC;
    if (sc.kind === K_NESTED) {
      // Stage 2 on the output IPA; the combined entry covers the smaller of the two pages.
      const s1Pa = this.wPa;
      const s1Blk = this.wBlk;
      const ipa = s1Pa + ((iova >>> 0) & (s1Blk - 1));
      r = this.walkS2(sc, ipa);
      this.iotlb.recordWalk(this.wReads);
      if (r !== 0) {
        this.fClass = 2;
        return r;
      }
      const s2p = this.s2Prot(this.wLo, this.wHi);
      prot =
        (prot & ~(IOMMU_READ | IOMMU_WRITE)) |
        (prot & s2p & (IOMMU_READ | IOMMU_WRITE)) |
        (s2p & IOMMU_NOEXEC);
      this.wOut = this.wPa + ((ipa >>> 0) & (this.wBlk - 1));
      this.wBlk = Math.min(s1Blk, this.wBlk);
    } else {
      this.iotlb.recordWalk(this.wReads);
      this.wOut = this.wPa + ((iova >>> 0) & (this.wBlk - 1));
    }
    this.wProt = prot;
    return 0;
  }

  private s2Prot(lo: number, hi: number): number {
    let p = 0;
    if ((lo & ARM_LPAE_PTE_HAP_READ) !== 0) p |= IOMMU_READ;
    if ((lo & ARM_LPAE_PTE_HAP_WRITE) !== 0) p |= IOMMU_WRITE;
    if ((hi & (3 << 21)) !== 0) p |= IOMMU_NOEXEC;
    return p;
  }

  /** Stage-2 walk of `ipa` with fault bookkeeping (S2 flag, IPA). */
  private walkS2(sc: StreamCfg, ipa: number): number {
    if (!(ipa < sc.s2Limit)) {
      this.fS2 = true;
      this.fIpa = ipa;
      return EVT_ID_TRANSLATION_FAULT;
    }
    const r = this.walkStage(sc.s2Ttb, sc.s2Shift, sc.s2Start, sc.s2Blk, sc.s2Mask, ipa, null);
    if (r === 0 && this.wPa + this.wBlk > sc.s2OasLimit) {
      this.fS2 = true;
      this.fIpa = ipa;
      return EVT_ID_ADDR_SIZE_FAULT;
    }
    if (r === 0 && (this.wLo & ARM_LPAE_PTE_AF) === 0) {
      this.fS2 = true;
      this.fIpa = ipa;
      return EVT_ID_ACCESS_FAULT;
    }
    if (r !== 0) {
      this.fS2 = true;
      this.fIpa = ipa;
    }
    return r;
  }

  /**
   * One VMSAv8-64 walk from `ttb`. `s2` non-null: table addresses are IPAs translated through it
   * (nested). Leaves wPa (block base), wBlk, wLo, wHi; returns 0 or an event id.
   */
  private walkStage(
    ttb: number,
    shift: number,
    start: number,
    blkArr: Float64Array,
    maskArr: Int32Array,
    input: number,
    s2: StreamCfg | null,
  ): number {
    const addrLo = ~((1 << shift) - 1);
    let table = ttb;
    for (let lvl = start; lvl < 4; lvl++) {
      const blk = blkArr[lvl] as number;
      const idx = Math.floor(input / blk) & (maskArr[lvl] as number);
      let da = table + idx * 8;
      if (s2 !== null) {
        const r = this.walkS2(s2, da);
        if (r !== 0) {
          this.fClass = 1;
          this.fLevel = lvl;
          return r;
        }
        da = this.wPa + ((da >>> 0) & (this.wBlk - 1));
      }
      const pfn = Math.floor(da / 4096);
      let v: Uint32Array | undefined;
      if (this.lastPfn === pfn) v = this.lastView as Uint32Array;
      else {
        v = this.walkCache.get(pfn);
        if (v === undefined) {
          v = this.viewMiss(pfn);
          if (v === undefined) {
            this.fLevel = lvl;
            return EVT_ID_WALK_EABT;
          }
        }
        this.lastPfn = pfn;
        this.lastView = v;
      }
      const o = ((da >>> 0) & 4095) >>> 2;
      const lo = v[o] as number;
      const hi = v[o + 1] as number;
      this.wReads++;
      this.fLevel = lvl;
      if ((lo & 1) === 0) return EVT_ID_TRANSLATION_FAULT;
      const addr = (hi & 0xffff) * TWO32 + ((lo & addrLo) >>> 0);
      if (lvl === 3 || (lo & 2) === 0) {
        // Leaf: a page at level 3 (type 3), a block above it (type 1).
        if (lvl === 3 && (lo & 2) === 0) return EVT_ID_TRANSLATION_FAULT;
        if (lvl < 3 && !blockAllowed(shift, lvl)) return EVT_ID_TRANSLATION_FAULT;
        this.wPa = addr - ((addr >>> 0) & (blk - 1));
        this.wBlk = blk;
        this.wLo = lo;
        this.wHi = hi;
        return 0;
      }
      table = addr;
    }
    return EVT_ID_TRANSLATION_FAULT;
  }

  private viewMiss(pfn: number): Uint32Array | undefined {
    let b: Uint8Array;
    try {
      b = this.phys.pageView(pfn);
    } catch {
      return undefined;
    }
    const v = new Uint32Array(b.buffer, b.byteOffset, 1024);
    this.walkCache.set(pfn, v);
    return v;
  }

  // ------------------------------------------------------------------ results and events

  private bypass(txn: IommuTransaction): IommuTranslation {
    if (txn.iova + txn.size > 2 ** this.oasBits) {
      this.fS2 = false;
      this.fClass = 2;
      this.fIpa = 0;
      this.fLevel = -1;
      return this.fault(txn, EVT_ID_ADDR_SIZE_FAULT, true);
    }
    return { ok: true, phys: txn.iova, len: txn.size, prot: IOMMU_READ | IOMMU_WRITE, iotlbHit: false };
  }

  private abort(txn: IommuTransaction): IommuTranslation {
    this.faultCount++;
    return {
      ok: false,
      fault: {
        kind: "blocked",
        iova: txn.iova,
        streamId: txn.streamId,
        write: txn.write,
        code: "ABORT",
        reason: -1,
        level: -1,
        message: `${this.name}: sid 0x${txn.streamId.toString(16)}: STE.Config abort: transaction terminated (no event)`,
        timeNs: this.clock?.now() ?? 0,
      },
    };
  }

  private fault(txn: IommuTransaction, id: number, record: boolean): IommuTranslation {
    this.faultCount++;
    const code = armSmmuEventName(id);
    const kind: IommuFaultKind =
      id === EVT_ID_TRANSLATION_FAULT || id === EVT_ID_WALK_EABT
        ? "translation"
        : id === EVT_ID_PERMISSION_FAULT
          ? "permission"
          : id === EVT_ID_ADDR_SIZE_FAULT
            ? "address-size"
            : id === EVT_ID_ACCESS_FAULT
              ? "access"
              : "config";
    const ssid = txn.pasid ?? 0;
    const access = `${txn.priv === true ? "priv" : "unpriv"} ${txn.exec === true ? "inst" : "data"} ${txn.write ? "write" : "read"}`;
    const s2 = this.fS2 ? ` (S2, ipa 0x${this.fIpa.toString(16)})` : "";
    const rec: IommuFaultRecord = {
      kind,
      iova: txn.iova,
      streamId: txn.streamId,
      write: txn.write,
      code,
      reason: id,
      level: this.fLevel,
      message: `event: ${code} sid: 0x${txn.streamId.toString(16)} ssid: 0x${ssid.toString(16)} iova: 0x${txn.iova.toString(16)}: ${access}${s2}`,
      timeNs: this.clock?.now() ?? 0,
    };
    if (txn.pasid !== undefined) rec.pasid = txn.pasid;
    if (txn.exec !== undefined) rec.exec = txn.exec;
    if (record) this.writeEvent(id, txn, rec);
    return { ok: false, fault: rec };
  }

  /** Writes a 32-byte event record at `EVTQ_PROD`, or sets OVFLG and drops it when the queue is full. */
  private writeEvent(id: number, txn: IommuTransaction, rec: IommuFaultRecord): void {
    if ((this.cr0 & CR0_EVTQEN) === 0) {
      this.eventsLost++;
      return;
    }
    const size = 2 ** this.evtqLog2Size;
    const mask = 2 * size - 1;
    const p = this.evtqProd & mask;
    const c = this.evtqCons & mask;
    if ((p & (size - 1)) === (c & (size - 1)) && p !== c) {
      // Full: OVFLG becomes the inverse of the driver's OVACKFLG; the event is lost.
      this.evtqProd = (this.evtqProd & ~Q_OVERFLOW_FLAG) | (~this.evtqCons & Q_OVERFLOW_FLAG);
      this.evtqProd >>>= 0;
      this.eventsLost++;
      return;
    }
    const at = this.evtqBase + (p & (size - 1)) * 32;
    const ssid = txn.pasid ?? 0;
    const phys = this.phys;
    phys.writeU32(at, (id | (txn.pasid !== undefined ? EVTQ_0_SSV : 0) | ((ssid & 0xfffff) << 12)) >>> 0);
    phys.writeU32(at + 4, txn.streamId >>> 0);
    phys.writeU32(at + 8, 0);
    phys.writeU32(
      at + 12,
      ((txn.write ? 0 : EVTQ_1_RnW_HI) |
        (txn.exec === true ? EVTQ_1_InD_HI : 0) |
        (txn.priv === true ? EVTQ_1_PnU_HI : 0) |
        (this.fS2 ? EVTQ_1_S2_HI : 0) |
        ((this.fClass & 3) << EVTQ_1_CLASS_HI_SHIFT)) >>>
        0,
    );
    phys.writeU32(at + 16, txn.iova >>> 0);
    phys.writeU32(at + 20, Math.floor(txn.iova / TWO32) >>> 0);
    phys.writeU32(at + 24, (this.fIpa >>> 0) & 0xfffff000);
    phys.writeU32(at + 28, Math.floor(this.fIpa / TWO32) & 0xfffff);
    this.evtRecords[p & (size - 1)] = rec;
    this.evtqProd = ((this.evtqProd & Q_OVERFLOW_FLAG) | ((p + 1) & mask)) >>> 0;
    this.eventsWritten++;
  }

  /** Resets the event-record mirror for a new queue (driver probe). */
  resetEvtq(): void {
    this.evtRecords = new Array(2 ** this.evtqLog2Size);
  }

  /** Throws unless `phys` is RAM: the driver's structures must live in memory the SMMU can read. */
  checkRam(phys: number, what: string): void {
    if (!this.phys.isRam(phys))
      throw new KernelError("EINVAL", `${this.name}: ${what} at ${hex(phys)} is not RAM`);
  }
}

/** Blocks exist at level 1 (4K granule: 1G) and level 2 (all granules); not at level 0. */
function blockAllowed(shift: number, lvl: number): boolean {
  return lvl === 2 || (lvl === 1 && shift === 12);
}

function hex16(v: number): string {
  return (v >>> 0).toString(16).padStart(8, "0");
}
