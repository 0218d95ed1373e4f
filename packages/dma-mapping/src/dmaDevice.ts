import { type Device, DeviceKey, KernelError } from "@dmakit/core";
import { type IommuDomain, iommuIsDmaDomain } from "@dmakit/iommu";
import type { CmaArea } from "@dmakit/mm-pages";
import type { DmaSystem } from "./DmaSystem.js";

/**
 * The DMA fields of `struct device` that the DMA layer owns: which path maps (`dma_iommu`), whether
 * syncs can be skipped (`dma_skip_sync`), forced bouncing (`dma_io_tlb_mem` / `swiotlb=force`),
 * the per-device CMA area (`cma_area`), and dma-iommu's PCI 32-bit-first workaround flag.
 * Kept with core's per-device state, so @dmakit/core does not know about the DMA layer.
 * @see include/linux/device.h struct device
 */
export interface DmaDeviceState {
  readonly system: DmaSystem;
  /** `dev->dma_iommu`: the default domain is a DMA API domain, so iommu-dma maps. */
  dmaIommu: boolean;
  /** The domain iommu-dma maps through when `dmaIommu` (the group's default domain). */
  domain: IommuDomain | null;
  /** `dev->dma_skip_sync`: syncs are no-ops (coherent device, nothing bounced yet). */
  dmaSkipSync: boolean;
  /** `is_swiotlb_force_bounce(dev)`: every streaming mapping bounces (`swiotlb=force`, CoCo, restricted pool). */
  swiotlbForceBounce: boolean;
  /** `dev->cma_area` (a `memory-region` phandle); null = the default CMA area. */
  cmaArea: CmaArea | null;
  /** `dev->iommu->pci_32bit_workaround`: try IOVAs below 4 GiB first (PCI devices, until it fails once). */
  pci32bitWorkaround: boolean;
}

/** The per-device slot of {@link DmaDeviceState}. Model-only. */
export const DMA_DEVICE = new DeviceKey<DmaDeviceState>("dma");

/**
 * Options of {@link dmaConfigure}.
 * Model-only: what firmware (`dma-coherent`, `memory-region`, `restricted-dma-pool`) and the IOMMU core give `of_dma_configure`.
 */
export interface DmaConfigureOptions {
  /** The device's default IOMMU domain (from the IOMMU core), or null/absent without an IOMMU. */
  readonly domain?: IommuDomain | null;
  /** `dev->cma_area`. */
  readonly cmaArea?: CmaArea | null;
  /** Force every streaming mapping through swiotlb. */
  readonly forceSwiotlb?: boolean;
  /** `dma-coherent`: overrides the device's own `dmaCoherent` when given. */
  readonly coherent?: boolean;
}

/**
 * `of_dma_configure` / `acpi_dma_configure` → `arch_setup_dma_ops` + `iommu_setup_dma_ops`: binds a
 * device to the machine's DMA layer. Sets `dma_iommu` when the default domain is a DMA API domain
 * (DMA or DMA_FQ; identity and no IOMMU map directly), `dma_skip_sync` to the device's coherence,
 * and the 32-bit-first IOVA workaround for PCI devices.
 * @see drivers/of/device.c of_dma_configure_id, arch/arm64/mm/dma-mapping.c arch_setup_dma_ops,
 * drivers/iommu/dma-iommu.c iommu_setup_dma_ops
 */
export function dmaConfigure(
  dev: Device,
  system: DmaSystem,
  options: DmaConfigureOptions = {},
): DmaDeviceState {
  if (options.coherent !== undefined) dev.dmaCoherent = options.coherent;
  const domain = options.domain ?? null;
  const dmaIommu = domain !== null && iommuIsDmaDomain(domain.type);
  const state: DmaDeviceState = {
    system,
    dmaIommu,
    domain: dmaIommu ? domain : null,
    dmaSkipSync: dev.dmaCoherent,
    swiotlbForceBounce: options.forceSwiotlb ?? false,
    cmaArea: options.cmaArea ?? null,
    pci32bitWorkaround: dmaIommu && dev.bus === "pci",
  };
  dev.set(DMA_DEVICE, state);
  return state;
}

/**
 * The device's DMA state. `ENODEV` when `dmaConfigure` never ran: the kernel would use the
 * device with no `dma_ops` and no mask; the model refuses instead of guessing the machine.
 * Model-only.
 */
export function devDmaState(dev: Device): DmaDeviceState {
  const s = dev.get(DMA_DEVICE);
  if (s === undefined)
    throw new KernelError(
      "ENODEV",
      `dma-mapping: ${dev.name}: device not configured for DMA (no dmaConfigure)`,
    );
  return s;
}

/** `use_dma_iommu(dev)`: the device maps through iommu-dma. @see include/linux/dma-map-ops.h */
export function useDmaIommu(dev: Device): boolean {
  return devDmaState(dev).dmaIommu;
}

/** `dev_is_dma_coherent(dev)`. @see include/linux/dma-map-ops.h */
export function devIsDmaCoherent(dev: Device): boolean {
  return dev.dmaCoherent;
}

/**
 * `dma_dev_need_sync(dev)`: false when syncs are no-ops (`dma_skip_sync`), except that with
 * dma-debug enabled every sync is still checked (`IS_ENABLED(CONFIG_DMA_API_DEBUG)`).
 * @see include/linux/dma-mapping.h
 */
export function dmaDevNeedSync(dev: Device): boolean {
  const s = devDmaState(dev);
  return !s.dmaSkipSync || s.system.debug !== null;
}
