import { KernelError } from "@dmakit/core";
import type { Sg } from "./Sg.js";
import type { PhysAccess } from "./SgPool.js";
import { SG_MITER_FROM_SG, SG_MITER_LOCAL, SG_MITER_TO_SG } from "./sgConstants.js";
import { SgMappingIter, sgMiterNext, sgMiterSkip, sgMiterStart, sgMiterStop } from "./sgMiter.js";

function cpuOf(sgl: Sg | null, what: string): PhysAccess {
  const cpu = sgl?.pool.cpu;
  if (cpu === undefined)
    throw new KernelError(
      "EINVAL",
      `scatterlist: ${what}: the pool has no memory (pass mem or cpu to SgPool)`,
    );
  return cpu;
}

function checkBuf(buf: Uint8Array, buflen: number, skip: number, what: string): void {
  if (!Number.isSafeInteger(buflen) || buflen < 0 || buflen > buf.length)
    throw new KernelError(
      "EINVAL",
      `scatterlist: ${what}: buflen ${String(buflen)} exceeds the buffer (${buf.length} bytes)`,
    );
  if (!Number.isSafeInteger(skip) || skip < 0)
    throw new KernelError("EINVAL", `scatterlist: ${what}: skip ${String(skip)} is not >= 0`);
}

/**
 * `sg_copy_buffer(sgl, nents, buf, buflen, skip, to_buffer)`: copies between the list's bytes
 * (after skipping `skip`) and `buf[0, buflen)`, through the pool's CPU access; returns the bytes
 * copied (0 when `skip` is past the end). @see lib/scatterlist.c sg_copy_buffer
 */
export function sgCopyBuffer(
  sgl: Sg | null,
  nents: number,
  buf: Uint8Array,
  buflen: number,
  skip: number,
  toBuffer: boolean,
): number {
  const what = "sg_copy_buffer";
  checkBuf(buf, buflen, skip, what);
  const cpu = cpuOf(sgl, what);
  const miter = new SgMappingIter();
  sgMiterStart(miter, sgl, nents, SG_MITER_LOCAL | (toBuffer ? SG_MITER_FROM_SG : SG_MITER_TO_SG));
  if (!sgMiterSkip(miter, skip)) return 0;
  let offset = 0;
  while (offset < buflen && sgMiterNext(miter)) {
    const len = Math.min(miter.length, buflen - offset);
    const at = miter.phys;
    if (toBuffer) cpu.read(at, buf.subarray(offset, offset + len));
    else cpu.write(at, buf.subarray(offset, offset + len));
    offset += len;
  }
  sgMiterStop(miter);
  return offset;
}

/** `sg_copy_from_buffer(sgl, nents, buf, buflen)`: buffer → list. @see lib/scatterlist.c */
export function sgCopyFromBuffer(sgl: Sg | null, nents: number, buf: Uint8Array, buflen: number): number {
  return sgCopyBuffer(sgl, nents, buf, buflen, 0, false);
}

/** `sg_copy_to_buffer(sgl, nents, buf, buflen)`: list → buffer. @see lib/scatterlist.c */
export function sgCopyToBuffer(sgl: Sg | null, nents: number, buf: Uint8Array, buflen: number): number {
  return sgCopyBuffer(sgl, nents, buf, buflen, 0, true);
}

/** `sg_pcopy_from_buffer(sgl, nents, buf, buflen, skip)`. @see lib/scatterlist.c */
export function sgPcopyFromBuffer(
  sgl: Sg | null,
  nents: number,
  buf: Uint8Array,
  buflen: number,
  skip: number,
): number {
  return sgCopyBuffer(sgl, nents, buf, buflen, skip, false);
}

/** `sg_pcopy_to_buffer(sgl, nents, buf, buflen, skip)`. @see lib/scatterlist.c */
export function sgPcopyToBuffer(
  sgl: Sg | null,
  nents: number,
  buf: Uint8Array,
  buflen: number,
  skip: number,
): number {
  return sgCopyBuffer(sgl, nents, buf, buflen, skip, true);
}

const ZEROES = new Uint8Array(4096);

/**
 * `sg_zero_buffer(sgl, nents, buflen, skip)`: zeroes `buflen` bytes after `skip`; returns the bytes
 * zeroed (0 when `skip` is past the end). @see lib/scatterlist.c sg_zero_buffer
 */
export function sgZeroBuffer(sgl: Sg | null, nents: number, buflen: number, skip: number): number {
  const what = "sg_zero_buffer";
  if (!Number.isSafeInteger(buflen) || buflen < 0)
    throw new KernelError("EINVAL", `scatterlist: ${what}: buflen ${String(buflen)} is not >= 0`);
  if (!Number.isSafeInteger(skip) || skip < 0)
    throw new KernelError("EINVAL", `scatterlist: ${what}: skip ${String(skip)} is not >= 0`);
  const cpu = cpuOf(sgl, what);
  const miter = new SgMappingIter();
  sgMiterStart(miter, sgl, nents, SG_MITER_LOCAL | SG_MITER_TO_SG);
  if (!sgMiterSkip(miter, skip)) return 0;
  let offset = 0;
  while (offset < buflen && sgMiterNext(miter)) {
    const len = Math.min(miter.length, buflen - offset);
    cpu.write(miter.phys, ZEROES.subarray(0, len));
    offset += len;
  }
  sgMiterStop(miter);
  return offset;
}
