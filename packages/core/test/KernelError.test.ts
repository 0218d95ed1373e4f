import { describe, expect, it } from "vitest";
import { ERRNO, errnoName, isKernelError, KernelError } from "../src/index.js";

describe("KernelError", () => {
  it("carries errno name, number, negative return and message", () => {
    const e = new KernelError("ENOMEM", "mm-pages: alloc_pages: order 11 exceeds MAX_PAGE_ORDER 10");
    expect(e).toBeInstanceOf(Error);
    expect(e).toBeInstanceOf(KernelError);
    expect(e.name).toBe("KernelError");
    expect(e.errno).toBe("ENOMEM");
    expect(e.code).toBe(12);
    expect(e.ret).toBe(-12);
    expect(e.message).toBe("mm-pages: alloc_pages: order 11 exceeds MAX_PAGE_ORDER 10 (ENOMEM)");
    expect(new KernelError("EREMOTEIO", "x").ret).toBe(-121);
  });

  it("isKernelError checks the errno when given", () => {
    const e = new KernelError("EINVAL", "bad");
    expect(isKernelError(e)).toBe(true);
    expect(isKernelError(e, "EINVAL")).toBe(true);
    expect(isKernelError(e, "ENOMEM")).toBe(false);
    expect(isKernelError(new Error("x"))).toBe(false);
    expect(isKernelError(undefined)).toBe(false);
  });

  it("errno table matches the kernel and maps back", () => {
    expect(ERRNO.EBUSY).toBe(16);
    expect(ERRNO.EOPNOTSUPP).toBe(95);
    expect(ERRNO.ERESTARTSYS).toBe(512);
    expect(errnoName(-22)).toBe("EINVAL");
    expect(errnoName(121)).toBe("EREMOTEIO");
    expect(errnoName(3)).toBeUndefined();
    for (const [name, v] of Object.entries(ERRNO)) expect(errnoName(v)).toBe(name);
  });
});

describe("errnoOf", () => {
  it("returns the KernelError's errno, null when the call returns, and rethrows anything else", async () => {
    const { errnoOf, KernelError } = await import("@dmakit/core");
    expect(
      errnoOf(() => {
        throw new KernelError("EBUSY", "x: busy");
      }),
    ).toBe("EBUSY");
    expect(errnoOf(() => 42)).toBeNull();
    expect(() =>
      errnoOf(() => {
        throw new TypeError("not a kernel error");
      }),
    ).toThrow(TypeError);
  });
});
