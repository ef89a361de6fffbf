/** Error classification for a failed generate attempt: next replica, fail, or stream broken. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyAttemptFailure, type AttemptFailure, type AttemptVerdict } from '../../src/domain/failover.js';

const table: Array<[string, AttemptFailure, boolean, AttemptVerdict]> = [
  ['host refused (busy) → next', { type: 'HostBusy', charsStreamed: 0 }, false, 'next_replica'],
  ['model gone from the host → next', { type: 'ModelNotLoaded', charsStreamed: 0 }, true, 'next_replica'],
  ['never picked up (host dead) → next', { timeoutType: 'SCHEDULE_TO_START', charsStreamed: 0 }, true, 'next_replica'],
  ['context too long → fail, never retried', { type: 'ContextLengthExceeded', charsStreamed: 0 }, false, 'fail'],
  ['unknown model → fail', { type: 'ModelNotFound', charsStreamed: 0 }, false, 'fail'],
  ['principal cap on one host → the next replica with room (429 only when none has)', { type: 'PrincipalLimited', charsStreamed: 0 }, false, 'next_replica'],
  ['cancelled → fail', { cancelled: true, charsStreamed: 0 }, false, 'fail'],
  ['host died mid-request, non-streaming → next', { timeoutType: 'HEARTBEAT', charsStreamed: 120 }, false, 'next_replica'],
  ['host died before the first token of a stream → next', { timeoutType: 'HEARTBEAT', charsStreamed: 0 }, true, 'next_replica'],
  ['host died after streaming tokens → stream broken', { timeoutType: 'HEARTBEAT', charsStreamed: 12 }, true, 'stream_broken'],
  ['generation error after tokens → stream broken', { type: 'GenerationFailed', charsStreamed: 3 }, true, 'stream_broken'],
  ['generation error, non-streaming → next', { type: 'GenerationFailed', charsStreamed: 0 }, false, 'next_replica'],
];
for (const [name, failure, stream, verdict] of table) {
  test(`classifyAttemptFailure: ${name}`, () => assert.equal(classifyAttemptFailure(failure, stream), verdict));
}
