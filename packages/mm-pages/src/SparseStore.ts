import { KernelError } from "@dmakit/core";

/**
 * Size of one backing chunk: big enough for fast bulk copies, small enough that scattered touches stay cheap.
 * Model-only: storage of simulated RAM.
 */
export const STORE_CHUNK_SHIFT = 16;
/** `1 << STORE_CHUNK_SHIFT`. Model-only: storage of simulated RAM. */
export const STORE_CHUNK_SIZE = 1 << STORE_CHUNK_SHIFT;
const CHUNK_MASK = STORE_CHUNK_SIZE - 1;

/**
 * Byte-exact sparse storage for a span of simulated physical memory (RAM, or a device's BAR
 * memory). Chunks of {@link STORE_CHUNK_SIZE} bytes are allocated on first write; untouched bytes
 * read as zeros without allocating. Addresses are offsets into the store (0-based).
 *
 * The kernel has no counterpart: this is the hardware (DRAM cells) that the model's page tables,
 * DMA engines and CPU caches read and write.
 */
export class SparseStore {
  readonly size: number;
  private readonly chunks = new Map<number, Uint8Array>();
  private lastIndex = -1;
  private lastChunk: Uint8Array | undefined;

  constructor(size: number) {
    if (!Number.isSafeInteger(size) || size <= 0)
      throw new KernelError("EINVAL", `sparse-store: size ${size} is not a positive integer`);
    this.size = size;
  }

  /** Bytes actually allocated for backing (chunks touched by writes). */
  get residentBytes(): number {
    return this.chunks.size * STORE_CHUNK_SIZE;
  }

  /** Copies `dst.length` bytes starting at `offset` into `dst`. */
  read(offset: number, dst: Uint8Array): void {
    this.check(offset, dst.length);
    let done = 0;
    while (done < dst.length) {
      const at = offset + done;
      const inChunk = at & CHUNK_MASK;
      const n = Math.min(STORE_CHUNK_SIZE - inChunk, dst.length - done);
      const chunk = this.peek(Math.floor(at / STORE_CHUNK_SIZE));
      if (chunk === undefined) dst.fill(0, done, done + n);
      else dst.set(chunk.subarray(inChunk, inChunk + n), done);
      done += n;
    }
  }

  /** Copies `src` into the store at `offset`. */
  write(offset: number, src: Uint8Array): void {
    this.check(offset, src.length);
    let done = 0;
    while (done < src.length) {
      const at = offset + done;
      const inChunk = at & CHUNK_MASK;
      const n = Math.min(STORE_CHUNK_SIZE - inChunk, src.length - done);
      this.touch(Math.floor(at / STORE_CHUNK_SIZE)).set(src.subarray(done, done + n), inChunk);
      done += n;
    }
  }

  /** Sets `len` bytes at `offset` to `value`; filling untouched chunks with zero allocates nothing. */
  fill(offset: number, len: number, value: number): void {
    this.check(offset, len);
    let done = 0;
    while (done < len) {
      const at = offset + done;
      const inChunk = at & CHUNK_MASK;
      const n = Math.min(STORE_CHUNK_SIZE - inChunk, len - done);
      const index = Math.floor(at / STORE_CHUNK_SIZE);
      if (value === 0) {
        const chunk = this.peek(index);
        if (chunk !== undefined) {
          if (n === STORE_CHUNK_SIZE) this.drop(index);
          else chunk.fill(0, inChunk, inChunk + n);
        }
      } else {
        this.touch(index).fill(value, inChunk, inChunk + n);
      }
      done += n;
    }
  }

  /** Copies `len` bytes from `src` to `dst` within the store (memmove semantics). */
  copyWithin(dst: number, src: number, len: number): void {
    const tmp = new Uint8Array(len);
    this.read(src, tmp);
    this.write(dst, tmp);
  }

  /** Little-endian 32-bit read. */
  readU32(offset: number): number {
    if ((offset & 3) === 0 && offset + 4 <= this.size && offset >= 0) {
      const chunk = this.peek(Math.floor(offset / STORE_CHUNK_SIZE));
      if (chunk === undefined) return 0;
      const i = offset & CHUNK_MASK;
      return (
        ((chunk[i] as number) | ((chunk[i + 1] as number) << 8) | ((chunk[i + 2] as number) << 16)) +
        (chunk[i + 3] as number) * 0x1000000
      );
    }
    const b = new Uint8Array(4);
    this.read(offset, b);
    return (
      ((b[0] as number) | ((b[1] as number) << 8) | ((b[2] as number) << 16)) + (b[3] as number) * 0x1000000
    );
  }

  /** Little-endian 32-bit write. */
  writeU32(offset: number, value: number): void {
    const v = value >>> 0;
    if ((offset & 3) === 0 && offset + 4 <= this.size && offset >= 0) {
      const chunk = this.touch(Math.floor(offset / STORE_CHUNK_SIZE));
      const i = offset & CHUNK_MASK;
      chunk[i] = v & 0xff;
      chunk[i + 1] = (v >>> 8) & 0xff;
      chunk[i + 2] = (v >>> 16) & 0xff;
      chunk[i + 3] = v >>> 24;
      return;
    }
    this.write(offset, new Uint8Array([v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24]));
  }

  /**
   * A live view of `len` bytes at `offset`, allocating backing; the range must lie within one
   * chunk (any naturally aligned range of up to {@link STORE_CHUNK_SIZE} bytes does). Hot paths
   * (page-table walkers, page copies) use it to avoid a copy.
   */
  view(offset: number, len: number): Uint8Array {
    this.check(offset, len);
    const inChunk = offset & CHUNK_MASK;
    if (inChunk + len > STORE_CHUNK_SIZE)
      throw new KernelError("EINVAL", `sparse-store: view 0x${offset.toString(16)}+${len} crosses a chunk`);
    return this.touch(Math.floor(offset / STORE_CHUNK_SIZE)).subarray(inChunk, inChunk + len);
  }

  /** Drops every chunk: the whole store reads as zeros again. */
  clear(): void {
    this.chunks.clear();
    this.lastIndex = -1;
    this.lastChunk = undefined;
  }

  private check(offset: number, len: number): void {
    if (!(offset >= 0 && len >= 0 && offset + len <= this.size))
      throw new KernelError(
        "EFAULT",
        `sparse-store: access 0x${offset.toString(16)}+${len} outside store of ${this.size} bytes`,
      );
  }

  private peek(index: number): Uint8Array | undefined {
    if (index === this.lastIndex) return this.lastChunk;
    const c = this.chunks.get(index);
    if (c !== undefined) {
      this.lastIndex = index;
      this.lastChunk = c;
    }
    return c;
  }

  private touch(index: number): Uint8Array {
    let c = this.peek(index);
    if (c === undefined) {
      c = new Uint8Array(STORE_CHUNK_SIZE);
      this.chunks.set(index, c);
      this.lastIndex = index;
      this.lastChunk = c;
    }
    return c;
  }

  private drop(index: number): void {
    this.chunks.delete(index);
    if (this.lastIndex === index) {
      this.lastIndex = -1;
      this.lastChunk = undefined;
    }
  }
}
