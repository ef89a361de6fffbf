/** Table tests of the pin-update policy (pure, no I/O). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  applyPinUpdate,
  planFanOut,
  attestationTargets,
  type BackendCount,
  type HostAttestation,
  type PinCycle,
  type PinSet,
  type PinUpdate,
} from '../../src/domain/pinSet.js';

const pinned = (...fingerprints: string[]): PinSet => ({ state: 'pinned', fingerprints });
const count = (n: number): BackendCount => ({ ok: true, count: n });
const ok = (hostId: string, fingerprint: string): HostAttestation => ({ hostId, ok: true, fingerprint, verified: true });
const bad = (hostId: string, fingerprint: string, reason = 'bad_signature'): HostAttestation => ({ hostId, ok: true, fingerprint, verified: false, reason });
const down = (hostId: string, error = 'timeout'): HostAttestation => ({ hostId, ok: false, error });

/** `n` verified hosts h000…, each with its own key k000…. */
const fleet = (n: number): HostAttestation[] =>
  Array.from({ length: n }, (_, i) => ok(`h${String(i).padStart(3, '0')}`, `k${String(i).padStart(3, '0')}`));

const cases: Array<{ name: string; current: PinSet; cycle: PinCycle; expect: PinUpdate }> = [
  {
    name: 'steady state: complete coverage, same keys',
    current: pinned('ka', 'kb'),
    cycle: { count: count(2), results: [ok('b', 'kb'), ok('a', 'ka')] },
    expect: {
      next: pinned('ka', 'kb'),
      outcome: { backendCount: 2, observed: ['ka', 'kb'], newlyPinned: [], evicted: [], mode: 'replaced', reasons: [], transition: 'pinned → steady' },
    },
  },
  {
    name: 'count shrinks: the host that left is evicted in one cycle',
    current: pinned('ka', 'kb', 'kc'),
    cycle: { count: count(2), results: [ok('a', 'ka'), ok('b', 'kb')] },
    expect: {
      next: pinned('ka', 'kb'),
      outcome: { backendCount: 2, observed: ['ka', 'kb'], newlyPinned: [], evicted: ['kc'], mode: 'replaced', reasons: [], transition: 'pinned → shrunk' },
    },
  },
  {
    name: 'a new host joins: grown',
    current: pinned('ka'),
    cycle: { count: count(2), results: [ok('a', 'ka'), ok('b', 'kb')] },
    expect: {
      next: pinned('ka', 'kb'),
      outcome: { backendCount: 2, observed: ['ka', 'kb'], newlyPinned: ['kb'], evicted: [], mode: 'replaced', reasons: [], transition: 'pinned → grown' },
    },
  },
  {
    name: 'partial cycle: a failed call keeps every pin and adds the verified ones',
    current: pinned('ka', 'kc'),
    cycle: { count: count(3), results: [ok('a', 'ka'), ok('b', 'kb'), down('c', 'connect ECONNREFUSED')] },
    expect: {
      next: pinned('ka', 'kb', 'kc'),
      outcome: {
        backendCount: 3,
        observed: ['ka', 'kb'],
        newlyPinned: ['kb'],
        evicted: [],
        mode: 'merged',
        reasons: ['call_failed: c: connect ECONNREFUSED', 'coverage: 2 distinct of 3'],
        transition: 'pinned → grown',
      },
    },
  },
  {
    name: 'two hosts with the same key are not complete coverage',
    current: pinned('ka', 'kb'),
    cycle: { count: count(2), results: [ok('a', 'ka'), ok('b', 'ka')] },
    expect: {
      next: pinned('ka', 'kb'),
      outcome: {
        backendCount: 2,
        observed: ['ka'],
        newlyPinned: [],
        evicted: [],
        mode: 'merged',
        reasons: ['duplicate_fingerprint: a, b', 'coverage: 1 distinct of 2'],
        transition: 'pinned → steady',
      },
    },
  },
  {
    name: 'a verify failure blocks replacement (nothing evicted, set blocked)',
    current: pinned('ka', 'kb', 'kgone'),
    cycle: { count: count(2), results: [ok('a', 'ka'), bad('b', 'kevil')] },
    expect: {
      next: { state: 'blocked', fingerprints: ['ka', 'kb', 'kgone'] },
      outcome: {
        backendCount: 2,
        observed: ['ka'],
        newlyPinned: [],
        evicted: [],
        mode: 'merged',
        reasons: ['verify_failed: b: bad_signature', 'coverage: 1 distinct of 2'],
        transition: 'pinned → blocked',
      },
    },
  },
  {
    name: 'blocked stays blocked on a partial cycle',
    current: { state: 'blocked', fingerprints: ['ka'] },
    cycle: { count: count(2), results: [ok('a', 'ka'), down('b')] },
    expect: {
      next: { state: 'blocked', fingerprints: ['ka'] },
      outcome: {
        backendCount: 2,
        observed: ['ka'],
        newlyPinned: [],
        evicted: [],
        mode: 'merged',
        reasons: ['call_failed: b: timeout', 'coverage: 1 distinct of 2'],
        transition: 'blocked → blocked',
      },
    },
  },
  {
    name: 'blocked recovers to pinned on a complete cycle',
    current: { state: 'blocked', fingerprints: ['ka', 'kb', 'kgone'] },
    cycle: { count: count(2), results: [ok('a', 'ka'), ok('b', 'kb')] },
    expect: {
      next: pinned('ka', 'kb'),
      outcome: { backendCount: 2, observed: ['ka', 'kb'], newlyPinned: [], evicted: ['kgone'], mode: 'replaced', reasons: [], transition: 'blocked → pinned' },
    },
  },
  {
    name: 'count zero: no change',
    current: pinned('ka'),
    cycle: { count: count(0), results: [] },
    expect: {
      next: pinned('ka'),
      outcome: { backendCount: 0, observed: [], newlyPinned: [], evicted: [], mode: 'unchanged', reasons: ['count_zero'], transition: 'pinned → steady' },
    },
  },
  {
    name: 'count fetch failure: no change',
    current: pinned('ka'),
    cycle: { count: { ok: false, error: 'db timeout' }, results: [] },
    expect: {
      next: pinned('ka'),
      outcome: { backendCount: null, observed: [], newlyPinned: [], evicted: [], mode: 'unchanged', reasons: ['count_fetch: db timeout'], transition: 'pinned → steady' },
    },
  },
  {
    name: 'an invalid count is a count fetch failure',
    current: { state: 'bootstrap', fingerprints: [] },
    cycle: { count: count(-1), results: [] },
    expect: {
      next: { state: 'bootstrap', fingerprints: [] },
      outcome: { backendCount: null, observed: [], newlyPinned: [], evicted: [], mode: 'unchanged', reasons: ['count_fetch: invalid count -1'], transition: 'bootstrap → bootstrap' },
    },
  },
  {
    name: 'bootstrap: the first successful cycle pins',
    current: { state: 'bootstrap', fingerprints: [] },
    cycle: { count: count(2), results: [ok('a', 'ka'), ok('b', 'kb')] },
    expect: {
      next: pinned('ka', 'kb'),
      outcome: { backendCount: 2, observed: ['ka', 'kb'], newlyPinned: ['ka', 'kb'], evicted: [], mode: 'replaced', reasons: [], transition: 'bootstrap → pinned' },
    },
  },
  {
    name: 'bootstrap: every call failed, still bootstrapping',
    current: { state: 'bootstrap', fingerprints: [] },
    cycle: { count: count(1), results: [down('a')] },
    expect: {
      next: { state: 'bootstrap', fingerprints: [] },
      outcome: {
        backendCount: 1,
        observed: [],
        newlyPinned: [],
        evicted: [],
        mode: 'merged',
        reasons: ['call_failed: a: timeout', 'coverage: 0 distinct of 1'],
        transition: 'bootstrap → bootstrap',
      },
    },
  },
  {
    name: 'an empty result on an empty set stays empty',
    current: { state: 'empty', fingerprints: [] },
    cycle: { count: count(1), results: [] },
    expect: {
      next: { state: 'empty', fingerprints: [] },
      outcome: { backendCount: 1, observed: [], newlyPinned: [], evicted: [], mode: 'merged', reasons: ['coverage: 0 distinct of 1'], transition: 'empty → empty' },
    },
  },
  {
    name: 'rotated key: old evicted, new pinned on a complete cycle',
    current: pinned('ka-old', 'kb'),
    cycle: { count: count(2), results: [ok('a', 'ka-new'), ok('b', 'kb')] },
    expect: {
      next: pinned('ka-new', 'kb'),
      outcome: { backendCount: 2, observed: ['ka-new', 'kb'], newlyPinned: ['ka-new'], evicted: ['ka-old'], mode: 'replaced', reasons: [], transition: 'pinned → rotated' },
    },
  },
  {
    name: 'rotated key on a partial cycle: new pinned, old kept',
    current: pinned('ka-old', 'kb'),
    cycle: { count: count(2), results: [ok('a', 'ka-new'), down('b')] },
    expect: {
      next: pinned('ka-new', 'ka-old', 'kb'),
      outcome: {
        backendCount: 2,
        observed: ['ka-new'],
        newlyPinned: ['ka-new'],
        evicted: [],
        mode: 'merged',
        reasons: ['call_failed: b: timeout', 'coverage: 1 distinct of 2'],
        transition: 'pinned → grown',
      },
    },
  },
];

for (const c of cases) {
  test(c.name, () => {
    assert.deepEqual(applyPinUpdate(c.current, c.cycle), c.expect);
  });
}

test('fan-out capped: 256 of 300 attested, merged, never replaced', () => {
  const results = fleet(256);
  const { next, outcome } = applyPinUpdate(pinned('kgone'), { count: count(300), results });
  assert.equal(outcome.mode, 'merged');
  assert.equal(outcome.backendCount, 300);
  assert.deepEqual(outcome.reasons, ['fanout_capped', 'coverage: 256 distinct of 300']);
  assert.equal(outcome.observed.length, 256);
  assert.deepEqual(outcome.evicted, []);
  assert.equal(next.fingerprints.length, 257);
  assert.ok(next.fingerprints.includes('kgone'));
});

test('fan-out capped even when the distinct count happens to equal the backend count', () => {
  const { outcome } = applyPinUpdate(pinned('kgone'), { count: count(3), results: fleet(3), fanOutCap: 2 });
  assert.equal(outcome.mode, 'merged');
  assert.deepEqual(outcome.reasons, ['fanout_capped']);
  assert.deepEqual(outcome.evicted, []);
});

test('the result does not depend on the order hosts answered in', () => {
  const results = [down('c'), ok('b', 'kb'), bad('d', 'kd'), ok('a', 'ka')];
  const forward = applyPinUpdate(pinned('ka'), { count: count(4), results });
  const backward = applyPinUpdate(pinned('ka'), { count: count(4), results: [...results].reverse() });
  assert.deepEqual(forward, backward);
});

test('planFanOut: how many hosts to call', () => {
  assert.deepEqual(planFanOut(count(0)), { attest: 0, reasons: ['count_zero'] });
  assert.deepEqual(planFanOut({ ok: false, error: 'x' }), { attest: 0, reasons: ['count_fetch: x'] });
  assert.deepEqual(planFanOut(count(10)), { attest: 10, reasons: [] });
  assert.deepEqual(planFanOut(count(256)), { attest: 256, reasons: [] });
  assert.deepEqual(planFanOut(count(1000)), { attest: 256, reasons: ['fanout_capped'] });
  assert.throws(() => planFanOut(count(1), 0), /fanOutCap must be an integer ≥ 1/);
});

const ids = (n: number) => Array.from({ length: n }, (_, i) => `h${String(i).padStart(3, '0')}`);
const targetCases: Array<[string, { hosts: number; attest: number; rotation: number }, string[]]> = [
  ['under the cap: every host', { hosts: 3, attest: 3, rotation: 7 }, ids(3)],
  ['cycle 0: the first window', { hosts: 5, attest: 2, rotation: 0 }, ['h000', 'h001']],
  ['cycle 1: the next window', { hosts: 5, attest: 2, rotation: 1 }, ['h002', 'h003']],
  ['cycle 2: wraps around', { hosts: 5, attest: 2, rotation: 2 }, ['h004', 'h000']],
  ['nothing to attest', { hosts: 5, attest: 0, rotation: 3 }, []],
];
for (const [name, o, expected] of targetCases) {
  test(`attestation targets: ${name}`, () => assert.deepEqual(attestationTargets(ids(o.hosts), { attest: o.attest, rotation: o.rotation }), expected));
}

test('attestation targets: past the cap, every host is attested within ceil(n / cap) cycles', () => {
  for (const [n, cap] of [[300, 256], [1000, 256], [7, 3]] as const) {
    const seen = new Set<string>();
    for (let cycle = 0; cycle < Math.ceil(n / cap); cycle++) for (const h of attestationTargets(ids(n), { attest: cap, rotation: cycle })) seen.add(h);
    assert.equal(seen.size, n, `${n} hosts, cap ${cap}`);
  }
});
