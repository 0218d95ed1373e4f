import { hex, KernelError, PAGE_SIZE } from "@dmakit/core";
import {
  assignPage,
  chainPtr,
  chainTo,
  DMA_ADDR,
  DMA_FLAGS,
  DMA_LEN,
  handle,
  initTable,
  isChain,
  isLast,
  LENGTH,
  markEnd,
  nextSlot,
  OFFSET,
  pageOf,
  setPage,
  slotOf,
} from "./internal/slot.js";
import type { Sg } from "./Sg.js";
import { NO_PAGE, SG_END, SG_PAGE_LINK_MASK } from "./sgConstants.js";

const U32 = 0xffffffff;

function checkU32(v: number, what: string, name: string): void {
  if (!Number.isInteger(v) || v < 0 || v > U32)
    throw new KernelError("EINVAL", `scatterlist: ${what}: ${name} ${String(v)} is not an unsigned int`);
}

function checkPage(page: number, what: string): void {
  if (page !== NO_PAGE && !(Number.isSafeInteger(page) && page >= 0 && page < 2 ** 41))
    throw new KernelError("EINVAL", `scatterlist: ${what}: page ${String(page)} is not a pfn (or NO_PAGE)`);
}

/**
 * `sg_assign_page(sg, page)`: sets the page, keeping the CHAIN/END bits. `page` is a pfn or
 * {@link NO_PAGE}. @see include/linux/scatterlist.h sg_assign_page
 */
export function sgAssignPage(sg: Sg, page: number): void {
  const i = slotOf(sg, "sg_assign_page");
  checkPage(page, "sg_assign_page");
  assignPage(sg.pool, i, page);
}

/**
 * `sg_set_page(sg, page, len, offset)`: points the entry at `len` bytes from `offset` into `page`
 * (offset may exceed PAGE_SIZE, as in the kernel). Keeps the CHAIN/END bits. `page` may be
 * {@link NO_PAGE} for DMA-only entries. EINVAL when len/offset are not unsigned ints.
 * @see include/linux/scatterlist.h sg_set_page
 */
export function sgSetPage(sg: Sg, page: number, len: number, offset: number): void {
  const i = slotOf(sg, "sg_set_page");
  checkPage(page, "sg_set_page");
  checkU32(len, "sg_set_page", "len");
  checkU32(offset, "sg_set_page", "offset");
  setPage(sg.pool, i, page, len, offset);
}

/**
 * `sg_set_buf(sg, buf, buflen)`: `buf` is a kernel direct-map address, translated with the pool's
 * kernel VM (`virt_to_page(buf)`, `offset_in_page(buf)`); a pool without one treats it as physical.
 * @see include/linux/scatterlist.h sg_set_buf
 */
export function sgSetBuf(sg: Sg, buf: number, buflen: number): void {
  const phys = bufToPhys(sg, buf, "sg_set_buf");
  sgSetPage(sg, Math.floor(phys / PAGE_SIZE), buflen, phys % PAGE_SIZE);
}

function bufToPhys(sg: Sg, buf: number, fn: string): number {
  if (!Number.isSafeInteger(buf) || buf < 0)
    throw new KernelError("EINVAL", `scatterlist: ${fn}: buf ${String(buf)} is not an address`);
  return sg.pool.vm === undefined ? buf : sg.pool.vm.virtToPhys(buf);
}

/**
 * `sg_page(sg)`: the entry's page (pfn), or {@link NO_PAGE}. EINVAL on a chain entry (the kernel
 * BUGs under CONFIG_DEBUG_SG and returns the chain pointer otherwise).
 * @see include/linux/scatterlist.h sg_page
 */
export function sgPage(sg: Sg): number {
  const i = slotOf(sg, "sg_page");
  if (isChain(sg.pool, i))
    throw new KernelError(
      "EINVAL",
      `scatterlist: sg_page: entry ${hex(i)} is a chain entry (BUG_ON under CONFIG_DEBUG_SG)`,
    );
  return pageOf(sg.pool, i);
}

/** `sg->offset`. @see include/linux/scatterlist.h struct scatterlist */
export function sgOffset(sg: Sg): number {
  return sg.pool.u32[slotOf(sg, "sg->offset") * 8 + OFFSET] as number;
}

/** `sg->length`. @see include/linux/scatterlist.h struct scatterlist */
export function sgLength(sg: Sg): number {
  return sg.pool.u32[slotOf(sg, "sg->length") * 8 + LENGTH] as number;
}

/**
 * Writes `sg->length` (callers such as dma-iommu restore lengths this way).
 * @see include/linux/scatterlist.h struct scatterlist
 */
export function sgSetLength(sg: Sg, len: number): void {
  const i = slotOf(sg, "sg->length");
  checkU32(len, "sg->length", "len");
  sg.pool.u32[i * 8 + LENGTH] = len;
}

/** Writes `sg->offset`. @see include/linux/scatterlist.h struct scatterlist */
export function sgSetOffset(sg: Sg, offset: number): void {
  const i = slotOf(sg, "sg->offset");
  checkU32(offset, "sg->offset", "offset");
  sg.pool.u32[i * 8 + OFFSET] = offset;
}

/** `sg->page_link & SG_PAGE_LINK_MASK` (`__sg_flags`). @see include/linux/scatterlist.h __sg_flags */
export function sgFlags(sg: Sg): number {
  const i = slotOf(sg, "__sg_flags");
  return ((sg.pool.f64[i * 4] as number) % 4) & SG_PAGE_LINK_MASK;
}

/**
 * `sg_phys(sg)` = `page_to_phys(sg_page(sg)) + sg->offset`. EFAULT for an entry without a page
 * (the kernel computes garbage from a NULL page). @see include/linux/scatterlist.h sg_phys
 */
export function sgPhys(sg: Sg): number {
  const page = sgPage(sg);
  if (page === NO_PAGE)
    throw new KernelError(
      "EFAULT",
      `scatterlist: sg_phys: entry ${hex(sg.index)} has no page (DMA-only entry)`,
    );
  return page * PAGE_SIZE + (sg.pool.u32[sg.index * 8 + OFFSET] as number);
}

/** `sg_is_chain(sg)`. @see include/linux/scatterlist.h */
export function sgIsChain(sg: Sg): boolean {
  return isChain(sg.pool, slotOf(sg, "sg_is_chain"));
}

/** `sg_is_last(sg)`. @see include/linux/scatterlist.h */
export function sgIsLast(sg: Sg): boolean {
  return isLast(sg.pool, slotOf(sg, "sg_is_last"));
}

/**
 * `sg_chain_ptr(sg)`: the array a chain entry links to. EINVAL when `sg` is not a chain entry.
 * @see include/linux/scatterlist.h sg_chain_ptr
 */
export function sgChainPtr(sg: Sg): Sg {
  const i = slotOf(sg, "sg_chain_ptr");
  if (!isChain(sg.pool, i))
    throw new KernelError("EINVAL", `scatterlist: sg_chain_ptr: entry ${hex(i)} is not a chain entry`);
  return handle(sg.pool, chainPtr(sg.pool, i)) as Sg;
}

/**
 * `sg_next(sg)`: `null` when `sg` is marked END, else `sg + 1`, following a chain entry there.
 * EFAULT when `sg + 1` would leave its array (the kernel reads past the allocation) or `sg` is freed.
 * @see include/linux/scatterlist.h sg_next
 */
export function sgNext(sg: Sg): Sg | null {
  return handle(sg.pool, nextSlot(sg.pool, slotOf(sg, "sg_next")));
}

/**
 * `sg_chain(prv, prv_nents, sgl)`: turns `prv[prv_nents - 1]` into a chain entry pointing at `sgl`
 * (offset and length cleared, END cleared). @see include/linux/scatterlist.h sg_chain, __sg_chain
 */
export function sgChain(prv: Sg, prvNents: number, sgl: Sg): void {
  slotOf(prv, "sg_chain");
  const t = slotOf(sgl, "sg_chain");
  if (prv.pool !== sgl.pool)
    throw new KernelError("EINVAL", "scatterlist: sg_chain: the two lists belong to different pools");
  checkU32(prvNents, "sg_chain", "prv_nents");
  if (prvNents < 1)
    throw new KernelError("EINVAL", "scatterlist: sg_chain: prv_nents 0 (would write prv[-1])");
  const at = prv.add(prvNents - 1).index;
  chainTo(prv.pool, at, t);
}

/** `sg_mark_end(sg)`: sets END, clears CHAIN. @see include/linux/scatterlist.h sg_mark_end */
export function sgMarkEnd(sg: Sg): void {
  markEnd(sg.pool, slotOf(sg, "sg_mark_end"));
}

/** `sg_unmark_end(sg)`: clears END. @see include/linux/scatterlist.h sg_unmark_end */
export function sgUnmarkEnd(sg: Sg): void {
  const i = slotOf(sg, "sg_unmark_end");
  const f = sg.pool.f64;
  const w = f[i * 4] as number;
  if (((w % 4) & SG_END) !== 0) f[i * 4] = w - SG_END;
}

/**
 * `sg_init_table(sgl, nents)`: zeroes `nents` entries and marks the last END. EFAULT when the
 * entries leave the array `sgl` points into. @see lib/scatterlist.c sg_init_table
 */
export function sgInitTable(sgl: Sg, nents: number): void {
  const i = slotOf(sgl, "sg_init_table");
  checkU32(nents, "sg_init_table", "nents");
  if (nents === 0)
    throw new KernelError("EINVAL", "scatterlist: sg_init_table: nents 0 (would mark sgl[-1])");
  sgl.add(nents - 1);
  initTable(sgl.pool, i, nents);
}

/** `sg_init_marker(sgl, nents)`: marks `sgl[nents - 1]` END. @see include/linux/scatterlist.h */
export function sgInitMarker(sgl: Sg, nents: number): void {
  checkU32(nents, "sg_init_marker", "nents");
  if (nents === 0) throw new KernelError("EINVAL", "scatterlist: sg_init_marker: nents 0");
  sgMarkEnd(sgl.add(nents - 1));
}

/**
 * `sg_init_one(sg, buf, buflen)`: a one-entry list over the kernel address `buf` (translated as
 * {@link sgSetBuf} does). @see lib/scatterlist.c sg_init_one
 */
export function sgInitOne(sg: Sg, buf: number, buflen: number): void {
  slotOf(sg, "sg_init_one");
  checkU32(buflen, "sg_init_one", "buflen");
  const phys = bufToPhys(sg, buf, "sg_init_one");
  sgInitTable(sg, 1);
  setPage(sg.pool, sg.index, Math.floor(phys / PAGE_SIZE), buflen, phys % PAGE_SIZE);
}

/** `sg_nents(sg)`: entries until END, following chains. @see lib/scatterlist.c sg_nents */
export function sgNents(sg: Sg | null): number {
  if (sg === null) return 0;
  const p = sg.pool;
  let i = slotOf(sg, "sg_nents");
  let n = 0;
  while (i >= 0) {
    n++;
    i = nextSlot(p, i);
  }
  return n;
}

/**
 * `sg_nents_for_len(sg, len)`: entries needed to cover `len` bytes; 0 for `len` 0; `-EINVAL` (-22)
 * when the list ends first. Keeps the kernel's int contract (no throw).
 * @see lib/scatterlist.c sg_nents_for_len
 */
export function sgNentsForLen(sg: Sg | null, len: number): number {
  if (!Number.isSafeInteger(len) || len < 0)
    throw new KernelError("EINVAL", `scatterlist: sg_nents_for_len: len ${String(len)} is not a u64`);
  if (len === 0) return 0;
  if (sg === null) return -22;
  const p = sg.pool;
  let i = slotOf(sg, "sg_nents_for_len");
  let n = 0;
  let total = 0;
  while (i >= 0) {
    n++;
    total += p.u32[i * 8 + LENGTH] as number;
    if (total >= len) return n;
    i = nextSlot(p, i);
  }
  return -22;
}

/**
 * `sg_last(sgl, nents)`: walks `nents` entries and returns the last; the kernel BUGs unless it is
 * marked END, the model throws EINVAL. @see lib/scatterlist.c sg_last
 */
export function sgLast(sgl: Sg, nents: number): Sg {
  checkU32(nents, "sg_last", "nents");
  const p = sgl.pool;
  let i = slotOf(sgl, "sg_last");
  let ret = -1;
  for (let k = 0; k < nents; k++) {
    if (i < 0)
      throw new KernelError(
        "EFAULT",
        `scatterlist: sg_last: list ends after ${k} of ${nents} entries (NULL dereference)`,
      );
    ret = i;
    if (k + 1 < nents) i = nextSlot(p, i);
  }
  if (ret < 0 || !isLast(p, ret))
    throw new KernelError(
      "EINVAL",
      `scatterlist: sg_last: entry ${nents} of the list is not marked END (BUG_ON)`,
    );
  return handle(p, ret) as Sg;
}

/** `sg_dma_address(sg)`. Valid for the first `nents` entries after mapping. @see include/linux/scatterlist.h */
export function sgDmaAddress(sg: Sg): number {
  return sg.pool.f64[slotOf(sg, "sg_dma_address") * 4 + DMA_ADDR] as number;
}

/** `sg_dma_len(sg)` (`dma_length`, CONFIG_NEED_SG_DMA_LENGTH). @see include/linux/scatterlist.h */
export function sgDmaLen(sg: Sg): number {
  return sg.pool.u32[slotOf(sg, "sg_dma_len") * 8 + DMA_LEN] as number;
}

/**
 * `sg_dma_address(sg) = addr`, for the DMA mapping layer. `addr` is an integer in 0..2^53-1 or
 * `DMA_MAPPING_ERROR` (2^64).
 * @see include/linux/scatterlist.h sg_dma_address
 */
export function sgDmaSetAddress(sg: Sg, addr: number): void {
  const i = slotOf(sg, "sg_dma_address");
  if (!(Number.isSafeInteger(addr) && addr >= 0) && addr !== 2 ** 64)
    throw new KernelError("EINVAL", `scatterlist: sg_dma_address: ${String(addr)} is not a dma_addr_t`);
  sg.pool.f64[i * 4 + DMA_ADDR] = addr;
}

/** `sg_dma_len(sg) = len`, for the DMA mapping layer. @see include/linux/scatterlist.h sg_dma_len */
export function sgDmaSetLen(sg: Sg, len: number): void {
  const i = slotOf(sg, "sg_dma_len");
  checkU32(len, "sg_dma_len", "len");
  sg.pool.u32[i * 8 + DMA_LEN] = len;
}

/** `sg->dma_flags` (CONFIG_NEED_SG_DMA_FLAGS). @see include/linux/scatterlist.h struct scatterlist */
export function sgDmaFlags(sg: Sg): number {
  return sg.pool.u32[slotOf(sg, "dma_flags") * 8 + DMA_FLAGS] as number;
}

function setDmaFlag(sg: Sg, bit: number, on: boolean, what: string): void {
  const i = slotOf(sg, what);
  const u = sg.pool.u32;
  const cur = u[i * 8 + DMA_FLAGS] as number;
  u[i * 8 + DMA_FLAGS] = on ? cur | bit : cur & ~bit;
}

/** `sg_dma_is_bus_address(sg)`. @see include/linux/scatterlist.h */
export function sgDmaIsBusAddress(sg: Sg): boolean {
  return (sgDmaFlags(sg) & 1) !== 0;
}

/** `sg_dma_mark_bus_address(sg)`: set by dma_map_sg for P2P bus addresses. @see include/linux/scatterlist.h */
export function sgDmaMarkBusAddress(sg: Sg): void {
  setDmaFlag(sg, 1, true, "sg_dma_mark_bus_address");
}

/** `sg_dma_unmark_bus_address(sg)`. @see include/linux/scatterlist.h */
export function sgDmaUnmarkBusAddress(sg: Sg): void {
  setDmaFlag(sg, 1, false, "sg_dma_unmark_bus_address");
}

/** `sg_dma_is_swiotlb(sg)`. @see include/linux/scatterlist.h */
export function sgDmaIsSwiotlb(sg: Sg): boolean {
  return (sgDmaFlags(sg) & 2) !== 0;
}

/** `sg_dma_mark_swiotlb(sg)`: dma-iommu marks the first entry of a bounced list. @see include/linux/scatterlist.h */
export function sgDmaMarkSwiotlb(sg: Sg): void {
  setDmaFlag(sg, 2, true, "sg_dma_mark_swiotlb");
}

/**
 * Clears `SG_DMA_SWIOTLB`. Model-only: the kernel has no unmark helper (unmap leaves the bit and the
 * next map overwrites `dma_flags`).
 */
export function sgDmaUnmarkSwiotlb(sg: Sg): void {
  setDmaFlag(sg, 2, false, "sg_dma_unmark_swiotlb");
}

/**
 * `__invalidate_sg(sg, nents)` from dma-iommu: after a failed `iommu_dma_map_sg`, restores each
 * entry's offset (`offset += dma_address` unless it is DMA_MAPPING_ERROR) and length (from
 * `dma_length` when non-zero, where the mapping stashed them), then sets `dma_address` to
 * DMA_MAPPING_ERROR and `dma_length` to 0. Offsets wrap at 2^32 like the C `unsigned int`.
 * @see drivers/iommu/dma-iommu.c __invalidate_sg
 */
export function invalidateSg(sg: Sg, nents: number): void {
  checkU32(nents, "__invalidate_sg", "nents");
  const p = sg.pool;
  let i = slotOf(sg, "__invalidate_sg");
  const f = p.f64;
  const u = p.u32;
  for (let k = 0; k < nents; k++) {
    if (i < 0)
      throw new KernelError(
        "EFAULT",
        `scatterlist: __invalidate_sg: list ends after ${k} of ${nents} entries`,
      );
    const a = f[i * 4 + DMA_ADDR] as number;
    if (a !== 2 ** 64) u[i * 8 + OFFSET] = ((u[i * 8 + OFFSET] as number) + (a % 2 ** 32)) % 2 ** 32;
    const dl = u[i * 8 + DMA_LEN] as number;
    if (dl !== 0) u[i * 8 + LENGTH] = dl;
    f[i * 4 + DMA_ADDR] = 2 ** 64;
    u[i * 8 + DMA_LEN] = 0;
    if (k + 1 < nents) i = nextSlot(p, i);
  }
}
