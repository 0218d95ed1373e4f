/**
 * A typed slot for per-device state that a subsystem keeps without core knowing its shape, the
 * way the kernel hangs `dev->iommu`, `dev->dma_io_tlb_mem` or `dev->archdata` off `struct device`.
 * Identity is the key object itself: two keys with the same name are different slots, so two
 * packages can never clash. Create one key per subsystem (a module-level constant is fine: a key
 * holds no state).
 *
 * @example
 * const IOMMU_STATE = new DeviceKey<DevIommu>("iommu");
 * dev.set(IOMMU_STATE, { group, domain });
 * dev.get(IOMMU_STATE)?.domain;
 *
 * @see include/linux/device.h struct device (`iommu`, `dma_io_tlb_mem`, `msi`, ... fields); the
 * model replaces fixed fields with typed keys.
 */
export class DeviceKey<T> {
  /** Phantom field carrying `T`; never set. */
  declare readonly __type?: T;

  /** @param name what the slot is for, used in messages (`"iommu"`, `"swiotlb"`). */
  constructor(readonly name: string) {}

  toString(): string {
    return `DeviceKey(${this.name})`;
  }
}
