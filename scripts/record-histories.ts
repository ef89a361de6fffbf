/**
 * Records workflow histories from a real run (real Temporal, PGlite, node-llama-cpp) into
 * tests/fixtures/histories/, for the replay test that catches determinism breaks. Rerun it
 * (with the env `npm test` sets: FLEET_TEST_TEMPORAL_ADDRESS, FLEET_TEST_TEMPORAL_CLI) after an intended workflow
 * change guarded by `patched()`, keeping the old files too: pass names to record only those
 * (`node --import tsx scripts/record-histories.ts inferenceRequest-cancelled`).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { sha256File } from '../src/activities/fileHash.js';
import { coldLoadWorkflowId } from '../src/common/coldLoad.js';
import { poolReassignWorkflowId, WARM_POOLS_NOW_WORKFLOW_ID } from '../src/common/pools.js';
import { registerModel } from '../src/db/modelsRepo.js';
import { makeTinyModel, TINY_MODEL_SIZES } from '../src/model/tinyModel.js';
import { testEnv } from '../tests/support/env.js';
import { startTestFleet } from '../tests/support/stack.js';
import { randomBytes } from 'node:crypto';
import { softwareTeePublicKey } from '../src/attestation/quoteVerifier.js';
import { startAttestedDiscovery } from '../src/temporal/attestedDiscovery.js';
import { startModelProxy } from '../tests/support/modelProxy.js';

const out = path.resolve(import.meta.dirname, '../tests/fixtures/histories');
const only = new Set(process.argv.slice(2));
const wanted = (name: string) => only.size === 0 || only.has(name);
// No cool-down: the planner may move the host back right after the on-demand move below.
// Run it without FLEET_PAYLOAD_KEYS: the replay test reads these files in clear (the codec test
// replays them through a codec too).
if (process.env.FLEET_PAYLOAD_KEYS) throw new Error('unset FLEET_PAYLOAD_KEYS: recorded histories are kept in clear');
// The attested provider's reports come from the test model-proxy's software TEE.
const tee = new Uint8Array(randomBytes(32));
const f = await startTestFleet({
  db: 'pglite',
  env: { FLEET_POOL_COOLDOWN_S: '0', FLEET_ALLOW_SOFTWARE_TEE: 'true', FLEET_SOFTWARE_TEE_PUBLIC_KEY: softwareTeePublicKey(tee) },
});
try {
  const client = f.stack.temporal.client;
  const save = async (name: string, workflowId: string) => {
    if (!wanted(name)) return;
    await client.workflow.getHandle(workflowId).result().catch(() => undefined);
    // The canonical JSON history, exactly as operators export it from the CLI.
    const json = execFileSync(
      testEnv.temporalCli,
      ['workflow', 'show', '--address', testEnv.temporalAddress, '--workflow-id', workflowId, '--output', 'json'],
      { encoding: 'utf8' },
    );
    const history = JSON.parse(json) as { events: unknown[] };
    await writeFile(path.join(out, `${name}.json`), JSON.stringify({ workflowId, history }, null, 1) + '\n');
    process.stdout.write(`recorded ${name} (${history.events.length} events)\n`);
  };
  const first = await f.openai.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'hello' }], max_tokens: 8 });
  await save('inferenceRequest-coldload', first.id);
  await save('coldLoad', coldLoadWorkflowId(f.hostIds[0]!, 'tiny'));
  if (wanted('discoveryCycle')) {
    // The model is loaded on the one host now: a cycle that attests it and pins its key.
    const cycle = await fetch(`${f.stack.api!.url}/admin/models/tiny/discovery`, { method: 'POST' });
    const outcome = (await cycle.json()) as { workflowId?: string; mode?: string };
    if (cycle.status !== 200 || outcome.mode !== 'replaced' || !outcome.workflowId) throw new Error(`expected a complete discovery cycle, got ${cycle.status}`);
    await save('discoveryCycle', outcome.workflowId);
  }
  const stream = await f.openai.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'stream' }], max_tokens: 8, stream: true });
  let id = '';
  for await (const c of stream) id = c.id;
  await save('inferenceRequest-stream', id);
  const bad = await fetch(`${f.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'word '.repeat(3000) }] }),
  });
  const requests = await f.stack.db.db.selectFrom('request_log').select(['id', 'error_code']).execute();
  const failed = requests.find((r) => r.error_code === 'context_length_exceeded');
  if (bad.status !== 400 || !failed) throw new Error('expected a context_length_exceeded failure to record');
  await save('inferenceRequest-context-exceeded', failed.id);
  if (wanted('inferenceRequest-cancelled')) {
    // A client that leaves while its request holds a slot (a test gate keeps it there).
    const ac = new AbortController();
    const pending = fetch(`${f.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: f.gated('record-cancel') }], max_tokens: 8, stream: true }),
      signal: ac.signal,
    }).catch(() => undefined);
    let cancelledId: string | undefined;
    for (let i = 0; i < 200 && !cancelledId; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const running = await f.stack.db.db.selectFrom('hosts').select('stats').execute();
      if (running.some((h) => JSON.stringify(h.stats).includes('"running":1'))) {
        for await (const w of client.workflow.list({ query: 'WorkflowType = "inferenceRequest" AND ExecutionStatus = "Running"' })) cancelledId = w.workflowId;
      }
    }
    if (!cancelledId) throw new Error('the gated request never ran');
    ac.abort();
    await pending;
    const closed = await client.workflow.getHandle(cancelledId).result().then(() => 'completed', () => 'cancelled');
    await f.release('record-cancel');
    if (closed !== 'cancelled') throw new Error('the request was not cancelled');
    await save('inferenceRequest-cancelled', cancelledId);
  }
  if (wanted('poolReassign') || wanted('inferenceRequest-pool-move') || wanted('warmPools')) {
    // A second alias: the one host serves tiny's pool, so a request for it borrows the host.
    const file = path.join(f.tmpDir, 'pooled.gguf');
    await makeTinyModel({ file, seed: 9, size: 'tiny' });
    const { sha256, sizeBytes } = await sha256File(file);
    await registerModel(f.stack.db.db, { id: 'pooled', path: file, sha256, sizeBytes, contextLength: TINY_MODEL_SIZES.tiny.contextLength });
    const moved = await f.openai.chat.completions.create({ model: 'pooled', messages: [{ role: 'user', content: 'move' }], max_tokens: 4 });
    await save('inferenceRequest-pool-move', moved.id);
    await save('poolReassign', poolReassignWorkflowId(f.hostIds[0]!));
    // tiny now has no host: min_warm 1 makes the planner move it back.
    const patched = await fetch(`${f.stack.api!.url}/admin/models/tiny`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ min_warm: 1 }),
    });
    if (patched.status !== 200) throw new Error(`PATCH tiny: ${patched.status}`);
    await save('warmPools', WARM_POOLS_NOW_WORKFLOW_ID);
  }
  if (wanted('attestedDiscoveryCycle')) {
    // Two backends behind the test model-proxy: a complete cycle that pins both.
    const proxy = await startModelProxy({ backends: 2, models: ['tiny-remote'], teeSecretKey: tee });
    try {
      const ca = path.join(f.tmpDir, 'proxy-ca.pem');
      await writeFile(ca, proxy.caPem);
      const added = await fetch(`${f.stack.api!.url}/admin/providers`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          id: 'tee',
          base_url: proxy.inferenceUrl,
          tier: 'attested',
          models: 'secure=tiny-remote',
          discovery_interval_s: 3600,
          transport: { resolve: { [`*.${proxy.base}`]: proxy.resolveTo, [proxy.base]: proxy.resolveTo }, ca_file: ca },
        }),
      });
      if (added.status !== 201) throw new Error(`POST /admin/providers: ${added.status} ${await added.text()}`);
      const handle = await startAttestedDiscovery(client, { providerId: 'tee', slug: 'tiny-remote' });
      const outcome = await handle.result();
      if (outcome.mode !== 'replaced' || outcome.pinSet.fingerprints.length !== 2) throw new Error(`expected a complete attested cycle, got ${outcome.mode}`);
      await save('attestedDiscoveryCycle', handle.workflowId);
    } finally {
      await proxy.close();
    }
  }
} catch (err) {
  process.stderr.write(`recording failed: ${(err as Error).stack}\n`);
  process.exitCode = 1;
} finally {
  await f.stop();
}
process.exit();
