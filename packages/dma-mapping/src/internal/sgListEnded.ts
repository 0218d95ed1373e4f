import { KernelError } from "@dmakit/core";

/**
 * The `EFAULT` of `for_each_sg` when the list ends after `k` of `nr` entries (the kernel would
 * dereference NULL), for walks that use `SgSlots` instead of `forEachSg`: same text as scatterlist's.
 */
export function sgListEnded(k: number, nr: number): never {
  throw new KernelError("EFAULT", `scatterlist: for_each_sg: list ends after ${k} of ${nr} entries`);
}
