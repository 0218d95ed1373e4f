import { IommuDomain, type IommuDomainInit, type IoPgtableOps } from "@dmakit/iommu";
import type { ArmLpaeIoPgtable } from "./ArmLpaeIoPgtable.js";

/**
 * `enum arm_smmu_domain_stage`.
 * @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h enum arm_smmu_domain_stage (S1 and S2 there; the
 *   kernel keeps bypass, abort and nested as other domain types)
 */
export type ArmSmmuDomainStage = "s1" | "s2" | "bypass" | "abort" | "nested";

/**
 * `struct arm_smmu_domain`: an {@link IommuDomain} with the SMMU driver's state: its stage, the
 * io-pgtable, the ASID (stage 1) or VMID (stage 2), and for a nested domain its stage-2 parent
 * and the stage-1 context it runs.
 * @see drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h struct arm_smmu_domain, struct arm_smmu_nested_domain
 */
export class ArmSmmuDomain extends IommuDomain {
  readonly stage: ArmSmmuDomainStage;
  /** `smmu_domain->pgtbl_ops`; null for identity/blocked/nested domains. */
  pgtblOps: IoPgtableOps | null = null;
  /** The table behind `pgtblOps` (for its fmtCfg and counters). */
  pgtbl: ArmLpaeIoPgtable | null = null;
  /** `cd.asid` for stage 1 (and the ASID a nested domain's CD carries); 0 otherwise. */
  asid = 0;
  /** `s2_cfg.vmid` for stage 2 / nested; 0 otherwise. */
  vmid = 0;
  /** `nest_parent`: may be used as the stage 2 of nested domains. */
  nestParent = false;
  /** Nested: the stage-2 parent domain. */
  s2Parent: ArmSmmuDomain | null = null;
  /** Nested: the stage-1 domain whose tables (at IPAs) the guest context uses. */
  s1Child: ArmSmmuDomain | null = null;
  /** Nested: page holding the nested context descriptor (read by the SMMU as an IPA). */
  cdTablePfn = -1;

  constructor(init: IommuDomainInit & { stage: ArmSmmuDomainStage }) {
    super(init);
    this.stage = init.stage;
  }
}
