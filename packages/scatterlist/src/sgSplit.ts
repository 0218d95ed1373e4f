import { KernelError } from "@dmakit/core";
import { copySlot, DMA_ADDR, DMA_LEN, LENGTH, markEnd, nextSlot, OFFSET, slotOf } from "./internal/slot.js";
import { Sg } from "./Sg.js";
import type { SgPool } from "./SgPool.js";
import { sgNents } from "./sgEntry.js";

interface Splitter {
  inSg0: number;
  nents: number;
  skipSg0: number;
  lengthLastSg: number;
  outSg: number;
}

/** `sg_calculate_split`: returns 0 or -EINVAL, exactly as lib/sg_split.c computes it. */
function calculateSplit(
  p: SgPool,
  inSg: number,
  nents: number,
  nbSplits: number,
  skip: number,
  sizes: readonly number[],
  sp: Splitter[],
  mapped: boolean,
): number {
  let si = 0;
  let size = sizes[0] as number;
  let c = 0;
  for (let k = 0; k < nbSplits; k++) {
    (sp[k] as Splitter).inSg0 = -1;
    (sp[k] as Splitter).nents = 0;
  }
  const u = p.u32;
  let sg = inSg;
  for (let i = 0; i < nents; i++) {
    if (sg < 0)
      throw new KernelError("EFAULT", `scatterlist: sg_split: list ends after ${i} of ${nents} entries`);
    const sglen = mapped ? (u[sg * 8 + DMA_LEN] as number) : (u[sg * 8 + LENGTH] as number);
    if (skip > sglen) {
      skip -= sglen;
    } else {
      let len = Math.min(size, sglen - skip);
      let curr = sp[c] as Splitter;
      if (curr.inSg0 < 0) {
        curr.inSg0 = sg;
        curr.skipSg0 = skip;
      }
      size -= len;
      curr.nents++;
      curr.lengthLastSg = len;
      while (!size && skip + len < sglen && --nbSplits > 0) {
        curr = sp[++c] as Splitter;
        size = sizes[++si] as number;
        skip += len;
        len = Math.min(size, sglen - skip);
        curr.inSg0 = sg;
        curr.skipSg0 = skip;
        curr.nents = 1;
        curr.lengthLastSg = len;
        size -= len;
      }
      skip = 0;
      if (!size && --nbSplits > 0) {
        c++;
        size = sizes[++si] as number;
      }
      if (!nbSplits) break;
    }
    if (i + 1 < nents) sg = nextSlot(p, sg);
  }
  return size || (sp[0] as Splitter).inSg0 < 0 ? -22 : 0;
}

/**
 * `sg_split(in, in_mapped_nents, skip, nb_splits, split_sizes, out, out_mapped_nents, gfp)`: splits
 * the list into `nb_splits` new kmalloc'ed lists, `out[k]` covering bytes
 * `[skip + Σ_{j<k} sizes[j], … + sizes[k])`. Entries are copied whole (page_link, dma_flags included),
 * the first of each output gets `offset += skip0, length -= skip0`, the last its trimmed length and
 * END; `dma_address`/`dma_len` are zeroed, then, if `in_mapped_nents` > 0, the same split is computed
 * over `sg_dma_len` and the DMA fields copied. `outMappedNents[k]` gets each output's entry count
 * (mapped count when mapped). Free outputs with `pool.kfree(out[k])`.
 *
 * Kernel quirk kept: when the last split ends strictly inside an entry that is not the list's last,
 * `--nb_splits` in sg_calculate_split goes below zero, the walk does not stop, and that split takes
 * the rest of the entry and every later entry whole, except the list's last, which gets length 0.
 *
 * Errors: EINVAL when the list is shorter than `skip + Σ sizes` (kernel -EINVAL), ENOMEM when an
 * output cannot be allocated; nothing is allocated or written then. Model additions: EINVAL for
 * `nb_splits` < 1, negative sizes, or a split with no entry (a zero size at the end: the kernel
 * would write `out_sg[-1]` of a ZERO_SIZE_PTR).
 * @see lib/sg_split.c sg_split
 */
export function sgSplit(
  inSg: Sg,
  inMappedNents: number,
  skip: number,
  nbSplits: number,
  splitSizes: readonly number[],
  out: (Sg | null)[],
  outMappedNents: number[] | null,
  _gfp = 0,
): void {
  const p = inSg.pool;
  const what = "sg_split";
  const start = slotOf(inSg, what);
  if (!Number.isInteger(nbSplits) || nbSplits < 1 || splitSizes.length < nbSplits)
    throw new KernelError(
      "EINVAL",
      `scatterlist: ${what}: nb_splits ${String(nbSplits)} with ${splitSizes.length} sizes`,
    );
  if (!Number.isSafeInteger(skip) || skip < 0)
    throw new KernelError("EINVAL", `scatterlist: ${what}: skip ${String(skip)} is not >= 0`);
  for (let k = 0; k < nbSplits; k++) {
    const s = splitSizes[k] as number;
    if (!Number.isSafeInteger(s) || s < 0)
      throw new KernelError(
        "EINVAL",
        `scatterlist: ${what}: split_sizes[${k}] = ${String(s)} is not a size_t`,
      );
  }
  const sp: Splitter[] = [];
  for (let k = 0; k < nbSplits; k++) sp.push({ inSg0: -1, nents: 0, skipSg0: 0, lengthLastSg: 0, outSg: -1 });
  if (calculateSplit(p, start, sgNents(inSg), nbSplits, skip, splitSizes, sp, false) < 0)
    throw new KernelError(
      "EINVAL",
      `scatterlist: ${what}: the list is shorter than skip ${skip} + ${splitSizes.slice(0, nbSplits).join("+")} bytes`,
    );
  for (let k = 0; k < nbSplits; k++)
    if ((sp[k] as Splitter).nents === 0)
      throw new KernelError(
        "EINVAL",
        `scatterlist: ${what}: split ${k} gets no entry (size 0 at the end of the list)`,
      );
  // The mapped split is computed up front (the kernel does it after sg_split_phys) so that an
  // error leaves nothing allocated; it only reads the input.
  let mapped: Splitter[] | null = null;
  if (inMappedNents) {
    mapped = sp.map((s) => ({ ...s }));
    if (calculateSplit(p, start, inMappedNents, nbSplits, skip, splitSizes, mapped, true) < 0)
      throw new KernelError(
        "EINVAL",
        `scatterlist: ${what}: the mapped list (${inMappedNents} entries) is shorter than skip ${skip} + ${splitSizes.slice(0, nbSplits).join("+")} bytes`,
      );
    for (let k = 0; k < nbSplits; k++)
      if ((mapped[k] as Splitter).nents > (sp[k] as Splitter).nents)
        throw new KernelError(
          "EINVAL",
          `scatterlist: ${what}: mapped split ${k} needs ${(mapped[k] as Splitter).nents} entries but the CPU split allocated ${(sp[k] as Splitter).nents} (the kernel would overrun out[${k}])`,
        );
  }
  for (let k = 0; k < nbSplits; k++) {
    const s = sp[k] as Splitter;
    s.outSg = p.allocBlock(s.nents, "sg_split");
    if (s.outSg < 0) {
      for (let j = 0; j < k; j++) p.freeBlock((sp[j] as Splitter).outSg, what);
      throw new KernelError(
        "ENOMEM",
        `scatterlist: ${what}: cannot allocate ${s.nents} entries for split ${k}`,
      );
    }
  }
  // sg_split_phys
  const u = p.u32;
  const f = p.f64;
  for (const s of sp) {
    let inI = s.inSg0;
    let o = s.outSg;
    for (let j = 0; j < s.nents; j++, o++) {
      copySlot(p, inI, o);
      if (!j) {
        u[o * 8 + OFFSET] = ((u[o * 8 + OFFSET] as number) + s.skipSg0) >>> 0;
        u[o * 8 + LENGTH] = ((u[o * 8 + LENGTH] as number) - s.skipSg0) >>> 0;
      }
      f[o * 4 + DMA_ADDR] = 0;
      u[o * 8 + DMA_LEN] = 0;
      if (j + 1 < s.nents) inI = nextSlot(p, inI);
    }
    u[(o - 1) * 8 + LENGTH] = s.lengthLastSg;
    markEnd(p, o - 1);
  }
  // sg_split_mapped
  if (mapped !== null) {
    for (let k = 0; k < nbSplits; k++) {
      const s = mapped[k] as Splitter;
      let inI = s.inSg0;
      let o = (sp[k] as Splitter).outSg;
      for (let j = 0; j < s.nents; j++, o++) {
        f[o * 4 + DMA_ADDR] = f[inI * 4 + DMA_ADDR] as number;
        u[o * 8 + DMA_LEN] = u[inI * 8 + DMA_LEN] as number;
        if (!j) {
          f[o * 4 + DMA_ADDR] = (f[o * 4 + DMA_ADDR] as number) + s.skipSg0;
          u[o * 8 + DMA_LEN] = ((u[o * 8 + DMA_LEN] as number) - s.skipSg0) >>> 0;
        }
        if (j + 1 < s.nents) inI = nextSlot(p, inI);
      }
      u[(o - 1) * 8 + DMA_LEN] = s.lengthLastSg;
    }
  }
  for (let k = 0; k < nbSplits; k++) {
    out[k] = new Sg(p, (sp[k] as Splitter).outSg);
    if (outMappedNents) outMappedNents[k] = (mapped ?? sp)[k]?.nents as number;
  }
}
