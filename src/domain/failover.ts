/**
 * What a failed `generate` attempt means for the request: try the next replica, fail, or —
 * for a stream that already sent tokens — end the stream with an error, because a second
 * replica would start the answer over and the client would get a spliced text. Decided from
 * the failure contract's retry classes (src/common/failures.ts), so a new failure type is
 * classified where it is declared. Also: which failures count toward a replica's demotion —
 * its own faults (it crashed, went silent, its upstream failed), not load or trust refusals
 * and not the client's errors.
 */
import { asFailureType, FAILURES, FailureType, type FailureType as FailureTypeName } from '../common/failures.js';

export interface AttemptFailure {
  /** ApplicationFailure type, when the replica said why. */
  type?: string;
  /** Temporal timeout kind, when the attempt timed out (host gone, stalled). */
  timeoutType?: 'SCHEDULE_TO_START' | 'START_TO_CLOSE' | 'SCHEDULE_TO_CLOSE' | 'HEARTBEAT';
  cancelled?: boolean;
  /** Characters the replica had published before it failed. */
  charsStreamed: number;
  /** From an upstream failure's details: false when it must not count toward demotion. */
  counts?: boolean;
}

export type AttemptVerdict = 'next_replica' | 'fail' | 'stream_broken';

export function classifyAttemptFailure(f: AttemptFailure, stream: boolean): AttemptVerdict {
  if (f.cancelled) return 'fail';
  const type = asFailureType(f.type);
  const retry = type ? FAILURES[type].retry : undefined;
  if (retry === 'client' || retry === 'terminal' || retry === 'load') return 'fail';
  if (f.timeoutType === 'SCHEDULE_TO_START') return 'next_replica';
  // The replica refused, crashed, stalled or failed mid-generation.
  if (!stream || f.charsStreamed === 0) return 'next_replica';
  return 'stream_broken';
}

/** The replica's own faults; load, trust, a full queue or share, and the client's errors are not. */
const NOT_ITS_FAULT: ReadonlySet<FailureTypeName> = new Set([FailureType.HostBusy, FailureType.PrincipalLimited, FailureType.ModelNotLoaded, FailureType.Unpinned]);

export function countsTowardDemotion(f: AttemptFailure): boolean {
  if (f.cancelled) return false;
  const type = asFailureType(f.type);
  if (!type) return true; // a timeout, a crash: the replica's fault
  if (NOT_ITS_FAULT.has(type) || FAILURES[type].retry !== 'next_replica') return false;
  return f.counts !== false;
}
