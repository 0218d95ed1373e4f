import { type Errno, KernelError } from "@dmakit/core";

/**
 * A `map_pages` failure that may have mapped some pages first: the kernel returns the errno and
 * reports the bytes already mapped through `size_t *mapped`; the model throws this error carrying
 * {@link MapPagesError.mapped} so `iommu_map` can unwind exactly what was installed.
 *
 * `IoPgtableOps.mapPages` and `IommuDomainOps.mapPages` throw it (a plain {@link KernelError} means
 * nothing was mapped). Use {@link mappedBeforeError} to read the count from any thrown value.
 *
 * @see include/linux/io-pgtable.h struct io_pgtable_ops map_pages (`mapped` out-parameter)
 */
export class MapPagesError extends KernelError {
  /** Bytes mapped by the failing call before it failed (the kernel's `*mapped`). */
  readonly mapped: number;

  constructor(errno: Errno, message: string, mapped: number) {
    super(errno, message);
    this.name = "MapPagesError";
    this.mapped = mapped;
  }
}

/**
 * The bytes a failed `mapPages` call mapped: `e.mapped` for a {@link MapPagesError}, else 0.
 * Model-only: the `size_t *mapped` out-parameter of `map_pages` read back from a thrown error.
 */
export function mappedBeforeError(e: unknown): number {
  return e instanceof MapPagesError ? e.mapped : 0;
}
