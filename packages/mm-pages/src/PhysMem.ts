import { hex, KernelError, type KernelLog, PAGE_SIZE, SZ_4G } from "@dmakit/core";
import { Memmap, PAGES_PER_SECTION } from "./Memmap.js";
import { type DevPagemap, MEMORY_DEVICE_PCI_P2PDMA, type MemoryType } from "./Pgmap.js";
import { PG_reserved } from "./pageFlags.js";
import { SparseStore } from "./SparseStore.js";
import { ZONE_DEVICE, ZONE_DMA, ZONE_DMA32, ZONE_MOVABLE, ZONE_NORMAL, type ZoneType } from "./zones.js";

/** A bank of RAM: `memblock_add(start, size)`. @see mm/memblock.c memblock_add */
export interface RamBank {
  readonly start: number;
  readonly size: number;
}

/**
 * A reserved RAM range (`memblock_reserve`): has struct pages marked PG_reserved, never allocated.
 * @see mm/memblock.c memblock_reserve
 */
export interface ReservedRange {
  readonly start: number;
  readonly size: number;
  readonly name: string;
}

/**
 * Reads and writes of an MMIO region go to its owner (a device's registers or BAR memory).
 * Offsets are relative to the region's start.
 * Model-only: a device's side of its MMIO accesses.
 */
export interface MmioHandler {
  read(offset: number, dst: Uint8Array): void;
  write(offset: number, src: Uint8Array): void;
}

/**
 * An MMIO region of the physical address map (no struct page unless memremapped).
 * Model-only: stands for an iomem `struct resource` with the device behind it.
 */
export interface MmioRegion {
  readonly start: number;
  readonly size: number;
  readonly name: string;
  readonly handler: MmioHandler;
}

/**
 * Zone limits: where ZONE_DMA and ZONE_DMA32 end and ZONE_MOVABLE begins (physical addresses).
 * @see mm/mm_init.c free_area_init (the kernel takes `max_zone_pfn[]`)
 */
export interface ZoneLimits {
  /** End of ZONE_DMA (exclusive), e.g. 16 MiB on x86 or 1 GiB on some arm64 SoCs; 0 = no ZONE_DMA. */
  readonly dma?: number;
  /** End of ZONE_DMA32 (exclusive); default 4 GiB; 0 = no ZONE_DMA32. */
  readonly dma32?: number;
  /** Start of ZONE_MOVABLE (`movablecore`/`kernelcore` boundary); absent = no ZONE_MOVABLE. */
  readonly movableStart?: number;
}

/**
 * The physical memory map of a machine.
 * Model-only: stands for the firmware memory map (e820, devicetree `memory` nodes).
 */
export interface MemoryLayout {
  readonly banks: readonly RamBank[];
  readonly reserved?: readonly ReservedRange[];
  readonly zones?: ZoneLimits;
}

/**
 * The machine's CPU side of memory: kernel stores such as `clear_page` for `__GFP_ZERO` go through
 * it, so on a non-coherent machine they leave dirty lines exactly as real CPU stores do. The
 * CPU cache model registers itself here.
 * Model-only: the hook through which kernel stores reach the cache model.
 */
export interface CpuStore {
  cpuFill(phys: number, len: number, value: number): number;
  /** Writes back and drops every cached line of the range (`dcache_clean_inval_poc`). */
  cleanInvalidateRange(phys: number, size: number): number;
}

/** What lies at a physical address. Model-only: classification for messages and checks. */
export type PhysRegionKind = "ram" | "mmio" | "hole";

/** Options for a {@link PhysMem}. Model-only: what a {@link PhysMem} is built from. */
export interface PhysMemOptions {
  /** The machine's kernel log (warnings of the mm code go there). */
  readonly log: KernelLog;
}

/**
 * An MMIO handler that is plain sparse memory: device BAR memory (VRAM, CMB, P2P buffers).
 * Model-only: device memory behind a BAR.
 */
export class MemoryBackedMmio implements MmioHandler {
  readonly store: SparseStore;
  constructor(size: number) {
    this.store = new SparseStore(size);
  }
  read(offset: number, dst: Uint8Array): void {
    this.store.read(offset, dst);
  }
  write(offset: number, src: Uint8Array): void {
    this.store.write(offset, src);
  }
}

/**
 * The machine's physical address space: RAM banks with holes, reserved ranges, MMIO regions and
 * ZONE_DEVICE memory; the sparse backing store behind RAM; and the memmap (struct pages).
 * This is "the hardware plus memblock plus sparse memmap"; allocators (buddy, CMA) sit on top.
 *
 * Reads and writes here are what the memory bus serves: they bypass CPU caches (see the cache
 * model for the CPU's view). RAM is sparse: a 64 GiB machine costs only the memmap (lazily
 * committed by the OS) and the chunks that were written.
 *
 * @see mm/memblock.c, mm/sparse.c, include/linux/mmzone.h, mm/memremap.c
 */
export class PhysMem {
  readonly log: KernelLog;
  readonly memmap = new Memmap();
  readonly banks: readonly RamBank[];
  readonly reserved: readonly ReservedRange[];
  readonly zoneLimits: Required<ZoneLimits>;
  /** One sparse store spanning the lowest to the highest RAM address; holes are never touched. */
  readonly ram: SparseStore;
  /** Physical address where {@link ram} offset 0 lies. */
  readonly ramBase: number;
  /** The CPU's view (its cache model) once one is attached; null means CPU stores go straight to RAM. */
  cpuStore: CpuStore | null = null;
  private readonly mmio: MmioRegion[] = [];
  private readonly pgmaps: DevPagemap[] = [];
  private nextPgmapId = 1;

  constructor(layout: MemoryLayout, options: PhysMemOptions) {
    this.log = options.log;
    if (layout.banks.length === 0) throw new KernelError("EINVAL", "mm: memory layout has no RAM bank");
    const banks = [...layout.banks].sort((a, b) => a.start - b.start);
    for (let i = 0; i < banks.length; i++) {
      const b = banks[i] as RamBank;
      if (b.start % PAGE_SIZE !== 0 || b.size % PAGE_SIZE !== 0 || b.size <= 0)
        throw new KernelError(
          "EINVAL",
          `mm: RAM bank ${hex(b.start)}+${hex(b.size)} is not page-aligned and non-empty`,
        );
      const prev = banks[i - 1];
      if (prev !== undefined && prev.start + prev.size > b.start)
        throw new KernelError(
          "EINVAL",
          `mm: RAM bank ${hex(b.start)} overlaps bank ${hex(prev.start)}+${hex(prev.size)}`,
        );
    }
    this.banks = banks;
    const first = banks[0] as RamBank;
    const last = banks[banks.length - 1] as RamBank;
    this.ramBase = first.start;
    this.ram = new SparseStore(last.start + last.size - first.start);
    this.zoneLimits = {
      dma: layout.zones?.dma ?? 0,
      dma32: layout.zones?.dma32 ?? SZ_4G,
      movableStart: layout.zones?.movableStart ?? Number.POSITIVE_INFINITY,
    };

    for (const b of banks) {
      const startPfn = b.start / PAGE_SIZE;
      const endPfn = (b.start + b.size) / PAGE_SIZE;
      this.memmap.addRange(startPfn, endPfn);
    }
    const mm = this.memmap;
    // Pages of a present section that are not in any bank are holes: reserved, like the kernel's
    // memmap_init marks them, so no allocator ever touches them.
    this.forEachSectionHole((from, to) => {
      const i = mm.idx(from);
      mm.flags.fill(PG_reserved, i, i + (to - from));
    });
    for (const b of banks) this.setZones(b.start / PAGE_SIZE, (b.start + b.size) / PAGE_SIZE);

    const reserved = [...(layout.reserved ?? [])];
    for (const r of reserved) {
      if (!this.isRam(r.start) || !this.isRam(r.start + r.size - 1))
        throw new KernelError(
          "EINVAL",
          `mm: reserved range "${r.name}" ${hex(r.start)}+${hex(r.size)} is not RAM`,
        );
      this.reservePages(Math.floor(r.start / PAGE_SIZE), Math.ceil((r.start + r.size) / PAGE_SIZE));
    }
    this.reserved = reserved;
  }

  /** Total bytes of RAM in all banks (`totalram_pages() << PAGE_SHIFT` before reservations). */
  get totalRam(): number {
    let n = 0;
    for (const b of this.banks) n += b.size;
    return n;
  }

  /** Lowest and highest+1 RAM pfn. */
  get minPfn(): number {
    return this.ramBase / PAGE_SIZE;
  }
  get maxPfn(): number {
    const last = this.banks[this.banks.length - 1] as RamBank;
    return (last.start + last.size) / PAGE_SIZE;
  }

  /** Marks [startPfn, endPfn) PG_reserved (memblock_reserve before the buddy allocator takes RAM). */
  reservePages(startPfn: number, endPfn: number): void {
    const mm = this.memmap;
    for (let pfn = startPfn; pfn < endPfn; pfn++) {
      const i = mm.idx(pfn);
      mm.flags[i] = (mm.flags[i] as number) | PG_reserved;
    }
  }

  /** True if `phys` lies in a RAM bank. */
  isRam(phys: number): boolean {
    return this.bankAt(phys) !== undefined;
  }

  /** The RAM bank holding `phys`, if any. */
  bankAt(phys: number): RamBank | undefined {
    for (const b of this.banks) if (phys >= b.start && phys < b.start + b.size) return b;
    return undefined;
  }

  /** The MMIO region holding `phys`, if any. */
  mmioAt(phys: number): MmioRegion | undefined {
    for (const r of this.mmio) if (phys >= r.start && phys < r.start + r.size) return r;
    return undefined;
  }

  /** What lies at `phys`: RAM, MMIO, or nothing (a hole: accesses fault). */
  regionKind(phys: number): PhysRegionKind {
    if (this.isRam(phys)) return "ram";
    if (this.mmioAt(phys) !== undefined) return "mmio";
    return "hole";
  }

  /** MMIO regions, in the order they were added. */
  mmioRegions(): readonly MmioRegion[] {
    return this.mmio;
  }

  /**
   * Adds an MMIO region (device registers or BAR memory). EBUSY if it overlaps RAM or another region.
   * @see kernel/resource.c request_resource (the model keeps one flat list)
   */
  addMmioRegion(region: MmioRegion): MmioRegion {
    if (region.start % PAGE_SIZE !== 0 || region.size % PAGE_SIZE !== 0 || region.size <= 0)
      throw new KernelError(
        "EINVAL",
        `mm: MMIO region "${region.name}" ${hex(region.start)}+${hex(region.size)} is not page-aligned`,
      );
    const end = region.start + region.size;
    for (const b of this.banks)
      if (region.start < b.start + b.size && b.start < end)
        throw new KernelError(
          "EBUSY",
          `mm: MMIO region "${region.name}" ${hex(region.start)}+${hex(region.size)} overlaps RAM bank ${hex(b.start)}`,
        );
    for (const r of this.mmio)
      if (region.start < r.start + r.size && r.start < end)
        throw new KernelError(
          "EBUSY",
          `mm: MMIO region "${region.name}" overlaps "${r.name}" at ${hex(r.start)}`,
        );
    this.mmio.push(region);
    return region;
  }

  /**
   * `memremap_pages()`: gives the MMIO range [start, start+size) struct pages in ZONE_DEVICE owned by
   * a new pgmap. The range must be an existing MMIO region (or lie inside one) and not already
   * remapped. Returns the pgmap.
   * @see mm/memremap.c memremap_pages
   */
  memremapPages(args: {
    start: number;
    size: number;
    type: MemoryType;
    owner: string;
    busOffset?: number;
  }): DevPagemap {
    const { start, size } = args;
    if (start % PAGE_SIZE !== 0 || size % PAGE_SIZE !== 0 || size <= 0)
      throw new KernelError("EINVAL", `mm: memremap_pages ${hex(start)}+${hex(size)} is not page-aligned`);
    const region = this.mmioAt(start);
    if (region === undefined || start + size > region.start + region.size)
      throw new KernelError(
        "EINVAL",
        `mm: memremap_pages ${hex(start)}+${hex(size)} is not inside one MMIO region`,
      );
    for (const p of this.pgmaps)
      if (start < p.start + p.size && p.start < start + size)
        throw new KernelError(
          "EBUSY",
          `mm: memremap_pages ${hex(start)}+${hex(size)} overlaps pgmap ${p.id} of ${p.owner}`,
        );
    if (this.nextPgmapId > 0xffff)
      throw new KernelError("ENOSPC", "mm: memremap_pages: out of pgmap ids (65535)");
    const pgmap: DevPagemap = {
      id: this.nextPgmapId++,
      type: args.type,
      start,
      size,
      owner: args.owner,
      busOffset: args.busOffset ?? 0,
    };
    const startPfn = start / PAGE_SIZE;
    const endPfn = (start + size) / PAGE_SIZE;
    this.memmap.addRange(startPfn, endPfn);
    const mm = this.memmap;
    for (let pfn = startPfn; pfn < endPfn; pfn++) {
      const i = mm.idx(pfn);
      mm.zone[i] = ZONE_DEVICE;
      mm.owner[i] = pgmap.id;
      // ZONE_DEVICE pages idle at refcount 1 in this model, mirroring the kernel's
      // pgmap-owned reference (free_zone_device_folio runs when it would drop to 0).
      mm.refcount[i] = 1;
      mm.flags[i] = 0;
    }
    this.pgmaps.push(pgmap);
    return pgmap;
  }

  /** `memunmap_pages()`: removes a pgmap's struct pages' association (the memmap section stays). */
  memunmapPages(pgmap: DevPagemap): void {
    const at = this.pgmaps.indexOf(pgmap);
    if (at < 0) throw new KernelError("EINVAL", `mm: memunmap_pages: pgmap ${pgmap.id} is not mapped`);
    const mm = this.memmap;
    const startPfn = pgmap.start / PAGE_SIZE;
    const endPfn = (pgmap.start + pgmap.size) / PAGE_SIZE;
    for (let pfn = startPfn; pfn < endPfn; pfn++) {
      const i = mm.idx(pfn);
      if ((mm.refcount[i] as number) > 1)
        throw new KernelError(
          "EBUSY",
          `mm: memunmap_pages: pfn ${hex(pfn)} of pgmap ${pgmap.id} still referenced`,
        );
    }
    for (let pfn = startPfn; pfn < endPfn; pfn++) {
      const i = mm.idx(pfn);
      mm.owner[i] = 0;
      mm.refcount[i] = 0;
      mm.zone[i] = 0;
      mm.flags[i] = PG_reserved;
    }
    this.pgmaps.splice(at, 1);
  }

  /** Every pgmap currently remapped. */
  pagemaps(): readonly DevPagemap[] {
    return this.pgmaps;
  }

  /**
   * `pfn_valid(pfn)`: true if a struct page exists for `pfn`: RAM pages (holes included only if
   * memblock says RAM) and ZONE_DEVICE pages; false for plain MMIO.
   * @see include/linux/mmzone.h pfn_valid (the model is exact, not section-granular)
   */
  pfnValid(pfn: number): boolean {
    const phys = pfn * PAGE_SIZE;
    if (this.isRam(phys)) return true;
    for (const p of this.pgmaps) if (phys >= p.start && phys < p.start + p.size) return true;
    return false;
  }

  /** `pfn_to_page` then `page_to_pfn` are identities in the model: a page is its pfn. Throws EFAULT for an invalid pfn. */
  pfnToPage(pfn: number): number {
    if (!this.pfnValid(pfn))
      throw new KernelError("EFAULT", `mm: pfn_to_page: pfn ${hex(pfn)} has no struct page`);
    return pfn;
  }

  /** `page_to_pfn(page)`. */
  pageToPfn(page: number): number {
    return page;
  }

  /** `page_to_phys(page)`. */
  pageToPhys(page: number): number {
    return page * PAGE_SIZE;
  }

  /** `phys_to_page(phys)`. */
  physToPage(phys: number): number {
    return Math.floor(phys / PAGE_SIZE);
  }

  /** `page_zonenum(page)`. */
  pageZonenum(pfn: number): ZoneType {
    return this.memmap.zone[this.memmap.idx(pfn)] as ZoneType;
  }

  /** `is_zone_device_page(page)`. */
  isZoneDevicePage(pfn: number): boolean {
    const i = this.memmap.index(pfn);
    return i >= 0 && this.memmap.zone[i] === ZONE_DEVICE && this.memmap.owner[i] !== 0;
  }

  /** `page_pgmap(page)` (6.14+): the pgmap of a ZONE_DEVICE page, undefined otherwise. */
  pagePgmap(pfn: number): DevPagemap | undefined {
    if (!this.isZoneDevicePage(pfn)) return undefined;
    const id = this.memmap.owner[this.memmap.idx(pfn)];
    return this.pgmaps.find((p) => p.id === id);
  }

  /**
   * `zone_device_pages_have_same_pgmap(a, b)`: true if neither is ZONE_DEVICE, or both are with
   * the same pgmap; false if only one is. Used by scatterlist and bio merging.
   * @see include/linux/memremap.h
   */
  zoneDevicePagesHaveSamePgmap(a: number, b: number): boolean {
    const ia = this.memmap.index(a);
    const ib = this.memmap.index(b);
    const da = ia >= 0 && this.memmap.zone[ia] === ZONE_DEVICE;
    const db = ib >= 0 && this.memmap.zone[ib] === ZONE_DEVICE;
    if (da !== db) return false;
    if (!da) return true;
    return this.memmap.owner[ia] === this.memmap.owner[ib];
  }

  /** `is_pci_p2pdma_page(page)`. @see include/linux/memremap.h */
  isPciP2pdmaPage(pfn: number): boolean {
    return this.pagePgmap(pfn)?.type === MEMORY_DEVICE_PCI_P2PDMA;
  }

  /**
   * Reads `dst.length` bytes of physical memory at `phys` as the memory bus serves them (no CPU
   * cache). The range may span RAM banks and MMIO regions but not holes: EFAULT names the address.
   */
  read(phys: number, dst: Uint8Array): void {
    this.access(phys, dst.length, (kind, at, off, n, region) => {
      if (kind === "ram") this.ram.read(at - this.ramBase, dst.subarray(off, off + n));
      else region?.handler.read(at - region.start, dst.subarray(off, off + n));
    });
  }

  /** Writes `src` to physical memory at `phys` (no CPU cache). */
  write(phys: number, src: Uint8Array): void {
    this.access(phys, src.length, (kind, at, off, n, region) => {
      if (kind === "ram") this.ram.write(at - this.ramBase, src.subarray(off, off + n));
      else region?.handler.write(at - region.start, src.subarray(off, off + n));
    });
  }

  /**
   * Fills RAM at `phys` with `value` (e.g. zeroing with `__GFP_ZERO`). RAM only, but the range may
   * span adjacent banks, as a merged buddy block can. EFAULT (nothing written) if any byte is not RAM.
   */
  fill(phys: number, len: number, value: number): void {
    for (let at = phys; at < phys + len; ) {
      const bank = this.bankAt(at);
      if (bank === undefined)
        throw new KernelError("EFAULT", `mm: fill ${hex(phys)}+${len}: ${hex(at)} is not RAM`);
      at = bank.start + bank.size;
    }
    this.ram.fill(phys - this.ramBase, len, value);
  }

  /**
   * A kernel CPU store of `value` over RAM (`memset`, `clear_page` for `__GFP_ZERO`): through the
   * attached {@link cpuStore} (the CPU cache) when there is one, else straight to RAM.
   */
  cpuFill(phys: number, len: number, value: number): void {
    if (this.cpuStore === null) this.fill(phys, len, value);
    else this.cpuStore.cpuFill(phys, len, value);
  }

  /** Little-endian 32-bit RAM read (page-table walkers read descriptors this way). */
  readU32(phys: number): number {
    if (this.isRam(phys)) return this.ram.readU32(phys - this.ramBase);
    const b = new Uint8Array(4);
    this.read(phys, b);
    return (
      ((b[0] as number) | ((b[1] as number) << 8) | ((b[2] as number) << 16)) + (b[3] as number) * 0x1000000
    );
  }

  /** Little-endian 32-bit RAM write. */
  writeU32(phys: number, value: number): void {
    if (this.isRam(phys)) {
      this.ram.writeU32(phys - this.ramBase, value);
      return;
    }
    const v = value >>> 0;
    this.write(phys, new Uint8Array([v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24]));
  }

  /**
   * A live 4 KiB view of a RAM page's backing bytes, allocating backing on first use. The fast path
   * for page-table walkers and whole-page copies. EFAULT if the page is not RAM.
   */
  pageView(pfn: number): Uint8Array {
    const phys = pfn * PAGE_SIZE;
    this.checkRam(phys, PAGE_SIZE);
    return this.ram.view(phys - this.ramBase, PAGE_SIZE);
  }

  private checkRam(phys: number, len: number): void {
    const b = this.bankAt(phys);
    if (b === undefined || phys + len > b.start + b.size)
      throw new KernelError("EFAULT", `mm: ${hex(phys)}+${len} is not within one RAM bank`);
  }

  private access(
    phys: number,
    len: number,
    fn: (kind: "ram" | "mmio", at: number, off: number, n: number, region: MmioRegion | undefined) => void,
  ): void {
    let off = 0;
    while (off < len) {
      const at = phys + off;
      const bank = this.bankAt(at);
      if (bank !== undefined) {
        const n = Math.min(len - off, bank.start + bank.size - at);
        fn("ram", at, off, n, undefined);
        off += n;
        continue;
      }
      const region = this.mmioAt(at);
      if (region !== undefined) {
        const n = Math.min(len - off, region.start + region.size - at);
        fn("mmio", at, off, n, region);
        off += n;
        continue;
      }
      throw new KernelError(
        "EFAULT",
        `mm: physical access ${hex(phys)}+${len}: nothing at ${hex(at)} (hole)`,
      );
    }
  }

  private setZones(startPfn: number, endPfn: number): void {
    const z = this.zoneLimits;
    const mm = this.memmap;
    const bounds: [number, ZoneType][] = [
      [z.dma > 0 ? z.dma / PAGE_SIZE : 0, ZONE_DMA],
      [z.dma32 > 0 ? z.dma32 / PAGE_SIZE : 0, ZONE_DMA32],
      [z.movableStart / PAGE_SIZE, ZONE_NORMAL],
      [Number.POSITIVE_INFINITY, ZONE_MOVABLE],
    ];
    let pfn = startPfn;
    for (const [end, zone] of bounds) {
      if (pfn >= endPfn) break;
      const to = Math.min(endPfn, Math.max(pfn, end));
      if (to > pfn) {
        // Pages fill section by section because consecutive pfns are consecutive indices only within a section.
        for (let p = pfn; p < to; ) {
          const i = mm.idx(p);
          const run = Math.min(to - p, PAGES_PER_SECTION - (p % PAGES_PER_SECTION));
          mm.zone.fill(zone, i, i + run);
          p += run;
        }
        pfn = to;
      }
    }
  }

  private forEachSectionHole(fn: (fromPfn: number, toPfn: number) => void): void {
    const spp = PAGES_PER_SECTION;
    const sections = new Set<number>();
    for (const b of this.banks) {
      for (
        let s = Math.floor(b.start / PAGE_SIZE / spp);
        s <= Math.floor((b.start + b.size - 1) / PAGE_SIZE / spp);
        s++
      )
        sections.add(s);
    }
    for (const s of [...sections].sort((a, b) => a - b)) {
      let pfn = s * spp;
      const end = pfn + spp;
      while (pfn < end) {
        const bank = this.bankAt(pfn * PAGE_SIZE);
        if (bank !== undefined) {
          pfn = Math.min(end, (bank.start + bank.size) / PAGE_SIZE);
          continue;
        }
        let next = end;
        for (const b of this.banks) {
          const bp = b.start / PAGE_SIZE;
          if (bp > pfn && bp < next) next = bp;
        }
        fn(pfn, next);
        pfn = next;
      }
    }
  }
}
