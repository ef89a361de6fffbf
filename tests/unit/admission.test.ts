/** Admission policy tables, and the host's queue driven by it (fairness, max wait, cap). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AdmissionQueue, AdmissionRejected } from '../../src/activities/llama/admissionQueue.js';
import {
  decideAdmission,
  pickNextWaiter,
  retryAfterSeconds,
  type AdmissionDecision,
  type AdmissionLimits,
  type AdmissionState,
} from '../../src/domain/admission.js';

const limits: AdmissionLimits = { maxInFlight: 2, maxQueue: 3, maxWaitMs: 1000, perPrincipalCap: 2 };
const state = (o: Partial<AdmissionState>): AdmissionState => ({ running: 0, queued: 0, byPrincipal: {}, avgServiceMs: 0, ...o });

const decisions: Array<[string, AdmissionState, string | null, AdmissionDecision]> = [
  ['free slot → run', state({}), 'k1', { kind: 'run' }],
  ['slots full → queue', state({ running: 2 }), 'k1', { kind: 'queue' }],
  ['waiters ahead → queue even with a slot (no overtaking)', state({ running: 1, queued: 1 }), 'k1', { kind: 'queue' }],
  ['queue full → reject queue_full', state({ running: 2, queued: 3, avgServiceMs: 2000 }), 'k1', { kind: 'reject', reason: 'queue_full', retryAfterSeconds: 4 }],
  ['principal at its cap → reject principal_cap', state({ running: 1, byPrincipal: { k1: 2 } }), 'k1', { kind: 'reject', reason: 'principal_cap', retryAfterSeconds: 1 }],
  ['another principal is not capped by k1', state({ running: 1, byPrincipal: { k1: 2 } }), 'k2', { kind: 'run' }],
  ['anonymous is exempt from the cap', state({ running: 1, byPrincipal: { k1: 2 } }), null, { kind: 'run' }],
];
for (const [name, s, principal, expected] of decisions) {
  test(`decideAdmission: ${name}`, () => assert.deepEqual(decideAdmission(s, limits, principal), expected));
}

test('decideAdmission: cap 0 turns the per-principal cap off', () => {
  assert.deepEqual(decideAdmission(state({ byPrincipal: { k1: 99 } }), { ...limits, perPrincipalCap: 0 }, 'k1'), { kind: 'run' });
});

const retries: Array<[number, number, number, number]> = [
  // queued, maxInFlight, avgServiceMs → seconds
  [0, 2, 0, 1],
  [0, 1, 3000, 3],
  [5, 2, 1000, 3],
  [100, 1, 10_000, 30],
];
for (const [queued, inFlight, avg, expected] of retries) {
  test(`retryAfterSeconds(${queued} queued, ${inFlight} slots, ${avg} ms) = ${expected}`, () => {
    assert.equal(retryAfterSeconds(queued, inFlight, avg), expected);
  });
}

test('pickNextWaiter: fewest running, then least recently served, then arrival order', () => {
  const waiters = [
    { principal: 'flood', seq: 1 },
    { principal: 'flood', seq: 2 },
    { principal: 'quiet', seq: 3 },
    { principal: null, seq: 4 },
  ];
  assert.equal(pickNextWaiter(waiters, { flood: 2 }), 2);
  assert.equal(pickNextWaiter(waiters, { flood: 1, quiet: 1 }), 3);
  assert.equal(pickNextWaiter(waiters, {}), 0);
  assert.equal(pickNextWaiter(waiters, {}, { flood: 7 }), 2, 'quiet was never served: it goes before flood');
  assert.equal(pickNextWaiter(waiters, {}, { flood: 9, quiet: 8, '\u0000anonymous': 7 }), 3);
  assert.equal(pickNextWaiter([], {}), -1);
});

test('queue: one principal flooding cannot starve another (one slot: round-robin)', async () => {
  const q = new AdmissionQueue(['s1'], { maxInFlight: 1, maxQueue: 20, maxWaitMs: 5000, perPrincipalCap: 0 });
  const first = await q.acquire('flood');
  const order: string[] = [];
  const take = (p: string, name: string) =>
    q.acquire(p).then((lease) => {
      order.push(name);
      lease.release();
    });
  const waits = [...Array.from({ length: 5 }, (_, i) => take('flood', `flood${i}`)), take('quiet', 'quiet'), take('other', 'other')];
  first.release();
  await Promise.all(waits);
  assert.deepEqual(order.slice(0, 3).sort(), ['flood0', 'other', 'quiet'].sort(), `got ${order.join(',')}`);
  assert.ok(order.indexOf('quiet') < 2 && order.indexOf('other') < 3, `got ${order.join(',')}`);
});

test('queue: the max wait refuses with wait_elapsed and frees the queue place', async () => {
  const q = new AdmissionQueue(['s1'], { maxInFlight: 1, maxQueue: 1, maxWaitMs: 30, perPrincipalCap: 0 });
  const held = await q.acquire(null);
  await assert.rejects(q.acquire(null), (e: unknown) => e instanceof AdmissionRejected && e.reason === 'wait_elapsed');
  assert.deepEqual({ running: q.stats.running, queued: q.stats.queued }, { running: 1, queued: 0 });
  const waiting = q.acquire(null);
  await assert.rejects(q.acquire(null), (e: unknown) => e instanceof AdmissionRejected && e.reason === 'queue_full');
  await assert.rejects(waiting, (e: unknown) => e instanceof AdmissionRejected && e.reason === 'wait_elapsed');
  held.release();
});

test('queue: the per-principal cap counts running and queued, and frees on release', async () => {
  const q = new AdmissionQueue(['s1', 's2'], { maxInFlight: 2, maxQueue: 4, maxWaitMs: 5000, perPrincipalCap: 2 });
  const a = await q.acquire('k');
  const b = await q.acquire('k');
  await assert.rejects(q.acquire('k'), (e: unknown) => e instanceof AdmissionRejected && e.reason === 'principal_cap');
  a.release();
  const c = await q.acquire('k');
  b.release();
  c.release();
  assert.deepEqual({ running: q.stats.running, queued: q.stats.queued }, { running: 0, queued: 0 });
});

test('queue: an aborted waiter leaves at once; rejectAll fails the rest', async () => {
  const q = new AdmissionQueue(['s1'], { maxInFlight: 1, maxQueue: 4, maxWaitMs: 5000, perPrincipalCap: 0 });
  const held = await q.acquire(null);
  const ac = new AbortController();
  const aborted = q.acquire(null, ac.signal);
  const other = q.acquire(null);
  ac.abort(new Error('client gone'));
  await assert.rejects(aborted, /client gone/);
  assert.equal(q.stats.queued, 1);
  q.rejectAll(new Error('unloaded'));
  await assert.rejects(other, /unloaded/);
  held.release();
  assert.deepEqual({ running: q.stats.running, queued: q.stats.queued }, { running: 0, queued: 0 });
});
