/**
 * Admission control for one model on one host: at most `maxInFlight` running, a bounded
 * queue, a maximum wait, and a per-principal cap (running + queued) so one caller cannot
 * take every slot. The queue is served fairly — the waiter whose principal has the fewest
 * requests running goes next, FIFO among equals — so a principal flooding the queue cannot
 * starve another. Retry-After is derived from the queue and the observed service time.
 * Pure: the host's queue calls these with its counters.
 */
export interface AdmissionLimits {
  /** Requests generating at once (context sequences). ≥ 1. */
  maxInFlight: number;
  /** Requests allowed to wait for a slot. ≥ 0. */
  maxQueue: number;
  /** How long a request may wait in the queue before it is refused (ms). */
  maxWaitMs: number;
  /** Running + queued per principal; 0 turns the cap off. Anonymous callers are exempt. */
  perPrincipalCap: number;
}

export interface AdmissionState {
  running: number;
  queued: number;
  /** Running + queued per principal key id. */
  byPrincipal: Readonly<Record<string, number>>;
  /** Moving average of how long a request holds a slot (ms); 0 when unknown. */
  avgServiceMs: number;
}

export type RejectReason = 'queue_full' | 'wait_elapsed' | 'principal_cap';

export type AdmissionDecision =
  | { kind: 'run' }
  | { kind: 'queue' }
  | { kind: 'reject'; reason: RejectReason; retryAfterSeconds: number };

export const MIN_RETRY_AFTER_S = 1;
export const MAX_RETRY_AFTER_S = 30;

/** Seconds until a slot is likely free for one more request behind `queued` others. */
export function retryAfterSeconds(queued: number, maxInFlight: number, avgServiceMs: number): number {
  const waves = (queued + 1) / Math.max(1, maxInFlight);
  const s = Math.ceil((waves * Math.max(0, avgServiceMs)) / 1000);
  return Math.min(MAX_RETRY_AFTER_S, Math.max(MIN_RETRY_AFTER_S, s));
}

export function decideAdmission(state: AdmissionState, limits: AdmissionLimits, principal: string | null): AdmissionDecision {
  const retry = () => retryAfterSeconds(state.queued, limits.maxInFlight, state.avgServiceMs);
  if (principal !== null && limits.perPrincipalCap > 0 && (state.byPrincipal[principal] ?? 0) >= limits.perPrincipalCap) {
    return { kind: 'reject', reason: 'principal_cap', retryAfterSeconds: retry() };
  }
  if (state.running < limits.maxInFlight && state.queued === 0) return { kind: 'run' };
  if (state.queued < limits.maxQueue) return { kind: 'queue' };
  return { kind: 'reject', reason: 'queue_full', retryAfterSeconds: retry() };
}

export interface Waiter {
  principal: string | null;
  /** Arrival order (a counter or a timestamp). */
  seq: number;
}

/**
 * Index of the waiter to serve next, or -1 when nobody waits: the principal with the fewest
 * requests running, then the one served least recently (never served first), then arrival
 * order. With one slot this is round-robin across principals; anonymous callers count as one.
 * `lastServed` holds a grant counter per principal key.
 */
export function pickNextWaiter(
  waiters: readonly Waiter[],
  runningByPrincipal: Readonly<Record<string, number>>,
  lastServed: Readonly<Record<string, number>> = {},
): number {
  let best = -1;
  let bestKey: [number, number, number] = [Infinity, Infinity, Infinity];
  waiters.forEach((w, i) => {
    const p = principalKey(w.principal);
    const key: [number, number, number] = [runningByPrincipal[p] ?? 0, lastServed[p] ?? -1, w.seq];
    if (key[0] < bestKey[0] || (key[0] === bestKey[0] && (key[1] < bestKey[1] || (key[1] === bestKey[1] && key[2] < bestKey[2])))) {
      best = i;
      bestKey = key;
    }
  });
  return best;
}

/** The key fairness groups by: anonymous callers share one. */
export function principalKey(principal: string | null): string {
  return principal ?? '\u0000anonymous';
}
