/**
 * Discovery cycles on real parts: three in-process GPU hosts (node-llama-cpp, tiny model),
 * PGlite, the suite's Temporal server. The first cycle pins all three keys; a host that
 * stops is evicted by the next cycle; a rotated key replaces the old one; the cycles that
 * replaced the set are found by the Web UI's visibility query; a marked model gets its
 * refresh Schedule (deleted when unmarked); a cycle's history replays.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { Worker } from '@temporalio/worker';
import { identityKeyPath, writeNewIdentityKey } from '../../src/activities/hostIdentity.js';
import { discoveryScheduleId, type DiscoveryOutcome } from '../../src/common/discovery.js';
import { keyFingerprint, publicKeyOf } from '../../src/domain/attestation.js';
import { deleteDiscoverySchedule } from '../../src/temporal/discovery.js';
import { WORKFLOWS_PATH } from '../../src/workers/controlPlane.js';
import { runFleet } from '../support/cli.js';
import { startTestFleet, type TestFleet } from '../support/stack.js';
import { testEnv } from '../support/env.js';
import { waitFor } from '../support/wait.js';

const fleet = (...args: string[]) => runFleet(args, { env: { ...process.env, FLEET_LOG_LEVEL: 'warn', FLEET_DATA_DIR: f.tmpDir } });

let f: TestFleet;
let admin: string;
const cycles: DiscoveryOutcome[] = [];

const fingerprintOf = async (hostId: string) => keyFingerprint(publicKeyOf(new Uint8Array(await readFile(identityKeyPath(f.tmpDir, hostId)))));

async function runCycle(): Promise<DiscoveryOutcome> {
  const res = await fetch(`${admin}/models/${f.modelId}/discovery`, { method: 'POST' });
  assert.equal(res.status, 200, await res.clone().text());
  const out = (await res.json()) as DiscoveryOutcome;
  cycles.push(out);
  return out;
}

before(async () => {
  f = await startTestFleet({ db: 'pglite', hosts: 3 });
  admin = `${f.stack.api!.url}/admin`;
  await Promise.all(
    f.hostIds.map(async (h) => {
      const res = await fetch(`${admin}/hosts/${h}/models/${f.modelId}/load`, { method: 'POST' });
      assert.equal(res.status, 200, await res.text());
    }),
  );
});
after(async () => {
  // The Schedule id is per model on a shared server: never leave one behind a failed test.
  if (f) await deleteDiscoverySchedule(f.stack.temporal.client, f.modelId).catch(() => undefined);
  await f?.stop();
});

test('each host has a 0600 identity key in its state folder', async () => {
  const { stat } = await import('node:fs/promises');
  for (const h of f.hostIds) {
    const st = await stat(identityKeyPath(f.tmpDir, h));
    assert.equal(st.size, 32);
    assert.equal(st.mode & 0o777, 0o600);
  }
});

test('the first cycle pins every host serving the model', async () => {
  const out = await runCycle();
  assert.equal(out.mode, 'replaced', out.reasons.join('; '));
  assert.equal(out.backendCount, 3);
  assert.equal(out.transition, 'bootstrap → pinned');
  const expected = (await Promise.all(f.hostIds.map(fingerprintOf))).sort();
  assert.deepEqual(out.pinSet, { state: 'pinned', fingerprints: expected });
  const row = await f.stack.db.db.selectFrom('pin_sets').selectAll().where('model_id', '=', f.modelId).executeTakeFirstOrThrow();
  assert.deepEqual(row.fingerprints, expected);
  const recorded = await f.stack.db.db.selectFrom('discovery_cycles').selectAll().where('workflow_id', '=', out.workflowId).executeTakeFirst();
  assert.ok(recorded, 'the outcome is recorded');
  assert.match(out.workflowId, new RegExp(`^discovery:${f.modelId}:\\d{4}-`));
});

test('a host that stops is evicted by the next cycle', async () => {
  const gone = f.hostIds[2]!;
  const fp = await fingerprintOf(gone);
  await f.stack.hosts.get(gone)!.stop();
  const out = await runCycle();
  assert.equal(out.mode, 'replaced', out.reasons.join('; '));
  assert.equal(out.backendCount, 2);
  assert.deepEqual(out.evicted, [fp]);
  assert.equal(out.transition, 'pinned → shrunk');
  assert.ok(!out.pinSet.fingerprints.includes(fp));
});

test('a rotated key replaces the old fingerprint', async () => {
  const h = f.hostIds[0]!;
  const old = await fingerprintOf(h);
  const fresh = await writeNewIdentityKey(identityKeyPath(f.tmpDir, h));
  const out = await runCycle();
  assert.equal(out.mode, 'replaced', out.reasons.join('; '));
  assert.deepEqual(out.evicted, [old]);
  assert.deepEqual(out.newlyPinned, [fresh]);
  assert.equal(out.transition, 'pinned → rotated');
  assert.ok(out.pinSet.fingerprints.includes(fresh));
});

test('the visibility query finds the cycles that replaced the pin set', async () => {
  const ids = new Set(cycles.filter((c) => c.mode === 'replaced').map((c) => c.workflowId));
  assert.equal(ids.size, 3);
  const query = `FleetModel = "${f.modelId}" AND FleetPinReplaced = true AND WorkflowType = "discoveryCycle"`;
  const found = await waitFor(async () => {
    const seen = new Set<string>();
    for await (const w of f.stack.temporal.client.workflow.list({ query })) seen.add(w.workflowId);
    return [...ids].every((id) => seen.has(id)) ? seen : undefined;
  }, 15_000);
  assert.ok(found, `visibility did not list ${[...ids].join(', ')}`);
});

test('marking the model verifiable schedules its refresh; unmarking deletes the Schedule', async () => {
  const patch = (body: unknown) =>
    fetch(`${admin}/models/${f.modelId}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const bad = await patch({ verifiable: true, discovery_interval_s: 5 });
  assert.equal(bad.status, 400);
  const res = await patch({ verifiable: true, discovery_interval_s: 3600 });
  assert.equal(res.status, 200, await res.clone().text());
  const handle = f.stack.temporal.client.schedule.getHandle(discoveryScheduleId(f.modelId));
  const d = await handle.describe();
  assert.equal(d.action.type, 'startWorkflow');
  assert.equal(d.action.type === 'startWorkflow' ? d.action.workflowType : '', 'discoveryCycle');
  assert.equal(d.policies.overlap, 'SKIP');
  // Again with another interval: the Schedule is updated in place.
  const again = await patch({ verifiable: true, discovery_interval_s: 1800 });
  assert.equal(((await again.json()) as { schedule: string }).schedule, 'updated');
  const updated = await handle.describe();
  assert.equal(updated.spec.intervals?.[0]?.every, 1_800_000);
  assert.equal(updated.policies.overlap, 'SKIP');
  const model = await f.stack.db.db.selectFrom('models').select(['verifiable', 'discovery_interval_s']).where('id', '=', f.modelId).executeTakeFirstOrThrow();
  assert.deepEqual(model, { verifiable: true, discovery_interval_s: 1800 });
  const off = await patch({ verifiable: false });
  assert.equal(off.status, 200);
  assert.equal(((await off.json()) as { schedule: string }).schedule, 'deleted');
  await assert.rejects(handle.describe());
});

test("a cycle's recorded history replays against the workflow code", async () => {
  const last = cycles.at(-1)!;
  const history = await f.stack.temporal.client.workflow.getHandle(last.workflowId).fetchHistory();
  await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH, dataConverter: f.stack.temporal.dataConverter }, history, last.workflowId);
});

test('fleet discovery run / replay / rerun', async () => {
  const run = await fleet('discovery', 'run', '--model', f.modelId, '--url', f.stack.api!.url);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /^discovery:tiny:\S+: replaced \(pinned → steady\), backends 2/);
  const last = cycles.at(-1)!.workflowId;
  const address = testEnv.temporalAddress;
  const replay = await fleet('discovery', 'replay', last, '--address', address);
  assert.equal(replay.code, 0, replay.stderr);
  assert.equal(replay.stdout.trim().split('\n').at(-1), `${last}: ok (${(await f.stack.temporal.client.workflow.getHandle(last).fetchHistory()).events!.length} events replayed)`);
  const rerun = await fleet('discovery', 'rerun', last, '--address', address);
  assert.equal(rerun.code, 0, rerun.stderr);
  assert.match(rerun.stdout, /^before:\ndiscovery:tiny:\S+: replaced \(pinned → rotated\)/);
  assert.match(rerun.stdout, /after:\ndiscovery:tiny:\S+: replaced \(pinned → steady\), backends 2/);
});
