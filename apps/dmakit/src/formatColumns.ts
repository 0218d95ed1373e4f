/** Lays out rows of cells in left-aligned columns two spaces apart, one line per row. */
export function formatColumns(rows: readonly (readonly string[])[], indent = ""): string[] {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows.map(
    (r) =>
      indent +
      r
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
  );
}
