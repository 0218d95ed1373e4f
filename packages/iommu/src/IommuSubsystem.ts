import { KernelError, type KernelLog } from "@dmakit/core";
import {
  IOMMU_DOMAIN_DMA,
  IOMMU_DOMAIN_DMA_FQ,
  IOMMU_DOMAIN_IDENTITY,
  iommuDomainTypeStr,
} from "./domainTypes.js";
import { IommuGroup } from "./IommuGroup.js";
import type { IommuDevice } from "./IommuOps.js";

/**
 * The build-time default (`CONFIG_IOMMU_DEFAULT_DMA_STRICT`, `_DMA_LAZY`, `_PASSTHROUGH`):
 * translated with synchronous invalidation, translated with a flush queue, or identity.
 * @see drivers/iommu/Kconfig IOMMU_DEFAULT_DMA_STRICT, IOMMU_DEFAULT_DMA_LAZY, IOMMU_DEFAULT_PASSTHROUGH
 */
export type IommuDefaultDomainConfig = "strict" | "lazy" | "passthrough";

/**
 * How the machine configures its IOMMU core (Kconfig and the `iommu.*` boot parameters).
 * Model-only: stands for Kconfig and the boot command line.
 */
export interface IommuSubsystemOptions {
  /** The machine's kernel log. */
  log: KernelLog;
  /** Kconfig default domain policy; default `"strict"` (the kernel's default outside x86/s390). */
  config?: IommuDefaultDomainConfig;
  /** `iommu.passthrough=` on the command line (overrides `config`'s translated/identity choice). */
  passthrough?: boolean;
  /** `iommu.strict=` on the command line (overrides `config`'s strict/lazy choice). */
  strict?: boolean;
  /** `cc_platform_has(CC_ATTR_MEM_ENCRYPT)`: memory encryption forbids default passthrough. */
  memEncrypt?: boolean;
}

/** `IOMMU_CMD_LINE_DMA_API`: the domain type was set on the command line. @see drivers/iommu/iommu.c */
export const IOMMU_CMD_LINE_DMA_API = 1 << 0;
/**
 * `IOMMU_CMD_LINE_STRICT`: the invalidation policy was set on the command line.
 * @see drivers/iommu/iommu.c
 */
export const IOMMU_CMD_LINE_STRICT = 1 << 1;

/**
 * The machine's IOMMU core: default-domain policy, registered IOMMU instances and group ids. What
 * the kernel keeps in `iommu.c`'s file-scope variables (`iommu_def_domain_type`,
 * `iommu_dma_strict`, `iommu_cmd_line`, `iommu_group_ida`, `iommu_device_list`) lives here, one
 * object per machine.
 *
 * Construction runs `iommu_subsys_init`: it resolves the policy and logs
 * "Default domain type: ..." and "DMA domain TLB invalidation policy: ..." as the kernel does.
 * @see drivers/iommu/iommu.c iommu_subsys_init, iommu_set_def_domain_type, iommu_dma_setup
 */
export class IommuSubsystem {
  readonly log: KernelLog;
  /** `iommu_def_domain_type`. */
  defDomainType: number;
  /** `iommu_dma_strict`. */
  dmaStrict: boolean;
  /** `iommu_cmd_line` (`IOMMU_CMD_LINE_*`). */
  readonly cmdLine: number;
  /** `iommu_device_list`. */
  readonly iommus: IommuDevice[] = [];
  private readonly groupsById = new Map<number, IommuGroup>();

  constructor(options: IommuSubsystemOptions) {
    this.log = options.log;
    const config = options.config ?? "strict";
    let cmd = 0;
    this.dmaStrict = config === "strict";
    if (options.strict !== undefined) {
      this.dmaStrict = options.strict;
      cmd |= IOMMU_CMD_LINE_STRICT;
    }
    let passthrough = config === "passthrough";
    if (options.passthrough !== undefined) {
      passthrough = options.passthrough;
      cmd |= IOMMU_CMD_LINE_DMA_API;
    }
    this.cmdLine = cmd;
    this.defDomainType = passthrough ? IOMMU_DOMAIN_IDENTITY : IOMMU_DOMAIN_DMA;
    if ((cmd & IOMMU_CMD_LINE_DMA_API) === 0 && passthrough && options.memEncrypt === true) {
      this.log.info("iommu", "Memory encryption detected - Disabling default IOMMU Passthrough");
      this.defDomainType = IOMMU_DOMAIN_DMA;
    }
    if (!this.iommuDefaultPassthrough() && !this.dmaStrict) this.defDomainType = IOMMU_DOMAIN_DMA_FQ;
    this.log.info(
      "iommu",
      `Default domain type: ${iommuDomainTypeStr(this.defDomainType)} ${
        (cmd & IOMMU_CMD_LINE_DMA_API) !== 0 ? "(set via kernel command line)" : ""
      }`,
    );
    if (!this.iommuDefaultPassthrough())
      this.log.info(
        "iommu",
        `DMA domain TLB invalidation policy: ${this.dmaStrict ? "strict" : "lazy"} mode ${
          (cmd & IOMMU_CMD_LINE_STRICT) !== 0 ? "(set via kernel command line)" : ""
        }`,
      );
  }

  /**
   * `iommu_default_passthrough()`.
   * @see drivers/iommu/iommu.c iommu_default_passthrough
   */
  iommuDefaultPassthrough(): boolean {
    return this.defDomainType === IOMMU_DOMAIN_IDENTITY;
  }

  /**
   * `iommu_set_dma_strict()`: drivers that cannot do lazy invalidation force strict mode.
   * @see drivers/iommu/iommu.c iommu_set_dma_strict
   */
  iommuSetDmaStrict(): void {
    this.dmaStrict = true;
    if (this.defDomainType === IOMMU_DOMAIN_DMA_FQ) this.defDomainType = IOMMU_DOMAIN_DMA;
  }

  /**
   * `iommu_device_register(iommu, ops, hwdev)`: makes an IOMMU instance known. `EEXIST` for a
   * duplicate name. (Probing devices behind it is `iommuProbeDevice`.)
   * @see drivers/iommu/iommu.c iommu_device_register
   */
  iommuDeviceRegister(iommu: IommuDevice): void {
    if (this.iommus.includes(iommu)) return;
    if (this.iommus.some((i) => i.name === iommu.name))
      throw new KernelError("EEXIST", `iommu: an IOMMU named ${iommu.name} is already registered`);
    this.iommus.push(iommu);
  }

  /**
   * `iommu_group_alloc()`: a new empty group with the lowest free id.
   * @see drivers/iommu/iommu.c iommu_group_alloc
   */
  groupAlloc(): IommuGroup {
    let id = 0;
    while (this.groupsById.has(id)) id++;
    const g = new IommuGroup(this, id);
    this.groupsById.set(id, g);
    return g;
  }

  /** Drops an empty group (its id becomes free), as the last `iommu_group_put` does. */
  groupRelease(group: IommuGroup): void {
    if (group.devices.length > 0)
      throw new KernelError(
        "EBUSY",
        `iommu: group ${group.id} still has ${group.devices.length} device(s), not releasing`,
      );
    this.groupsById.delete(group.id);
  }

  /**
   * `iommu_group_get_by_id(id)`: the group, or null.
   * @see drivers/iommu/iommu.c iommu_group_get_by_id
   */
  groupGetById(id: number): IommuGroup | null {
    return this.groupsById.get(id) ?? null;
  }

  /** All live groups, by id. */
  groups(): IommuGroup[] {
    return [...this.groupsById.values()].sort((a, b) => a.id - b.id);
  }
}
