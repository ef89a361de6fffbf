/** Placement policy tables: capability, slots, LRU eviction of idle models, preferences. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CatalogModelView, HostView, PlacementStateName } from '../../src/domain/fleetView.js';
import { canEverHost, chooseLoadTarget, memoryNeeded, planLoadOnHost, type PlacementDecision } from '../../src/domain/placement.js';

const GB = 1024 ** 3;
const model: CatalogModelView = { id: 'm', path: '/models/m.gguf', sha256: 'x', contextLength: 512, sizeBytes: 4 * GB };

function host(
  id: string,
  o: {
    slots?: number;
    total?: number;
    free?: number;
    files?: string[];
    models?: Array<[string, PlacementStateName, { running?: number; queued?: number; lastUsedAt?: string }?]>;
  } = {},
): HostView {
  const models = o.models ?? [];
  return {
    id,
    status: 'up',
    lastHeartbeatAt: new Date().toISOString(),
    placements: models.map(([modelId, state]) => ({ modelId, state, lastUsedAt: null })),
    load: Object.fromEntries(
      models.filter(([, , l]) => l).map(([modelId, , l]) => [modelId, { running: l!.running ?? 0, queued: l!.queued ?? 0, lastUsedAt: l!.lastUsedAt ?? null }]),
    ),
    capacity: { maxModelSlots: o.slots ?? 1, gpuCount: 0, totalMemoryBytes: o.total ?? 16 * GB, freeMemoryBytes: o.free ?? 8 * GB },
    files: o.files ?? [],
  };
}

test('memory needed has headroom over the file size; unknown totals pass capability', () => {
  assert.equal(memoryNeeded({ sizeBytes: 10 }), 12);
  assert.equal(canEverHost(host('a', { total: 4 * GB }), model), false);
  assert.equal(canEverHost(host('a', { total: 5 * GB }), model), true);
  assert.equal(canEverHost(host('a', { total: 0 }), model), true);
});

const plans: Array<[string, HostView, ReturnType<typeof planLoadOnHost>]> = [
  ['free slot → no eviction', host('a', { slots: 2, models: [['x', 'loaded']] }), { hostId: 'a', evict: [] }],
  ['full → evict the only idle model', host('a', { models: [['x', 'loaded']] }), { hostId: 'a', evict: ['x'] }],
  [
    'full → evict the least recently used idle model',
    host('a', { slots: 2, models: [['x', 'loaded', { lastUsedAt: '2026-01-02T00:00:00Z' }], ['y', 'loaded', { lastUsedAt: '2026-01-01T00:00:00Z' }]] }),
    { hostId: 'a', evict: ['y'] },
  ],
  [
    'a model with requests running is never evicted',
    host('a', { slots: 2, models: [['x', 'loaded', { running: 1, lastUsedAt: '2026-01-01T00:00:00Z' }], ['y', 'loaded', { lastUsedAt: '2026-01-02T00:00:00Z' }]] }),
    { hostId: 'a', evict: ['y'] },
  ],
  ['a model with requests queued is never evicted', host('a', { models: [['x', 'loaded', { queued: 1 }]] }), null],
  ['a loading model is never evicted', host('a', { models: [['x', 'loading']] }), null],
  ['unloaded and failed placements take no slot', host('a', { models: [['x', 'unloaded'], ['y', 'failed']] }), { hostId: 'a', evict: [] }],
  ['the model itself does not count against the slots', host('a', { models: [['m', 'failed']] }), { hostId: 'a', evict: [] }],
];
for (const [name, h, expected] of plans) {
  test(`planLoadOnHost: ${name}`, () => assert.deepEqual(planLoadOnHost(h, 'm'), expected));
}

const choices: Array<[string, HostView[], PlacementDecision]> = [
  ['no registered host could ever hold it → never', [host('a', { total: 2 * GB }), host('b', { total: 3 * GB })], { kind: 'never' }],
  ['capable hosts all full of busy models → no room now', [host('a', { models: [['x', 'loaded', { running: 1 }]] })], { kind: 'noRoom' }],
  ['prefer the host that has the file', [host('a'), host('b', { files: ['/models/m.gguf'] })], { kind: 'load', plan: { hostId: 'b', evict: [] } }],
  ['prefer no eviction', [host('a', { models: [['x', 'loaded']] }), host('b', { models: [] })], { kind: 'load', plan: { hostId: 'b', evict: [] } }],
  ['then more free slots', [host('a', { slots: 2, models: [['x', 'loaded']] }), host('b', { slots: 2 })], { kind: 'load', plan: { hostId: 'b', evict: [] } }],
  ['then more free memory', [host('a', { free: 1 * GB }), host('b', { free: 9 * GB })], { kind: 'load', plan: { hostId: 'b', evict: [] } }],
  ['then by name', [host('b'), host('a')], { kind: 'load', plan: { hostId: 'a', evict: [] } }],
  ['evicts when it must', [host('a', { models: [['x', 'loaded']] })], { kind: 'load', plan: { hostId: 'a', evict: ['x'] } }],
  ['a host too small is skipped', [host('a', { total: 1 * GB }), host('b')], { kind: 'load', plan: { hostId: 'b', evict: [] } }],
];
for (const [name, hosts, expected] of choices) {
  test(`chooseLoadTarget: ${name}`, () => assert.deepEqual(chooseLoadTarget(model, hosts, hosts), expected));
}

test('chooseLoadTarget: capability counts every registered host, candidates only healthy ones', () => {
  const big = host('big');
  const small = host('small', { total: 1 * GB });
  assert.deepEqual(chooseLoadTarget(model, [big, small], [small]), { kind: 'noRoom' });
});
