import { hex, KernelError, PAGE_SIZE } from "@dmakit/core";
import type { MmStruct, VmAreaStruct } from "./MmStruct.js";
import { VM_SHARED, VM_WRITE } from "./MmStruct.js";
import { PG_shmem } from "./pageFlags.js";
import type { UserMemory } from "./UserMemory.js";

/** `MFD_CLOEXEC`. @see include/uapi/linux/memfd.h */
export const MFD_CLOEXEC = 0x1;
/** `MFD_ALLOW_SEALING`: without it a memfd starts sealed with F_SEAL_SEAL. @see include/uapi/linux/memfd.h */
export const MFD_ALLOW_SEALING = 0x2;
/** `memfd_create` flags. @see mm/memfd.c memfd_create (its `unsigned int flags`) */
export type MemfdFlags = number;

/** `F_SEAL_SEAL`: no more seals may be added. @see include/uapi/linux/fcntl.h */
export const F_SEAL_SEAL = 0x0001;
/** `F_SEAL_SHRINK`: the size may not shrink (udmabuf requires it). @see include/uapi/linux/fcntl.h */
export const F_SEAL_SHRINK = 0x0002;
/** `F_SEAL_GROW`: the size may not grow. @see include/uapi/linux/fcntl.h */
export const F_SEAL_GROW = 0x0004;
/**
 * `F_SEAL_WRITE`: no writes, no writable shared mappings (udmabuf refuses it).
 * @see include/uapi/linux/fcntl.h
 */
export const F_SEAL_WRITE = 0x0008;
/**
 * `F_SEAL_FUTURE_WRITE`: no new writable mappings or writes; existing mappings stay.
 * @see include/uapi/linux/fcntl.h
 */
export const F_SEAL_FUTURE_WRITE = 0x0010;
const ALL_SEALS = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE;

/**
 * A memfd: an anonymous shmem file (`memfd_create`) that several address spaces can map
 * (`MAP_SHARED`), with file seals (`F_ADD_SEALS`/`F_GET_SEALS`) for udmabuf. Its page cache is a
 * `Float64Array` indexed by page offset holding pfn + 1 (0 = hole); pages are allocated on first
 * touch (`shmem_get_folio`), `GFP_HIGHUSER_MOVABLE`, zeroed, `PG_shmem | PG_lru` (movable, so CMA
 * and FOLL_LONGTERM can migrate them). The page cache holds one reference per page; each PTE one more.
 *
 * Lifetime: the creator's file reference ({@link close}) plus one per mapping ({@link fget}/
 * {@link fput} for other holders, e.g. udmabuf); at zero the pages are released (pinned pages
 * survive until unpinned).
 *
 * Created by {@link UserMemory.memfdCreate}. Small folios only.
 * @see mm/memfd.c, mm/shmem.c
 */
export class Memfd {
  readonly um: UserMemory;
  readonly id: number;
  readonly name: string;
  private sizeBytes = 0;
  private seals: number;
  private cache = new Float64Array(0);
  private readonly maps: { mm: MmStruct; vma: VmAreaStruct }[] = [];
  private refs = 1;

  /** @internal use {@link UserMemory.memfdCreate}. */
  constructor(um: UserMemory, id: number, name: string, flags: MemfdFlags) {
    this.um = um;
    this.id = id;
    this.name = name;
    this.seals = (flags & MFD_ALLOW_SEALING) !== 0 ? 0 : F_SEAL_SEAL;
  }

  /** `i_size`. */
  get size(): number {
    return this.sizeBytes;
  }

  /** Pages present in the page cache. */
  get nrPages(): number {
    let n = 0;
    for (let i = 0; i < this.cache.length; i++) if (this.cache[i] !== 0) n++;
    return n;
  }

  /**
   * `ftruncate(fd, size)`: grows (holes read as zeros) or shrinks (pages beyond are unmapped and
   * released). EPERM when F_SEAL_SHRINK / F_SEAL_GROW forbid it; EINVAL for a negative size.
   * @see mm/shmem.c shmem_setattr
   */
  ftruncate(size: number): void {
    this.checkOpen();
    if (!(size >= 0) || !Number.isSafeInteger(size))
      throw new KernelError("EINVAL", `memfd: ${this.name}: ftruncate to ${size}`);
    if (size < this.sizeBytes && (this.seals & F_SEAL_SHRINK) !== 0)
      throw new KernelError(
        "EPERM",
        `memfd: ${this.name}: F_SEAL_SHRINK forbids shrinking ${hex(this.sizeBytes)} to ${hex(size)}`,
      );
    if (size > this.sizeBytes && (this.seals & F_SEAL_GROW) !== 0)
      throw new KernelError(
        "EPERM",
        `memfd: ${this.name}: F_SEAL_GROW forbids growing ${hex(this.sizeBytes)} to ${hex(size)}`,
      );
    const pages = Math.ceil(size / PAGE_SIZE);
    if (pages < this.cache.length) {
      for (const { mm, vma } of this.maps) mm.zapFileFrom(vma, pages);
      for (let p = pages; p < this.cache.length; p++) this.dropPage(p);
      this.cache = this.cache.slice(0, pages);
    } else if (pages > this.cache.length) {
      const grown = new Float64Array(pages);
      grown.set(this.cache);
      this.cache = grown;
    }
    this.sizeBytes = size;
  }

  /**
   * `fcntl(F_ADD_SEALS)`. EPERM once F_SEAL_SEAL is set (memfds made without MFD_ALLOW_SEALING
   * start with it); EBUSY for F_SEAL_WRITE while a writable shared mapping exists; EINVAL for
   * unknown bits.
   * @see mm/memfd.c memfd_add_seals
   */
  addSeals(seals: number): void {
    this.checkOpen();
    if ((seals & ~ALL_SEALS) !== 0)
      throw new KernelError("EINVAL", `memfd: ${this.name}: unknown seals ${hex(seals)}`);
    if ((this.seals & F_SEAL_SEAL) !== 0)
      throw new KernelError("EPERM", `memfd: ${this.name}: sealed with F_SEAL_SEAL`);
    if ((seals & F_SEAL_WRITE) !== 0 && (this.seals & F_SEAL_WRITE) === 0 && this.writableMaps() > 0)
      throw new KernelError(
        "EBUSY",
        `memfd: ${this.name}: F_SEAL_WRITE with ${this.writableMaps()} writable shared mapping(s)`,
      );
    this.seals |= seals;
  }

  /** `fcntl(F_GET_SEALS)`. */
  getSeals(): number {
    return this.seals;
  }

  /** `get_file()`: another holder of the file (udmabuf keeps one). */
  fget(): void {
    this.checkOpen();
    this.refs++;
  }

  /** `fput()`: drops a holder; the last one releases the pages. */
  fput(): void {
    if (this.refs <= 0) throw new KernelError("EBADF", `memfd: ${this.name}: fput of a released file`);
    this.refs--;
    if (this.refs === 0) this.release();
  }

  /** `close(fd)` of the creator's descriptor (= {@link fput}). */
  close(): void {
    this.fput();
  }

  /**
   * `shmem_read_folio` / `shmem_read_mapping_page`: the page at `pgoff`, allocated (zeroed) if it
   * is a hole. Takes no extra reference (the caller uses `getPage` if it keeps it). EINVAL beyond
   * `i_size`; ENOMEM when out of memory.
   * @see mm/shmem.c shmem_read_mapping_page_gfp
   */
  readMappingPage(pgoff: number): number {
    return this.getFolio(pgoff, `memfd: ${this.name}: read_mapping_page`, "EINVAL");
  }

  /** `find_get_page` without the reference: the pfn at `pgoff`, or null for a hole. */
  findPage(pgoff: number): number | null {
    const v = this.cache[pgoff];
    return v === undefined || v === 0 ? null : v - 1;
  }

  /** `pwrite(fd, src, offset)` through the page cache and CPU cache. EPERM under F_SEAL_WRITE / F_SEAL_FUTURE_WRITE. Grows the file. */
  pwrite(offset: number, src: Uint8Array): void {
    this.checkOpen();
    if ((this.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) !== 0)
      throw new KernelError("EPERM", `memfd: ${this.name}: write to a write-sealed memfd`);
    if (offset + src.length > this.sizeBytes) this.ftruncate(offset + src.length);
    this.forPages(offset, src.length, (phys, off, n) =>
      this.um.cache.cpuWrite(phys, src.subarray(off, off + n)),
    );
  }

  /** `pread(fd, dst, offset)` through the page cache and CPU cache; returns bytes read (0 at EOF). */
  pread(offset: number, dst: Uint8Array): number {
    this.checkOpen();
    const n = Math.max(0, Math.min(dst.length, this.sizeBytes - offset));
    this.forPages(offset, n, (phys, off, k) => this.um.cache.cpuRead(phys, dst.subarray(off, off + k)));
    return n;
  }

  /** @internal The page at `pgoff`, allocating a hole; `errno` beyond i_size (SIGBUS for faults). */
  getFolio(pgoff: number, what: string, errno: "EFAULT" | "EINVAL" = "EFAULT"): number {
    if (pgoff >= this.cache.length || pgoff < 0)
      throw new KernelError(
        errno,
        `${what}: page ${pgoff} is beyond the end of memfd ${this.name} (${hex(this.sizeBytes)})`,
      );
    const v = this.cache[pgoff] as number;
    if (v !== 0) return v - 1;
    const pfn = this.um.allocUserFolio(0, PG_shmem);
    if (pfn === null) throw new KernelError("ENOMEM", `${what}: out of memory for memfd ${this.name}`);
    this.um.mem.memmap.refcount[this.um.mem.memmap.idx(pfn)] = 1;
    this.cache[pgoff] = pfn + 1;
    this.um.shmemRmapAdd(pfn, this.id, pgoff);
    return pfn;
  }

  /** @internal Migration moved page `pgoff` to `pfn`. */
  replacePage(pgoff: number, pfn: number): void {
    this.cache[pgoff] = pfn + 1;
    for (const { mm, vma } of this.maps) mm.replaceFilePte(vma, pgoff, pfn);
  }

  /** @internal EPERM for a writable shared mapping of a write-sealed memfd. */
  checkWritableMap(): void {
    if ((this.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) !== 0)
      throw new KernelError("EPERM", `memfd: ${this.name}: writable shared mapping of a write-sealed memfd`);
  }

  /** @internal A VMA maps this file (takes a file reference). */
  attach(mm: MmStruct, vma: VmAreaStruct): void {
    this.maps.push({ mm, vma });
    this.refs++;
  }

  /** @internal A VMA went away. */
  detach(mm: MmStruct, vma: VmAreaStruct): void {
    const i = this.maps.findIndex((m) => m.mm === mm && m.vma === vma);
    if (i < 0) return;
    this.maps.splice(i, 1);
    this.fput();
  }

  private writableMaps(): number {
    let n = 0;
    for (const { vma } of this.maps) if ((vma.flags & (VM_SHARED | VM_WRITE)) === (VM_SHARED | VM_WRITE)) n++;
    return n;
  }

  private forPages(offset: number, len: number, fn: (phys: number, off: number, n: number) => void): void {
    let off = 0;
    while (off < len) {
      const at = offset + off;
      const n = Math.min(len - off, PAGE_SIZE - (at % PAGE_SIZE));
      const pfn = this.getFolio(Math.floor(at / PAGE_SIZE), `memfd: ${this.name}: I/O`, "EINVAL");
      fn(pfn * PAGE_SIZE + (at % PAGE_SIZE), off, n);
      off += n;
    }
  }

  private dropPage(pgoff: number): void {
    const v = this.cache[pgoff] as number;
    if (v === 0) return;
    this.cache[pgoff] = 0;
    this.um.shmemRmap.delete(v - 1);
    const mm = this.um.mem.memmap;
    const i = mm.idx(v - 1);
    mm.flags[i] = (mm.flags[i] as number) & ~PG_shmem;
    this.um.pages.putPage(v - 1);
  }

  private release(): void {
    for (let p = 0; p < this.cache.length; p++) this.dropPage(p);
    this.cache = new Float64Array(0);
    this.um.forgetMemfd(this.id);
  }

  private checkOpen(): void {
    if (this.refs <= 0) throw new KernelError("EBADF", `memfd: ${this.name}: file released`);
  }
}
