/**
 * What a remote provider's failed answer means, decided before anything reached the client:
 * - retry on the same provider (bounded, with backoff that honours the upstream's Retry-After):
 *   a connect error, a timeout, a dropped connection, a 5xx, a 429, and an attested backend
 *   whose TLS key is not pinned (the retry walks the rotation index, so it reaches another
 *   backend; it never goes to the same key in plaintext);
 * - move to the next replica at once: 401/403 (our key for it is wrong), 402 (its credit), 404/405
 *   (a wrong base URL), 408, 415, an answer we cannot read, an attested answer whose signature
 *   does not check out, and "this model does not exist here"
 *   (a stale catalog, not the client's fault);
 * - answer the client at once with the upstream's message: any other 4xx (the request itself is
 *   at fault: another provider would refuse it too).
 * Failures that retry or move on count toward the provider's demotion; the client's own errors
 * and a stale catalog do not. Pure and table-tested.
 */
import type { UpstreamCategory } from '../common/failures.js';

export type UpstreamFailure =
  | { kind: 'http'; status: number; retryAfterSeconds?: number; modelNotFound?: boolean }
  | { kind: 'transport'; category: Exclude<UpstreamCategory, 'status'> };

export type UpstreamVerdict = 'retry_same' | 'next_replica' | 'client';

export interface Classified {
  verdict: UpstreamVerdict;
  /** Counts toward demotion. */
  counts: boolean;
}

/** Retries on one provider before moving on (so at most 1 + this many calls). */
export const MAX_SAME_REPLICA_RETRIES = 2;
/** An upstream asking for a longer wait than this is left for the next replica instead. */
export const MAX_RETRY_AFTER_S = 8;
const CONNECT_BACKOFF_MS = { first: 250, max: 2000 };
const RATE_LIMIT_BACKOFF_MS = { first: 1000, max: 8000 };

export function classifyUpstreamFailure(f: UpstreamFailure): Classified {
  if (f.kind === 'transport') {
    return f.category === 'decode' || f.category === 'verify' ? { verdict: 'next_replica', counts: true } : { verdict: 'retry_same', counts: true };
  }
  const s = f.status;
  if (s === 429 || s >= 500) return { verdict: 'retry_same', counts: true };
  if (f.modelNotFound) return { verdict: 'next_replica', counts: false };
  // The provider's own trouble, not the request's: our key (401/403), its credit (402), a wrong
  // base URL or method (404/405), a content type it does not take (415), its own timeout (408).
  if ([401, 402, 403, 404, 405, 408, 415].includes(s)) return { verdict: 'next_replica', counts: true };
  if (s >= 400) return { verdict: 'client', counts: false };
  // A 1xx/2xx/3xx that is not a usable answer (a redirect, an empty body): the provider's fault.
  return { verdict: 'next_replica', counts: true };
}

/**
 * The pause before retry number `retry` (1-based) on the same provider, or null when it should
 * not be retried there (out of retries, or the upstream asks for a longer wait than is worth it).
 */
export function retryDelayMs(retry: number, f: UpstreamFailure): number | null {
  if (retry > MAX_SAME_REPLICA_RETRIES) return null;
  if (f.kind === 'http' && f.retryAfterSeconds !== undefined) {
    return f.retryAfterSeconds > MAX_RETRY_AFTER_S ? null : Math.max(0, f.retryAfterSeconds * 1000);
  }
  const b = f.kind === 'http' && f.status === 429 ? RATE_LIMIT_BACKOFF_MS : CONNECT_BACKOFF_MS;
  return Math.min(b.max, b.first * 2 ** (retry - 1));
}

/** Reads a Retry-After header (seconds, or an HTTP date against `now`); undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now: number): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, Math.ceil((at - now) / 1000)) : undefined;
}

/** Does an upstream error body say "no such model" (as OpenAI-compatible servers word it)? */
export function saysModelNotFound(status: number, code: unknown, message: unknown): boolean {
  if (status !== 404 && status !== 400) return false;
  if (code === 'model_not_found') return true;
  const m = typeof message === 'string' ? message.toLowerCase() : '';
  return m.includes('model') && (m.includes('does not exist') || m.includes('not found'));
}
