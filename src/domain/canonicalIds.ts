/**
 * A provider's canonical ids: which public model id each of its upstream slugs serves, written
 * as a list `canonical=slug,canonical2=slug2,bare` (the syntax operators already use for the
 * gateway this project is modelled on). Rules, each pinned by a test:
 * - entries are separated by commas; whitespace around entries and around `=` is trimmed;
 * - empty entries are dropped, so an unset or empty list is an empty map;
 * - an entry splits at its FIRST `=`: `a=b=c` maps canonical `a` to slug `b=c`;
 * - a bare entry maps a canonical id to the same slug;
 * - an entry with an empty side (`=x`, `x=`) is refused by name;
 * - a canonical id given twice keeps its FIRST slug, and the caller is warned (a later entry
 *   silently winning would reroute a model on a config reorder).
 * The client only ever sees the canonical id; the upstream only ever gets its slug.
 */

export interface CanonicalEntry {
  canonical: string;
  slug: string;
}

export interface ParsedCanonicalMap {
  /** In list order, duplicates removed. */
  entries: CanonicalEntry[];
  /** Human-readable notes about dropped duplicates (the caller logs them). */
  warnings: string[];
  /** Entries that could not be read (the caller refuses the config). */
  errors: string[];
}

export function parseCanonicalMap(spec: string | null | undefined): ParsedCanonicalMap {
  const out: ParsedCanonicalMap = { entries: [], warnings: [], errors: [] };
  if (!spec) return out;
  const seen = new Map<string, string>();
  for (const raw of spec.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const at = entry.indexOf('=');
    const canonical = (at < 0 ? entry : entry.slice(0, at)).trim();
    const slug = (at < 0 ? entry : entry.slice(at + 1)).trim();
    if (canonical === '' || slug === '') {
      out.errors.push(`'${entry}': both sides of '=' must be non-empty`);
      continue;
    }
    const first = seen.get(canonical);
    if (first !== undefined) {
      out.warnings.push(`canonical id '${canonical}' is listed twice: keeping '${first}', ignoring '${slug}'`);
      continue;
    }
    seen.set(canonical, slug);
    out.entries.push({ canonical, slug });
  }
  return out;
}

/** The list form of a map (what `fleet providers list` prints and the admin API returns). */
export function formatCanonicalMap(entries: readonly CanonicalEntry[]): string {
  return entries.map((e) => (e.canonical === e.slug ? e.canonical : `${e.canonical}=${e.slug}`)).join(',');
}
