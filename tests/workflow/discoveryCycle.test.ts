/**
 * discoveryCycle on the real Temporal server with fake activities: a zero count makes no
 * calls, a failed count changes nothing (`count_fetch`), complete coverage replaces the pin
 * set (evicting a key no host presents any more), one unreachable host only merges, and a
 * forged report blocks the set.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { ControlPlaneActivities } from '../../src/activities/controlPlane.js';
import type { HostActivities } from '../../src/activities/host.js';
import type { DiscoveryOutcome } from '../../src/common/discovery.js';
import { keyFingerprint, publicKeyOf, signReport } from '../../src/domain/attestation.js';
import type { PinSet } from '../../src/domain/pinSet.js';
import { log } from '../../src/logger.js';
import { connectTemporal, ensureSearchAttributes } from '../../src/temporal/connect.js';
import { startFakeWorkers, type FakeWorkers } from '../support/fakeWorkers.js';
import { testEnv } from '../support/env.js';

const suffix = randomBytes(3).toString('hex');
const QUEUE = `wf-discovery-${suffix}`;
const SHA = 'ab'.repeat(32);
const [H1, H2, H3, DOWN, FORGER] = ['h1', 'h2', 'h3', 'down', 'forger'].map((n) => `${n}-${suffix}`) as [string, string, string, string, string];
const keys = new Map([H1, H2, H3, FORGER].map((h) => [h, randomBytes(32)]));
const fp = (h: string) => keyFingerprint(publicKeyOf(keys.get(h)!));
const OLD = 'cd'.repeat(32);

/** model → the hosts the count step finds (undefined: the count fails). */
const serving: Record<string, string[] | undefined> = {
  zero: [],
  broken: undefined,
  full: [H1, H2, H3],
  partial: [H1, H2, DOWN],
  forged: [H1, FORGER],
};
const pinSets = new Map<string, PinSet>([
  ['full', { state: 'pinned', fingerprints: [OLD] }],
  ['partial', { state: 'pinned', fingerprints: [OLD] }],
]);
const attestCalls: string[] = [];
const recorded: string[] = [];

const controlPlane: Partial<ControlPlaneActivities> = {
  async countServingHosts(modelId) {
    const hostIds = serving[modelId];
    if (!hostIds) throw ApplicationFailure.nonRetryable('database unreachable');
    return { hostIds, sha256: SHA };
  },
  async readPinSet(modelId) {
    return pinSets.get(modelId) ?? { state: 'bootstrap', fingerprints: [] };
  },
  async recordDiscoveryCycle(r) {
    pinSets.set(r.modelId, r.pinSet);
    recorded.push(r.workflowId);
  },
};

const honest = (hostId: string): Partial<HostActivities> => ({
  async attest({ nonce, modelId }) {
    attestCalls.push(`${hostId}:${modelId}`);
    return signReport({ hostId, models: [{ modelId, sha256: SHA }], softwareVersion: 'test', nonce }, keys.get(hostId)!);
  },
});

let fakes: FakeWorkers;
let client: Client;
before(async () => {
  // The workflow upserts FleetBackendCount / FleetPinReplaced: make sure the server knows them.
  const t = await connectTemporal(testEnv.temporalAddress, 'default');
  await ensureSearchAttributes(t, log);
  await t.close();
  fakes = await startFakeWorkers({
    queue: QUEUE,
    controlPlane,
    hosts: {
      [H1]: honest(H1),
      [H2]: honest(H2),
      [H3]: honest(H3),
      [DOWN]: {
        async attest() {
          throw ApplicationFailure.nonRetryable('host is gone');
        },
      },
      [FORGER]: {
        async attest({ nonce, modelId }) {
          // Signed for a different build, then the hash rewritten to the catalog's: the signature no longer matches.
          const r = signReport({ hostId: FORGER, models: [{ modelId, sha256: 'ee'.repeat(32) }], softwareVersion: 'test', nonce }, keys.get(FORGER)!);
          return { ...r, models: [{ modelId, sha256: SHA }] };
        },
      },
    },
  });
  client = fakes.client;
});
after(async () => {
  await fakes?.stop();
});

const run = (modelId: string): Promise<DiscoveryOutcome> =>
  client.workflow.execute('discoveryCycle', {
    taskQueue: QUEUE,
    workflowId: `discovery:${modelId}-${suffix}:${new Date().toISOString()}`,
    args: [{ modelId }],
  });

test('count 0: no attestation calls, no change, reason count_zero', async () => {
  const out = await run('zero');
  assert.equal(out.mode, 'unchanged');
  assert.deepEqual(out.reasons, ['count_zero']);
  assert.equal(out.backendCount, 0);
  assert.equal(attestCalls.filter((c) => c.endsWith(':zero')).length, 0);
  assert.deepEqual(out.pinSet, { state: 'bootstrap', fingerprints: [] });
});

test('a failed count changes nothing: reason count_fetch', async () => {
  const out = await run('broken');
  assert.equal(out.mode, 'unchanged');
  assert.equal(out.backendCount, null);
  assert.equal(out.reasons.length, 1);
  assert.match(out.reasons[0]!, /^count_fetch: .*database unreachable/);
  assert.equal(attestCalls.filter((c) => c.endsWith(':broken')).length, 0);
});

test('complete coverage replaces the pin set and evicts a key no host presents', async () => {
  const out = await run('full');
  assert.equal(out.mode, 'replaced');
  assert.deepEqual(out.reasons, []);
  assert.deepEqual(out.pinSet, { state: 'pinned', fingerprints: [fp(H1), fp(H2), fp(H3)].sort() });
  assert.deepEqual(out.evicted, [OLD]);
  assert.equal(out.transition, 'pinned → rotated');
  assert.equal(attestCalls.filter((c) => c.endsWith(':full')).length, 3);
  assert.ok(recorded.includes(out.workflowId));
});

test('one host failing: merged, nothing evicted', async () => {
  const out = await run('partial');
  assert.equal(out.mode, 'merged');
  assert.deepEqual(out.evicted, []);
  assert.deepEqual(out.newlyPinned, [fp(H1), fp(H2)].sort());
  assert.ok(out.pinSet.fingerprints.includes(OLD));
  assert.ok(out.reasons.some((r) => r.startsWith(`call_failed: ${DOWN}: host is gone`)), out.reasons.join('; '));
});

test('a forged report fails verification and blocks the set', async () => {
  const out = await run('forged');
  assert.equal(out.mode, 'merged');
  assert.equal(out.pinSet.state, 'blocked');
  assert.ok(out.reasons.includes(`verify_failed: ${FORGER}: bad_signature`), out.reasons.join('; '));
  assert.ok(!out.pinSet.fingerprints.includes(fp(FORGER)));
  assert.equal(out.transition, 'bootstrap → blocked');
});
