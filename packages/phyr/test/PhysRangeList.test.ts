import { isKernelError, KernelError, PAGE_SIZE, SZ_4G, SZ_64K, U32_MAX, ULONG_MAX } from "@dmakit/core";
import {
  PHYR_ADDR_LIMIT,
  PHYR_F_BUS_ADDR,
  PHYR_F_MASK,
  PHYR_F_MMIO,
  PHYR_F_PINNED,
  PHYR_MAX_LEN,
  PhysRangeList,
  type RangeEntry,
} from "@dmakit/phyr";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

// ---- naive reference model: plain arrays of {addr, len, flags} -------------------------------

function refFromPfns(pfns: ArrayLike<number>, offset: number, size: number, flags: number): RangeEntry[] {
  // One piece per page, then merge pieces that touch and come from consecutive pfns.
  const out: RangeEntry[] = [];
  let left = size;
  let prevPfn = -2;
  for (let i = 0; i < pfns.length && left > 0; i++) {
    const pfn = pfns[i]!;
    const start = i === 0 ? offset : 0;
    const len = Math.min(PAGE_SIZE - start, left);
    left -= len;
    const last = out[out.length - 1];
    if (last && pfn === prevPfn + 1) last.len += len;
    else out.push({ addr: pfn * PAGE_SIZE + start, len, flags });
    prevPfn = pfn;
  }
  return out;
}

function refSlice(list: RangeEntry[], offset: number, length: number): RangeEntry[] {
  const out: RangeEntry[] = [];
  let pos = 0;
  for (const e of list) {
    const lo = Math.max(pos, offset);
    const hi = Math.min(pos + e.len, offset + length);
    if (hi > lo) out.push({ addr: e.addr + (lo - pos), len: hi - lo, flags: e.flags });
    pos += e.len;
  }
  return out;
}

function refCoalesce(list: RangeEntry[]): RangeEntry[] {
  const out: RangeEntry[] = [];
  for (const e of list) {
    const last = out[out.length - 1];
    if (last && last.flags === e.flags && last.addr + last.len === e.addr && last.len + e.len <= PHYR_MAX_LEN)
      last.len += e.len;
    else out.push({ ...e });
  }
  return out;
}

function refSplit(list: RangeEntry[], max: number, mask: number): RangeEntry[] {
  const out: RangeEntry[] = [];
  const unbounded = mask >= Number.MAX_SAFE_INTEGER;
  for (const e of list) {
    let a = e.addr;
    let left = e.len;
    while (left > 0) {
      const toBoundary = unbounded ? Number.POSITIVE_INFINITY : mask + 1 - (a % (mask + 1));
      const len = Math.min(left, max, toBoundary);
      out.push({ addr: a, len, flags: e.flags });
      a += len;
      left -= len;
    }
  }
  return out;
}

function total(list: RangeEntry[]): number {
  return list.reduce((s, e) => s + e.len, 0);
}

// ---- arbitraries -------------------------------------------------------------------------------

/** Range lists where many entries continue where the previous ended (so coalescing has work). */
const arbEntries = (maxLen = 1 << 20): fc.Arbitrary<RangeEntry[]> =>
  fc
    .array(
      fc.record({
        jump: fc.option(fc.integer({ min: 0, max: 2 ** 44 }), { freq: 2 }),
        len: fc.oneof(fc.integer({ min: 1, max: maxLen }), fc.constantFrom(PAGE_SIZE, 2 * PAGE_SIZE, 1)),
        flags: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: PHYR_F_MASK })),
      }),
      { maxLength: 60 },
    )
    .map((rs) => {
      let end = 0x1000;
      return rs.map((r) => {
        const addr = r.jump ?? end;
        end = addr + r.len;
        return { addr, len: r.len, flags: r.flags };
      });
    });

const arbPfns = fc.array(
  fc.oneof(
    fc.integer({ min: 0, max: 2 ** 30 }),
    fc.integer({ min: 1, max: 40 }).map((n) => -n), // marker: continue the previous run n times
  ),
  { minLength: 1, maxLength: 80 },
);

function expandPfns(spec: number[]): number[] {
  const out: number[] = [];
  for (const s of spec) {
    if (s >= 0) out.push(s);
    else {
      const start = out.length ? out[out.length - 1]! + 1 : 7;
      for (let k = 0; k < -s; k++) out.push(start + k);
    }
  }
  return out;
}

function expectKernelError(fn: () => unknown, errno: string, ...fragments: string[]): KernelError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(KernelError);
  const ke = caught as KernelError;
  expect(ke.errno).toBe(errno);
  for (const f of fragments) expect(ke.message).toContain(f);
  return ke;
}

// ---- tests -------------------------------------------------------------------------------------

describe("PhysRangeList storage", () => {
  it("round-trips entries through push and the index accessors, across chunk boundaries", () => {
    const l = new PhysRangeList();
    const n = 140_000; // crosses the geometric chunks and two fixed 64K-entry chunks
    for (let i = 0; i < n; i++) l.push(i * 8192 + (i % 7), 1 + (i % 4096) * 3, i % 16);
    expect(l.count).toBe(n);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += 1 + (i % 4096) * 3;
    expect(l.totalLength).toBe(sum);
    for (const i of [0, 15, 16, 31, 32, 63, 64, 32767, 32768, 65535, 65536, 131071, 131072, n - 1]) {
      expect([l.addr(i), l.len(i), l.flags(i)]).toEqual([i * 8192 + (i % 7), 1 + (i % 4096) * 3, i % 16]);
    }
    let seen = 0;
    l.forEach((a, len, f, i) => {
      if (a !== i * 8192 + (i % 7) || len !== 1 + (i % 4096) * 3 || f !== i % 16)
        throw new Error(`entry ${i}`);
      seen++;
    });
    expect(seen).toBe(n);
  });

  it("holds exactly 16 bytes per entry after shrinkToFit and keeps appending correctly", () => {
    const l = new PhysRangeList();
    for (let i = 0; i < 1000; i++) l.push(i * 2 * PAGE_SIZE, PAGE_SIZE);
    expect(l.footprint().jsBytes).toBeGreaterThan(16 * 1000); // slack in the last chunk
    l.shrinkToFit();
    expect(l.footprint()).toEqual({ cBytes: 16_000, jsBytes: 16_000 });
    l.push(0x123000, 5, PHYR_F_MMIO); // re-grows the trimmed tail chunk
    expect(l.count).toBe(1001);
    expect(l.toArray().at(-1)).toEqual({ addr: 0x123000, len: 5, flags: PHYR_F_MMIO });
    expect(l.addr(999)).toBe(999 * 2 * PAGE_SIZE);
    expect(l.footprint().cBytes).toBe(16 * 1001);
  });

  it("stores ranges longer than 4 GiB and the largest length with all flags exactly", () => {
    const l = new PhysRangeList();
    l.push(SZ_4G - PAGE_SIZE, 5 * SZ_4G + 3, PHYR_F_PINNED);
    l.push(PHYR_ADDR_LIMIT - PHYR_MAX_LEN, PHYR_MAX_LEN, PHYR_F_MASK);
    expect(l.toArray()).toEqual([
      { addr: SZ_4G - PAGE_SIZE, len: 5 * SZ_4G + 3, flags: PHYR_F_PINNED },
      { addr: PHYR_ADDR_LIMIT - PHYR_MAX_LEN, len: PHYR_MAX_LEN, flags: PHYR_F_MASK },
    ]);
    expect(l.totalLength).toBe(5 * SZ_4G + 3 + PHYR_MAX_LEN);
  });

  it("setFlags replaces only the flags of one entry", () => {
    const l = PhysRangeList.from([
      { addr: 0x1000, len: 0x3000, flags: PHYR_F_PINNED },
      { addr: 0x9000, len: 0x1000, flags: 0 },
    ]);
    l.setFlags(0, PHYR_F_BUS_ADDR | PHYR_F_MMIO);
    expect(l.toArray()).toEqual([
      { addr: 0x1000, len: 0x3000, flags: PHYR_F_BUS_ADDR | PHYR_F_MMIO },
      { addr: 0x9000, len: 0x1000, flags: 0 },
    ]);
    expectKernelError(() => l.setFlags(1, 16), "EINVAL", "phys_vec[1]", "flags 16");
    expectKernelError(() => l.setFlags(2, 0), "ERANGE", "index 2", "count 2");
    expect(l.flags(1)).toBe(0);
  });

  it("rejects bad pushes with the right errno, naming the value, and leaves the list unchanged", () => {
    const l = PhysRangeList.from([{ addr: 0x1000, len: 0x1000, flags: 0 }]);
    const before = l.toArray();
    expectKernelError(() => l.push(0x2000, 0), "EINVAL", "phys_vec[1]", "len 0");
    expectKernelError(() => l.push(0x2000, -4), "EINVAL", "len -4");
    expectKernelError(() => l.push(0x2000, 1.5), "EINVAL", "len 1.5");
    expectKernelError(() => l.push(-1, 1), "EINVAL", "addr -1");
    expectKernelError(() => l.push(0.5, 1), "EINVAL", "addr 0.5");
    expectKernelError(() => l.push(0, PHYR_MAX_LEN + 1), "E2BIG", "PHYR_MAX_LEN", "0x2000000000000");
    expectKernelError(() => l.push(PHYR_ADDR_LIMIT - 4, 5), "EOVERFLOW", "0x1ffffffffffffc+0x5");
    expectKernelError(() => l.push(0x2000, 1, 0x10), "EINVAL", "flags 16", "PHYR_F_MASK 0xf");
    expectKernelError(() => l.push(0x2000, 1, -1), "EINVAL", "flags -1");
    expect(l.toArray()).toEqual(before);
    expect(l.totalLength).toBe(0x1000);
    expect(l.footprint().cBytes).toBe(16);
  });

  it("rejects out-of-range indices with ERANGE", () => {
    const l = PhysRangeList.from([{ addr: 0, len: 1, flags: 0 }]);
    expect(l.addr(0)).toBe(0);
    for (const i of [1, -1, 0.5, Number.NaN, 2 ** 32]) expectKernelError(() => l.addr(i), "ERANGE");
    expectKernelError(() => l.len(1), "ERANGE", "index 1 is not in 0..0");
    expectKernelError(() => l.flags(1), "ERANGE");
  });

  it("is a sane empty list", () => {
    const l = new PhysRangeList();
    expect(l.count).toBe(0);
    expect(l.totalLength).toBe(0);
    expect(l.toArray()).toEqual([]);
    expect(l.footprint()).toEqual({ cBytes: 0, jsBytes: 0 });
    expect(l.slice(0, 0).count).toBe(0);
    expect(l.coalesce().count).toBe(0);
    expect(l.splitSegments(SZ_64K, ULONG_MAX).count).toBe(0);
    expectKernelError(() => l.slice(0, 1), "EINVAL", "past total length 0x0");
    expectKernelError(() => l.addr(0), "ERANGE");
    expect(PhysRangeList.fromPfns([], 0, 0).count).toBe(0);
  });

  it("iterates with the generator in order", () => {
    const entries = [
      { addr: 0x5000, len: 10, flags: 1 },
      { addr: 0x1000, len: 20, flags: 0 },
    ];
    const l = PhysRangeList.from(entries);
    expect([...l]).toEqual(entries);
  });
});

describe("PhysRangeList.fromPfns", () => {
  it("matches the per-page reference for any pfn array, offset and size", () => {
    fc.assert(
      fc.property(
        arbPfns,
        fc.integer({ min: 0, max: PAGE_SIZE - 1 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.constantFrom(0, PHYR_F_PINNED),
        (spec, offset, frac, flags) => {
          const pfns = expandPfns(spec);
          const n = pfns.length;
          // size reaches into the last page: (n-1)*PAGE_SIZE - offset < size <= n*PAGE_SIZE - offset
          const lo = (n - 1) * PAGE_SIZE - offset + 1;
          const hi = n * PAGE_SIZE - offset;
          const size = Math.max(1, lo + Math.floor(frac * (hi - lo)));
          const want = refFromPfns(pfns, offset, size, flags);
          const got = PhysRangeList.fromPfns(pfns, offset, size, flags);
          expect(got.toArray()).toEqual(want);
          expect(got.totalLength).toBe(size);
          expect(got.footprint()).toEqual({ cBytes: 16 * want.length, jsBytes: 16 * want.length });
          // Typed-array inputs give the same result.
          expect(PhysRangeList.fromPfns(Float64Array.from(pfns), offset, size, flags).toArray()).toEqual(
            want,
          );
        },
      ),
    );
  });

  it("defaults to whole pages and merges a contiguous run into one range", () => {
    const l = PhysRangeList.fromPfns(Uint32Array.of(10, 11, 12, 20, 21, 5));
    expect(l.toArray()).toEqual([
      { addr: 10 * PAGE_SIZE, len: 3 * PAGE_SIZE, flags: 0 },
      { addr: 20 * PAGE_SIZE, len: 2 * PAGE_SIZE, flags: 0 },
      { addr: 5 * PAGE_SIZE, len: PAGE_SIZE, flags: 0 },
    ]);
  });

  it("trims the first and last page by offset and size", () => {
    const l = PhysRangeList.fromPfns([0x100, 0x101, 0x200], 512, 3 * PAGE_SIZE - 1024);
    expect(l.toArray()).toEqual([
      { addr: 0x100200, len: 2 * PAGE_SIZE - 512, flags: 0 },
      { addr: 0x200000, len: PAGE_SIZE - 512, flags: 0 },
    ]);
    const one = PhysRangeList.fromPfns([7], 100, 1);
    expect(one.toArray()).toEqual([{ addr: 7 * PAGE_SIZE + 100, len: 1, flags: 0 }]);
  });

  it("builds ranges longer than 4 GiB from long contiguous runs", () => {
    const n = SZ_4G / PAGE_SIZE + 3;
    const pfns = new Float64Array(n);
    for (let i = 0; i < n; i++) pfns[i] = 0x100000 + i;
    const l = PhysRangeList.fromPfns(pfns);
    expect(l.toArray()).toEqual([{ addr: 0x100000 * PAGE_SIZE, len: SZ_4G + 3 * PAGE_SIZE, flags: 0 }]);
  });

  it("rejects bad input with EINVAL naming the value", () => {
    expectKernelError(() => PhysRangeList.fromPfns([1], PAGE_SIZE), "EINVAL", "offset 4096", "0..4095");
    expectKernelError(() => PhysRangeList.fromPfns([1, 2], 0, 3 * PAGE_SIZE), "EINVAL", "exceeds 2 pages");
    expectKernelError(
      () => PhysRangeList.fromPfns([1, 2], 0, PAGE_SIZE),
      "EINVAL",
      "leaves page 1 of 2 unused",
    );
    expectKernelError(() => PhysRangeList.fromPfns([1, 2], 0, -1), "EINVAL", "size -1");
    expectKernelError(() => PhysRangeList.fromPfns([], 0, 5), "EINVAL", "0 pages");
    expectKernelError(() => PhysRangeList.fromPfns([1, -3]), "EINVAL", "pfns[1] = -3");
    expectKernelError(() => PhysRangeList.fromPfns([1.5]), "EINVAL", "pfns[0] = 1.5");
    expectKernelError(() => PhysRangeList.fromPfns([4, Number.NaN]), "EINVAL", "pfns[1] = NaN");
    const maxPfn = PHYR_ADDR_LIMIT / PAGE_SIZE - 1;
    expectKernelError(() => PhysRangeList.fromPfns([maxPfn + 1]), "EINVAL", "pfns[0]");
    // A run that walks past the last valid pfn is caught too.
    expectKernelError(() => PhysRangeList.fromPfns([maxPfn, maxPfn + 1]), "EINVAL", "pfns[1]");
    expectKernelError(() => PhysRangeList.fromPfns([maxPfn, maxPfn + 1, 5]), "EINVAL", "pfns[1]");
    expect(PhysRangeList.fromPfns([maxPfn]).addr(0)).toBe(PHYR_ADDR_LIMIT - PAGE_SIZE);
    expectKernelError(() => PhysRangeList.fromPfns([1], 0, PAGE_SIZE, 32), "EINVAL", "flags 32");
  });
});

describe("PhysRangeList.slice", () => {
  it("matches the reference for any byte window and preserves the bytes exactly", () => {
    fc.assert(
      fc.property(
        arbEntries(),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (entries, f1, f2) => {
          const l = PhysRangeList.from(entries);
          const t = total(entries);
          const offset = Math.floor(f1 * t);
          const length = Math.floor(f2 * (t - offset));
          const got = l.slice(offset, length);
          expect(got.toArray()).toEqual(refSlice(entries, offset, length));
          expect(got.totalLength).toBe(length);
          expect(got.footprint().jsBytes).toBe(16 * got.count);
          expect(l.toArray()).toEqual(entries); // source untouched
        },
      ),
    );
  });

  it("splits entries at both edges", () => {
    const l = PhysRangeList.from([
      { addr: 0x10000, len: 0x1000, flags: PHYR_F_PINNED },
      { addr: 0x50000, len: 0x2000, flags: 0 },
      { addr: 0x90000, len: 0x1000, flags: PHYR_F_MMIO },
    ]);
    expect(l.slice(0x800, 0x3000).toArray()).toEqual([
      { addr: 0x10800, len: 0x800, flags: PHYR_F_PINNED },
      { addr: 0x50000, len: 0x2000, flags: 0 },
      { addr: 0x90000, len: 0x800, flags: PHYR_F_MMIO },
    ]);
    expect(l.slice(0x1100, 0x10).toArray()).toEqual([{ addr: 0x50100, len: 0x10, flags: 0 }]);
    expect(l.slice(0x4000, 0).count).toBe(0);
  });

  it("rejects windows past the end and bad numbers with EINVAL", () => {
    const l = PhysRangeList.from([{ addr: 0, len: 0x1000, flags: 0 }]);
    expectKernelError(() => l.slice(0x800, 0x801), "EINVAL", "0x800+0x801", "total length 0x1000");
    expectKernelError(() => l.slice(0x1001, 0), "EINVAL", "0x1001+0x0");
    expectKernelError(() => l.slice(-1, 1), "EINVAL", "offset -1");
    expectKernelError(() => l.slice(0, 0.5), "EINVAL", "length 0.5");
  });
});

describe("PhysRangeList.coalesce", () => {
  it("matches the reference and never changes the byte sequence", () => {
    fc.assert(
      fc.property(arbEntries(), (entries) => {
        const got = PhysRangeList.from(entries).coalesce();
        const want = refCoalesce(entries);
        expect(got.toArray()).toEqual(want);
        expect(got.totalLength).toBe(total(entries));
        // Coalescing is idempotent.
        expect(got.coalesce().toArray()).toEqual(want);
      }),
    );
  });

  it("merges only touching ranges with equal flags", () => {
    const l = PhysRangeList.from([
      { addr: 0x1000, len: 0x1000, flags: 0 },
      { addr: 0x2000, len: 0x1000, flags: 0 }, // merges
      { addr: 0x3000, len: 0x1000, flags: PHYR_F_PINNED }, // flags differ
      { addr: 0x5000, len: 0x1000, flags: PHYR_F_PINNED }, // gap
      { addr: 0x4000, len: 0x1000, flags: PHYR_F_PINNED }, // before, not after: no merge
    ]);
    expect(l.coalesce().toArray()).toEqual([
      { addr: 0x1000, len: 0x2000, flags: 0 },
      { addr: 0x3000, len: 0x1000, flags: PHYR_F_PINNED },
      { addr: 0x5000, len: 0x1000, flags: PHYR_F_PINNED },
      { addr: 0x4000, len: 0x1000, flags: PHYR_F_PINNED },
    ]);
  });

  it("does not merge past PHYR_MAX_LEN", () => {
    const l = PhysRangeList.from([
      { addr: 0, len: PHYR_MAX_LEN, flags: 0 },
      { addr: PHYR_MAX_LEN, len: 10, flags: 0 },
    ]);
    expect(l.coalesce().count).toBe(2);
  });
});

describe("PhysRangeList.splitSegments", () => {
  const arbMax = fc.oneof(fc.integer({ min: 1, max: 1 << 20 }), fc.constantFrom(PAGE_SIZE, SZ_64K, U32_MAX));
  const arbMask = fc.oneof(
    fc.integer({ min: 0, max: 40 }).map((k) => 2 ** k - 1),
    fc.constantFrom(ULONG_MAX, U32_MAX, 2 ** 53 - 1),
  );

  it("matches the reference, respects max_segment_size and the boundary, preserves bytes", () => {
    fc.assert(
      fc.property(
        arbEntries(1 << 18),
        arbMax,
        arbMask.filter((m) => m >= 4095),
        (entries, max, mask) => {
          const got = PhysRangeList.from(entries).splitSegments(max, mask);
          const want = refSplit(entries, max, mask);
          expect(got.toArray()).toEqual(want);
          expect(got.totalLength).toBe(total(entries));
          const bounded = mask < Number.MAX_SAFE_INTEGER;
          got.forEach((a, len) => {
            if (len > max) throw new Error(`segment ${len} > max ${max}`);
            if (bounded && Math.floor(a / (mask + 1)) !== Math.floor((a + len - 1) / (mask + 1)))
              throw new Error(`segment ${a}+${len} crosses boundary ${mask}`);
          });
        },
      ),
    );
  });

  it("cuts at the boundary and at max_segment_size, whichever comes first", () => {
    const l = PhysRangeList.from([{ addr: 0xf000, len: 0x13000, flags: PHYR_F_PINNED }]);
    expect(l.splitSegments(0x8000, 0xffff).toArray()).toEqual([
      { addr: 0xf000, len: 0x1000, flags: PHYR_F_PINNED }, // boundary 0x10000
      { addr: 0x10000, len: 0x8000, flags: PHYR_F_PINNED }, // max size
      { addr: 0x18000, len: 0x8000, flags: PHYR_F_PINNED }, // max size, ends at boundary 0x20000
      { addr: 0x20000, len: 0x2000, flags: PHYR_F_PINNED },
    ]);
  });

  it("splits ranges longer than 4 GiB at U32_MAX like dma_buf_phys_vec_to_sgt, and not at all with ULONG_MAX", () => {
    const l = PhysRangeList.from([{ addr: 0x1000, len: 2 * SZ_4G, flags: PHYR_F_MMIO }]);
    expect(l.splitSegments(U32_MAX, ULONG_MAX).toArray()).toEqual([
      { addr: 0x1000, len: U32_MAX, flags: PHYR_F_MMIO },
      { addr: 0x1000 + U32_MAX, len: U32_MAX, flags: PHYR_F_MMIO },
      { addr: 0x1000 + 2 * U32_MAX, len: 2, flags: PHYR_F_MMIO },
    ]);
    expect(l.splitSegments(2 ** 40, ULONG_MAX).toArray()).toEqual(l.toArray());
    // A 4 GiB boundary cuts the same range where it crosses 0x100000000.
    expect(l.splitSegments(2 ** 40, U32_MAX).toArray()).toEqual([
      { addr: 0x1000, len: SZ_4G - 0x1000, flags: PHYR_F_MMIO },
      { addr: SZ_4G, len: SZ_4G, flags: PHYR_F_MMIO },
      { addr: 2 * SZ_4G, len: 0x1000, flags: PHYR_F_MMIO },
    ]);
  });

  it("rejects bad limits with EINVAL and huge results with E2BIG before allocating", () => {
    const l = PhysRangeList.from([{ addr: 0, len: 2 ** 40 + 1, flags: 0 }]);
    expectKernelError(() => l.splitSegments(0, ULONG_MAX), "EINVAL", "max_segment_size 0");
    expectKernelError(() => l.splitSegments(1.5, ULONG_MAX), "EINVAL", "max_segment_size 1.5");
    expectKernelError(() => l.splitSegments(4096, 0x1800), "EINVAL", "segment_boundary_mask 6144");
    expectKernelError(() => l.splitSegments(4096, -1), "EINVAL", "segment_boundary_mask -1");
    expectKernelError(() => l.splitSegments(4096, Number.NaN), "EINVAL", "NaN");
    expectKernelError(
      () => l.splitSegments(4096, ULONG_MAX),
      "E2BIG",
      "268435457 segments",
      "PHYR_MAX_ENTRIES",
    );
    expect(l.toArray()).toEqual([{ addr: 0, len: 2 ** 40 + 1, flags: 0 }]);
  });

  it("split followed by coalesce restores a single range", () => {
    fc.assert(
      fc.property(arbEntries(1 << 22), arbMax, (entries, max) => {
        const l = PhysRangeList.from(entries);
        expect(l.splitSegments(max, ULONG_MAX).coalesce().toArray()).toEqual(refCoalesce(entries));
      }),
    );
  });
});

describe("KernelError contract", () => {
  it("errors carry the errno number", () => {
    const e = expectKernelError(() => new PhysRangeList().push(0, 0), "EINVAL");
    expect(e.code).toBe(22);
    expect(isKernelError(e, "EINVAL")).toBe(true);
    expect(e.message.startsWith("phyr: phys_vec[0]")).toBe(true);
  });
});
