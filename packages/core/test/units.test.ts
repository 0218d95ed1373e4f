import { describe, expect, it } from "vitest";
import {
  alignDown,
  alignUp,
  bitMask,
  ffs,
  fls,
  formatBytes,
  getOrder,
  hex,
  hex16,
  isAligned,
  isPowerOf2,
  minNotZero,
  orderBase2,
  Prng,
  pageAlign,
  pfnDown,
  pfnUp,
  roundupPowOfTwo,
  SZ_4G,
  ULONG_MAX,
} from "../src/index.js";

describe("units", () => {
  it("ffs / fls on numbers above 2^32", () => {
    expect(ffs(0)).toBe(-1);
    expect(ffs(1)).toBe(0);
    expect(ffs(0x80000000)).toBe(31);
    expect(ffs(SZ_4G)).toBe(32);
    expect(ffs(2 ** 52 + 2 ** 40)).toBe(40);
    expect(ffs(2 ** 40 + 8)).toBe(3);
    expect(fls(0)).toBe(-1);
    expect(fls(1)).toBe(0);
    expect(fls(0xffffffff)).toBe(31);
    expect(fls(SZ_4G)).toBe(32);
    expect(fls(2 ** 40 - 1)).toBe(39);
    expect(fls(2 ** 53 - 1)).toBe(52);
    expect(fls(2 ** 52)).toBe(52);
    // Wide masks: bitMask(64) = ULONG_MAX behaves as all ones.
    expect(fls(ULONG_MAX)).toBe(63);
    expect(ffs(ULONG_MAX)).toBe(0);
    expect(fls(bitMask(57))).toBe(56);
  });

  it("ffs/fls agree with a BigInt reference", () => {
    const prng = new Prng(53);
    for (let i = 0; i < 500; i++) {
      const x = prng.below(2 ** (1 + (i % 53)));
      if (x === 0) continue;
      const b = BigInt(x);
      expect(fls(x)).toBe(b.toString(2).length - 1);
      const bin = b.toString(2);
      expect(ffs(x)).toBe(bin.length - 1 - bin.lastIndexOf("1"));
    }
  });

  it("order_base_2, get_order, roundup_pow_of_two, is_power_of_2", () => {
    expect(orderBase2(0)).toBe(0);
    expect(orderBase2(1)).toBe(0);
    expect(orderBase2(2)).toBe(1);
    expect(orderBase2(3)).toBe(2);
    expect(orderBase2(2 ** 40)).toBe(40);
    expect(orderBase2(2 ** 40 + 1)).toBe(41);
    expect(getOrder(1)).toBe(0);
    expect(getOrder(4096)).toBe(0);
    expect(getOrder(4097)).toBe(1);
    expect(getOrder(3 * 4096)).toBe(2);
    expect(getOrder(4 * 1024 * 1024)).toBe(10);
    expect(roundupPowOfTwo(5)).toBe(8);
    expect(roundupPowOfTwo(2 ** 33 + 1)).toBe(2 ** 34);
    expect(isPowerOf2(2 ** 52)).toBe(true);
    expect(isPowerOf2(2 ** 53 - 1)).toBe(false);
    expect(isPowerOf2(0.5)).toBe(false);
    expect(isPowerOf2(0)).toBe(false);
    expect(isPowerOf2(6)).toBe(false);
    expect(isPowerOf2(ULONG_MAX)).toBe(false);
  });

  it("align helpers", () => {
    expect(alignUp(0x1001, 0x1000)).toBe(0x2000);
    expect(alignUp(0x1000, 0x1000)).toBe(0x1000);
    expect(alignDown(0x1fff, 0x1000)).toBe(0x1000);
    expect(alignUp(2 ** 52 + 1, 2 ** 21)).toBe(2 ** 52 + 2 ** 21);
    expect(alignDown(2 ** 52 + 2 ** 21 - 1, 2 ** 21)).toBe(2 ** 52);
    expect(isAligned(2 ** 40, 2 ** 30)).toBe(true);
    expect(isAligned(2 ** 40 + 4096, 2 ** 30)).toBe(false);
    expect(pageAlign(1)).toBe(4096);
    expect(pfnDown(0x1fff)).toBe(1);
    expect(pfnUp(0x1001)).toBe(2);
    expect(minNotZero(0, 5)).toBe(5);
    expect(minNotZero(7, 0)).toBe(7);
    expect(minNotZero(7, 5)).toBe(5);
  });

  it("hex of ULONG_MAX and wide masks", () => {
    expect(hex(ULONG_MAX)).toBe("0xffffffffffffffff");
    expect(hex(bitMask(64))).toBe("0xffffffffffffffff");
    expect(hex(bitMask(32))).toBe("0xffffffff");
    expect(hex(bitMask(48))).toBe("0xffffffffffff");
    expect(hex(bitMask(53))).toBe("0x1fffffffffffff");
    expect(hex(bitMask(57))).toBe("0x1ffffffffffffff");
    expect(hex(bitMask(60))).toBe("0xfffffffffffffff");
    expect(hex16(bitMask(60))).toBe("0x0fffffffffffffff");
    expect(hex16(0x1000)).toBe("0x0000000000001000");
    expect(hex(0)).toBe("0x0");
    expect(bitMask(0)).toBe(0);
    expect(formatBytes(4096)).toBe("4 KiB");
    expect(formatBytes(1.5 * 1024 * 1024)).toBe("1.5 MiB");
  });
});
