/**
 * The workflows on the real Temporal server with fake activities (the only place fakes are
 * allowed): routing, fall-through, cold load, typed failures. Each test describes its fleet;
 * the fakes look the scenario up by workflow id.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Context } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import proto from '@temporalio/proto';
import { FleetHost } from '../../src/common/searchAttributes.js';
import { Client } from '@temporalio/client';
import type { ControlPlaneActivities } from '../../src/activities/controlPlane.js';
import type { HostActivities } from '../../src/activities/host.js';
import { FailureType } from '../../src/common/failures.js';
import type { GenerateInput, InferenceRequestInput, InferenceResult } from '../../src/common/inference.js';
import { hostQueue } from '../../src/common/taskQueues.js';
import type { FleetView, HostView } from '../../src/domain/fleetView.js';
import { startFakeWorkers, type FakeWorkers } from '../support/fakeWorkers.js';
import { planRequest, type ProviderOfferView } from '../../src/domain/requestPlan.js';
import type { ProviderActivities } from '../../src/activities/provider.js';
import { typedFailure } from '../../src/common/typedFailure.js';

interface Scenario {
  views: FleetView[]; // successive readFleetState answers (the last one repeats)
  /** awaitColdLoad fails with LoadFailed of this scope. */
  loadFails?: 'build' | 'host';
  offers?: ProviderOfferView[];
  health?: Record<string, { consecutiveFailures: number; lastFailureAt?: number }>;
  providerBehaviour?: Record<string, 'ok' | 'unavailable' | 'rejected'>;
  hostBehaviour: Record<string, 'ok' | 'busy' | 'principal' | 'context' | 'crash' | 'untilCancelled' | 'unpinned'>;
  calls: string[];
}
const EventType = proto.temporal.api.enums.v1.EventType;
const scenarios = new Map<string, Scenario>();
const scenarioOf = () => {
  const id = Context.current().info.workflowExecution!.workflowId;
  return scenarios.get(id.replace(/^coldload:.*$/, 'coldload'))!;
};

const suffix = randomBytes(3).toString('hex');
// 'gone' sorts first, so the router offers it before B.
const HOSTS = ['a', 'b', '0gone'].map((h) => `${h}-${suffix}`) as [string, string, string];
const [A, B, GONE] = HOSTS;
const QUEUE = `wf-test-${suffix}`;

const now = () => new Date().toISOString();
const loaded = (id: string, state: 'loaded' | 'loading' = 'loaded'): HostView => ({
  id,
  status: 'up',
  lastHeartbeatAt: now(),
  placements: [{ modelId: 'm', state, lastUsedAt: null }],
  load: {},
  capacity: { maxModelSlots: 1, gpuCount: 0, totalMemoryBytes: 0, freeMemoryBytes: 0 },
  files: [],
});
const empty = (id: string): HostView => ({ ...loaded(id), placements: [] });
const view = (hosts: HostView[], model = true): FleetView => ({
  model: model ? { id: 'm', path: '/m', sha256: 's', contextLength: 512, sizeBytes: 100 } : null,
  hosts,
  heartbeatIntervalMs: 60_000,
});

const controlPlane: Partial<ControlPlaneActivities> = {
  // The real route step is a fleet read plus the pure policy: here the read is the scenario's.
  async route(i) {
    const s = scenarioOf();
    s.calls.push('readFleetState');
    const fleet = s.views.length > 1 ? s.views.shift()! : s.views[0]!;
    return planRequest({ fleet, offers: s.offers ?? [], health: s.health ?? {}, demotion: { after: 10, retryAfterMs: 60_000 } }, { now: Date.now(), requestId: i.requestId, stream: i.stream, exclude: i.exclude, joinLoads: i.joinLoads });
  },
  async recordReplicaOutcomes(outcomes) {
    scenarioOf().calls.push(...outcomes.map((o) => `health:${o.replica}:${o.ok ? 'ok' : o.error}`));
  },
  async awaitColdLoad(input) {
    const s = scenarioOf();
    s.calls.push(`awaitColdLoad:${input.hostId}:${input.modelId}`);
    if (s.loadFails) throw ApplicationFailure.create({ type: FailureType.LoadFailed, message: 'malformed', nonRetryable: true, details: [{ scope: s.loadFails }] });
    return { ...input, evicted: [] };
  },
  async markHostSuspect(hostId) {
    scenarioOf().calls.push(`suspect:${hostId}`);
  },
};

function hostFakes(hostId: string): Partial<HostActivities> {
  return {
    async generate(input: GenerateInput) {
      const s = scenarios.get(input.requestId)!;
      s.calls.push(`generate:${hostId}`);
      const b = s.hostBehaviour[hostId] ?? 'ok';
      if (b === 'busy') throw ApplicationFailure.create({ type: FailureType.HostBusy, message: 'busy', nonRetryable: true });
      if (b === 'principal') throw typedFailure(FailureType.PrincipalLimited, 'Too many concurrent requests for m from this API key. Retry after 2s.', { retryAfterSeconds: 2, reason: 'principal_cap' });
      if (b === 'context') throw ApplicationFailure.create({ type: FailureType.ContextLengthExceeded, message: 'too long', nonRetryable: true });
      if (b === 'crash') throw new Error('segfault-ish');
      if (b === 'unpinned') throw ApplicationFailure.create({ type: FailureType.Unpinned, message: 'key not pinned', nonRetryable: true });
      if (input.sign) s.calls.push(`pins:${(input.sign.pinnedFingerprints ?? []).join(',')}`);
      if (b === 'untilCancelled') {
        // Like the real host: generate until cancelled, then settle (slowly) before reporting it.
        const ctx = Context.current();
        while (!ctx.cancellationSignal.aborted) {
          ctx.heartbeat();
          await new Promise((r) => setTimeout(r, 50));
        }
        await new Promise((r) => setTimeout(r, 300));
        s.calls.push(`settled:${hostId}`);
        throw ctx.cancellationSignal.reason;
      }
      const signature = input.sign ? { signature: { text: `s:${input.requestSha256 ?? ''}:x`, fingerprint: `fp-${hostId}`, signingAddress: '', signature: '' } } : {};
      return { text: `from ${hostId}`, finishReason: 'stop', usage: { promptTokens: 3, completionTokens: 2 }, hostId, ...signature };
    },
  };
}

/** A provider's behaviour by provider id (the scenario names it); default: answers. */
const providerFakes: Partial<ProviderActivities> = {
  async generate(input: GenerateInput) {
    const s = scenarios.get(input.requestId)!;
    const id = input.remote!.providerId;
    s.calls.push(`provider:${id}:${input.remote!.upstreamModel}`);
    const b = s.providerBehaviour?.[id] ?? 'ok';
    if (b === 'unavailable') throw typedFailure(FailureType.UpstreamUnavailable, 'upstream 503', { category: 'status', status: 503, charsStreamed: 0, counts: true });
    if (b === 'rejected') throw typedFailure(FailureType.UpstreamRejected, 'the provider refused the request', { status: 422, message: 'bad temperature', param: 'temperature', code: null });
    return { text: `from ${id}`, finishReason: 'stop', usage: { promptTokens: 3, completionTokens: 2 }, hostId: `provider:${id}`, replica: { kind: 'provider', providerId: id } };
  },
};
const offer = (providerId: string, tier: 'attested' | 'plaintext' = 'plaintext'): ProviderOfferView => ({
  providerId,
  target: { kind: 'remote', build: `${providerId}/up-m`, upstreamModel: 'up-m', contextLength: 512 },
  tier,
  streaming: true,
  unusable: null,
});

let fakes: FakeWorkers;
let client: Client;
before(async () => {
  fakes = await startFakeWorkers({ queue: QUEUE, controlPlane, hosts: { [A]: hostFakes(A), [B]: hostFakes(B) }, provider: providerFakes });
  client = fakes.client;
});
after(async () => {
  await fakes?.stop();
});

interface Outcome {
  requestId: string;
  result?: InferenceResult;
  error?: ApplicationFailure;
  calls: string[];
}

/** `preRouted`: the API's snapshot decided the first round (from the scenario's first view), as the API does. */
async function run(s: Omit<Scenario, 'calls'>, o: { preRouted?: boolean } = {}): Promise<Outcome> {
  const requestId = `wf-${randomBytes(6).toString('hex')}`;
  const scenario = { ...s, calls: [] as string[] };
  scenarios.set(requestId, scenario);
  const decision = o.preRouted
    ? planRequest({ fleet: s.views[0]!, offers: s.offers ?? [], health: s.health ?? {}, demotion: { after: 10, retryAfterMs: 60_000 } }, { now: Date.now(), requestId, stream: false, exclude: [], joinLoads: true })
    : undefined;
  assert.ok(!o.preRouted || decision?.kind === 'serve', 'a pre-routed scenario serves at once');
  const route = decision?.kind === 'serve' ? decision : undefined;
  const input: InferenceRequestInput = {
    requestId,
    modelId: 'm',
    input: { kind: 'completion', prompt: 'hi' },
    params: { maxTokens: 4, temperature: 0, topP: 1, stop: [] },
    stream: false,
    principal: null,
    ...(route ? { route } : {}),
  };
  const first = route?.attempts[0]?.replica;
  try {
    const result = await client.workflow.execute('inferenceRequest', {
      taskQueue: QUEUE,
      workflowId: requestId,
      args: [input],
      ...(first?.kind === 'host' ? { typedSearchAttributes: [{ key: FleetHost, value: first.hostId }] } : {}),
    });
    return { requestId, result: result as InferenceResult, calls: scenario.calls };
  } catch (err) {
    assert.ok(err instanceof WorkflowFailedError, String(err));
    return { requestId, error: err.cause as ApplicationFailure, calls: scenario.calls };
  }
}

test('serves from the least busy loaded host', async () => {
  const { result, calls } = await run({ views: [view([loaded(A), loaded(B)])], hostBehaviour: {} });
  assert.equal(result?.hostId, A);
  assert.equal(result?.coldLoaded, false);
  assert.deepEqual(calls, ['readFleetState', `generate:${A}`]);
});

test("the API's decision stands for the first route step: generate is scheduled in the first task, the host was set at start", async () => {
  const { requestId, result, calls } = await run({ views: [view([loaded(A), loaded(B)])], hostBehaviour: {} }, { preRouted: true });
  assert.equal(result?.hostId, A);
  assert.deepEqual(calls, [`generate:${A}`]);
  const events = (await client.workflow.getHandle(requestId).fetchHistory()).events ?? [];
  const types = events.map((e) => e.eventType);
  assert.ok(!events.some((e) => e.markerRecordedEventAttributes), 'no route marker');
  assert.ok(!events.some((e) => e.upsertWorkflowSearchAttributesEventAttributes), 'the host came with the start');
  assert.equal(types.filter((t) => t === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED).length, 2, 'schedule, then complete');
  const desc = await client.workflow.getHandle(requestId).describe();
  assert.equal(desc.typedSearchAttributes.get(FleetHost), A);
});

test("after the API's decision fails on every replica, the workflow routes the next round itself", async () => {
  const { requestId, result, calls } = await run({ views: [view([loaded(A), loaded(B)]), view([loaded(A), loaded(B)])], hostBehaviour: { [A]: 'busy' } }, { preRouted: true });
  assert.equal(result?.hostId, B);
  assert.deepEqual(calls, [`generate:${A}`, `generate:${B}`]);
  const desc = await client.workflow.getHandle(requestId).describe();
  assert.equal(desc.typedSearchAttributes.get(FleetHost), B, 'the failover upserts the host that served');
  const both = await run({ views: [view([loaded(A), loaded(B)])], hostBehaviour: { [A]: 'busy', [B]: 'busy' } }, { preRouted: true });
  assert.equal(both.error?.type, FailureType.Unavailable);
  assert.deepEqual(both.calls, [`generate:${A}`, `generate:${B}`, 'readFleetState']);
});

test('a busy host falls through to the next replica', async () => {
  const { result, calls } = await run({ views: [view([loaded(A), loaded(B)])], hostBehaviour: { [A]: 'busy' } });
  assert.equal(result?.hostId, B);
  assert.deepEqual(calls, ['readFleetState', `generate:${A}`, `generate:${B}`]);
});

test('every replica busy → Unavailable with a retry hint (rate_limit_exceeded)', async () => {
  const { error } = await run({ views: [view([loaded(A), loaded(B)])], hostBehaviour: { [A]: 'busy', [B]: 'busy' } });
  assert.equal(error?.type, FailureType.Unavailable);
  assert.deepEqual(error?.details?.[0], { retryAfterSeconds: 1, reason: 'all_tried' });
});

test("a principal's cap reached on one host is retried on another, and the host is not demoted for it", async () => {
  const { result, calls } = await run({ views: [view([loaded(A), loaded(B)])], hostBehaviour: { [A]: 'principal' } });
  assert.equal(result?.hostId, B);
  assert.deepEqual(calls, ['readFleetState', `generate:${A}`, `generate:${B}`]);
});

test("a principal's cap reached on every host → the 429 PrincipalLimited, not a 503", async () => {
  const { error, calls } = await run({ views: [view([loaded(A), loaded(B)])], hostBehaviour: { [A]: 'principal', [B]: 'principal' } });
  assert.equal(error?.type, FailureType.PrincipalLimited);
  assert.match(error?.message ?? '', /Too many concurrent requests/);
  // The re-route after both finds nothing left (all tried): the key's own 429 is what it says.
  assert.deepEqual(calls, ['readFleetState', `generate:${A}`, `generate:${B}`, 'readFleetState']);
});

test('a client error is not retried on another host', async () => {
  const { error, calls } = await run({ views: [view([loaded(A), loaded(B)])], hostBehaviour: { [A]: 'context' } });
  assert.equal(error?.type, FailureType.ContextLengthExceeded);
  assert.deepEqual(calls, ['readFleetState', `generate:${A}`]);
});

test('no loaded replica → cold load, then serve', async () => {
  const { result, calls } = await run({ views: [view([empty(A)]), view([loaded(A)])], hostBehaviour: {} });
  assert.equal(result?.coldLoaded, true);
  assert.deepEqual(calls, ['readFleetState', `awaitColdLoad:${A}:m`, 'readFleetState', `generate:${A}`]);
});

test('unknown model → ModelNotFound, nothing dispatched', async () => {
  const { error, calls } = await run({ views: [view([loaded(A)], false)], hostBehaviour: {} });
  assert.equal(error?.type, FailureType.ModelNotFound);
  assert.equal(error?.nonRetryable, true);
  assert.deepEqual(calls, ['readFleetState']);
});

test('a load under way in the pool is joined (no 503), then the request is served there', async () => {
  const { result, calls } = await run({ views: [view([loaded(A, 'loading'), empty(B)]), view([loaded(A), empty(B)])], hostBehaviour: {} });
  assert.equal(result?.hostId, A);
  assert.deepEqual(calls, ['readFleetState', `awaitColdLoad:${A}:m`, 'readFleetState', `generate:${A}`]);
});

test('a host nobody polls (dead) is skipped after the schedule-to-start timeout', async () => {
  const { result, calls, requestId } = await run({ views: [view([loaded(GONE), loaded(B)])], hostBehaviour: {} });
  assert.equal(result?.hostId, B);
  const history = await client.workflow.getHandle(requestId).fetchHistory();
  const timedOut = history.events?.filter((e) => e.activityTaskTimedOutEventAttributes) ?? [];
  assert.equal(timedOut.length, 1, 'the dead host\'s task timed out waiting to start');
  const scheduled = history.events?.find((e) => e.eventId?.toString() === timedOut[0]!.activityTaskTimedOutEventAttributes!.scheduledEventId?.toString());
  assert.equal(scheduled?.activityTaskScheduledEventAttributes?.taskQueue?.name, hostQueue(GONE));
  assert.deepEqual(calls, ['readFleetState', `suspect:${GONE}`, `generate:${B}`, `health:host:${GONE}:SCHEDULE_TO_START`]);
});

test('the only loaded host is gone: it is marked suspect and the request cold-loads on an idle host', async () => {
  // What the next read shows once the dead host is suspect: unhealthy, so an idle host loads the model.
  const suspectGone = { ...loaded(GONE), suspect: true as const };
  const { result, calls } = await run({ views: [view([loaded(GONE), empty(B)]), view([suspectGone, empty(B)]), view([suspectGone, loaded(B)])], hostBehaviour: {} });
  assert.equal(result?.hostId, B);
  assert.equal(result?.coldLoaded, true);
  assert.deepEqual(calls, ['readFleetState', `suspect:${GONE}`, 'readFleetState', `awaitColdLoad:${B}:m`, 'readFleetState', `generate:${B}`, `health:host:${GONE}:SCHEDULE_TO_START`]);
});

test('a load that fails for the build itself ends with ModelQuarantined, the host is not blamed', async () => {
  const quarantined = view([empty(A), empty(B)]);
  quarantined.model = { ...quarantined.model!, quarantined: { reason: 'host a died while loading it' } };
  const { error, calls } = await run({ views: [view([empty(A), empty(B)]), quarantined], hostBehaviour: {}, loadFails: 'build' });
  assert.equal(error?.type, FailureType.ModelQuarantined);
  assert.deepEqual(error?.details?.[0], { build: 'm', reason: 'host a died while loading it' });
  assert.deepEqual(calls, ['readFleetState', `awaitColdLoad:${A}:m`, 'readFleetState']);
});

test('a quarantined desired build: the previous build is cold-loaded instead', async () => {
  const v = view([empty(A)]);
  v.model = { ...v.model!, quarantined: { reason: 'malformed' } };
  v.previous = { id: 'm0', path: '/m0', sha256: 's0', contextLength: 512, sizeBytes: 100 };
  v.alias = { id: 'm', desired: 'm', previous: 'm0', minWarm: 0 };
  const { calls } = await run({ views: [v], hostBehaviour: {} });
  assert.equal(calls[1], `awaitColdLoad:${A}:m0`);
});

test('verifiable: the host gets the pins, an unpinned host falls through to a pinned one', async () => {
  const v = view([{ ...loaded(A), keyFingerprint: `fp-${A}` }, { ...loaded(B), keyFingerprint: `fp-${B}` }]);
  v.model = { ...v.model!, verifiable: true, pinnedFingerprints: [`fp-${A}`, `fp-${B}`] };
  const { result, calls } = await run({ views: [v], hostBehaviour: { [A]: 'unpinned' } });
  assert.equal(result?.hostId, B);
  assert.deepEqual(calls, ['readFleetState', `generate:${A}`, `generate:${B}`, `pins:fp-${A},fp-${B}`]);
});

test('verifiable: an answer signed by a key outside the pin set is never returned', async () => {
  const v = view([{ ...loaded(A), keyFingerprint: `fp-${A}` }]);
  v.model = { ...v.model!, verifiable: true, pinnedFingerprints: [`fp-${A}`] };
  // A's fake signs with fp-<A>; the pins the view carries are someone else's.
  const stale = { ...v, model: { ...v.model, pinnedFingerprints: ['fp-other'] } };
  stale.hosts = [{ ...loaded(A), keyFingerprint: 'fp-other' }];
  const { error } = await run({ views: [stale], hostBehaviour: {} });
  assert.equal(error?.type, FailureType.Unavailable, 'fails closed');
});

test('no host has the model loaded but a provider offers it: served by the provider, no cold load', async () => {
  const { result, calls } = await run({ views: [view([empty(A)])], hostBehaviour: {}, offers: [offer('p')] });
  assert.deepEqual(result?.replica, { kind: 'provider', providerId: 'p' });
  assert.equal(result?.modelId, 'm', 'the response names the alias');
  assert.equal(result?.build, 'p/up-m');
  assert.deepEqual(calls, ['readFleetState', 'provider:p:up-m']);
});

test('own hosts first; a host that fails falls through to the provider, and the failure is recorded', async () => {
  const { result, calls } = await run({ views: [view([loaded(A)])], hostBehaviour: { [A]: 'crash' }, offers: [offer('p')] });
  assert.equal(result?.hostId, 'provider:p');
  assert.deepEqual(calls, ['readFleetState', `generate:${A}`, 'provider:p:up-m', `health:host:${A}:Error`]);
});

test('a provider that cannot answer moves to the next; when none is left the client hears why', async () => {
  const { error, calls } = await run({ views: [view([], false)], hostBehaviour: {}, offers: [offer('p', 'attested')], providerBehaviour: { p: 'unavailable' } });
  assert.equal(error?.type, FailureType.UpstreamUnavailable);
  assert.deepEqual(calls, ['readFleetState', 'provider:p:up-m', 'readFleetState', 'health:provider:p:UpstreamUnavailable']);
});

test('a provider refusing the request itself goes to the client at once (no other provider asked)', async () => {
  const { error, calls } = await run({
    views: [view([], false)],
    hostBehaviour: {},
    offers: [offer('p', 'attested'), offer('q', 'attested')],
    health: { 'provider:q': { consecutiveFailures: 20, lastFailureAt: Date.now() } }, // demoted: p is asked first
    providerBehaviour: { p: 'rejected' },
  });
  assert.equal(error?.type, FailureType.UpstreamRejected);
  assert.deepEqual(calls, ['readFleetState', 'provider:p:up-m']);
});

test('a demoted replica that serves again has its count reset', async () => {
  const { result, calls } = await run({ views: [view([], false)], hostBehaviour: {}, offers: [offer('p')], health: { 'provider:p': { consecutiveFailures: 12, lastFailureAt: Date.now() } } });
  assert.equal(result?.hostId, 'provider:p');
  assert.deepEqual(calls, ['readFleetState', 'provider:p:up-m', 'health:provider:p:ok']);
});

test('an attested model never falls back to a plaintext provider: it fails closed', async () => {
  const v = view([{ ...loaded(A), keyFingerprint: 'fp-x' }]);
  v.model = { ...v.model!, verifiable: true, pinnedFingerprints: [] };
  const { error, calls } = await run({ views: [v], hostBehaviour: {}, offers: [offer('p', 'plaintext')] });
  assert.equal(error?.type, FailureType.Unavailable);
  assert.ok(!calls.some((c) => c.startsWith('provider:')), 'the plaintext provider is never asked');
});

test('a cancelled request closes only after the host has finished cancelling (and settled)', async () => {
  const requestId = `wf-${randomBytes(6).toString('hex')}`;
  const scenario: Scenario = { views: [view([loaded(A)])], hostBehaviour: { [A]: 'untilCancelled' }, calls: [] };
  scenarios.set(requestId, scenario);
  const input: InferenceRequestInput = {
    requestId,
    modelId: 'm',
    input: { kind: 'completion', prompt: 'hi' },
    params: { maxTokens: 4, temperature: 0, topP: 1, stop: [] },
    stream: true,
    principal: 'key-1',
    accountId: 'acct-1',
  };
  const handle = await client.workflow.start('inferenceRequest', { taskQueue: QUEUE, workflowId: requestId, args: [input] });
  for (let i = 0; i < 200 && !scenario.calls.includes(`generate:${A}`); i++) await new Promise((r) => setTimeout(r, 25));
  await handle.cancel();
  await assert.rejects(handle.result(), WorkflowFailedError);
  // When the client sees the close, the host's settlement has already happened.
  assert.deepEqual(scenario.calls, ['readFleetState', `generate:${A}`, `settled:${A}`]);
  const events = (await handle.fetchHistory()).events ?? [];
  const at = (pick: (e: (typeof events)[number]) => unknown) => events.findIndex((e) => pick(e) != null);
  assert.ok(at((e) => e.activityTaskCanceledEventAttributes) < at((e) => e.workflowExecutionCanceledEventAttributes));
});
