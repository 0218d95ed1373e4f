import { ERRNO, type Errno } from "./errno.js";

/**
 * A failure with the kernel's errno: what a kernel function would return as `-EINVAL`,
 * `ERR_PTR(-ENOMEM)` and so on. The message names the object, the limit and the value,
 * e.g. `mm-pages: alloc_pages: order 11 exceeds MAX_PAGE_ORDER 10`.
 *
 * Where the kernel's contract is a count or a sentinel instead (`dma_map_sg` returns 0,
 * `iommu_unmap` returns bytes), the model keeps that contract and does not throw.
 * @see include/linux/err.h ERR_PTR (the model throws instead of returning a negative errno)
 */
export class KernelError extends Error {
  /** The errno name, e.g. `"EINVAL"`. */
  readonly errno: Errno;
  /** The positive errno number, e.g. 22 for EINVAL. */
  readonly code: number;

  constructor(errno: Errno, message: string) {
    super(`${message} (${errno})`);
    this.name = "KernelError";
    this.errno = errno;
    this.code = ERRNO[errno];
  }

  /** The kernel's return value for this error: the negative errno, e.g. -22. */
  get ret(): number {
    return -this.code;
  }
}

/**
 * True when `e` is a {@link KernelError}, optionally with the given errno.
 * Model-only: the throw-based counterpart of `IS_ERR()` / `ret == -EINVAL`. @see include/linux/err.h IS_ERR
 */
export function isKernelError(e: unknown, errno?: Errno): e is KernelError {
  return e instanceof KernelError && (errno === undefined || e.errno === errno);
}

/**
 * Runs `fn` and returns the errno of the {@link KernelError} it throws, or null when it returns.
 * Any other exception propagates. Model-only: the C caller's `if (ret < 0) ... -ret` check, for
 * tests and for code that maps an error to a decision.
 */
export function errnoOf(fn: () => unknown): Errno | null {
  try {
    fn();
  } catch (e) {
    if (isKernelError(e)) return e.errno;
    throw e;
  }
  return null;
}
