/**
 * A naive reference of the swiotlb slot allocator for property tests: a free/used flag per slot
 * (no run counters: a slot's free run is recounted from the flags each time it is needed), masks
 * in BigInt (no 32-bit tricks), and the kernel's search order (area index, stride, wrap to 0,
 * alignment and segment-boundary rules) written out from kernel/dma/swiotlb.c.
 */
export class SwiotlbRef {
  readonly used: Uint8Array;
  readonly areaIndex: number[];
  readonly areaUsed: number[];
  readonly areaNslabs: number;
  /** Live allocations: first slot → slot count. */
  readonly allocs = new Map<number, number>();

  constructor(
    readonly nslabs: number,
    readonly nareas: number,
  ) {
    this.used = new Uint8Array(nslabs);
    this.areaIndex = new Array(nareas).fill(0);
    this.areaUsed = new Array(nareas).fill(0);
    this.areaNslabs = Math.floor(nslabs / nareas);
  }

  /** Free slots from `i` up to the first used slot or the end of i's 128-slot segment. */
  freeRun(i: number): number {
    const segEnd = (Math.floor(i / 128) + 1) * 128;
    let n = 0;
    for (let j = i; j < segEnd && j < this.nslabs && this.used[j] === 0; j++) n++;
    return n;
  }

  get usedSlots(): number {
    let n = 0;
    for (const u of this.used) n += u;
    return n;
  }

  /** The kernel's area search over the flags; claims and returns the first slot, or -1. */
  search(
    cpu: number,
    orig: number,
    tbl: number,
    allocSize: number,
    allocAlignMask: number,
    minAlignMask: number,
    boundaryMask: number,
  ): number {
    const start = cpu & (this.nareas - 1);
    let a = start;
    do {
      const r = this.searchArea(a, orig, tbl, allocSize, allocAlignMask, minAlignMask, boundaryMask);
      if (r >= 0) return r;
      a = (a + 1) % this.nareas;
    } while (a !== start);
    return -1;
  }

  private searchArea(
    area: number,
    orig: number,
    tbl: number,
    allocSize: number,
    allocAlignMask: number,
    minAlignMask: number,
    boundaryMask: number,
  ): number {
    const nslots = Math.ceil(allocSize / 2048);
    const boundary = boundaryMask >= 2 ** 64 ? (1n << 64n) - 1n : BigInt(boundaryMask);
    let align = BigInt(allocAlignMask);
    let iotlb = BigInt(minAlignMask);
    if (align === 0n && iotlb === 0n && allocSize >= 4096) align = 4095n;
    align |= 2047n;
    iotlb &= ~align;
    const stride = Number(((align > iotlb ? align : iotlb) >> 11n) + 1n);
    const tblB = BigInt(tbl) & boundary;
    const maxSlots = (boundary >> 11n) + 1n;
    const tblSlots = (tblB + 2047n) / 2048n;
    if (nslots > this.areaNslabs - (this.areaUsed[area] as number)) return -1;
    const base = area * this.areaNslabs;
    let index = this.areaIndex[area] as number;
    const origB = BigInt(orig);
    for (let checked = 0; checked < this.areaNslabs; ) {
      const si = base + index;
      const addr = tblB + BigInt(si) * 2048n;
      if ((addr & align) !== 0n || (orig !== 0 && (addr & iotlb) !== (origB & iotlb))) {
        index = index + 1 >= this.areaNslabs ? 0 : index + 1;
        checked++;
        continue;
      }
      const crosses = ((tblSlots + BigInt(si)) % maxSlots) + BigInt(nslots) > maxSlots;
      if (!crosses && this.freeRun(si) >= nslots) {
        for (let j = si; j < si + nslots; j++) {
          if (this.used[j] !== 0) throw new Error(`reference: slot ${j} handed out twice`);
          this.used[j] = 1;
        }
        this.allocs.set(si, nslots);
        this.areaIndex[area] = index + nslots >= this.areaNslabs ? 0 : index + nslots;
        this.areaUsed[area] = (this.areaUsed[area] as number) + nslots;
        return si;
      }
      index = index + stride >= this.areaNslabs ? 0 : index + stride;
      checked += stride;
    }
    return -1;
  }

  release(first: number): void {
    const n = this.allocs.get(first);
    if (n === undefined) throw new Error(`reference: no allocation at ${first}`);
    for (let j = first; j < first + n; j++) this.used[j] = 0;
    this.allocs.delete(first);
    const area = Math.floor(first / this.areaNslabs);
    this.areaUsed[area] = (this.areaUsed[area] as number) - n;
  }
}
