/**
 * poolReassign and the pool steps of inferenceRequest on the real Temporal server with fake
 * activities: an idle host is marked moving, unloads the other pool's model, joins the new
 * pool and loads its build, each step in order; a busy, queued or loading host is refused
 * with the reason and nothing changes; an unload refused by the host puts it back; a build the
 * host's check refuses never moves it (a malformed one is quarantined); a load that fails after
 * the move puts the host back in its old pool, with the reason. A request whose pool
 * is full borrows the idle host and is served there; with none to borrow it fails
 * `pool_exhausted`.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, test } from 'node:test';
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { ControlPlaneActivities } from '../../src/activities/controlPlane.js';
import type { HostActivities } from '../../src/activities/host.js';
import { FailureType } from '../../src/common/failures.js';
import type { FleetView, HostView, PlacementView } from '../../src/domain/fleetView.js';
import type { PoolsView } from '../../src/domain/pools.js';
import { fakeHostView as host, startFakeWorkers, workflowFailure, type FakeWorkers } from '../support/fakeWorkers.js';
import { planRequest } from '../../src/domain/requestPlan.js';

const suffix = randomBytes(3).toString('hex');
const QUEUE = `wf-pool-${suffix}`;
const IDLE = `idle-${suffix}`;
const BUSY = `busy-${suffix}`;
const STUCK = `stuck-${suffix}`; // refuses the unload
const BROKEN = `broken-${suffix}`; // fails the load
const PICKY = `picky-${suffix}`; // its check refuses the build as malformed
const A = `a-${suffix}`; // alpha's only host, full

const steps: string[] = [];
const short = (id: string) => id.split('-')[0];

const loadedBeta: PlacementView[] = [{ modelId: 'beta', state: 'loaded', lastUsedAt: null }];
let pools: PoolsView;
let hosts: HostView[];
const reset = () => {
  steps.length = 0;
  hosts = [
    host(A, [{ modelId: 'alpha', state: 'loaded', lastUsedAt: null }], { alpha: { running: 1, queued: 0 } }, { maxInFlight: 1, maxQueue: 0 }),
    host(IDLE, loadedBeta),
    host(BUSY, loadedBeta, { beta: { running: 1, queued: 0 } }),
    host(STUCK, loadedBeta),
    host(BROKEN, loadedBeta),
    host(PICKY, loadedBeta),
  ];
  pools = {
    enabled: true,
    cooldownMs: 60_000,
    aliases: [
      { id: 'alpha', desired: 'alpha', previous: null, minWarm: 0 },
      { id: 'beta', desired: 'beta', previous: null, minWarm: 0 },
    ],
    hostPools: Object.fromEntries(hosts.map((h) => [h.id, { alias: h.id === A ? 'alpha' : 'beta', state: 'serving' as const, movedAt: null }])),
  };
};
reset();

let quarantined = false;
const catalog = (id: string) => ({
  id,
  path: `/${id}.gguf`,
  sha256: id,
  contextLength: 512,
  sizeBytes: 10,
  ...(quarantined && id === 'alpha' ? { quarantined: { reason: 'host x died while loading it' } } : {}),
});
const controlPlane: Partial<ControlPlaneActivities> = {
  async route(i) {
    const fleet = await controlPlane.readFleetState!(i.alias, 'alias');
    return planRequest({ fleet, offers: [], health: {}, demotion: { after: 10, retryAfterMs: 60_000 } }, { now: Date.now(), requestId: i.requestId, stream: i.stream, exclude: i.exclude, joinLoads: i.joinLoads });
  },
  async readFleetState(id: string): Promise<FleetView> {
    const alias = pools.aliases.find((a) => a.id === id);
    return { model: alias ? catalog(alias.desired) : null, ...(alias ? { alias } : {}), hosts, pools, heartbeatIntervalMs: 60_000 };
  },
  async markHostMoving(hostId) {
    steps.push(`${short(hostId)}:moving`);
    pools.hostPools[hostId] = { ...pools.hostPools[hostId]!, state: 'moving' };
    return true;
  },
  async setHostPool(input) {
    steps.push(`${short(input.hostId)}:pool:${input.alias}:${input.state}${input.error ? ':error' : ''}`);
    pools.hostPools[input.hostId] = { alias: input.alias, state: input.state, movedAt: input.moved ? new Date().toISOString() : null };
    if (input.state === 'serving' && input.alias === 'alpha') {
      // What the load does to the snapshot the next route reads.
      const h = hosts.find((x) => x.id === input.hostId)!;
      h.placements = [{ modelId: 'alpha', state: 'loaded', lastUsedAt: null }];
    }
  },
  async setPlacement(input) {
    steps.push(`${short(input.hostId)}:${input.modelId}:${input.state}`);
  },
  async quarantineBuild(input) {
    steps.push(`${short(input.hostId)}:quarantine:${input.modelId}`);
  },
  async markHostSuspect(hostId) {
    steps.push(`${short(hostId)}:suspect`);
  },
  async awaitColdLoad(input) {
    steps.push(`${short(input.hostId)}:coldLoad:${input.modelId}`);
    if (input.hostId === BROKEN) throw ApplicationFailure.create({ type: FailureType.LoadFailed, message: 'file is corrupt', nonRetryable: true });
    return { hostId: input.hostId, modelId: input.modelId, evicted: [] };
  },
};
const hostActs = (id: string): Partial<HostActivities> => ({
  async checkModel(input) {
    steps.push(`${short(id)}:check:${input.modelId}`);
    if (id === PICKY) {
      throw ApplicationFailure.create({ type: FailureType.LoadFailed, message: 'the metadata lacks llama.feed_forward_length', nonRetryable: true, details: [{ scope: 'build' }] });
    }
    return { ok: true };
  },
  async unloadModel(input) {
    steps.push(`${short(id)}:unload:${input.modelId}`);
    if (id === STUCK) throw ApplicationFailure.create({ type: FailureType.ModelBusy, message: 'requests in flight', nonRetryable: true });
    return { unloaded: true };
  },
  async generate(input) {
    steps.push(`${short(id)}:generate:${input.modelId}`);
    return { text: 'hi', finishReason: 'stop', usage: { promptTokens: 1, completionTokens: 1 }, hostId: id } as never;
  },
});

let fakes: FakeWorkers;
let client: Client;
before(async () => {
  fakes = await startFakeWorkers({
    queue: QUEUE,
    controlPlane: {
      ...controlPlane,
      // The on-demand path runs the real workflow as a child would: through the client.
      async awaitPoolReassign(input) {
        return client.workflow.execute('poolReassign', { taskQueue: QUEUE, workflowId: `pool:${input.hostId}`, args: [input] });
      },
    },
    hosts: Object.fromEntries([A, IDLE, BUSY, STUCK, BROKEN, PICKY].map((h) => [h, hostActs(h)])),
  });
  client = fakes.client;
});
after(async () => {
  await fakes?.stop();
});
beforeEach(reset);

const reassign = (hostId: string) =>
  client.workflow.execute('poolReassign', { taskQueue: QUEUE, workflowId: `pool:${hostId}:${randomBytes(2).toString('hex')}`, args: [{ hostId, toAlias: 'alpha', reason: 'operator' }] });


test('an idle host: marked moving, unloads the other pool, joins the new one, loads its build', async () => {
  const r = await reassign(IDLE);
  assert.deepEqual(r, { hostId: IDLE, fromAlias: 'beta', toAlias: 'alpha', build: 'alpha', unloaded: ['beta'] });
  assert.deepEqual(steps, [
    'idle:check:alpha',
    'idle:moving',
    'idle:beta:unloading',
    'idle:unload:beta',
    'idle:beta:unloaded',
    'idle:pool:alpha:serving',
    'idle:coldLoad:alpha',
  ]);
});

test('busy, queued or loading hosts are refused with the reason, nothing changes', async () => {
  const cause = await workflowFailure(reassign(BUSY));
  assert.equal(cause.type, FailureType.ReassignRefused);
  assert.match(cause.message, /requests are running/);
  hosts.find((h) => h.id === IDLE)!.load = { beta: { running: 0, queued: 2 } };
  assert.match((await workflowFailure(reassign(IDLE))).message, /queued/);
  hosts.find((h) => h.id === IDLE)!.load = {};
  hosts.find((h) => h.id === IDLE)!.placements = [{ modelId: 'beta', state: 'loading', lastUsedAt: null }];
  assert.match((await workflowFailure(reassign(IDLE))).message, /loading/);
  assert.deepEqual(steps, []);
});

test('an unload the host refuses puts the host back in its pool', async () => {
  const cause = await workflowFailure(reassign(STUCK));
  assert.equal(cause.type, FailureType.ReassignRefused);
  assert.deepEqual(steps, ['stuck:check:alpha', 'stuck:moving', 'stuck:beta:unloading', 'stuck:unload:beta', 'stuck:beta:loaded', 'stuck:pool:beta:serving']);
});

test('a build the host refuses as malformed is quarantined and the host never leaves its pool', async () => {
  const cause = await workflowFailure(reassign(PICKY));
  assert.equal(cause.type, FailureType.LoadFailed);
  assert.match(cause.message, /stays in its pool.*feed_forward_length/);
  assert.deepEqual(steps, ['picky:check:alpha', 'picky:quarantine:alpha'], 'nothing unloaded, no pool change');
});

test('a quarantined build is refused before any host step', async () => {
  quarantined = true;
  try {
    const cause = await workflowFailure(reassign(IDLE));
    assert.equal(cause.type, FailureType.ModelQuarantined);
    assert.deepEqual(steps, []);
  } finally {
    quarantined = false;
  }
});

test('a load that fails after the move puts the host back in its old pool and says why', async () => {
  const cause = await workflowFailure(reassign(BROKEN));
  assert.equal(cause.type, FailureType.LoadFailed);
  assert.match(cause.message, /went back to pool beta.*file is corrupt/);
  assert.deepEqual(steps.slice(-2), ['broken:coldLoad:alpha', 'broken:pool:beta:serving:error']);
});

const request = () =>
  client.workflow.execute('inferenceRequest', {
    taskQueue: QUEUE,
    workflowId: `req-${randomBytes(4).toString('hex')}`,
    args: [{ requestId: 'r', modelId: 'alpha', input: { kind: 'completion', prompt: 'x' }, params: { maxTokens: 1, temperature: 0, topP: 1, stop: [] }, stream: false, principal: null }],
  });

test('a request whose pool is full borrows an idle host and is served there as the alias', async () => {
  // Only IDLE can move: the others are busy, or refuse the unload, the build, or fail the load.
  hosts = hosts.filter((h) => h.id === A || h.id === IDLE || h.id === BUSY);
  const r = await request();
  assert.equal(r.modelId, 'alpha');
  assert.equal(r.moved, true);
  assert.ok(steps.includes('idle:pool:alpha:serving'));
  assert.equal(steps.at(-1), 'idle:generate:alpha');
  assert.ok(!steps.some((s) => s.startsWith('busy:')), 'the busy beta host is never touched');
});

test('nothing to borrow → pool_exhausted, and no host of the other pool is used', async () => {
  hosts = hosts.filter((h) => h.id === A || h.id === BUSY);
  const cause = await workflowFailure(request());
  assert.equal(cause.type, FailureType.Unavailable);
  assert.equal((cause.details?.[0] as { reason: string }).reason, 'pool_exhausted');
  assert.deepEqual(steps, []);
});
