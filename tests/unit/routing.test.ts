/** Table tests of the routing policy and the health rule (pure, no I/O). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FleetView, HostView, PlacementStateName } from '../../src/domain/fleetView.js';
import { isHostHealthy, missedHeartbeats } from '../../src/domain/health.js';
import { routeRequest, type RouteDecision } from '../../src/domain/routing.js';

const NOW = Date.parse('2026-11-24T12:00:00Z');
const INTERVAL = 1000;
const ago = (ms: number) => new Date(NOW - ms).toISOString();

function host(id: string, o: { state?: PlacementStateName; load?: number; lastBeatMsAgo?: number; down?: boolean; other?: string[] } = {}): HostView {
  const placements = [
    ...(o.state ? [{ modelId: 'm', state: o.state, lastUsedAt: null }] : []),
    ...(o.other ?? []).map((modelId) => ({ modelId, state: 'loaded' as const, lastUsedAt: null })),
  ];
  return {
    id,
    status: o.down ? 'down' : 'up',
    lastHeartbeatAt: ago(o.lastBeatMsAgo ?? 100),
    placements,
    load: o.load !== undefined ? { m: { running: o.load, queued: 0 } } : {},
    capacity: { maxModelSlots: 4, gpuCount: 0, totalMemoryBytes: 0, freeMemoryBytes: 0 },
    files: [],
  };
}

/** Reports 2 running + 4 queued against limits of 2 and 4. */
const full = (h: HostView): HostView => ({
  ...h,
  load: { m: { running: 2, queued: 4 } },
  capacity: { ...h.capacity, maxInFlight: 2, maxQueue: 4 },
});

const view = (hosts: HostView[], model = true): FleetView => ({
  model: model ? { id: 'm', path: '/m.gguf', sha256: 'x', contextLength: 512, sizeBytes: 1000 } : null,
  hosts,
  heartbeatIntervalMs: INTERVAL,
});

const keyed = (h: HostView, keyFingerprint: string): HostView => ({ ...h, keyFingerprint });
function vview(pins: string[], hosts: HostView[]): FleetView {
  const v = view(hosts);
  return { ...v, model: { ...v.model!, verifiable: true, pinnedFingerprints: pins } };
}

const cases: Array<{ name: string; view: FleetView; exclude?: string[]; joinLoads?: boolean; expect: RouteDecision }> = [
  { name: 'unknown model → not found', view: view([host('a', { state: 'loaded' })], false), expect: { kind: 'notFound', reason: 'unknown_model' } },
  { name: 'no hosts registered yet → wait (503), not 404', view: view([]), expect: { kind: 'wait', reason: 'no_hosts', retryAfterSeconds: 5 } },
  {
    name: 'least busy first, ties by name',
    view: view([host('c', { state: 'loaded', load: 2 }), host('b', { state: 'loaded', load: 0 }), host('a', { state: 'loaded', load: 0 })]),
    expect: { kind: 'serve', candidates: ['a', 'b', 'c'] },
  },
  {
    name: 'queued counts as busy',
    view: view([
      { ...host('a', { state: 'loaded' }), load: { m: { running: 0, queued: 3 } } },
      host('b', { state: 'loaded', load: 1 }),
    ]),
    expect: { kind: 'serve', candidates: ['b', 'a'] },
  },
  {
    name: 'unhealthy hosts are skipped',
    view: view([host('a', { state: 'loaded', lastBeatMsAgo: 3 * INTERVAL + 1 }), host('b', { state: 'loaded', load: 5 })]),
    expect: { kind: 'serve', candidates: ['b'] },
  },
  {
    name: 'a host that missed two heartbeats is still routable',
    view: view([host('a', { state: 'loaded', lastBeatMsAgo: 2 * INTERVAL + 500 })]),
    expect: { kind: 'serve', candidates: ['a'] },
  },
  {
    name: 'a deregistered host is skipped',
    view: view([host('a', { state: 'loaded', down: true }), host('b', { state: 'loaded' })]),
    expect: { kind: 'serve', candidates: ['b'] },
  },
  {
    name: 'excluded (already tried) hosts are not offered again',
    view: view([host('a', { state: 'loaded' }), host('b', { state: 'loaded' })]),
    exclude: ['a'],
    expect: { kind: 'serve', candidates: ['b'] },
  },
  {
    name: 'every loaded replica tried → busy wait, not another load',
    view: view([host('a', { state: 'loaded' }), host('b')]),
    exclude: ['a'],
    expect: { kind: 'wait', reason: 'all_tried', retryAfterSeconds: 1 },
  },
  {
    name: 'a replica reporting every slot and queue place taken is skipped',
    view: view([full(host('a', { state: 'loaded' })), host('b', { state: 'loaded', load: 3 })]),
    expect: { kind: 'serve', candidates: ['b'] },
  },
  {
    name: 'every replica full → 503 at once, no attempt, no extra load',
    view: view([full(host('a', { state: 'loaded' })), full(host('b', { state: 'loaded' })), host('c')]),
    expect: { kind: 'wait', reason: 'all_tried', retryAfterSeconds: 1 },
  },
  {
    name: 'nothing loaded → cold load on the emptiest host, ties by name',
    view: view([host('b'), host('a', { other: ['x'] }), host('c')]),
    expect: { kind: 'coldLoad', hostId: 'b', build: 'm' },
  },
  {
    name: 'loading somewhere, joining off (recorded histories) → wait with Retry-After',
    view: view([host('a', { state: 'loading' }), host('b')]),
    expect: { kind: 'wait', reason: 'loading', retryAfterSeconds: 2 },
  },
  {
    name: 'loading somewhere → join that load instead of a 503',
    view: view([host('b', { state: 'loading' }), host('a')]),
    joinLoads: true,
    expect: { kind: 'coldLoad', hostId: 'b', build: 'm' },
  },
  {
    name: 'the loading host was already tried → wait, not a second join',
    view: view([host('b', { state: 'loading' }), host('a')]),
    joinLoads: true,
    exclude: ['b'],
    expect: { kind: 'wait', reason: 'loading', retryAfterSeconds: 2 },
  },
  {
    name: 'a suspect host (its generate was never picked up) is not routed to; an idle host loads',
    view: view([{ ...host('a', { state: 'loaded' }), suspect: true }, host('b')]),
    expect: { kind: 'coldLoad', hostId: 'b', build: 'm' },
  },
  {
    name: 'a quarantined build is never cold-loaded → wait quarantined',
    view: { ...view([host('a')]), model: { id: 'm', path: '/m.gguf', sha256: 'x', contextLength: 512, sizeBytes: 1000, quarantined: { reason: 'aborted' } } },
    expect: { kind: 'wait', reason: 'quarantined', retryAfterSeconds: 5 },
  },
  {
    name: 'a quarantined build still serves where it is loaded',
    view: { ...view([host('a', { state: 'loaded' })]), model: { id: 'm', path: '/m.gguf', sha256: 'x', contextLength: 512, sizeBytes: 1000, quarantined: { reason: 'aborted' } } },
    expect: { kind: 'serve', candidates: ['a'] },
  },
  {
    name: 'a failed placement may be retried on the same host',
    view: view([host('a', { state: 'failed' })]),
    expect: { kind: 'coldLoad', hostId: 'a', build: 'm' },
  },
  {
    name: 'no registered host could ever hold the model → not found (404)',
    view: { ...view([host('a')]), hosts: [{ ...host('a'), capacity: { maxModelSlots: 1, gpuCount: 0, totalMemoryBytes: 100, freeMemoryBytes: 100 } }] },
    expect: { kind: 'notFound', reason: 'no_capable_host' },
  },
  {
    name: 'every slot holds a busy model → 503 wait, no eviction',
    view: view([{ ...host('a', { other: ['x'] }), capacity: { maxModelSlots: 1, gpuCount: 0, totalMemoryBytes: 0, freeMemoryBytes: 0 }, load: { x: { running: 1, queued: 0 } } }]),
    expect: { kind: 'wait', reason: 'no_free_slot', retryAfterSeconds: 1 },
  },
  {
    name: 'only unhealthy hosts → 503 wait',
    view: view([host('a', { state: 'loaded', lastBeatMsAgo: 10 * INTERVAL })]),
    expect: { kind: 'wait', reason: 'no_healthy_host', retryAfterSeconds: 5 },
  },
  // Verifiable models: only pinned keys serve or cold-load; none → fail closed.
  {
    name: 'verifiable: only hosts whose current key is pinned are offered',
    view: vview(['fa', 'fc'], [keyed(host('a', { state: 'loaded', load: 2 }), 'fa'), keyed(host('b', { state: 'loaded' }), 'fb'), keyed(host('c', { state: 'loaded', load: 1 }), 'fc')]),
    expect: { kind: 'serve', candidates: ['c', 'a'] },
  },
  {
    name: 'verifiable: a host that reports no fingerprint is never offered',
    view: vview(['fa'], [host('a', { state: 'loaded' }), keyed(host('b', { state: 'loaded' }), 'fb')]),
    expect: { kind: 'wait', reason: 'no_pinned_host', retryAfterSeconds: 5 },
  },
  {
    name: 'verifiable: a rotated (unpinned) key on every replica → no_pinned_host, not a cold load elsewhere',
    view: vview(['old'], [keyed(host('a', { state: 'loaded' }), 'new'), keyed(host('b'), 'other')]),
    expect: { kind: 'wait', reason: 'no_pinned_host', retryAfterSeconds: 5 },
  },
  {
    name: 'verifiable: empty pin set → no_pinned_host',
    view: vview([], [keyed(host('a', { state: 'loaded' }), 'fa')]),
    expect: { kind: 'wait', reason: 'no_pinned_host', retryAfterSeconds: 5 },
  },
  {
    name: 'verifiable: cold load only on a pinned host',
    view: vview(['fc'], [keyed(host('a'), 'fa'), keyed(host('b'), 'fb'), keyed(host('c', { other: ['x'] }), 'fc')]),
    expect: { kind: 'coldLoad', hostId: 'c', build: 'm' },
  },
  {
    name: 'verifiable: pinned host unhealthy → no_pinned_host while unpinned ones are up',
    view: vview(['fa'], [keyed(host('a', { state: 'loaded', lastBeatMsAgo: 10 * INTERVAL }), 'fa'), keyed(host('b', { state: 'loaded' }), 'fb')]),
    expect: { kind: 'wait', reason: 'no_pinned_host', retryAfterSeconds: 5 },
  },
  {
    name: 'not verifiable: the pin set is ignored',
    view: { ...vview([], [keyed(host('a', { state: 'loaded' }), 'fa')]), model: { ...view([]).model!, verifiable: false, pinnedFingerprints: [] } },
    expect: { kind: 'serve', candidates: ['a'] },
  },
];

for (const c of cases) {
  test(`routeRequest: ${c.name}`, () => {
    assert.deepEqual(routeRequest(c.view, { now: NOW, exclude: c.exclude, joinLoads: c.joinLoads }), c.expect);
  });
}

test('routeRequest is deterministic: input order does not matter', () => {
  const hosts = [host('b', { state: 'loaded', load: 1 }), host('a', { state: 'loaded', load: 1 }), host('c', { state: 'loaded', load: 0 })];
  const forward = routeRequest(view(hosts), { now: NOW });
  const backward = routeRequest(view([...hosts].reverse()), { now: NOW });
  assert.deepEqual(forward, backward);
  assert.deepEqual(forward, { kind: 'serve', candidates: ['c', 'a', 'b'] });
});

test('routeRequest: a prefix holder busier than the gap still goes first while it has a free sequence (its reported maxInFlight)', () => {
  const holder = (maxInFlight: number): HostView => ({
    ...host('b', { state: 'loaded' }),
    load: { m: { running: 3, queued: 0, prefixes: ['p1', 'p2'], liveSequences: 3 } },
    capacity: { ...host('b').capacity, maxInFlight, maxQueue: 8 },
  });
  const idle = { ...host('a', { state: 'loaded', load: 0 }), capacity: { ...host('a').capacity, maxInFlight: 4, maxQueue: 8 } };
  const route = (h: HostView) => routeRequest(view([idle, h]), { now: NOW, prefix: { blocks: ['p1', 'p2', 'p3'] } });
  assert.deepEqual(route(holder(4)), { kind: 'serve', candidates: ['b', 'a'] }, '3 running of 4');
  assert.deepEqual(route(holder(3)), { kind: 'serve', candidates: ['a', 'b'] }, '3 running of 3: it would queue');
});

const health: Array<[string, number, boolean, number]> = [
  ['fresh heartbeat', 10, true, 0],
  ['one missed', INTERVAL + 10, true, 1],
  ['two missed', 2 * INTERVAL + 10, true, 2],
  ['three missed in a row → unhealthy', 3 * INTERVAL + 10, false, 3],
  ['long gone', 60 * INTERVAL, false, 60],
];
for (const [name, age, healthy, missed] of health) {
  test(`health: ${name}`, () => {
    assert.equal(missedHeartbeats(ago(age), NOW, INTERVAL), missed);
    assert.equal(isHostHealthy({ status: 'up', lastHeartbeatAt: ago(age) }, NOW, INTERVAL), healthy);
  });
}

test('health: one heartbeat resets the count; an unparsable timestamp is unhealthy', () => {
  assert.equal(isHostHealthy({ status: 'up', lastHeartbeatAt: ago(0) }, NOW, INTERVAL), true);
  assert.equal(isHostHealthy({ status: 'up', lastHeartbeatAt: 'garbage' }, NOW, INTERVAL), false);
  assert.equal(isHostHealthy({ status: 'down', lastHeartbeatAt: ago(0) }, NOW, INTERVAL), false);
});
