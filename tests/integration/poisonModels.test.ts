/**
 * Poison models never take the fleet down (3 real host processes, one healthy model `good`):
 * - registration refuses every malformed kind by name (missing keys that abort llama.cpp, a
 *   zero tensor dimension, a truncated file, a directory, a FIFO);
 * - a file that passes the header checks but still aborts llama.cpp (a `llama` model declaring
 *   2 experts with 0 used) is caught by the probe load in a child process: no host dies, the
 *   build is quarantined (503 `model_quarantined`, shown in /admin/pools and `fleet status`),
 *   nothing loads it again, `fleet models release` lifts it, and `good` is served throughout;
 * - with probe loads off, the same abort costs exactly one host, and the build is quarantined
 *   after that first death;
 * - a build whose file breaks after registration fails cleanly and moves no host out of its pool.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { getHost } from '../../src/db/hostsRepo.js';
import { writeGguf, type GgufSpec } from '../../src/model/ggufWriter.js';
import { tinyModelSpec } from '../../src/model/tinyModel.js';
import { runFleet } from '../support/cli.js';
import { startProcessFleet, type ProcessFleet } from '../support/processFleet.js';
import { waitFor } from '../support/wait.js';

const user = (content: string) => [{ role: 'user' as const, content }];
const setKv = (s: GgufSpec, key: string, value: number): GgufSpec => ({
  ...s,
  metadata: [...s.metadata.filter((k) => k.key !== key), { key, type: 'uint32', value }],
});
/** Passes every header check, and aborts llama.cpp (GGML_ASSERT(n_expert_used_max > 0)). */
const abortsLlama = (seed: number) => setKv(setKv(tinyModelSpec('tiny', seed), 'llama.expert_count', 2), 'llama.expert_used_count', 0);

describe('poison models', () => {
  let f: ProcessFleet;
  const admin = async (method: string, route: string, body?: unknown) => {
    const res = await fetch(`${f.apiUrl}${route}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> & { error?: { code: string; message: string } } };
  };
  const chat = async (model: string) => {
    const res = await fetch(`${f.apiUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: user('hello'), max_tokens: 4 }),
    });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as { error?: { code: string; message: string } } };
  };
  const writeModel = async (name: string, spec: GgufSpec) => {
    const file = path.join(f.tmpDir, `${name}.gguf`);
    await writeGguf(file, spec);
    return file;
  };
  const alive = (id: string) => {
    const c = f.hosts.get(id)!.child;
    return c.exitCode === null && c.signalCode === null;
  };
  const workflowsFor = async (model: string) => {
    let n = 0;
    for await (const _ of f.stack.temporal.client.workflow.list({ query: `FleetModel = "${model}" AND FleetRequestKind IN ("coldLoad", "poolReassign")` })) n++;
    return n;
  };
  const goodIsServed = async () => {
    for (let i = 0; i < 3; i++) assert.equal((await chat('good')).status, 200);
  };

  before(async () => {
    f = await startProcessFleet({ hosts: 3, hostEnv: { FLEET_MAX_MODEL_SLOTS: '1', FLEET_MAX_IN_FLIGHT: '1', FLEET_MAX_QUEUE: '0' } });
    await f.addModel('good', 'tiny', 1);
    for (const h of ['h0', 'h1', 'h2']) await f.load(h, 'good');
  });
  after(async () => {
    await f?.stop();
  });

  test('registration refuses each malformed kind with a 400 that names the problem', async () => {
    const drop = (key: string) => (s: GgufSpec): GgufSpec => ({ ...s, metadata: s.metadata.filter((k) => k.key !== key) });
    const base = () => tinyModelSpec('tiny', 2);
    const truncated = await writeModel('cut', base());
    await truncate(truncated, Math.floor((await stat(truncated)).size * 0.6));
    const dir = path.join(f.tmpDir, 'a-directory');
    await mkdir(dir);
    const fifo = path.join(f.tmpDir, 'a-fifo');
    execFileSync('mkfifo', [fifo]);
    const cases: Array<[string, string, RegExp]> = [
      ['no-ffl', await writeModel('no-ffl', drop('llama.feed_forward_length')(base())), /lacks 'llama.feed_forward_length'/],
      ['no-heads', await writeModel('no-heads', drop('llama.attention.head_count')(base())), /lacks 'llama.attention.head_count'/],
      ['kv-zero', await writeModel('kv-zero', setKv(base(), 'llama.attention.head_count_kv', 0)), /head_count_kv' must be ≥ 1/],
      [
        'zero-dim',
        await writeModel('zero-dim', { ...base(), unchecked: true, tensors: base().tensors.map((t) => (t.name === 'output_norm.weight' ? { ...t, dims: [0], data: new Float32Array(0) } : t)) }),
        /zero or invalid dimension/,
      ],
      ['cut', truncated, /truncated/],
      ['a-directory', dir, /is a directory/],
      ['a-fifo', fifo, /is a FIFO/],
    ];
    for (const [id, file, problem] of cases) {
      const r = await admin('POST', '/admin/models', { id, path: file });
      assert.equal(r.status, 400, `${id}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error?.code, 'invalid_model_file', id);
      assert.match(r.body.error!.message, problem, id);
    }
    const ids = (await f.stack.db.db.selectFrom('models').select('id').execute()).map((m) => m.id);
    assert.deepEqual(ids, ['good'], 'nothing malformed was registered');
  });

  test('a file that passes the checks but aborts llama.cpp: the probe catches it, no host dies, the build is quarantined', async () => {
    const file = await writeModel('aborts', abortsLlama(5));
    assert.equal((await admin('POST', '/admin/models', { id: 'aborts', path: file })).status, 201, 'it passes the header checks');
    const r = await chat('aborts');
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body.error?.code, 'model_quarantined');
    assert.match(r.body.error!.message, /quarantined.*GGML_ASSERT\(n_expert_used_max > 0\)/);
    for (const h of ['h0', 'h1', 'h2']) assert.ok(alive(h), `${h} is alive`);

    // Operators see it; nothing tries to load it again.
    const pools = await admin('GET', '/admin/pools');
    assert.deepEqual((pools.body.quarantined as Array<{ build: string }>).map((q) => q.build), ['aborts']);
    const goodPool = (pools.body.data as Array<{ alias: string; hosts: string[]; loaded: number }>).find((p) => p.alias === 'good')!;
    assert.deepEqual([goodPool.hosts, goodPool.loaded], [['h0', 'h1', 'h2'], 3], 'no host left its pool');
    const status = await runFleet(['status', '--url', f.apiUrl], { env: { ...process.env, FLEET_LOG_LEVEL: 'error' } });
    assert.match(status.stdout, /quarantined: aborts .*GGML_ASSERT/);
    const attempts = await workflowsFor('aborts');
    const again = await chat('aborts');
    assert.equal(again.body.error?.code, 'model_quarantined');
    assert.equal(await workflowsFor('aborts'), attempts, 'a quarantined build starts no load or move');
    await goodIsServed();

    const released = await runFleet(['models', 'release', 'aborts', '--url', f.apiUrl], { env: { ...process.env, FLEET_LOG_LEVEL: 'error' } });
    assert.equal(released.code, 0, released.stderr);
    assert.match(released.stdout, /released aborts/);
    assert.deepEqual((await admin('GET', '/admin/pools')).body.quarantined, []);
  });

  test('with probe loads off, the abort costs exactly one host, and the build is quarantined after it', async () => {
    await f.kill('h2');
    await f.startHost('h2', { FLEET_LOAD_PROBE: 'false' });
    await f.load('h2', 'good');
    const file = await writeModel('aborts-raw', abortsLlama(6));
    assert.equal((await admin('POST', '/admin/models', { id: 'aborts-raw', path: file })).status, 201);
    // h0 and h1 are busy, so the only host that can be moved in to load it is h2.
    const busy = ['h0', 'h1'].map((h, i) => ({ h, p: f.openai.chat.completions.create({ model: 'good', messages: user(f.gated(`hold-${i}`)), max_tokens: 4 }) }));
    for (const { h } of busy) {
      assert.ok(await waitFor(async () => ((await getHost(f.stack.db.db, h))?.stats.models.good?.running === 1 ? true : undefined), 60_000), h);
    }
    const r = await chat('aborts-raw');
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body.error?.code, 'model_quarantined');
    assert.match(r.body.error!.message, /h2 died while loading it/);
    assert.equal(f.hosts.get('h2')!.child.signalCode, 'SIGABRT', 'llama.cpp aborted the worker');
    assert.ok(alive('h0') && alive('h1'), 'exactly one host died');
    assert.equal((await chat('aborts-raw')).body.error?.code, 'model_quarantined');
    assert.ok(alive('h0') && alive('h1'), 'no second death');
    for (let i = 0; i < busy.length; i++) await f.release(`hold-${i}`);
    for (const { p } of busy) await p;
    await goodIsServed();
    await f.reset();
    await f.load('h2', 'good');
  });

  test('a build whose file breaks after registration fails cleanly and moves no host out of its pool', async () => {
    const file = await writeModel('breaks', tinyModelSpec('tiny', 9));
    assert.equal((await admin('POST', '/admin/models', { id: 'breaks', path: file })).status, 201);
    await truncate(file, Math.floor((await stat(file)).size * 0.6));
    const r = await chat('breaks');
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.match(r.body.error!.message, /could not be loaded.*(sha256|truncated)/);
    const goodPool = ((await admin('GET', '/admin/pools')).body.data as Array<{ alias: string; hosts: string[]; loaded: number }>).find((p) => p.alias === 'good')!;
    assert.deepEqual([goodPool.hosts, goodPool.loaded], [['h0', 'h1', 'h2'], 3], 'every host still serves good');
    await goodIsServed();
  });
});
