import { hex, KernelError } from "@dmakit/core";
import type { PhysMem } from "./PhysMem.js";
import { STORE_CHUNK_SIZE } from "./SparseStore.js";

/**
 * Copies `len` bytes of physical memory from `src` to `dst` as the memory bus would (no CPU cache),
 * with memmove semantics for overlapping ranges. RAM to RAM copies go chunk by chunk straight
 * between the backing stores (no intermediate buffer); ranges touching MMIO go through
 * {@link PhysMem.read}/{@link PhysMem.write}. EFAULT for a hole, as those report.
 *
 * The kernel has no such function (it would `memcpy` between two kernel mappings, or a DMA
 * engine would copy); the model uses it for page migration, bounce buffering and benchmarks.
 */
export function copyPhysRange(mem: PhysMem, dst: number, src: number, len: number): void {
  if (!Number.isSafeInteger(len) || len < 0)
    throw new KernelError("EINVAL", `mm: copy ${hex(src)} -> ${hex(dst)}: bad length ${len}`);
  if (len === 0 || dst === src) return;
  const sb = mem.bankAt(src);
  const db = mem.bankAt(dst);
  if (
    sb === undefined ||
    db === undefined ||
    src + len > sb.start + sb.size ||
    dst + len > db.start + db.size
  ) {
    const tmp = new Uint8Array(len);
    mem.read(src, tmp);
    mem.write(dst, tmp);
    return;
  }
  const ram = mem.ram;
  const s0 = src - mem.ramBase;
  const d0 = dst - mem.ramBase;
  // Backwards when the destination overlaps the source from above, so no byte is overwritten before it is read.
  const backwards = d0 > s0 && d0 < s0 + len;
  if (!backwards) {
    let done = 0;
    while (done < len) {
      const d = d0 + done;
      const n = Math.min(len - done, STORE_CHUNK_SIZE - (d % STORE_CHUNK_SIZE));
      ram.read(s0 + done, ram.view(d, n));
      done += n;
    }
    return;
  }
  let left = len;
  while (left > 0) {
    // Each step stays inside one source and one destination chunk: a single overlapping-safe set().
    const dIn = (d0 + left) % STORE_CHUNK_SIZE;
    const sIn = (s0 + left) % STORE_CHUNK_SIZE;
    const n = Math.min(left, dIn === 0 ? STORE_CHUNK_SIZE : dIn, sIn === 0 ? STORE_CHUNK_SIZE : sIn);
    left -= n;
    ram.read(s0 + left, ram.view(d0 + left, n));
  }
}
