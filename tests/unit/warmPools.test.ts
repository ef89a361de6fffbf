/**
 * Table tests of the warm-pool planner and the pool summary (pure): min_warm from the pool's
 * own hosts first, then idle hosts borrowed from other pools (never a donor below its
 * min_warm, never a host in its cool-down), rollouts one host at a time while another keeps
 * serving, the kill switch (no moves, no evictions), one action per host; and the figures
 * `GET /admin/pools` shows.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CatalogModelView, HostView, PlacementStateName } from '../../src/domain/fleetView.js';
import { summarizePools } from '../../src/domain/poolSummary.js';
import type { AliasView, HostPoolView, PoolsView } from '../../src/domain/pools.js';
import { drainCandidate, needsDrain, pendingRollouts, plannerHasWork, planWarmPools, type PlanAction, type PlannerState } from '../../src/domain/warmPools.js';

const NOW = Date.parse('2026-11-24T12:00:00Z');
const HB = 1000;
const ago = (ms: number) => new Date(NOW - ms).toISOString();

function host(id: string, placements: Array<[string, PlacementStateName]> = [], o: { running?: number; dead?: boolean; slots?: number } = {}): HostView {
  return {
    id,
    status: 'up',
    lastHeartbeatAt: ago(o.dead ? 10 * HB : 100),
    placements: placements.map(([modelId, state]) => ({ modelId, state, lastUsedAt: null })),
    load: Object.fromEntries(placements.map(([m]) => [m, { running: o.running ?? 0, queued: 0 }])),
    capacity: { maxModelSlots: o.slots ?? 1, gpuCount: 0, totalMemoryBytes: 0, freeMemoryBytes: 0, maxInFlight: 2, maxQueue: 4 },
    files: [],
  };
}
const alias = (id: string, desired = id, previous: string | null = null, minWarm = 0): AliasView => ({ id, desired, previous, minWarm });
const member = (a: string | null, movedAt: string | null = null): HostPoolView => ({ alias: a, state: 'serving', movedAt });
const build = (id: string): CatalogModelView => ({ id, path: `/${id}.gguf`, sha256: id, contextLength: 512, sizeBytes: 10 });

function state(hosts: HostView[], aliases: AliasView[], hostPools: Record<string, HostPoolView>, enabled = true): PlannerState {
  const pools: PoolsView = { enabled, cooldownMs: 60_000, aliases, hostPools };
  const builds = Object.fromEntries(aliases.flatMap((a) => [a.desired, ...(a.previous ? [a.previous] : [])]).map((b) => [b, build(b)]));
  return { hosts, pools, builds, heartbeatIntervalMs: HB };
}

const cases: Array<{ name: string; state: PlannerState; expect: PlanAction[] }> = [
  {
    name: 'min_warm met → nothing to do',
    state: state([host('a1', [['a', 'loaded']])], [alias('a', 'a', null, 1)], { a1: member('a') }),
    expect: [],
  },
  {
    name: 'min_warm from the pool’s own hosts, empty ones first',
    state: state([host('a1', [['x', 'loaded']], { slots: 2 }), host('a2')], [alias('a', 'a', null, 1)], { a1: member('a'), a2: member('a') }),
    expect: [{ kind: 'load', hostId: 'a2', alias: 'a', build: 'a', why: 'min_warm' }],
  },
  {
    name: 'short of min_warm with no pool host left → borrow an idle host',
    state: state([host('a1', [['a', 'loaded']]), host('b1', [['b', 'loaded']]), host('b2', [['b', 'loaded']])], [alias('a', 'a', null, 2), alias('b', 'b', null, 1)], {
      a1: member('a'),
      b1: member('b'),
      b2: member('b'),
    }),
    expect: [{ kind: 'move', hostId: 'b1', alias: 'a', why: 'min_warm' }],
  },
  {
    name: 'the donor at its own min_warm is not taken',
    state: state([host('a1', [['a', 'loaded']]), host('b1', [['b', 'loaded']])], [alias('a', 'a', null, 2), alias('b', 'b', null, 1)], { a1: member('a'), b1: member('b') }),
    expect: [],
  },
  {
    name: 'a host moved within the cool-down is not moved (no thrashing)',
    state: state([host('a1', [['a', 'loaded']]), host('b1', [['b', 'loaded']])], [alias('a', 'a', null, 2), alias('b')], { a1: member('a'), b1: member('b', ago(5_000)) }),
    expect: [],
  },
  {
    name: '… and is moved once the cool-down is over',
    state: state([host('a1', [['a', 'loaded']]), host('b1', [['b', 'loaded']])], [alias('a', 'a', null, 2), alias('b')], { a1: member('a'), b1: member('b', ago(61_000)) }),
    expect: [{ kind: 'move', hostId: 'b1', alias: 'a', why: 'min_warm' }],
  },
  {
    name: 'busy hosts are not borrowed; dead hosts do not count as warm',
    state: state([host('a1', [['a', 'loaded']], { dead: true }), host('b1', [['b', 'loaded']], { running: 1 }), host('c1')], [alias('a', 'a', null, 1), alias('b')], {
      a1: member('a'),
      b1: member('b'),
    }),
    expect: [{ kind: 'move', hostId: 'c1', alias: 'a', why: 'min_warm' }],
  },
  {
    name: 'rollout: one host at a time while the other keeps serving the previous build',
    state: state([host('a1', [['a1', 'loaded']]), host('a2', [['a1', 'loaded']])], [alias('a', 'a2', 'a1', 2)], { a1: member('a'), a2: member('a') }),
    expect: [{ kind: 'load', hostId: 'a1', alias: 'a', build: 'a2', why: 'rollout' }],
  },
  {
    name: 'rollout: an empty pool host before one serving the previous build',
    state: state([host('a1', [['a1', 'loaded']]), host('a2')], [alias('a', 'a2', 'a1')], { a1: member('a'), a2: member('a') }),
    expect: [{ kind: 'load', hostId: 'a2', alias: 'a', build: 'a2', why: 'rollout' }],
  },
  {
    name: 'rollout: nothing while a desired load runs',
    state: state([host('a1', [['a2', 'loading']]), host('a2', [['a1', 'loaded']])], [alias('a', 'a2', 'a1', 2)], { a1: member('a'), a2: member('a') }),
    expect: [],
  },
  {
    name: 'rollout: the last previous host goes once a desired replica serves',
    state: state([host('a1', [['a2', 'loaded']]), host('a2', [['a1', 'loaded']])], [alias('a', 'a2', 'a1')], { a1: member('a'), a2: member('a') }),
    expect: [{ kind: 'load', hostId: 'a2', alias: 'a', build: 'a2', why: 'rollout' }],
  },
  {
    name: 'rollout: a busy previous host is not evicted',
    state: state([host('a1', [['a2', 'loaded']]), host('a2', [['a1', 'loaded']], { running: 1 })], [alias('a', 'a2', 'a1')], { a1: member('a'), a2: member('a') }),
    expect: [],
  },
  {
    name: 'rollout: a one-host pool with one slot stays on the previous build (no gap)',
    state: state([host('a1', [['a1', 'loaded']])], [alias('a', 'a2', 'a1', 1)], { a1: member('a') }),
    expect: [],
  },
  {
    name: 'kill switch: no moves, and no load that would evict another model',
    state: state([host('h1', [['b', 'loaded']]), host('h2', [['b', 'loaded']])], [alias('a', 'a', null, 1), alias('b')], { h1: member('b'), h2: member('b') }, false),
    expect: [],
  },
  {
    name: 'kill switch: loads into a free slot on any host',
    state: state([host('h1', [['b', 'loaded']]), host('h2')], [alias('a', 'a', null, 1), alias('b')], { h1: member('b'), h2: member('b') }, false),
    expect: [{ kind: 'load', hostId: 'h2', alias: 'a', build: 'a', why: 'min_warm' }],
  },
  {
    name: 'pool hosts first, then borrow the rest from the larger donor pool',
    state: state([host('a1'), host('b1', [['b', 'loaded']]), host('c1', [['c', 'loaded']]), host('c2', [['c', 'loaded']])], [alias('a', 'a', null, 2), alias('b'), alias('c')], {
      a1: member('a'),
      b1: member('b'),
      c1: member('c'),
      c2: member('c'),
    }),
    expect: [
      { kind: 'load', hostId: 'a1', alias: 'a', build: 'a', why: 'min_warm' },
      { kind: 'move', hostId: 'c1', alias: 'a', why: 'min_warm' },
    ],
  },
  {
    name: 'two aliases borrowing from one donor never take it below its min_warm together',
    state: state([host('b1', [['b', 'loaded']]), host('b2', [['b', 'loaded']])], [alias('a', 'a', null, 1), alias('b', 'b', null, 1), alias('c', 'c', null, 1)], {
      b1: member('b'),
      b2: member('b'),
    }),
    expect: [{ kind: 'move', hostId: 'b1', alias: 'a', why: 'min_warm' }],
  },
  {
    name: 'one action per host across aliases',
    state: state([host('free')], [alias('a', 'a', null, 1), alias('b', 'b', null, 1)], {}),
    expect: [{ kind: 'move', hostId: 'free', alias: 'a', why: 'min_warm' }],
  },
];
for (const c of cases) {
  test(`planWarmPools: ${c.name}`, () => {
    assert.deepEqual(planWarmPools(c.state, NOW), c.expect);
  });
}

const rolling = (first: PlacementStateName) =>
  state([host('a1', [[first === 'loading' ? 'a2' : 'a1', first]]), host('a2', [['a1', 'loaded']]), host('a3', [['a1', 'loaded']])], [alias('a', 'a2', 'a1', 3)], {
    a1: member('a'),
    a2: member('a'),
    a3: member('a'),
  });
test(
  'planWarmPools: rollout with min_warm 3 on three previous hosts upgrades one host and leaves the others serving',
  () => {
    const actions = planWarmPools(rolling('loaded'), NOW);
    assert.deepEqual(actions, [{ kind: 'load', hostId: 'a1', alias: 'a', build: 'a2', why: 'rollout' }]);
  },
);
test(
  'planWarmPools: while a desired load runs, min_warm does not evict the previous build elsewhere',
  () => {
    assert.deepEqual(planWarmPools(rolling('loading'), NOW), []);
  },
);
test('planWarmPools: whatever the plan, a rolling pool keeps a host serving the previous build', () => {
  for (const first of ['loaded', 'loading'] as const) {
    const st = rolling(first);
    const touched = new Set(planWarmPools(st, NOW).map((a) => a.hostId));
    assert.ok(
      st.hosts.some((h) => !touched.has(h.id) && h.placements.some((p) => p.modelId === 'a1' && p.state === 'loaded')),
      `${first}: every previous-build host is unloading`,
    );
  }
});

test('pendingRollouts: waits only for a host whose upgrade leaves another serving', () => {
  const two = state([host('a1', [['a2', 'loaded']]), host('a2', [['a1', 'loaded']], { running: 1 })], [alias('a', 'a2', 'a1')], { a1: member('a'), a2: member('a') });
  assert.deepEqual(pendingRollouts(two, NOW), ['a']);
  const alone = state([host('a1', [['a1', 'loaded']])], [alias('a', 'a2', 'a1')], { a1: member('a') });
  assert.deepEqual(pendingRollouts(alone, NOW), []);
  const done = state([host('a1', [['a2', 'loaded']])], [alias('a', 'a2', 'a1')], { a1: member('a') });
  assert.deepEqual(pendingRollouts(done, NOW), []);
});

test('summarizePools: per alias hosts, loaded, busy, queued, capacity left; unassigned and moving', () => {
  const hosts = [
    { ...host('a1', [['a', 'loaded']]), load: { a: { running: 2, queued: 1 } } },
    host('a2', [['a1', 'loaded']]),
    host('a3', [], { dead: true }),
    host('b1', [['b', 'loading']]),
    host('m1'),
    host('n1'),
  ];
  const pools: PoolsView = {
    enabled: true,
    cooldownMs: 0,
    aliases: [alias('a', 'a', 'a1', 2), alias('b')],
    hostPools: { a1: member('a'), a2: member('a'), a3: member('a'), b1: member('b'), m1: { alias: 'b', state: 'moving', movedAt: null } },
  };
  const o = summarizePools(hosts, pools, NOW, HB);
  assert.deepEqual(o.pools, [
    { alias: 'a', desired: 'a', previous: 'a1', minWarm: 2, hosts: ['a1', 'a2', 'a3'], healthy: 2, loaded: 2, desiredLoaded: 1, running: 2, queued: 1, capacityLeft: 3 + 6 },
    { alias: 'b', desired: 'b', previous: null, minWarm: 0, hosts: ['b1'], healthy: 1, loaded: 0, desiredLoaded: 0, running: 0, queued: 0, capacityLeft: 0 },
  ]);
  assert.deepEqual(o.unassigned, ['n1']);
  assert.deepEqual(o.moving, ['m1']);
  const off = summarizePools(hosts, { ...pools, enabled: false }, NOW, HB);
  assert.deepEqual(off.pools[1]!.hosts, ['a1', 'a2', 'a3', 'b1', 'm1', 'n1'], 'kill switch: every host counts for every alias');
  assert.deepEqual(off.unassigned, []);
});

test('summarizePools: a shared build counts for both aliases; capacityLeft null when a loaded host reports no limits', () => {
  const nolimits = host('c1', [['llama', 'loaded']]);
  const hosts = [host('c1', [['llama', 'loaded']]), { ...nolimits, id: 'c2', capacity: { ...nolimits.capacity, maxInFlight: undefined, maxQueue: undefined } }, host('s1')];
  const pools: PoolsView = {
    enabled: true,
    cooldownMs: 0,
    aliases: [alias('chat', 'llama'), alias('assistant', 'llama-2', 'llama')],
    hostPools: { c1: member('chat'), c2: member('chat'), s1: member('assistant') },
  };
  const [chat, assistant] = summarizePools(hosts, pools, NOW, HB).pools;
  assert.deepEqual([chat!.hosts, chat!.loaded, chat!.desiredLoaded, chat!.capacityLeft], [['c1', 'c2', 's1'], 2, 2, null], 's1 (assistant) shares llama with chat');
  assert.deepEqual([assistant!.hosts, assistant!.loaded, assistant!.desiredLoaded], [['c1', 'c2', 's1'], 2, 0]);
  const one = summarizePools([hosts[0]!, hosts[2]!], pools, NOW, HB).pools[1]!;
  assert.equal(one.capacityLeft, 6, 'only the loaded host’s free slots and queue places');
});

test('planWarmPools / pendingRollouts: a host skipped after repeated failures is not waited on; the next host of the rollout is offered', () => {
  const st = state([host('a1', [['a1', 'loaded']]), host('a2', [['a1', 'loaded']])], [alias('a', 'a2', 'a1')], { a1: member('a'), a2: member('a') });
  assert.deepEqual(planWarmPools(st, NOW), [{ kind: 'load', hostId: 'a1', alias: 'a', build: 'a2', why: 'rollout' }]);
  assert.deepEqual(planWarmPools(st, NOW, { skip: ['a1'] }), [{ kind: 'load', hostId: 'a2', alias: 'a', build: 'a2', why: 'rollout' }]);
  assert.deepEqual(planWarmPools(st, NOW, { skip: ['a1', 'a2'] }), []);
  assert.deepEqual(pendingRollouts(st, NOW, { skip: ['a1'] }), ['a']);
  assert.deepEqual(pendingRollouts(st, NOW, { skip: ['a1', 'a2'] }), [], 'nothing left to wait for in this run');
});

// The control plane triggers the planner's Schedule only on these: an idle fleet adds no runs.
const hasWork: Array<[string, boolean]> = [
  ['min_warm met → nothing to do', false],
  ['min_warm from the pool’s own hosts, empty ones first', true],
  ['a host moved within the cool-down is not moved (no thrashing)', false],
  ['rollout: one host at a time while the other keeps serving the previous build', true],
  ['rollout: a busy previous host is not evicted', true],
];
for (const [name, expected] of hasWork) {
  test(`plannerHasWork: ${name} → ${expected}`, () => {
    const c = cases.find((x) => x.name === name)!;
    assert.equal(plannerHasWork(c.state, NOW), expected);
  });
}

// Under steady load no rollout host is ever idle by itself: the planner drains one.
const rolloutAlias = [alias('a', 'a2', 'a1')];
const drainCases: Array<[string, PlannerState, string | null]> = [
  [
    'both previous hosts busy: drain the less busy one',
    state([host('h1', [['a1', 'loaded']], { running: 2 }), host('h2', [['a1', 'loaded']], { running: 1 })], rolloutAlias, { h1: member('a'), h2: member('a') }),
    'h2',
  ],
  [
    'equally busy: by name',
    state([host('h1', [['a1', 'loaded']], { running: 1 }), host('h2', [['a1', 'loaded']], { running: 1 })], rolloutAlias, { h1: member('a'), h2: member('a') }),
    'h1',
  ],
  [
    'one already draining: no second (one step at a time)',
    state([host('h1', [['a1', 'loaded']], { running: 1 }), host('h2', [['a1', 'loaded']], { running: 1 })], rolloutAlias, { h1: { ...member('a'), drainingSince: ago(1_000) }, h2: member('a') }),
    null,
  ],
  [
    'a desired load runs: no drain',
    state([host('h1', [['a2', 'loading']]), host('h2', [['a1', 'loaded']], { running: 1 }), host('h3', [['a1', 'loaded']], { running: 1 })], rolloutAlias, { h1: member('a'), h2: member('a'), h3: member('a') }),
    null,
  ],
  [
    'the only host serving: never drained (the alias would go dark)',
    state([host('h1', [['a1', 'loaded']], { running: 1 })], rolloutAlias, { h1: member('a') }),
    null,
  ],
  ['no rollout: nothing to drain', state([host('h1', [['a', 'loaded']], { running: 2 })], [alias('a')], { h1: member('a') }), null],
];
for (const [name, s, expected] of drainCases) test(`drainCandidate: ${name}`, () => assert.equal(drainCandidate(s, NOW), expected));

const rollingHosts = state([host('h1', [['a1', 'loaded']]), host('h2', [['a2', 'loaded']])], rolloutAlias, { h1: member('a'), h2: member('a') });
const drainFirst: Array<[string, PlannerState, PlanAction, boolean]> = [
  ['a rollout step on a host serving the previous build', rollingHosts, { kind: 'load', hostId: 'h1', alias: 'a', build: 'a2', why: 'rollout' }, true],
  ['a rollout step on an empty host', state([host('h1'), host('h2', [['a1', 'loaded']])], rolloutAlias, { h1: member('a'), h2: member('a') }), { kind: 'load', hostId: 'h1', alias: 'a', build: 'a2', why: 'rollout' }, false],
  ['a min_warm load', rollingHosts, { kind: 'load', hostId: 'h1', alias: 'a', build: 'a2', why: 'min_warm' }, false],
  ['a move', rollingHosts, { kind: 'move', hostId: 'h1', alias: 'a', why: 'min_warm' }, false],
];
for (const [name, s, a, expected] of drainFirst) test(`needsDrain: ${name} → ${expected}`, () => assert.equal(needsDrain(s, a), expected));
