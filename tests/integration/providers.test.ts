/**
 * Remote providers on real parts, through the official `openai` client: one own host process,
 * a second inference-fleet (`fleet dev` in its own processes) as a real OpenAI-compatible
 * upstream, and an in-repo fault upstream that answers as each test scripts it. Providers come
 * from the config file (FLEET_CONFIG) and the admin API. It shows: own host first, the provider
 * when the host is gone; streaming through a provider with the canonical id in every chunk; the
 * upstream gets its slug and our key; each failure of the table gives its outcome (retry on the
 * same provider, next replica, the client's error, a stream error after the first chunk); a
 * disconnect aborts the upstream request; budgets settle to the upstream's usage; demotion;
 * an attested model never falls back to plaintext; merge versus prune of a refresh.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { stringify } from 'yaml';
import { getRequestLog } from '../../src/db/requestLogRepo.js';
import { runFleet } from '../support/cli.js';
import { startDevFleet, type DevFleet } from '../support/devFleet.js';
import { startFaultUpstream, type FaultUpstream } from '../support/faultUpstream.js';
import { startProcessFleet, type ProcessFleet } from '../support/processFleet.js';
import { waitFor } from '../support/wait.js';

const FAULT_KEY = 'sk-upstream-test-key-0123456789';
const user = (content: string) => [{ role: 'user' as const, content }];
/** What the fault upstream lists: every slug the configured providers map. */
const LISTED = ['vendor/up-model', 'vendor/dm-bad', 'vendor/dm-good', 'y'];

describe('remote providers', () => {
  let tmp: string;
  let second: DevFleet;
  let up: FaultUpstream;
  let f: ProcessFleet;
  const admin = async (method: string, route: string, body?: unknown) => {
    const res = await fetch(`${f.apiUrl}${route}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> & { error?: { code: string; message: string } } };
  };
  const chat = async (model: string, extra: Record<string, unknown> = {}, key?: string) => {
    const res = await fetch(`${f.apiUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: JSON.stringify({ model, messages: user('hello'), max_tokens: 8, ...extra }),
    });
    const text = await res.text();
    return { status: res.status, text, json: (() => { try { return JSON.parse(text) as Record<string, any>; } catch { return undefined; } })() };
  };
  const servedBy = async (id: string) => waitFor(() => getRequestLog(f.stack.db.db, id));

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'fleet-providers-'));
    [second, up] = await Promise.all([startDevFleet(path.join(tmp, 'second'), { ui: false }), startFaultUpstream()]);
    up.models = [...LISTED];
    const timeouts = { connect_ms: 1000, first_byte_ms: 1500, idle_ms: 1500 };
    const config = path.join(tmp, 'fleet.yaml');
    await writeFile(
      config,
      stringify({
        providers: [
          { id: 'second', base_url: `${second.apiUrl}/v1`, tier: 'plaintext', models: 'tiny' },
          { id: 'fault', base_url: up.baseUrl, api_key_env: 'FAULT_KEY', models: 'faulty=vendor/up-model', timeouts },
          { id: 'bad', base_url: up.baseUrl, models: 'dm=vendor/dm-bad', timeouts },
          { id: 'good', base_url: up.baseUrl, models: 'dm=vendor/dm-good', timeouts },
        ],
      }),
    );
    f = await startProcessFleet({ hosts: 1, stackEnv: { FLEET_CONFIG: config, FAULT_KEY, FLEET_DEMOTE_AFTER: '2' } });
    await f.addModel('tiny', 'tiny', 4);
    await f.load('h0', 'tiny');
  });
  after(async () => {
    await f?.stop();
    await Promise.all([second?.stop(), up?.close()]);
    await rm(tmp, { recursive: true, force: true });
  });

  test('the config file\'s providers are in place, keys by name only', async () => {
    const r = await admin('GET', '/admin/providers');
    const list = r.body.data as Array<{ id: string; source: string; api_key_env: string | null; key_set: boolean | null }>;
    assert.deepEqual(list.map((p) => [p.id, p.source]), [['second', 'config'], ['fault', 'config'], ['bad', 'config'], ['good', 'config']]);
    assert.deepEqual(list.find((p) => p.id === 'fault')!.key_set, true);
    assert.ok(!JSON.stringify(r.body).includes(FAULT_KEY), 'no answer carries a key');
    const models = ((await (await fetch(`${f.apiUrl}/v1/models`)).json()) as { data: Array<{ id: string }> }).data.map((m) => m.id);
    for (const id of ['tiny', 'faulty', 'dm']) assert.ok(models.includes(id), `${id} in ${models.join(',')}`);
  });

  test('own host first; when it is gone, the provider serves under the canonical id', async () => {
    const first = await f.openai.chat.completions.create({ model: 'tiny', messages: user('who serves?'), max_tokens: 4 });
    assert.equal((await servedBy(first.id))?.host_id, 'h0');
    await f.kill('h0');
    const r = await f.openai.chat.completions.create({ model: 'tiny', messages: user('and now?'), max_tokens: 4 });
    assert.equal(r.model, 'tiny');
    const log = await servedBy(r.id);
    assert.deepEqual([log?.host_id, log?.provider_id], [null, 'second']);
  });

  test('streaming through a provider: the canonical id in every chunk, a complete answer', async () => {
    const stream = await f.openai.chat.completions.create({ model: 'tiny', messages: user('stream it'), max_tokens: 8, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage = 0;
    for await (const c of stream) {
      assert.equal(c.model, 'tiny');
      text += c.choices[0]?.delta.content ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
      usage = c.usage?.completion_tokens ?? usage;
    }
    assert.ok(text.length > 0);
    assert.ok(finish === 'length' || finish === 'stop');
    assert.ok(usage > 0, 'the upstream usage reaches the client');
  });

  test('the upstream gets its slug and our key; the client sees the canonical id and the upstream usage', async () => {
    const r = await chat('faulty');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json!.model, 'faulty');
    assert.deepEqual(r.json!.usage, { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18, prompt_tokens_details: { cached_tokens: 0 } });
    const call = up.calls.at(-1)!;
    assert.deepEqual([call.model, call.authorization], ['vendor/up-model', `Bearer ${FAULT_KEY}`]);
  });

  test('a provider receives the sampling parameters and response_format the client set (and nothing unset); tools and embeddings are refused for it', async () => {
    const schema = { type: 'object', properties: { a: { type: 'string', pattern: '^x' } } };
    const r = await chat('faulty', {
      presence_penalty: 0.5,
      frequency_penalty: 0.25,
      logit_bias: { '42': -5 },
      top_k: 7,
      min_p: 0.1,
      repeat_penalty: 1.2,
      response_format: { type: 'json_schema', json_schema: { name: 'x', schema, strict: true } },
    });
    assert.equal(r.status, 200, r.text);
    const body = up.calls.at(-1)!.body;
    assert.deepEqual(
      [body.presence_penalty, body.frequency_penalty, body.logit_bias, body.top_k, body.min_p, body.repeat_penalty],
      [0.5, 0.25, { '42': -5 }, 7, 0.1, 1.2],
    );
    // The provider enforces the schema: it gets it as written (a keyword our hosts refuse included).
    assert.deepEqual(body.response_format, { type: 'json_schema', json_schema: { name: 'x', schema, strict: true } });
    await chat('faulty');
    const plain = up.calls.at(-1)!.body;
    for (const k of ['presence_penalty', 'frequency_penalty', 'logit_bias', 'top_k', 'min_p', 'repeat_penalty', 'response_format']) assert.ok(!(k in plain), k);
    const tools = await chat('faulty', { tools: [{ type: 'function', function: { name: 'f' } }] });
    assert.deepEqual([tools.status, tools.json!.error.param], [400, 'tools']);
    const history = await chat('faulty', {
      messages: [
        { role: 'user', content: 'x' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: '1' },
      ],
    });
    assert.deepEqual([history.status, history.json!.error.param], [400, 'messages.1']);
    const emb = await fetch(`${f.apiUrl}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'faulty', input: 'x' }) });
    assert.equal(emb.status, 400);
  });

  const failureTable: Array<{ name: string; script: Parameters<FaultUpstream['script']>[1][]; stream?: boolean; status: number; calls: number; check?: (r: Awaited<ReturnType<typeof chat>>) => void }> = [
    { name: '500 once: retried on the same provider', script: ['500', 'ok'], status: 200, calls: 2 },
    { name: '429 + Retry-After: waited, then retried', script: ['429:1', 'ok'], status: 200, calls: 2 },
    { name: 'a stall: the first-byte timeout, then a retry', script: ['stall', 'ok'], status: 200, calls: 2 },
    {
      name: '500 every time: the client hears 502 after the bounded retries, never the upstream URL',
      script: ['500', '500', '500'],
      status: 502,
      calls: 3,
      check: (r) => assert.ok(!r.text.includes('internal.example') && r.json!.error.code === 'upstream_error', r.text),
    },
    {
      name: '400: the upstream message goes to the client at once, in our envelope',
      script: ['400'],
      status: 400,
      calls: 1,
      check: (r) => assert.deepEqual([r.json!.error.code, r.json!.error.param, /temperature is out of range/.test(r.json!.error.message)], ['bad_temperature', 'temperature', true]),
    },
    { name: 'a stream dropped before the first chunk: retried, a complete stream', script: ['drop-before', 'ok'], stream: true, status: 200, calls: 2, check: (r) => assert.match(r.text, /data: \[DONE\]/) },
    {
      name: 'a stream dropped after the first chunk: an error event and no [DONE]',
      script: ['drop-after'],
      stream: true,
      status: 200,
      calls: 1,
      check: (r) => assert.ok(/"error"/.test(r.text) && !r.text.includes('[DONE]'), r.text),
    },
  ];
  for (const c of failureTable) {
    test(`failure table: ${c.name}`, async () => {
      const before = up.callsFor('vendor/up-model').length;
      up.script('vendor/up-model', ...c.script);
      const r = await chat('faulty', c.stream ? { stream: true } : {});
      assert.equal(r.status, c.status, r.text);
      assert.equal(up.callsFor('vendor/up-model').length - before, c.calls);
      c.check?.(r);
    });
  }

  test('a client that disconnects aborts the upstream request', async () => {
    const aborted = up.aborted;
    up.script('vendor/up-model', 'slow');
    const ac = new AbortController();
    const stream = await f.openai.chat.completions.create({ model: 'faulty', messages: user('slowly'), max_tokens: 8, stream: true }, { signal: ac.signal });
    try {
      for await (const c of stream) if (c.choices[0]?.delta.content) ac.abort();
    } catch {
      // the aborted read
    }
    assert.ok(await waitFor(async () => (up.aborted > aborted ? true : undefined), 30_000), 'the upstream saw its client go');
  });

  test("budgets settle to the upstream's usage", async () => {
    const k = (await admin('POST', '/admin/keys', { account: 'prov', balance_tokens: 100_000 })).body as { id: string; key: string };
    const r = await chat('faulty', {}, k.key);
    assert.equal(r.status, 200, r.text);
    const res = await waitFor(async () => {
      const row = await f.stack.db.db.selectFrom('reservations').selectAll().where('key_id', '=', k.id).executeTakeFirst();
      return row?.state === 'settled' ? row : undefined;
    });
    assert.deepEqual([res?.prompt_tokens, res?.completion_tokens], [11, 7]);
  });

  test('a provider failing again and again is demoted behind the others; half open after a while, one success restores it', async () => {
    up.script('vendor/dm-bad', ...Array<'500'>(200).fill('500'));
    // Rotation puts `bad` first for about half the requests (a hash of the request id): send
    // until two requests have tried it, not a fixed number that may all have gone to `good`.
    let tried = 0;
    for (let i = 0; i < 60 && tried < 2; i++) {
      const before = up.callsFor('vendor/dm-bad').length;
      assert.equal((await chat('dm')).status, 200, `request ${i}`);
      if (up.callsFor('vendor/dm-bad').length > before) tried++;
    }
    assert.equal(tried, 2);
    // Outcomes are recorded by the workflow as it closes, which may be just after the answer.
    const badState = async () => ((await admin('GET', '/admin/providers')).body.data as Array<{ id: string; demoted: boolean; consecutive_failures: number }>).find((p) => p.id === 'bad')!;
    const bad = await waitFor(async () => {
      const b = await badState();
      return b.demoted && b.consecutive_failures >= 2 ? b : undefined;
    });
    assert.ok(bad, JSON.stringify(await badState()));
    const calls = up.callsFor('vendor/dm-bad').length;
    for (let i = 0; i < 4; i++) assert.equal((await chat('dm')).status, 200);
    assert.equal(up.callsFor('vendor/dm-bad').length, calls, 'a demoted provider is asked after the others');
    const metrics = await (await fetch(`${f.apiUrl}/metrics`)).text();
    assert.match(metrics, /fleet_replica_demoted\{replica="provider:bad"\} 1/);

    // FLEET_DEMOTE_RETRY_S later (its last failure made old here, not waited for): it is back
    // in its place, rotation gives it a request, and the success resets its count.
    up.clear('vendor/dm-bad');
    await sql`UPDATE replica_health SET last_failure_at = now() - interval '1 hour' WHERE replica = 'provider:bad'`.execute(f.stack.db.db);
    for (let i = 0; i < 40 && up.callsFor('vendor/dm-bad').length === calls; i++) assert.equal((await chat('dm')).status, 200);
    assert.ok(up.callsFor('vendor/dm-bad').length > calls, 'a half-open provider gets a request');
    const healed = await waitFor(async () => {
      const b = await badState();
      return b.consecutive_failures === 0 ? b : undefined;
    });
    assert.deepEqual([healed?.consecutive_failures, healed?.demoted], [0, false], JSON.stringify(await badState()));
  });

  test('an attested provider that cannot be used leaves its model failing closed: never plaintext', async () => {
    assert.equal((await admin('POST', '/admin/providers', { id: 'locked-a', base_url: 'https://locked-a.attested.invalid/v1', tier: 'attested', api_key_env: 'NO_SUCH_KEY', models: 'locked=x' })).status, 201);
    const plain = await admin('POST', '/admin/providers', { id: 'locked-p', base_url: up.baseUrl, tier: 'plaintext', models: 'locked=y,locked=x' });
    assert.equal(plain.status, 201);
    assert.deepEqual(plain.body.warnings, ["canonical id 'locked' is listed twice: keeping 'y', ignoring 'x'"], 'the operator hears what the list does not mean');
    const before = up.callsFor('y').length;
    const r = await chat('locked');
    assert.equal(r.status, 404, r.text);
    assert.equal(r.json!.error.code, 'model_not_found');
    assert.equal(up.callsFor('y').length, before, 'the plaintext provider was never asked');
    assert.equal((await admin('DELETE', '/admin/providers/locked-a')).status, 200);
    assert.equal((await chat('locked')).status, 200, 'with nothing attested left, plaintext serves');
    assert.equal((await admin('DELETE', '/admin/providers/locked-p')).status, 200);
    assert.equal((await chat('locked')).status, 404, 'an id with no provider left is gone');
  });

  test('PATCH changes the fields it names and keeps every other one', async () => {
    const created = await admin('POST', '/admin/providers', { id: 'patched', base_url: up.baseUrl, models: 'pm=vendor/pm', context_length: 4096, streaming: false, timeouts: { connect_ms: 1000, first_byte_ms: 2000, idle_ms: 3000 } });
    assert.equal(created.status, 201);
    const patched = await admin('PATCH', '/admin/providers/patched', { enabled: false });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    const { enabled, models, context_length, streaming, timeouts, tier } = patched.body as Record<string, unknown>;
    assert.deepEqual({ enabled, models, context_length, streaming, timeouts, tier }, {
      enabled: false,
      models: 'pm=vendor/pm',
      context_length: 4096,
      streaming: false,
      timeouts: { connect_ms: 1000, first_byte_ms: 2000, idle_ms: 3000 },
      tier: 'plaintext',
    });
    const bad = await admin('PATCH', '/admin/providers/patched', { tier: 'attested' });
    assert.equal(bad.status, 400, 'an attested provider needs https');
    assert.match(JSON.stringify(bad.body), /https/);
    assert.equal((await admin('PATCH', '/admin/providers/patched', { nope: 1 })).status, 400);
    assert.equal((await admin('DELETE', '/admin/providers/patched')).status, 200);
  });

  test('refresh: listed-only models are added inactive; only a complete refresh prunes', async () => {
    assert.equal((await admin('POST', '/admin/providers', { id: 'lister', base_url: up.baseUrl })).status, 201);
    up.models = [...LISTED, 'fresh-model'];
    const refreshed = await admin('POST', '/admin/providers/refresh');
    assert.equal(refreshed.body.complete, true, JSON.stringify(refreshed.body));
    const ids = async () => ((await (await fetch(`${f.apiUrl}/v1/models`)).json()) as { data: Array<{ id: string }> }).data.map((m) => m.id);
    assert.ok(!(await ids()).includes('fresh-model'), 'inactive until an operator activates it');
    assert.equal((await admin('PATCH', `/admin/models/${encodeURIComponent('lister/fresh-model')}`, { active: true })).status, 200);
    assert.ok((await ids()).includes('fresh-model'));
    assert.equal((await chat('fresh-model')).status, 200);

    up.models = null; // every listing fails: a partial batch, nothing pruned
    const partial = await admin('POST', '/admin/providers/refresh');
    assert.equal(partial.body.complete, false);
    assert.deepEqual(partial.body.removed, []);
    assert.equal((await chat('fresh-model')).status, 200);

    up.models = [...LISTED]; // complete again, without it: pruned, and its alias with it
    const pruned = await admin('POST', '/admin/providers/refresh');
    assert.equal(pruned.body.complete, true);
    assert.ok((pruned.body.removed as string[]).includes('lister/fresh-model'));
    assert.equal((await chat('fresh-model')).status, 404);
    assert.equal((await chat('faulty')).status, 200, 'unrelated models are untouched');
  });

  test('fleet providers add / list / remove', async () => {
    const fleet = (...args: string[]) => runFleet([...args, '--url', f.apiUrl], { env: { PATH: process.env.PATH, HOME: process.env.HOME, FLEET_LOG_LEVEL: 'error' } });
    const added = await fleet('providers', 'add', 'cli-p', up.baseUrl, '--models', 'cli-model=y', '--api-key-env', 'CLI_KEY');
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /added provider cli-p \(plaintext\)/);
    const listed = await fleet('providers', 'list');
    assert.match(listed.stdout, /cli-p\s+plaintext\s+yes\s+CLI_KEY \(NOT SET\)/);
    assert.match(listed.stdout, /fault .*faulty ← vendor\/up-model/);
    assert.equal((await chat('cli-model')).status, 404, 'its key is not set: it cannot serve');
    const removed = await fleet('providers', 'remove', 'cli-p');
    assert.equal(removed.code, 0, removed.stderr);
    const again = await fleet('providers', 'remove', 'cli-p');
    assert.equal(again.code, 1);
    assert.match(again.stderr, /provider_not_found/);
  });
});
