const SIZE_RE = /^(0x[0-9a-f]+|[0-9]+)\s*(?:([kmgtp])(?:i?b)?|b)?$/i;
const SHIFT: Record<string, number> = { k: 10, m: 20, g: 30, t: 40, p: 50 };

/**
 * Parses a size or address from a machine description: a non-negative integer, or a string such as
 * `"4096"`, `"0x80000000"`, `"512M"`, `"4G"`, `"64KiB"` (binary suffixes K, M, G, T, P, optionally
 * followed by `B` or `iB`). Returns `undefined` for anything else, including values at or above 2^53.
 * Kernel counterpart: `memparse()` (lib/cmdline.c), which reads `cma=256M` the same way.
 */
export function parseSize(input: unknown): number | undefined {
  if (typeof input === "number") return Number.isSafeInteger(input) && input >= 0 ? input : undefined;
  if (typeof input !== "string") return undefined;
  const m = SIZE_RE.exec(input.trim());
  if (!m) return undefined;
  const digits = m[1] as string;
  const base = digits.toLowerCase().startsWith("0x") ? Number.parseInt(digits.slice(2), 16) : Number(digits);
  const suffix = m[2]?.toLowerCase();
  const value = suffix === undefined ? base : base * 2 ** (SHIFT[suffix] ?? 0);
  return Number.isSafeInteger(value) ? value : undefined;
}
