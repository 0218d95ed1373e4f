import { describe, expect, it } from "vitest";
import { parseSize } from "../src/parseSize.js";

describe("parseSize", () => {
  it("reads numbers, decimal and hex strings, binary suffixes", () => {
    expect(parseSize(4096)).toBe(4096);
    expect(parseSize("4096")).toBe(4096);
    expect(parseSize("0x80000000")).toBe(0x8000_0000);
    expect(parseSize("0X1f")).toBe(31);
    expect(parseSize("512M")).toBe(512 * 2 ** 20);
    expect(parseSize("4G")).toBe(2 ** 32);
    expect(parseSize("14g")).toBe(14 * 2 ** 30);
    expect(parseSize("64KiB")).toBe(65536);
    expect(parseSize("2MB")).toBe(2 * 2 ** 20);
    expect(parseSize("1T")).toBe(2 ** 40);
    expect(parseSize("0x10M")).toBe(16 * 2 ** 20);
    expect(parseSize("100B")).toBe(100);
  });

  it("rejects everything else", () => {
    for (const bad of [
      "4Q",
      "",
      "G",
      "-1",
      "1.5G",
      "4 G B",
      "0x",
      "ten",
      "8P",
      null,
      true,
      [],
      {},
      -4096,
      1.5,
      2 ** 53,
    ])
      expect(parseSize(bad), JSON.stringify(bad)).toBeUndefined();
  });
});
