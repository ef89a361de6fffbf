/**
 * The typed failures workflows throw on purpose, built in one place so a type, its message and
 * its details keep one shape wherever they are raised (the API maps them in src/api/errors.ts).
 */
import { ActivityFailure, ApplicationFailure, TimeoutFailure } from '@temporalio/workflow';
import { FailureType, type LoadFailureDetails } from '../common/failures.js';
import { typedFailure } from '../common/typedFailure.js';

export function quarantinedFailure(build: string, reason: string): ApplicationFailure {
  return typedFailure(FailureType.ModelQuarantined, `the build ${build} is quarantined: ${reason}`, { build, reason });
}

/** A failed host step of a load (check or load activity): whose fault, and whether the host is gone. */
export interface JudgedLoadFailure {
  details: LoadFailureDetails;
  /** The host stopped answering (never picked the task up, or went silent mid-load). */
  hostGone: boolean;
  /** What to record and tell: the host's own message, or what its silence means. */
  reason: string;
}

export function judgeLoadFailure(err: unknown, hostId: string): JudgedLoadFailure {
  const cause = err instanceof ActivityFailure ? err.cause : undefined;
  if (cause instanceof ApplicationFailure && cause.type === FailureType.LoadFailed) {
    const d = cause.details?.[0] as Partial<LoadFailureDetails> | undefined;
    const details: LoadFailureDetails = { scope: d?.scope === 'build' ? 'build' : 'host', ...(d?.crashed ? { crashed: true } : {}) };
    return { details, hostGone: false, reason: cause.message };
  }
  if (cause instanceof TimeoutFailure) {
    // Never picked up: the host was gone before it touched the file. Gone mid-load: the file
    // is the prime suspect (llama.cpp aborts the whole worker on some malformed models).
    if (cause.timeoutType === 'SCHEDULE_TO_START') return { details: { scope: 'host' }, hostGone: true, reason: `host ${hostId} did not pick the load up` };
    // Out of time while alive (heartbeating all along): a slow disk or a busy host, not the file.
    if (cause.timeoutType === 'START_TO_CLOSE' || cause.timeoutType === 'SCHEDULE_TO_CLOSE') return { details: { scope: 'host' }, hostGone: false, reason: `host ${hostId} ran out of time loading it` };
    return { details: { scope: 'build', crashed: true }, hostGone: true, reason: `host ${hostId} died while loading it` };
  }
  const message = err instanceof ActivityFailure && err.cause ? err.cause.message : err instanceof Error ? err.message : 'unknown error';
  return { details: { scope: 'host' }, hostGone: false, reason: message };
}

export function loadFailedFailure(message: string, details?: LoadFailureDetails): ApplicationFailure {
  return typedFailure(FailureType.LoadFailed, message, details);
}
