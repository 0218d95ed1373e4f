import { KernelError } from "@dmakit/core";
import type { SgPool } from "./SgPool.js";

/**
 * A `struct scatterlist *`: slot `index` of a machine's {@link SgPool}. Handles are small values;
 * two handles are the same pointer when {@link equals} says so (`===` compares objects). Pointer
 * arithmetic (`sg + k`, `&sgl[k]`) is {@link add}; it stays inside the array the slot belongs to.
 * @see include/linux/scatterlist.h struct scatterlist (the model's pointer is a pool slot handle)
 */
export class Sg {
  constructor(
    readonly pool: SgPool,
    readonly index: number,
  ) {}

  /** `sg + k` / `&sg[k]`: EFAULT when the result leaves the array `sg` points into. */
  add(k: number): Sg {
    const end = this.pool.blockEnd(this.index);
    const j = this.index + k;
    const start = end < 0 ? 0 : end - this.pool.blockSlots(this.index);
    if (end < 0 || !Number.isInteger(k) || j < start || j >= end)
      throw new KernelError(
        "EFAULT",
        `scatterlist: sg ${this.index} + ${String(k)} is outside its scatterlist array`,
      );
    return new Sg(this.pool, j);
  }

  /** Pointer equality. */
  equals(other: Sg | null): boolean {
    return other !== null && other.pool === this.pool && other.index === this.index;
  }
}
