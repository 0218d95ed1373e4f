/**
 * The kernel's errno values, by name.
 * @see include/uapi/asm-generic/errno-base.h, include/uapi/asm-generic/errno.h, include/linux/errno.h
 */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOTTY: 25,
  ENOSPC: 28,
  ERANGE: 34,
  EDEADLK: 35,
  ENOSYS: 38,
  ETIME: 62,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
  EREMOTEIO: 121,
  ERESTARTSYS: 512,
} as const;

/** An errno name, e.g. `"EINVAL"`. Model-only: the kernel passes errno as a negative int. */
export type Errno = keyof typeof ERRNO;

/**
 * The errno name for a (positive or negative) errno number, or undefined when it is not in the table.
 * @see lib/errname.c errname (the model returns the name without the sign for either sign, undefined for NULL)
 */
export function errnoName(value: number): Errno | undefined {
  const abs = Math.abs(value);
  for (const [name, v] of Object.entries(ERRNO)) if (v === abs) return name as Errno;
  return undefined;
}
