/**
 * coldLoad on the real Temporal server with fake activities: it records the placement,
 * concurrent starters attach to one execution (workflow-id conflict policy USE_EXISTING), a
 * full host verifies the build and then evicts its least recently used idle model, a busy one
 * is never evicted, a failed load leaves the placement `failed` with the reason, and a load
 * that fails for the build's own sake — the host refuses the file, or dies loading it —
 * quarantines the build (and a quarantined build is never sent to a host).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { ControlPlaneActivities } from '../../src/activities/controlPlane.js';
import type { HostActivities } from '../../src/activities/host.js';
import { coldLoadWorkflowId } from '../../src/common/coldLoad.js';
import { FailureType } from '../../src/common/failures.js';
import type { FleetView, HostView, PlacementView } from '../../src/domain/fleetView.js';
import { fakeHostView as hostView, startFakeWorkers, workflowFailure, type FakeWorkers } from '../support/fakeWorkers.js';

const suffix = randomBytes(3).toString('hex');
const QUEUE = `wf-cold-${suffix}`;
const GOOD = `good-${suffix}`;
const BAD = `bad-${suffix}`;
const FULL = `full-${suffix}`;
const BUSY = `busy-${suffix}`;
const POISON = `poison-${suffix}`; // refuses the file as malformed
const DIES = `dies-${suffix}`; // goes silent mid-load (what an abort in llama.cpp looks like)
const FULLBAD = `fullbad-${suffix}`; // full, and its check refuses the build
const writes: string[] = [];
const calls: string[] = [];
let loads = 0;
let release: () => void = () => undefined;
const gate = new Promise<void>((r) => (release = r));

const view: FleetView = {
  model: { id: 'm', path: '/m.gguf', sha256: 'abc', contextLength: 512, sizeBytes: 10 },
  heartbeatIntervalMs: 60_000,
  hosts: [
    hostView(GOOD, []),
    hostView(BAD, []),
    hostView(FULL, [{ modelId: 'old', state: 'loaded', lastUsedAt: null }]),
    hostView(BUSY, [{ modelId: 'hot', state: 'loaded', lastUsedAt: null }], { hot: { running: 2, queued: 0 } }),
    hostView(POISON, []),
    hostView(DIES, []),
    hostView(FULLBAD, [{ modelId: 'old', state: 'loaded', lastUsedAt: null }]),
  ],
};
let quarantined: string | undefined;
let reviveDeadHost: () => void = () => undefined;
const deadHost = new Promise<void>((r) => (reviveDeadHost = r));

const controlPlane: Partial<ControlPlaneActivities> = {
  async readFleetState() {
    return quarantined ? { ...view, model: { ...view.model!, quarantined: { reason: quarantined } } } : view;
  },
  async quarantineBuild(input) {
    writes.push(`${input.hostId.split('-')[0]}:${input.modelId}:quarantined:${input.reason}`);
  },
  async markHostSuspect(hostId) {
    writes.push(`${hostId.split('-')[0]}:suspect`);
  },
  async setPlacement(input) {
    writes.push(`${input.hostId.split('-')[0]}:${input.modelId}:${input.state}${input.error ? `:${input.error}` : ''}`);
  },
};
const info = { path: '/m.gguf', contextLength: 512, running: 0, queued: 0, capacity: 4, avgServiceMs: 0, lastUsedAt: null };
const malformed = () =>
  ApplicationFailure.create({ type: FailureType.LoadFailed, message: "the metadata lacks 'llama.feed_forward_length'", nonRetryable: true, details: [{ scope: 'build' }] });
const hostActivities = (name: string, fail = false): Partial<HostActivities> => ({
  async checkModel(input) {
    calls.push(`${name}:check:${input.modelId}`);
    if (name === 'fullbad') throw malformed();
    return { ok: true };
  },
  async loadModel(input) {
    calls.push(`${name}:load:${input.modelId}`);
    if (fail) throw ApplicationFailure.create({ type: FailureType.LoadFailed, message: 'file is corrupt', nonRetryable: true });
    if (name === 'poison') throw malformed();
    // Never heartbeats (until the test ends): the heartbeat timeout is how a dead host shows.
    if (name === 'dies') await deadHost;
    if (name === 'good') {
      loads++;
      await gate; // hold the load open so concurrent starters find it running
    }
    return { modelId: input.modelId, ...info };
  },
  async unloadModel(input) {
    calls.push(`${name}:unload:${input.modelId}`);
    return { unloaded: true };
  },
});

let fakes: FakeWorkers;
let client: Client;
before(async () => {
  fakes = await startFakeWorkers({
    queue: QUEUE,
    controlPlane,
    hosts: {
      [GOOD]: hostActivities('good'),
      [BAD]: hostActivities('bad', true),
      [FULL]: hostActivities('full'),
      [BUSY]: hostActivities('busy'),
      [POISON]: hostActivities('poison'),
      [DIES]: hostActivities('dies'),
      [FULLBAD]: hostActivities('fullbad'),
    },
  });
  client = fakes.client;
});
after(async () => {
  reviveDeadHost(); // lets the worker shut down
  await fakes?.stop();
});

const start = (hostId: string) =>
  client.workflow.start('coldLoad', {
    taskQueue: QUEUE,
    workflowId: coldLoadWorkflowId(hostId, 'm'),
    workflowIdConflictPolicy: 'USE_EXISTING',
    args: [{ hostId, modelId: 'm' }],
  });


test('concurrent starters attach to one load, which marks the placement loaded', async () => {
  const handles = await Promise.all(Array.from({ length: 5 }, () => start(GOOD)));
  assert.equal(new Set(handles.map((h) => h.firstExecutionRunId)).size, 1, 'one execution');
  release();
  const results = await Promise.all(handles.map((h) => h.result()));
  assert.deepEqual(results[0], { hostId: GOOD, modelId: 'm', evicted: [] });
  assert.equal(loads, 1);
  assert.deepEqual(
    writes.filter((w) => w.startsWith('good')),
    ['good:m:loading', 'good:m:loaded'],
  );
});

test('a full host unloads its least recently used idle model first', async () => {
  const r = await (await start(FULL)).result();
  assert.deepEqual(r, { hostId: FULL, modelId: 'm', evicted: ['old'] });
  assert.deepEqual(
    calls.filter((c) => c.startsWith('full:')),
    ['full:check:m', 'full:unload:old', 'full:load:m'],
  );
  assert.deepEqual(
    writes.filter((w) => w.startsWith('full:')),
    ['full:old:unloading', 'full:old:unloaded', 'full:m:loading', 'full:m:loaded'],
  );
});

test('a model with requests in flight is never evicted: the load is refused as unavailable', async () => {
  const cause = await workflowFailure((await start(BUSY)).result());
  assert.equal(cause.type, FailureType.Unavailable);
  assert.equal(calls.filter((c) => c.startsWith('busy')).length, 0);
});

test('a failed load marks the placement failed and the workflow says why', async () => {
  const cause = await workflowFailure((await start(BAD)).result());
  assert.equal(cause.type, FailureType.LoadFailed);
  assert.match(cause.message, /file is corrupt/);
  assert.ok(writes.some((w) => w.startsWith('bad:m:failed') && w.includes('file is corrupt')));
});

test('a build the host refuses as malformed is quarantined: no other host is sent to load it', async () => {
  const cause = await workflowFailure((await start(POISON)).result());
  assert.equal(cause.type, FailureType.LoadFailed);
  assert.deepEqual(cause.details?.[0], { scope: 'build' });
  assert.ok(writes.includes("poison:m:quarantined:the metadata lacks 'llama.feed_forward_length'"), writes.join('\n'));
  assert.ok(writes.some((w) => w.startsWith('poison:m:failed')));
});

test('a full host whose check refuses the build evicts nothing', async () => {
  const cause = await workflowFailure((await start(FULLBAD)).result());
  assert.equal(cause.type, FailureType.LoadFailed);
  assert.deepEqual(calls.filter((c) => c.startsWith('fullbad:')), ['fullbad:check:m'], 'old stays loaded');
  assert.ok(writes.some((w) => w.startsWith('fullbad:m:quarantined')));
});

test('a host that dies while loading (heartbeat timeout) quarantines the build and is marked suspect', async () => {
  const cause = await workflowFailure((await start(DIES)).result());
  assert.equal(cause.type, FailureType.LoadFailed);
  assert.deepEqual(cause.details?.[0], { scope: 'build', crashed: true });
  assert.ok(writes.includes('dies:suspect'));
  assert.ok(writes.some((w) => w.startsWith('dies:m:quarantined:host') && w.includes('died while loading')), writes.join('\n'));
});

test('a quarantined build is never sent to a host', async () => {
  quarantined = 'host x died while loading it';
  try {
    const before = calls.length;
    const cause = await workflowFailure((await client.workflow.start('coldLoad', { taskQueue: QUEUE, workflowId: `coldload:${GOOD}:q`, args: [{ hostId: GOOD, modelId: 'm' }] })).result());
    assert.equal(cause.type, FailureType.ModelQuarantined);
    assert.equal(calls.length, before, 'no host activity');
  } finally {
    quarantined = undefined;
  }
});
