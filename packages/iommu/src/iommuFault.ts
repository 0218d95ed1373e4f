import { type Device, ERRNO } from "@dmakit/core";
import type { IommuDomain, IommuFaultHandler } from "./IommuDomain.js";

/** `IOMMU_FAULT_READ`: the faulting access was a read. @see include/linux/iommu.h */
export const IOMMU_FAULT_READ = 0x0;
/** `IOMMU_FAULT_WRITE`: the faulting access was a write. @see include/linux/iommu.h */
export const IOMMU_FAULT_WRITE = 0x1;

/**
 * `iommu_set_fault_handler(domain, handler, token)`: installs the handler `report_iommu_fault`
 * calls for faults in `domain`. As in the kernel (since the domain cookie became a union), a
 * domain that already carries a DMA-API IOVA cookie cannot take a handler: WARN, nothing set.
 * @see drivers/iommu/iommu.c iommu_set_fault_handler
 */
export function iommuSetFaultHandler(domain: IommuDomain, handler: IommuFaultHandler, token: unknown): void {
  if (
    domain.log.warn(
      domain.iovaCookie !== null,
      "iommu",
      `WARN: iommu_set_fault_handler: ${domain.name} already has a DMA-API cookie`,
    )
  )
    return;
  domain.handler = handler;
  domain.handlerToken = token;
}

/**
 * `report_iommu_fault(domain, dev, iova, flags)`: what an IOMMU driver's fault interrupt handler
 * calls. Returns the installed handler's result (0 = handled), or `-ENOSYS` (-38) when there is
 * none (handlers may also return -ENOSYS to ask for the driver's default report). Always a number,
 * never a throw. `flags`: `IOMMU_FAULT_READ` / `IOMMU_FAULT_WRITE`.
 * @see drivers/iommu/iommu.c report_iommu_fault
 */
export function reportIommuFault(domain: IommuDomain, dev: Device, iova: number, flags: number): number {
  if (domain.handler === null) return -ERRNO.ENOSYS;
  return domain.handler(domain, dev, iova, flags, domain.handlerToken);
}
