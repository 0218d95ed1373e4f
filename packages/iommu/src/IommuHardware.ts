import type { Iotlb } from "./Iotlb.js";

/**
 * Why the hardware refused a transaction, in words common to all implementations:
 * - `translation`: no valid entry maps the IOVA (SMMU `F_TRANSLATION`, VT-d reason 0x06 "PTE read
 *   access is not set"... whatever the implementation's code is, in {@link IommuFaultRecord.code});
 * - `permission`: an entry exists but forbids the access (write to read-only, exec, privilege);
 * - `address-size`: the IOVA is beyond the input size, or the output beyond the output size;
 * - `access`: the access flag is clear (ARM AF);
 * - `config`: the device has no valid context (SMMU bad STE/CD, VT-d context entry not present);
 * - `blocked`: the device is attached to a blocking domain and its DMA is aborted.
 * Model-only: a common classification of the hardware fault codes.
 */
export type IommuFaultKind = "translation" | "permission" | "address-size" | "access" | "config" | "blocked";

/**
 * A DMA transaction as the IOMMU sees it on the bus: who issued it (stream/requester id, PASID),
 * where to, how long, and which way.
 * Model-only: a bus transaction, which the kernel does not see.
 */
export interface IommuTransaction {
  /** SMMU StreamID or PCI requester id (bus << 8 | devfn) — the implementation's device key. */
  streamId: number;
  /** PASID / SubstreamID, when the transaction carries one. */
  pasid?: number;
  /** Input (IO virtual) address. */
  iova: number;
  /** Bytes to access from `iova`; the translation may cover fewer (see {@link IommuTranslationOk.len}). */
  size: number;
  /** True for a DMA write to memory (device → memory), false for a read. */
  write: boolean;
  /** Instruction fetch (for NOEXEC checks). */
  exec?: boolean;
  /** Privileged access (for IOMMU_PRIV checks). */
  priv?: boolean;
}

/**
 * A fault as DATA: what the hardware writes to its event/fault queue (SMMU event queue, VT-d fault
 * recording registers). Never thrown. `code` and `reason` are the implementation's own words.
 * Model-only: the hardware's event record as data (the kernel decodes it in the driver's IRQ handler).
 */
export interface IommuFaultRecord {
  kind: IommuFaultKind;
  iova: number;
  streamId: number;
  pasid?: number;
  /** True for a write (the kernel's `IOMMU_FAULT_WRITE`), false for a read. */
  write: boolean;
  exec?: boolean;
  /** Implementation's symbolic code, e.g. `"F_TRANSLATION"`, `"F_PERMISSION"`, `"DMAR:0x05"`. */
  code: string;
  /** Implementation's numeric code (SMMU event id, VT-d fault reason); -1 when none. */
  reason: number;
  /** Page-table level where the walk stopped; -1 when not applicable. */
  level: number;
  /** Human-readable line as the driver would log it. */
  message: string;
  /** Simulated time of the fault, ns. */
  timeNs: number;
}

/**
 * A successful translation of (part of) a transaction.
 * Model-only: the hardware's answer to a transaction.
 */
export interface IommuTranslationOk {
  ok: true;
  /** Physical address `iova` translates to. */
  phys: number;
  /** Bytes from `iova` that translate contiguously with this result (≤ `size`, ≥ 1). */
  len: number;
  /** `IOMMU_*` prot of the mapping used. */
  prot: number;
  /** True when the IOTLB supplied the translation (no table walk). */
  iotlbHit: boolean;
}

/**
 * A refused transaction: the fault record that went to the implementation's queue.
 * Model-only: the hardware's answer to a transaction.
 */
export interface IommuTranslationFault {
  ok: false;
  fault: IommuFaultRecord;
}

/** Result of {@link IommuHardware.translate}. Model-only: the hardware's answer to a transaction. */
export type IommuTranslation = IommuTranslationOk | IommuTranslationFault;

/**
 * The hardware half of an IOMMU implementation: what a device's DMA engine calls for every access.
 * It reads the implementation's configuration structures and page tables from simulated RAM (as
 * the kernel side last wrote them), consults and fills its IOTLB, and either returns the physical
 * address or records a fault. Stale IOTLB entries keep translating until the kernel side
 * invalidates them: the window between unmap and invalidation is real.
 * Model-only: the hardware side, which the kernel does not contain.
 */
export interface IommuHardware {
  /** Instance name, e.g. `"smmu0"`, `"dmar0"`. */
  readonly name: string;
  /** Translates one transaction (or its first contiguous part); a fault is recorded and returned. */
  translate(txn: IommuTransaction): IommuTranslation;
  /** The fault/event queue contents not yet drained, oldest first. */
  faults(): readonly IommuFaultRecord[];
  /** Takes and empties the fault/event queue. */
  drainFaults(): IommuFaultRecord[];
  /**
   * Counters for reports, by stable id: at least `iommu.translate.iotlb-hit`,
   * `iommu.translate.iotlb-miss`, `iommu.translate.walk`, `iommu.translate.fault` (see
   * {@link Iotlb.counters}).
   */
  counters(): Readonly<Record<string, number>>;
  /** The IOTLB model, when the implementation uses the shared {@link Iotlb}. */
  readonly iotlb?: Iotlb;
}
