/**
 * Which failures are dependency outages (503 + Retry-After, retried by bookkeeping) and which are
 * not (bugs stay 500): PostgreSQL SQLSTATEs and socket errors, gRPC codes from the Temporal
 * client, pg's own messages; and retryThroughOutage retries only those, within its deadline.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isDependencyOutage, retryThroughOutage } from '../../src/common/outage.js';
import { toErrorResponse } from '../../src/api/errors.js';

const withCode = (code: string | number, message = 'x', name = 'Error') => Object.assign(new Error(message), { code, name });

const cases: Array<[string, unknown, boolean]> = [
  ['connection refused', withCode('ECONNREFUSED'), true],
  ['connection reset', withCode('ECONNRESET'), true],
  ['SQLSTATE 57P01 admin shutdown', withCode('57P01', 'terminating connection due to administrator command'), true],
  ['SQLSTATE 57P03 cannot connect now', withCode('57P03'), true],
  ['SQLSTATE 08006 connection failure', withCode('08006'), true],
  ['SQLSTATE 53300 too many connections', withCode('53300'), true],
  ['pg: Connection terminated unexpectedly', new Error('Connection terminated unexpectedly'), true],
  ['gRPC 14 UNAVAILABLE', withCode(14, '14 UNAVAILABLE: tcp connect error', 'ServiceError'), true],
  ['a cause chain reaching an outage', Object.assign(new Error('start failed'), { cause: withCode('ECONNREFUSED') }), true],
  ['SQLSTATE 23505 unique violation (a bug or a race, not an outage)', withCode('23505'), false],
  ['a TypeError', new TypeError('x is undefined'), false],
  ['gRPC 3 INVALID_ARGUMENT', withCode(3, '3 INVALID_ARGUMENT', 'ServiceError'), false],
];
for (const [name, err, outage] of cases) {
  test(`outage? ${name} → ${outage}`, () => {
    assert.equal(isDependencyOutage(err), outage);
    const r = toErrorResponse(err);
    assert.equal(r.status, outage ? 503 : 500);
    if (outage) assert.ok(Number(r.headers['Retry-After']) >= 1);
  });
}

test('retryThroughOutage retries outages until the call succeeds', async () => {
  let calls = 0;
  const v = await retryThroughOutage(async () => {
    if (++calls < 3) throw withCode('ECONNREFUSED');
    return 'settled';
  }, { firstDelayMs: 1 });
  assert.deepEqual([v, calls], ['settled', 3]);
});

test('retryThroughOutage gives up at once on anything else, and after its deadline on outages', async () => {
  let calls = 0;
  await assert.rejects(retryThroughOutage(async () => { calls++; throw new TypeError('bug'); }, { firstDelayMs: 1 }), TypeError);
  assert.equal(calls, 1);
  await assert.rejects(retryThroughOutage(async () => { throw withCode('ECONNREFUSED'); }, { firstDelayMs: 5, maxMs: 30 }), /x/);
});
