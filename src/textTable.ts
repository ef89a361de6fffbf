/**
 * The fixed-width tables of the CLI (`fleet status`, `pools`, `keys list`, `providers list`,
 * `models list`): columns padded to their widest cell, two spaces apart, no trailing blanks.
 * Pure, shared so every listing lines up the same way.
 */
export function renderTable(rows: ReadonlyArray<readonly string[]>): string {
  const widths = (rows[0] ?? []).map((_, col) => Math.max(...rows.map((r) => (r[col] ?? '').length)));
  return rows.map((r) => r.map((cell, col) => cell.padEnd(widths[col]!)).join('  ').trimEnd()).join('\n') + '\n';
}
