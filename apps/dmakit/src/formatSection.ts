import { formatColumns } from "./formatColumns.js";

/**
 * A report section: a blank line, the title, then `rows` in indented columns, or "(none)" when
 * there are no rows (an empty table would leave the title dangling).
 */
export function formatSection(title: string, rows: readonly (readonly string[])[]): string[] {
  return ["", title, ...(rows.length === 0 ? ["  (none)"] : formatColumns(rows, "  "))];
}
