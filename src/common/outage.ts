/**
 * Dependency outages: a database or Temporal connection failure means "retry shortly", not "bug".
 * The API answers them 503 + Retry-After (src/api/errors.ts), and bookkeeping that must not be
 * lost — settling a budget reservation after the answer went out — retries through them instead
 * of leaving the hold to the expiry sweep.
 */

/**
 * Is this a database or Temporal connection failure (the dependency is down or restarting)?
 * Then the request can succeed later: 503 + Retry-After, never a 500. Matched on the driver's
 * codes, not on messages: PostgreSQL SQLSTATE class 08 (connection exception), 57P0x (server
 * shutting down / restarting), 53300 (too many connections); Node socket errors; gRPC
 * UNAVAILABLE / DEADLINE_EXCEEDED from the Temporal client; pg's "Connection terminated".
 */
export function isDependencyOutage(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 6; depth++, e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (/^08/.test(code) || /^57P0[1-4]$/.test(code) || code === '53300') return true;
      if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN'].includes(code)) return true;
    }
    // gRPC status codes: 14 UNAVAILABLE, 4 DEADLINE_EXCEEDED (the Temporal client's ServiceError carries them).
    if (typeof code === 'number' && (code === 14 || code === 4) && /grpc|service|unavailable|deadline|connect/i.test(String((e as { name?: unknown }).name) + String((e as Error).message))) {
      return true;
    }
    const name = String((e as { name?: unknown }).name ?? '');
    const message = String((e as { message?: unknown }).message ?? '');
    if (name === 'ServiceError' && /UNAVAILABLE|DEADLINE_EXCEEDED|connect|transport/i.test(message)) return true;
    if (/Connection terminated|terminating connection|the database system is (starting up|shutting down)|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(message)) return true;
  }
  return false;
}

export interface RetryOptions {
  /** Give up (and rethrow) after this long. @default 120 s */
  maxMs?: number;
  /** First pause; doubles up to 5 s. @default 250 ms */
  firstDelayMs?: number;
  onRetry?: (attempt: number, err: unknown) => void;
}

/** Runs `fn`, retrying it with capped backoff while it fails with a dependency outage. */
export async function retryThroughOutage<T>(fn: () => Promise<T>, o: RetryOptions = {}): Promise<T> {
  const deadline = Date.now() + (o.maxMs ?? 120_000);
  let delay = o.firstDelayMs ?? 250;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isDependencyOutage(err) || Date.now() + delay > deadline) throw err;
      o.onRetry?.(attempt, err);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5_000);
    }
  }
}
