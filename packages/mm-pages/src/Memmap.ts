import { KernelError } from "@dmakit/core";

/**
 * `SECTION_SIZE_BITS` on x86_64 and arm64 with 4 KiB pages: 128 MiB sections.
 * @see arch/x86/include/asm/sparsemem.h, arch/arm64/include/asm/sparsemem.h
 */
export const SECTION_SIZE_BITS = 27;
/** `PAGES_PER_SECTION` = 32768. @see include/linux/mmzone.h */
export const PAGES_PER_SECTION = 1 << (SECTION_SIZE_BITS - 12);
const SECTION_MASK = PAGES_PER_SECTION - 1;

/**
 * The memmap: the model's `struct page` array, as struct-of-arrays typed arrays, allocated per
 * present 128 MiB section like SPARSEMEM_VMEMMAP. A pfn's fields live at `index(pfn)` in every
 * array. 16 bytes per page (the kernel spends 64):
 *
 * | array      | type   | bytes | holds                                                           |
 * |------------|--------|-------|-----------------------------------------------------------------|
 * | `flags`    | u16    | 2     | `PG_*` bits (see pageFlags.ts)                                  |
 * | `zone`     | u8     | 1     | zone number (`page_zonenum`)                                    |
 * | `order`    | u8     | 1     | buddy order of a free block head, or compound order of a head   |
 * | `refcount` | i32    | 4     | `page->_refcount` (pins add `GUP_PIN_COUNTING_BIAS` on small folios) |
 * | `priv`     | i32    | 4     | `page->private`: free-list slot of a buddy head; `_pincount` of a large folio head |
 * | `owner`    | u16    | 2     | pgmap id for ZONE_DEVICE pages, CMA area id + 1 for CMA pages   |
 * | `mapcount` | i16    | 2     | `page->_mapcount` + 1 (number of user mappings)                 |
 *
 * The arrays are replaced when sections are added ({@link addRange}), so hot loops must re-read
 * them after `memremapPages`.
 *
 * @see include/linux/mm_types.h struct page, include/linux/mmzone.h (SPARSEMEM sections)
 */
export class Memmap {
  flags = new Uint16Array(0);
  zone = new Uint8Array(0);
  order = new Uint8Array(0);
  refcount = new Int32Array(0);
  priv = new Int32Array(0);
  owner = new Uint16Array(0);
  mapcount = new Int16Array(0);

  /** Section number → slot in the flat arrays (in units of PAGES_PER_SECTION), -1 when absent. */
  private sectionSlot = new Int32Array(0).fill(-1);
  private sectionsUsed = 0;

  /** Bytes of metadata per page: the sum of every array's element size. */
  static readonly BYTES_PER_PAGE =
    Uint16Array.BYTES_PER_ELEMENT +
    Uint8Array.BYTES_PER_ELEMENT +
    Uint8Array.BYTES_PER_ELEMENT +
    Int32Array.BYTES_PER_ELEMENT +
    Int32Array.BYTES_PER_ELEMENT +
    Uint16Array.BYTES_PER_ELEMENT +
    Int16Array.BYTES_PER_ELEMENT;

  /** Number of present sections. */
  get sections(): number {
    return this.sectionsUsed;
  }

  /** Bytes the memmap arrays hold (measured from the typed arrays). */
  get byteLength(): number {
    return (
      this.flags.byteLength +
      this.zone.byteLength +
      this.order.byteLength +
      this.refcount.byteLength +
      this.priv.byteLength +
      this.owner.byteLength +
      this.mapcount.byteLength
    );
  }

  /** Pages with metadata (present sections × PAGES_PER_SECTION). */
  get pages(): number {
    return this.sectionsUsed * PAGES_PER_SECTION;
  }

  /**
   * Flat index of `pfn`'s metadata, or -1 when its section has no memmap (`!pfn_valid` at
   * section granularity; {@link PhysMem.pfnValid} is exact).
   */
  index(pfn: number): number {
    const sec = Math.floor(pfn / PAGES_PER_SECTION);
    if (sec < 0 || sec >= this.sectionSlot.length) return -1;
    const slot = this.sectionSlot[sec] as number;
    if (slot < 0) return -1;
    return slot * PAGES_PER_SECTION + (pfn & SECTION_MASK);
  }

  /** Like {@link index} but throws EFAULT for a pfn without memmap: for callers that hold a valid page. */
  idx(pfn: number): number {
    const i = this.index(pfn);
    if (i < 0) throw new KernelError("EFAULT", `memmap: pfn 0x${pfn.toString(16)} has no struct page`);
    return i;
  }

  /** Ensures every section overlapping [startPfn, endPfn) has metadata (`sparse_add_section`). */
  addRange(startPfn: number, endPfn: number): void {
    const first = Math.floor(startPfn / PAGES_PER_SECTION);
    const last = Math.floor((endPfn - 1) / PAGES_PER_SECTION);
    if (last >= this.sectionSlot.length) {
      const grown = new Int32Array(last + 1).fill(-1);
      grown.set(this.sectionSlot);
      this.sectionSlot = grown;
    }
    let added = 0;
    for (let s = first; s <= last; s++) if ((this.sectionSlot[s] as number) < 0) added++;
    if (added === 0) return;
    this.grow(this.sectionsUsed + added);
    for (let s = first; s <= last; s++) {
      if ((this.sectionSlot[s] as number) < 0) this.sectionSlot[s] = this.sectionsUsed++;
    }
  }

  private grow(sections: number): void {
    const n = sections * PAGES_PER_SECTION;
    const copy = <T extends Uint8Array | Uint16Array | Int16Array | Int32Array>(
      a: T,
      make: (n: number) => T,
    ): T => {
      const b = make(n);
      b.set(a as ArrayLike<number>);
      return b;
    };
    this.flags = copy(this.flags, (k) => new Uint16Array(k));
    this.zone = copy(this.zone, (k) => new Uint8Array(k));
    this.order = copy(this.order, (k) => new Uint8Array(k));
    this.refcount = copy(this.refcount, (k) => new Int32Array(k));
    this.priv = copy(this.priv, (k) => new Int32Array(k));
    this.owner = copy(this.owner, (k) => new Uint16Array(k));
    this.mapcount = copy(this.mapcount, (k) => new Int16Array(k));
  }
}
