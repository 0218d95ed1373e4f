import { isKernelError } from "@dmakit/core";
import { SparseStore, STORE_CHUNK_SIZE } from "@dmakit/mm-pages";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

describe("SparseStore", () => {
  it("reads untouched bytes as zero without allocating", () => {
    const s = new SparseStore(1 << 30);
    const buf = new Uint8Array(100).fill(7);
    s.read(12345, buf);
    expect(buf.every((b) => b === 0)).toBe(true);
    expect(s.residentBytes).toBe(0);
  });

  it("writes across a chunk boundary land byte-exact and allocate only touched chunks", () => {
    const s = new SparseStore(4 * STORE_CHUNK_SIZE);
    const src = Uint8Array.from({ length: 10 }, (_, i) => i + 1);
    s.write(STORE_CHUNK_SIZE - 5, src);
    const back = new Uint8Array(12);
    s.read(STORE_CHUNK_SIZE - 6, back);
    expect([...back]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0]);
    expect(s.residentBytes).toBe(2 * STORE_CHUNK_SIZE);
  });

  it("zero-fill of a whole chunk releases its backing", () => {
    const s = new SparseStore(2 * STORE_CHUNK_SIZE);
    s.fill(0, 2 * STORE_CHUNK_SIZE, 0xaa);
    expect(s.residentBytes).toBe(2 * STORE_CHUNK_SIZE);
    s.fill(0, STORE_CHUNK_SIZE + 3, 0);
    expect(s.residentBytes).toBe(STORE_CHUNK_SIZE);
    // Bytes CHUNK..CHUNK+2 were zeroed, CHUNK+3 kept: little-endian 0xaa000000.
    expect(s.readU32(STORE_CHUNK_SIZE)).toBe(0xaa000000);
    expect(s.readU32(STORE_CHUNK_SIZE + 4)).toBe(0xaaaaaaaa);
  });

  it("u32 accessors are little-endian and exact for values with the top bit set", () => {
    const s = new SparseStore(64);
    s.writeU32(8, 0xdeadbeef);
    const b = new Uint8Array(4);
    s.read(8, b);
    expect([...b]).toEqual([0xef, 0xbe, 0xad, 0xde]);
    expect(s.readU32(8)).toBe(0xdeadbeef);
    s.writeU32(13, 0x80000001); // unaligned path
    expect(s.readU32(13)).toBe(0x80000001);
  });

  it("rejects accesses outside the store with EFAULT and changes nothing", () => {
    const s = new SparseStore(4096);
    let err: unknown;
    try {
      s.write(4090, new Uint8Array(10).fill(1));
    } catch (e) {
      err = e;
    }
    expect(isKernelError(err, "EFAULT")).toBe(true);
    expect(s.residentBytes).toBe(0);
    expect(() => new SparseStore(2 * STORE_CHUNK_SIZE).view(STORE_CHUNK_SIZE - 2, 4)).toThrow(
      /crosses a chunk/,
    );
  });

  it("agrees with a flat byte array under random writes, fills and reads", () => {
    const size = 3 * STORE_CHUNK_SIZE + 123;
    const op = fc.oneof(
      fc.record({
        kind: fc.constant("write" as const),
        at: fc.nat(size - 1),
        len: fc.integer({ min: 1, max: 5000 }),
        seed: fc.nat(255),
      }),
      fc.record({
        kind: fc.constant("fill" as const),
        at: fc.nat(size - 1),
        len: fc.integer({ min: 1, max: 80000 }),
        seed: fc.nat(3),
      }),
      fc.record({
        kind: fc.constant("u32" as const),
        at: fc.nat(size - 4),
        len: fc.constant(4),
        seed: fc.nat(0xffffffff),
      }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const s = new SparseStore(size);
        const ref = new Uint8Array(size);
        for (const o of ops) {
          const len = Math.min(o.len, size - o.at);
          if (o.kind === "write") {
            const src = Uint8Array.from({ length: len }, (_, i) => (o.seed + i * 7) & 0xff);
            s.write(o.at, src);
            ref.set(src, o.at);
          } else if (o.kind === "fill") {
            const v = o.seed === 0 ? 0 : o.seed * 60;
            s.fill(o.at, len, v);
            ref.fill(v, o.at, o.at + len);
          } else {
            s.writeU32(o.at, o.seed);
            new DataView(ref.buffer).setUint32(o.at, o.seed, true);
          }
        }
        const all = new Uint8Array(size);
        s.read(0, all);
        expect(Buffer.compare(Buffer.from(all), Buffer.from(ref))).toBe(0);
      }),
      { numRuns: 60 },
    );
  });
});
