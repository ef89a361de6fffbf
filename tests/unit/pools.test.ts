/**
 * Table tests of the pool policy (pure): seeding, which builds a host may serve for an alias
 * (enforcement, shared builds, the kill switch), reassignment eligibility, which idle hosts
 * may be borrowed, and routing with pools — never into another pool, pool_exhausted vs a
 * capability gap, the previous build as fallback.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FleetView, HostView, PlacementStateName } from '../../src/domain/fleetView.js';
import {
  countsFor,
  movableHosts,
  poolForLoad,
  reassignRefusal,
  seedPool,
  servableBuilds,
  type AliasView,
  type HostPoolView,
  type PoolsView,
} from '../../src/domain/pools.js';
import { routeRequest, type RouteDecision } from '../../src/domain/routing.js';

const NOW = Date.parse('2026-11-24T12:00:00Z');
const HB = 1000;
const ago = (ms: number) => new Date(NOW - ms).toISOString();

const alias = (id: string, desired = id, previous: string | null = null, minWarm = 0): AliasView => ({ id, desired, previous, minWarm });
const A = alias('a');
const B = alias('b');

interface HostOpts {
  loaded?: string[];
  state?: PlacementStateName;
  running?: number;
  queued?: number;
  beatAgo?: number;
  full?: boolean;
  memory?: number;
}
function host(id: string, o: HostOpts = {}): HostView {
  const loaded = o.loaded ?? [];
  return {
    id,
    status: 'up',
    lastHeartbeatAt: ago(o.beatAgo ?? 100),
    placements: loaded.map((m) => ({ modelId: m, state: o.state ?? 'loaded', lastUsedAt: null })),
    load: Object.fromEntries(loaded.map((m) => [m, { running: o.running ?? (o.full ? 1 : 0), queued: o.queued ?? 0 }])),
    capacity: { maxModelSlots: 1, gpuCount: 0, totalMemoryBytes: o.memory ?? 0, freeMemoryBytes: 0, maxInFlight: 1, maxQueue: 0 },
    files: [],
  };
}
const member = (alias: string | null, state: HostPoolView['state'] = 'serving', movedAt: string | null = null): HostPoolView => ({ alias, state, movedAt });
function pools(hostPools: Record<string, HostPoolView>, aliases: AliasView[] = [A, B], enabled = true): PoolsView {
  return { enabled, cooldownMs: 60_000, aliases, hostPools };
}

test('seedPool: what a host runs wins over what it has', () => {
  assert.deepEqual(seedPool({ hostId: 'h', running: ['b'], advertised: ['a'], aliases: [A, B], poolSizes: {} }), { alias: 'b', source: 'running' });
  assert.deepEqual(seedPool({ hostId: 'h', running: [], advertised: ['a'], aliases: [A, B], poolSizes: {} }), { alias: 'a', source: 'advertised' });
  assert.equal(seedPool({ hostId: 'h', running: ['x'], advertised: ['y'], aliases: [A, B], poolSizes: {} }), null);
});

test('seedPool: hosts advertising several models spread across the pools, deterministically', () => {
  const sizes: Record<string, number> = {};
  const chosen: string[] = [];
  for (let i = 0; i < 12; i++) {
    const d = seedPool({ hostId: `gpu-${i}`, running: [], advertised: ['a', 'b', 'c'], aliases: [A, B, alias('c')], poolSizes: sizes });
    chosen.push(d!.alias);
    sizes[d!.alias] = (sizes[d!.alias] ?? 0) + 1;
  }
  assert.deepEqual(sizes, { a: 4, b: 4, c: 4 });
  // Not "everyone picks the alphabetically first": with equal sizes a per-host hash decides.
  const firsts = Array.from({ length: 12 }, (_, i) => seedPool({ hostId: `gpu-${i}`, running: [], advertised: ['a', 'b', 'c'], aliases: [A, B, alias('c')], poolSizes: {} })!.alias);
  assert.ok(new Set(firsts).size > 1, `all picked ${firsts[0]}`);
  const again = seedPool({ hostId: 'gpu-3', running: [], advertised: ['a', 'b', 'c'], aliases: [A, B, alias('c')], poolSizes: {} });
  assert.equal(again!.alias, firsts[3], 'same input, same pool');
});

test('seedPool: 12 hosts advertising both aliases, seeded one after another, split evenly', () => {
  const sizes: Record<string, number> = {};
  const run = () => Array.from({ length: 12 }, (_, i) => seedPool({ hostId: `node-${i}`, running: [], advertised: ['b', 'a'], aliases: [A, B], poolSizes: { ...sizes } }));
  for (let i = 0; i < 12; i++) {
    const d = seedPool({ hostId: `node-${i}`, running: [], advertised: ['b', 'a'], aliases: [A, B], poolSizes: sizes });
    assert.equal(d?.source, 'advertised');
    sizes[d!.alias] = (sizes[d!.alias] ?? 0) + 1;
  }
  assert.deepEqual(sizes, { a: 6, b: 6 });
  assert.deepEqual(run(), run(), 'deterministic for the same input');
});

test('seedPool: a build shared by several aliases makes each a candidate', () => {
  const chat = alias('chat', 'llama');
  const assistant = alias('assistant', 'llama');
  const d1 = seedPool({ hostId: 'h', running: ['llama'], advertised: [], aliases: [chat, assistant], poolSizes: { chat: 3 } });
  assert.deepEqual(d1, { alias: 'assistant', source: 'running' });
  const d2 = seedPool({ hostId: 'h', running: ['llama'], advertised: [], aliases: [chat, assistant], poolSizes: { assistant: 3 } });
  assert.deepEqual(d2, { alias: 'chat', source: 'running' });
});

const servable: Array<{ name: string; pools: PoolsView | undefined; host: string; alias: AliasView; expect: string[] }> = [
  { name: 'own pool: all its builds', pools: pools({ h: member('r') }, [alias('r', 'r2', 'r1')]), host: 'h', alias: alias('r', 'r2', 'r1'), expect: ['r2', 'r1'] },
  { name: 'another pool: none', pools: pools({ h: member('b') }), host: 'h', alias: A, expect: [] },
  { name: 'no pool yet: none', pools: pools({}), host: 'h', alias: A, expect: [] },
  { name: 'moving: none, not even its own', pools: pools({ h: member('a', 'moving') }), host: 'h', alias: A, expect: [] },
  { name: 'failed load: still its pool', pools: pools({ h: member('a', 'failed') }), host: 'h', alias: A, expect: ['a'] },
  {
    name: 'a shared build counts for each alias',
    pools: pools({ h: member('chat') }, [alias('chat', 'llama'), alias('assistant', 'llama')]),
    host: 'h',
    alias: alias('assistant', 'llama'),
    expect: ['llama'],
  },
  {
    name: 'only the shared build, not the alias’s other one',
    pools: pools({ h: member('chat') }, [alias('chat', 'llama'), alias('assistant', 'llama-2', 'llama')]),
    host: 'h',
    alias: alias('assistant', 'llama-2', 'llama'),
    expect: ['llama'],
  },
  { name: 'kill switch: every build on every host', pools: pools({ h: member('b') }, [A, B], false), host: 'h', alias: A, expect: ['a'] },
  { name: 'no pools in the view (old history): every host', pools: undefined, host: 'h', alias: A, expect: ['a'] },
];
for (const c of servable) {
  test(`servableBuilds: ${c.name}`, () => {
    assert.deepEqual(servableBuilds(c.pools, c.host, c.alias), c.expect);
    assert.equal(countsFor(c.pools, c.host, c.alias), c.expect.length > 0);
  });
}

const eligibility: Array<{ name: string; host: HostView | undefined; pool?: HostPoolView; cooldownMs?: number; self?: boolean; expect: ReturnType<typeof reassignRefusal> }> = [
  { name: 'idle → allowed', host: host('h', { loaded: ['b'] }), expect: null },
  { name: 'empty → allowed', host: host('h'), expect: null },
  { name: 'running → busy', host: host('h', { loaded: ['b'], running: 1 }), expect: 'busy' },
  { name: 'queued → queued', host: host('h', { loaded: ['b'], queued: 2 }), expect: 'queued' },
  { name: 'a model loading → loading', host: host('h', { loaded: ['b'], state: 'loading' }), expect: 'loading' },
  { name: 'a model unloading → loading', host: host('h', { loaded: ['b'], state: 'unloading' }), expect: 'loading' },
  { name: 'already moving → moving', host: host('h'), pool: member('b', 'moving'), expect: 'moving' },
  { name: 'its own move may go on', host: host('h'), pool: member('b', 'moving'), self: true, expect: null },
  { name: 'three heartbeats missed → unhealthy', host: host('h', { beatAgo: 3 * HB + 1 }), expect: 'unhealthy' },
  { name: 'unknown host', host: undefined, expect: 'unknown_host' },
  { name: 'two intervals late is still healthy', host: host('h', { beatAgo: 2 * HB + 500 }), expect: null },
  { name: 'deregistered (down) → unhealthy at once', host: { ...host('h'), status: 'down' }, expect: 'unhealthy' },
  { name: 'unhealthy wins over busy', host: host('h', { loaded: ['b'], running: 1, beatAgo: 5 * HB }), expect: 'unhealthy' },
  { name: 'busy wins over moving', host: host('h', { loaded: ['b'], running: 1 }), pool: member('b', 'moving'), expect: 'busy' },
  { name: 'moved within the cool-down', host: host('h'), pool: member('b', 'serving', ago(10_000)), cooldownMs: 60_000, expect: 'cooldown' },
  { name: 'moved before the cool-down', host: host('h'), pool: member('b', 'serving', ago(61_000)), cooldownMs: 60_000, expect: null },
  { name: 'cool-down not asked (operator, on demand)', host: host('h'), pool: member('b', 'serving', ago(10_000)), expect: null },
];
for (const c of eligibility) {
  test(`reassignRefusal: ${c.name}`, () => {
    assert.equal(reassignRefusal(c.host, c.pool, { now: NOW, heartbeatIntervalMs: HB, cooldownMs: c.cooldownMs, self: c.self }), c.expect);
  });
}

const movable = (hosts: HostView[], p: PoolsView, o: { hard?: boolean; exclude?: string[]; canServe?: (h: HostView) => boolean } = {}) =>
  movableHosts(hosts, p, A, { now: NOW, heartbeatIntervalMs: HB, cooldownMs: 60_000, hardCooldown: o.hard ?? false, exclude: o.exclude, canServe: o.canServe });

test('movableHosts: unassigned first, then past the cool-down, then the larger donor pool, then name', () => {
  const hosts = [host('a1', { loaded: ['a'] }), host('b1', { loaded: ['b'] }), host('b2', { loaded: ['b'] }), host('c1', { loaded: ['c'] }), host('free')];
  const p = pools({ a1: member('a'), b1: member('b'), b2: member('b', 'serving', ago(1000)), c1: member('c') }, [A, B, alias('c')]);
  assert.deepEqual(movable(hosts, p), ['free', 'b1', 'c1', 'b2']);
  assert.deepEqual(movable(hosts, p, { hard: true }), ['free', 'b1', 'c1'], 'the planner never takes a cooling host');
  assert.deepEqual(movable(hosts, p, { exclude: ['free', 'b1'] }), ['c1', 'b2']);
  assert.deepEqual(movable(hosts, p, { canServe: (h) => h.id !== 'free' }), ['b1', 'c1', 'b2']);
});

test('movableHosts: busy hosts, a donor at its min_warm, and the kill switch give none', () => {
  const hosts = [host('a1', { loaded: ['a'] }), host('b1', { loaded: ['b'], running: 1 }), host('b2', { loaded: ['b'] })];
  const p = pools({ a1: member('a'), b1: member('b'), b2: member('b') }, [A, alias('b', 'b', null, 2)]);
  assert.deepEqual(movable(hosts, p), [], 'b keeps its 2 hosts; b1 is busy anyway');
  const p1 = pools({ a1: member('a'), b1: member('b'), b2: member('b') }, [A, alias('b', 'b', null, 1)]);
  assert.deepEqual(movable(hosts, p1), ['b2']);
  assert.deepEqual(movable(hosts, { ...p1, enabled: false }), []);
});

test('movableHosts: never the alias’s own or build-sharing hosts, moving or dead hosts; `leaving` lowers a donor’s count', () => {
  const shares = alias('s', 'a');
  const hosts = [host('a1'), host('s1'), host('m1'), host('dead', { beatAgo: 10 * HB }), host('b1'), host('b2')];
  const p = pools({ a1: member('a'), s1: member('s'), m1: member('b', 'moving'), dead: member('b'), b1: member('b'), b2: member('b') }, [A, alias('b', 'b', null, 1), shares]);
  assert.deepEqual(movable(hosts, p), ['b1', 'b2']);
  const o = { now: NOW, heartbeatIntervalMs: HB, cooldownMs: 60_000, hardCooldown: true };
  assert.deepEqual(movableHosts(hosts, p, A, { ...o, leaving: ['b1'] }), [], 'b2 is b’s last host once b1 leaves');
  assert.deepEqual(movableHosts(hosts, undefined, A, o), [], 'no pools in the view: nothing to move');
});

// Routing with pools: alias a on h-a1, h-a2; alias b on h-b1.
function view(hosts: HostView[], p: PoolsView, o: { model?: string; previous?: string; sizeBytes?: number } = {}): FleetView {
  const build = (id: string) => ({ id, path: `/${id}.gguf`, sha256: id, contextLength: 512, sizeBytes: o.sizeBytes ?? 1000 });
  const a = p.aliases.find((x) => x.id === 'a')!;
  return { model: build(o.model ?? a.desired), ...(a.previous ? { previous: build(a.previous) } : {}), alias: a, hosts, pools: p, heartbeatIntervalMs: HB };
}
const layout = { 'h-a1': member('a'), 'h-a2': member('a'), 'h-b1': member('b') };
/** Reports `running` + `queued` for build `m` against limits of 2 in flight and 4 queued. */
const limits = (h: HostView, m: string, running: number, queued: number): HostView => ({
  ...h,
  load: { ...h.load, [m]: { running, queued } },
  capacity: { ...h.capacity, maxInFlight: 2, maxQueue: 4 },
});
const routing: Array<{ name: string; view: FleetView; exclude?: string[]; expect: RouteDecision }> = [
  {
    name: 'only the pool’s hosts serve, even when another pool’s host holds the build',
    view: view([host('h-a1', { loaded: ['a'] }), host('h-b1', { loaded: ['a', 'b'] })], pools({ 'h-a1': member('a'), 'h-b1': member('b') })),
    expect: { kind: 'serve', candidates: ['h-a1'] },
  },
  {
    name: 'desired build first, previous build as fallback',
    view: view([host('h-a1', { loaded: ['a1'] }), host('h-a2', { loaded: ['a2'] })], pools(layout, [alias('a', 'a2', 'a1'), B])),
    expect: { kind: 'serve', candidates: ['h-a2'], fallback: ['h-a1'] },
  },
  {
    name: 'pool full, an idle host in another pool → move it',
    view: view([host('h-a1', { loaded: ['a'], full: true }), host('h-a2', { loaded: ['a'], full: true }), host('h-b1', { loaded: ['b'] })], pools(layout)),
    expect: { kind: 'movePool', hostId: 'h-b1' },
  },
  {
    name: 'pool full, the other pool busy → pool_exhausted, never its host',
    view: view([host('h-a1', { loaded: ['a'], full: true }), host('h-b1', { loaded: ['b'], running: 1 })], pools(layout)),
    expect: { kind: 'wait', reason: 'pool_exhausted', retryAfterSeconds: 1 },
  },
  {
    name: 'pool full, the donor at its min_warm → pool_exhausted',
    view: view([host('h-a1', { loaded: ['a'], full: true }), host('h-b1', { loaded: ['b'] })], pools(layout, [A, alias('b', 'b', null, 1)])),
    expect: { kind: 'wait', reason: 'pool_exhausted', retryAfterSeconds: 1 },
  },
  {
    name: 'every replica already tried → pool_exhausted (or a move)',
    view: view([host('h-a1', { loaded: ['a'] })], pools(layout, [A, B])),
    exclude: ['h-a1'],
    expect: { kind: 'wait', reason: 'pool_exhausted', retryAfterSeconds: 1 },
  },
  {
    name: 'no pool host at all, an unassigned idle host → move it',
    view: view([host('h-b1', { loaded: ['b'], running: 1 }), host('new')], pools({ 'h-b1': member('b') })),
    expect: { kind: 'movePool', hostId: 'new' },
  },
  {
    name: 'one host, two aliases taking turns: the host moved 10 s ago stays (pool_cooling, Retry-After the cool-down left)',
    view: view([host('h-b1', { loaded: ['b'] })], pools({ 'h-b1': member('b', 'serving', ago(10_000)) })),
    expect: { kind: 'wait', reason: 'pool_cooling', retryAfterSeconds: 50 },
  },
  {
    name: 'a cooling host and one past its cool-down: the one past it moves',
    view: view([host('h-b1', { loaded: ['b'] }), host('h-b2', { loaded: ['b'] })], pools({ 'h-b1': member('b', 'serving', ago(10_000)), 'h-b2': member('b', 'serving', ago(61_000)) })),
    expect: { kind: 'movePool', hostId: 'h-b2' },
  },
  {
    name: 'capability gap: no registered host could ever hold the build → not found, not 429',
    view: view([host('h-a1', { memory: 100 }), host('h-b1', { loaded: ['b'], memory: 100 })], pools(layout), { sizeBytes: 1000 }),
    expect: { kind: 'notFound', reason: 'no_capable_host' },
  },
  {
    name: 'nothing loaded in the pool → cold load on a pool host only',
    view: view([host('h-a1', { loaded: ['x'], running: 1 }), host('h-a2'), host('h-b1')], pools(layout)),
    expect: { kind: 'coldLoad', hostId: 'h-a2', build: 'a' },
  },
  {
    name: 'the pool’s only host is dead and nothing can move → 503 no_healthy_host',
    view: view([host('h-a1', { loaded: ['a'], beatAgo: 10 * HB }), host('h-b1', { loaded: ['b'], running: 1 })], pools(layout)),
    expect: { kind: 'wait', reason: 'no_healthy_host', retryAfterSeconds: 5 },
  },
  {
    name: 'a host of pool b serves a only with a build the two aliases share',
    view: view(
      [host('h-a1', { loaded: ['a2'] }), host('h-b1', { loaded: ['llama'] }), host('h-b2', { loaded: ['a2'] })],
      pools({ 'h-a1': member('a'), 'h-b1': member('b'), 'h-b2': member('b') }, [alias('a', 'a2', 'llama'), alias('b', 'llama')]),
    ),
    expect: { kind: 'serve', candidates: ['h-a1'], fallback: ['h-b1'] },
  },
  {
    name: 'a host drained for a rollout step gets no new request while another host serves',
    view: view([host('h-a1', { loaded: ['a'] }), host('h-a2', { loaded: ['a'] })], pools({ 'h-a1': { ...member('a'), drainingSince: ago(1_000) }, 'h-a2': member('a') })),
    expect: { kind: 'serve', candidates: ['h-a2'] },
  },
  {
    name: '… even when that host is full (429, the step’s cost)',
    view: view([host('h-a1', { loaded: ['a'] }), host('h-a2', { loaded: ['a'], full: true })], pools({ 'h-a1': { ...member('a'), drainingSince: ago(1_000) }, 'h-a2': member('a') })),
    expect: { kind: 'wait', reason: 'pool_exhausted', retryAfterSeconds: 1 },
  },
  {
    name: '… and a pool full only because its drained host is held back pulls no host from another pool',
    view: view([host('h-a1', { loaded: ['a'] }), host('h-a2', { loaded: ['a'], full: true }), host('h-b1', { loaded: ['b'] })], pools({ 'h-a1': { ...member('a'), drainingSince: ago(1_000) }, 'h-a2': member('a'), 'h-b1': member('b') })),
    expect: { kind: 'wait', reason: 'pool_exhausted', retryAfterSeconds: 1 },
  },
  {
    name: 'a stale drain (its planner run died) is ignored',
    view: view([host('h-a1', { loaded: ['a'] }), host('h-a2', { loaded: ['a'] })], pools({ 'h-a1': { ...member('a'), drainingSince: ago(120_000) }, 'h-a2': member('a') })),
    expect: { kind: 'serve', candidates: ['h-a1', 'h-a2'] },
  },
  {
    name: '… and serves as before when no other host serves the alias',
    view: view([host('h-a1', { loaded: ['a'] }), host('h-a2', { beatAgo: 10 * HB, loaded: ['a'] })], pools({ 'h-a1': { ...member('a'), drainingSince: ago(1_000) }, 'h-a2': member('a') })),
    expect: { kind: 'serve', candidates: ['h-a1'] },
  },
  {
    name: 'a host being moved is never offered',
    view: view([host('h-a1', { loaded: ['a'] }), host('h-a2', { loaded: ['a'] })], pools({ 'h-a1': member('a', 'moving'), 'h-a2': member('a') })),
    expect: { kind: 'serve', candidates: ['h-a2'] },
  },
  {
    name: 'saturated only when both in-flight and queue limits are reached',
    view: view([limits(host('h-a1', { loaded: ['a'] }), 'a', 2, 4), limits(host('h-a2', { loaded: ['a'] }), 'a', 2, 3)], pools(layout)),
    expect: { kind: 'serve', candidates: ['h-a2'] },
  },
  {
    name: 'every replica saturated against its limits, an idle host elsewhere → move it',
    view: view([limits(host('h-a1', { loaded: ['a'] }), 'a', 2, 4), limits(host('h-a2', { loaded: ['a'] }), 'a', 3, 5), host('h-b1', { loaded: ['b'] })], pools(layout)),
    expect: { kind: 'movePool', hostId: 'h-b1' },
  },
  {
    name: 'pool hosts too small, a capable idle host in another pool → move it (no 404)',
    view: view([host('h-a1', { memory: 100 }), host('h-b1', { loaded: ['b'], memory: 10_000 })], pools(layout), { sizeBytes: 1000 }),
    expect: { kind: 'movePool', hostId: 'h-b1' },
  },
  {
    name: 'kill switch: nothing loaded → cold load on another pool’s host',
    view: view([host('h-a1', { loaded: ['x'], running: 1 }), host('h-b1')], pools(layout, [A, B], false)),
    expect: { kind: 'coldLoad', hostId: 'h-b1', build: 'a' },
  },
  {
    name: 'kill switch: no slot free anywhere → no_free_slot, no move',
    view: view([host('h-a1', { loaded: ['x'], running: 1 }), host('h-b1', { loaded: ['b'], running: 1 })], pools(layout, [A, B], false)),
    expect: { kind: 'wait', reason: 'no_free_slot', retryAfterSeconds: 1 },
  },
  {
    name: 'kill switch: another pool’s host serves, old wait reasons',
    view: view([host('h-a1', { loaded: ['a'], full: true }), host('h-b1', { loaded: ['a'] })], pools(layout, [A, B], false)),
    expect: { kind: 'serve', candidates: ['h-b1'] },
  },
  {
    name: 'kill switch: every replica full → all_tried, no move',
    view: view([host('h-a1', { loaded: ['a'], full: true }), host('h-b1', { loaded: ['b'] })], pools(layout, [A, B], false)),
    expect: { kind: 'wait', reason: 'all_tried', retryAfterSeconds: 1 },
  },
];
for (const c of routing) {
  test(`routeRequest with pools: ${c.name}`, () => {
    assert.deepEqual(routeRequest(c.view, { now: NOW, exclude: c.exclude }), c.expect);
  });
}

test(
  'routeRequest with pools: verifiable build, the pool’s hosts healthy but none pinned → no_pinned_host',
  () => {
    const v = view([{ ...host('h-a1'), keyFingerprint: 'unpinned' }, { ...host('h-b1', { loaded: ['b'], running: 1 }), keyFingerprint: 'K' }], pools(layout));
    const d = routeRequest({ ...v, model: { ...v.model!, verifiable: true, pinnedFingerprints: ['K'] } }, { now: NOW });
    assert.deepEqual(d, { kind: 'wait', reason: 'no_pinned_host', retryAfterSeconds: 5 });
  },
);

const loadAliases: AliasView[] = [
  { id: 'zeta', desired: 'b1', previous: null, minWarm: 0 },
  { id: 'alpha', desired: 'b1', previous: null, minWarm: 0 },
  { id: 'roll', desired: 'b2', previous: 'b1', minWarm: 0 },
];
const poolForLoadCases: Array<[string, { requested: string; build: string }, string | null]> = [
  ['the alias named, when it serves the build', { requested: 'zeta', build: 'b1' }, 'zeta'],
  ['a build named: the first alias (by id) that serves it', { requested: 'b1', build: 'b1' }, 'alpha'],
  ['an alias rolling from the build does not count', { requested: 'roll', build: 'b1' }, 'alpha'],
  ['a build no alias serves as desired', { requested: 'b3', build: 'b3' }, null],
];
for (const [name, o, expected] of poolForLoadCases) test(`pool for an operator load: ${name}`, () => assert.equal(poolForLoad(loadAliases, o), expected));
