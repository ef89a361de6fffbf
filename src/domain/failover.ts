/**
 * What a failed `generate` attempt means for the request: try the next replica, fail, or —
 * for a stream that already sent tokens — end the stream with an error, because a second host
 * would start the answer over and the client would get a spliced text. Client errors (4xx)
 * are never retried elsewhere: another host would refuse them too.
 */
export interface AttemptFailure {
  /** ApplicationFailure type, when the host said why. */
  type?: string;
  /** Temporal timeout kind, when the attempt timed out (host gone, stalled). */
  timeoutType?: 'SCHEDULE_TO_START' | 'START_TO_CLOSE' | 'SCHEDULE_TO_CLOSE' | 'HEARTBEAT';
  cancelled?: boolean;
  /** Characters the host had published before it failed (from its last heartbeat). */
  charsStreamed: number;
}

export type AttemptVerdict = 'next_replica' | 'fail' | 'stream_broken';

/** Refusals: nothing ran (load, a stale placement, an unpinned key), another replica may take it. */
const REFUSALS = new Set(['HostBusy', 'ModelNotLoaded', 'Unpinned']);
/** The caller's own fault or limit: every replica would answer the same. */
const CLIENT_ERRORS = new Set(['ModelNotFound', 'ContextLengthExceeded', 'InvalidRequest', 'PrincipalLimited']);

export function classifyAttemptFailure(f: AttemptFailure, stream: boolean): AttemptVerdict {
  if (f.cancelled) return 'fail';
  if (f.type && CLIENT_ERRORS.has(f.type)) return 'fail';
  if (f.type && REFUSALS.has(f.type)) return 'next_replica';
  if (f.timeoutType === 'SCHEDULE_TO_START') return 'next_replica';
  // The host crashed, stalled or failed mid-generation.
  if (!stream || f.charsStreamed === 0) return 'next_replica';
  return 'stream_broken';
}
