/**
 * Small statistics helpers shared by the benchmarks: order statistics over latency samples
 * (milliseconds). Percentiles interpolate linearly between closest ranks (the "type 7" rule,
 * numpy's default), so the median of an even count is the mean of the two middle values.
 */

export interface Summary {
  n: number;
  min: number;
  median: number;
  p95: number;
  max: number;
  mean: number;
}

function sorted(samples: readonly number[]): number[] {
  if (samples.length === 0) throw new RangeError('no samples');
  if (samples.some((x) => !Number.isFinite(x))) throw new RangeError('samples must be finite numbers');
  return [...samples].sort((a, b) => a - b);
}

/** Percentile of already-sorted values, `p` in [0, 100]. */
function percentileOfSorted(s: readonly number[], p: number): number {
  const rank = (p / 100) * (s.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return s[lo]! + (s[hi]! - s[lo]!) * (rank - lo);
}

/** The p-th percentile (0–100) of the samples. Throws on an empty list or p out of range. */
export function percentile(samples: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be in [0, 100], got ${p}`);
  return percentileOfSorted(sorted(samples), p);
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}

export function mean(samples: readonly number[]): number {
  if (samples.length === 0) throw new RangeError('no samples');
  return samples.reduce((a, b) => a + b, 0) / samples.length;
}

export function summarize(samples: readonly number[]): Summary {
  const s = sorted(samples);
  return {
    n: s.length,
    min: s[0]!,
    median: percentileOfSorted(s, 50),
    p95: percentileOfSorted(s, 95),
    max: s[s.length - 1]!,
    mean: mean(s),
  };
}

/** Rounds to `digits` decimals (for printing and JSON output; keeps numbers numbers). */
export function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
