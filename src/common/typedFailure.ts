/**
 * Builds and reads the failures of src/common/failures.ts: `typedFailure(type, message,
 * details)` checks at compile time that the details match the type, and `detailsOf` reads them
 * back typed. Every failure the project throws on purpose is made here; all are non-retryable
 * at the Temporal level (the workflow decides what to try next). Sandbox-safe.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { FailureDetailsMap, FailureType } from './failures.js';

type Args<T extends FailureType> = undefined extends FailureDetailsMap[T] ? [details?: FailureDetailsMap[T]] : [details: FailureDetailsMap[T]];

export function typedFailure<T extends FailureType>(type: T, message: string, ...[details]: Args<T>): ApplicationFailure {
  return ApplicationFailure.create({ message, type, nonRetryable: true, ...(details !== undefined ? { details: [details] } : {}) });
}

/** The details of `f` when it is a failure of `type` (from any process: validated shape-light). */
export function detailsOf<T extends FailureType>(f: { type?: string | null; details?: unknown[] | null } | undefined, type: T): FailureDetailsMap[T] | undefined {
  if (!f || f.type !== type) return undefined;
  const d = f.details?.[0];
  return d !== null && typeof d === 'object' ? (d as FailureDetailsMap[T]) : undefined;
}
