/**
 * API keys, metering and budgets on the real stack (Temporal, node-llama-cpp, PostgreSQL and
 * PGlite): admin endpoints behind the admin token, anonymous and required auth, spoofed
 * principals ignored, GET /v1/usage, 30 concurrent requests on a capped key that never
 * overshoot, a client leaving mid-stream settled to what was generated, and reservations
 * stranded by a crashed API released by the real sweep schedule (a SIGKILLed `fleet api`
 * child process on PostgreSQL).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ScheduleOverlapPolicy, WorkflowNotFoundError } from '@temporalio/client';
import { sha256File } from '../../src/activities/fileHash.js';
import { ModelCatalog } from '../../src/api/catalog.js';
import { KeyResolver } from '../../src/api/keyResolver.js';
import { startApiServer, type ApiServer } from '../../src/api/server.js';
import { reserveTokens } from '../../src/db/budgetRepo.js';
import { registerModel } from '../../src/db/modelsRepo.js';
import { getRequestLog } from '../../src/db/requestLogRepo.js';
import { promptUpperBound, reservationUpperBound } from '../../src/domain/budget.js';
import { log } from '../../src/logger.js';
import { makeTinyModel, TINY_MODEL_SIZES } from '../../src/model/tinyModel.js';
import { freePort } from '../../src/temporal/devServer.js';
import { SWEEP_SCHEDULE_ID } from '../../src/temporal/sweepSchedule.js';
import { testEnv } from '../support/env.js';
import { startTestFleet, type DbKind, type TestFleet } from '../support/stack.js';
import { runFleet } from '../support/cli.js';
import { waitFor } from '../support/wait.js';

const root = path.resolve(import.meta.dirname, '../..');

/** `fleet …` as a child process with this environment only. */
const fleet = (env: Record<string, string>, ...args: string[]) =>
  runFleet(args, { timeoutMs: 60_000, env: { PATH: process.env.PATH, HOME: process.env.HOME, FLEET_LOG_LEVEL: 'error', ...env } });
const ADMIN = 'test-admin-token-0123456789abcdef';
const user = (content: string) => [{ role: 'user' as const, content }];

interface Answer {
  status: number;
  headers: Headers;
  /** Parsed JSON, read loosely: the assertions check its shape. */
  body: any;
}

async function call(url: string, init: { method?: string; token?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, { method: init.method ?? (init.body === undefined ? 'GET' : 'POST'), headers, body: init.body === undefined ? undefined : JSON.stringify(init.body) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // kept as text
  }
  return { status: res.status, headers: res.headers, body };
}

for (const db of ['pglite', 'postgres'] as DbKind[]) {
  describe(`keys and budgets on ${db}`, () => {
    let f: TestFleet;
    let api: string;
    let strict: ApiServer;

    const admin = (route: string, init: { method?: string; body?: unknown; token?: string } = {}) =>
      call(`${api}${route}`, { token: ADMIN, ...init });
    const newKey = async (body: Record<string, unknown>): Promise<{ id: string; key: string }> => {
      const r = await admin('/admin/keys', { body: { account: 'acme', ...body } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return { id: r.body.id, key: r.body.key };
    };
    const chat = (token: string | undefined, body: Record<string, unknown>, o: { base?: string; headers?: Record<string, string> } = {}) =>
      call(`${o.base ?? api}/v1/chat/completions`, { token, body: { model: 'tiny', ...body }, headers: o.headers });
    const keyRow = (id: string) => f.stack.db.db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    const reservationsOf = (id: string) => f.stack.db.db.selectFrom('reservations').selectAll().where('key_id', '=', id).execute();
    const ledgerOf = (id: string) => f.stack.db.db.selectFrom('key_ledger').selectAll().where('key_id', '=', id).execute();
    const logsOf = (id: string) => f.stack.db.db.selectFrom('request_log').selectAll().where('principal', '=', id).execute();
    /** Settlement and the request log are written after the response: wait until nothing is held. */
    const settledOf = (id: string, requests: number) =>
      waitFor(async () => {
        const [res, logs] = await Promise.all([reservationsOf(id), logsOf(id)]);
        return res.every((r) => r.state !== 'held') && logs.length === requests ? { res, logs } : undefined;
      }, 20_000);

    before(async () => {
      // Two models take turns on the one host: no pool cool-down, so a turn is never refused.
      f = await startTestFleet({ db, env: { FLEET_ADMIN_TOKEN: ADMIN, FLEET_POOL_COOLDOWN_S: '0' } });
      api = f.stack.api!.url;
      // A model slow enough to disconnect from mid-generation.
      const file = path.join(f.tmpDir, 'small.gguf');
      await makeTinyModel({ file, seed: 5, size: 'small' });
      const { sha256, sizeBytes } = await sha256File(file);
      await registerModel(f.stack.db.db, { id: 'small', path: file, sha256, sizeBytes, contextLength: TINY_MODEL_SIZES.small.contextLength });
      // Cold-load tiny now, so the timing-sensitive tests below do not include a load.
      const warm = await chat('sk-no-key', { messages: user('warm up'), max_tokens: 2 });
      assert.equal(warm.status, 200);
      // A second API on the same fleet, with auth required (and a cache of its own, as another
      // API process would have).
      const c = f.stack.config;
      strict = await startApiServer({
        host: '127.0.0.1',
        port: 0,
        client: f.stack.temporal.client,
        channel: f.stack.channel,
        pools: c.pools,
        db: f.stack.db.db,
        catalog: new ModelCatalog(f.stack.db.db),
        log,
        requireAuth: true,
        adminToken: ADMIN,
        keys: new KeyResolver(f.stack.db.db),
        budgets: c.budgets,
        modelsDir: c.modelsDir,
        heartbeatIntervalMs: c.heartbeatIntervalMs,
        bodyLimitBytes: c.http.bodyLimitBytes,
        secrets: c.secrets,
        demotion: c.providers.demotion,
        ...(f.stack.temporal.codec ? { codec: f.stack.temporal.codec } : {}),
      });
    });
    after(async () => {
      await strict?.close();
      await f?.stop();
    });

    test('admin endpoints need the admin token; keys are shown once and listed without secrets', async () => {
      for (const token of [undefined, 'wrong-token-wrong-token', 'sk-no-key']) {
        for (const route of ['/admin/keys', '/admin/hosts']) {
          const r = await call(`${api}${route}`, { token });
          assert.equal(r.status, 401, `${route} with ${token}`);
          assert.equal(r.body.error.code, 'invalid_api_key');
          assert.equal(r.body.error.type, 'invalid_request_error');
        }
      }
      assert.equal((await admin('/admin/hosts')).status, 200);

      const bad = await admin('/admin/keys', { body: { account: 'acme', window_tokens: 10 } });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.param, 'window_seconds');

      const created = await admin('/admin/keys', { body: { account: 'acme', name: 'ci', balance_tokens: 1000, window_tokens: 500, window_seconds: 60 } });
      assert.equal(created.status, 201);
      assert.match(created.body.key, /^sk-fleet-[0-9a-f]{16}-/);
      assert.deepEqual(
        { account: created.body.account, name: created.body.name, balance: created.body.balance_tokens, window: [created.body.window_tokens, created.body.window_seconds], spent: created.body.spent },
        { account: 'acme', name: 'ci', balance: 1000, window: [500, 60], spent: 0 },
      );
      const secret = (created.body.key as string).split('-').slice(3).join('-');
      const { secret_hash } = await keyRow(created.body.id);
      assert.ok(!secret_hash.includes(secret), 'only a hash is stored');

      const listed = await admin('/admin/keys');
      assert.equal(listed.status, 200);
      const text = JSON.stringify(listed.body);
      assert.ok(text.includes(created.body.id));
      assert.ok(!text.includes(secret) && !text.includes(secret_hash), 'no secret or hash in the list');
      assert.ok(listed.body.data.every((k: Record<string, unknown>) => !('key' in k)));

      // An API key is no admin token, and the admin token is no API key.
      assert.equal((await call(`${api}/admin/keys`, { token: created.body.key })).status, 401);
      assert.equal((await chat(ADMIN, { messages: user('x'), max_tokens: 1 }, { base: strict.url })).status, 401);

      assert.equal((await admin('/admin/keys/0000000000000000', { method: 'DELETE' })).status, 404);
      const pasted = await admin(`/admin/keys/${encodeURIComponent(created.body.key)}`, { method: 'DELETE' });
      assert.equal(pasted.status, 404);
      assert.ok(!JSON.stringify(pasted.body).includes(secret), 'a pasted key is not echoed');
      const revoked = await admin(`/admin/keys/${created.body.id}`, { method: 'DELETE' });
      assert.equal(revoked.status, 200);
      assert.ok(revoked.body.revoked_at);
    });

    test('anonymous with a placeholder key is served; spoofed principal headers and fields change nothing', async () => {
      const victim = await newKey({ name: 'victim', balance_tokens: 100_000 });
      const spoof = { 'x-fleet-principal': victim.id, 'x-fleet-key-id': victim.id, 'x-fleet-account': 'acme' };
      const anon = await chat('sk-no-key', { messages: user('who am i'), max_tokens: 4, principal: victim.id, user: victim.id }, { headers: spoof });
      assert.equal(anon.status, 200);
      const logged = await waitFor(() => getRequestLog(f.stack.db.db, anon.body.id));
      assert.equal(logged!.principal, null);
      assert.equal((await keyRow(victim.id)).spent, 0);
      assert.deepEqual(await reservationsOf(victim.id), []);

      const own = await newKey({ name: 'own' });
      const keyed = await chat(own.key, { messages: user('who am i'), max_tokens: 4, principal: victim.id }, { headers: spoof });
      assert.equal(keyed.status, 200);
      const { logs } = (await settledOf(own.id, 1))!;
      assert.equal(logs[0]!.id, keyed.body.id);
      assert.equal((await keyRow(own.id)).spent, keyed.body.usage.total_tokens);
      assert.equal((await keyRow(victim.id)).spent, 0);
      // The workflow carries the resolved principal, not the spoofed one.
      const history = await f.stack.temporal.client.workflow.getHandle(keyed.body.id).fetchHistory();
      const sealed = history.events![0]!.workflowExecutionStartedEventAttributes!.input!.payloads![0]!;
      // Encrypted at rest: read through the stack's codec.
      const [payload] = f.stack.temporal.codec ? await f.stack.temporal.codec.decode([sealed]) : [sealed];
      const input = JSON.parse(Buffer.from(payload!.data!).toString('utf8')) as { principal: string; accountId: string };
      assert.deepEqual([input.principal, input.accountId], [own.id, 'acme']);
    });

    test('required auth: 401 invalid_api_key in the envelope for a missing, unknown or revoked key', async () => {
      const k = await newKey({ name: 'strict' });
      const other = await newKey({ name: 'unknown-secret' });
      const wrongSecret = other.key.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'));
      for (const [token, why] of [
        [undefined, 'missing'],
        ['sk-no-key', 'placeholder'],
        ['sk-fleet-0000000000000000-' + 'A'.repeat(43), 'unknown id'],
        [wrongSecret, 'wrong secret'],
      ] as const) {
        const r = await chat(token, { messages: user('x'), max_tokens: 1 }, { base: strict.url });
        assert.equal(r.status, 401, why);
        assert.deepEqual(Object.keys(r.body.error).sort(), ['code', 'message', 'param', 'type']);
        assert.equal(r.body.error.code, 'invalid_api_key');
      }
      assert.equal((await call(`${strict.url}/v1/models`)).status, 401);
      const ok = await chat(k.key, { messages: user('x'), max_tokens: 1 }, { base: strict.url });
      assert.equal(ok.status, 200);
      // Anthropic's clients send the key as x-api-key; a refusal comes in Anthropic's envelope.
      const messages = (headers: Record<string, string>) =>
        call(`${strict.url}/v1/messages`, { headers: { 'anthropic-version': '2023-06-01', ...headers }, body: { model: 'tiny', max_tokens: 1, messages: user('x') } });
      assert.equal((await messages({ 'x-api-key': k.key })).status, 200);
      const refused = await messages({ 'x-api-key': wrongSecret });
      assert.equal(refused.status, 401);
      assert.deepEqual(refused.body, { type: 'error', error: { type: 'authentication_error', message: refused.body.error.message } });
      // Revoked through the other API: this one's cache still holds the key, but the
      // reservation re-reads it under its lock, so the revocation holds at once.
      assert.equal((await admin(`/admin/keys/${k.id}`, { method: 'DELETE' })).status, 200);
      const after = await chat(k.key, { messages: user('x'), max_tokens: 1 }, { base: strict.url });
      assert.equal(after.status, 401);
      assert.equal(after.body.error.code, 'invalid_api_key');
      // Anonymous-allowed API: the revoked key is ignored, like any unrecognized key.
      const lax = await chat(k.key, { messages: user('x'), max_tokens: 1 });
      assert.equal(lax.status, 200);
      const logged = await waitFor(() => getRequestLog(f.stack.db.db, lax.body.id));
      assert.equal(logged!.principal, null);
    });

    test('GET /v1/usage shows spent, reserved, remaining and the window', async () => {
      const anon = await call(`${api}/v1/usage`, { token: 'sk-no-key' });
      assert.equal(anon.status, 401);
      assert.equal(anon.body.error.code, 'invalid_api_key');
      const k = await newKey({ balance_tokens: 100_000, window_tokens: 50_000, window_seconds: 3600 });
      const before = await call(`${api}/v1/usage`, { token: k.key });
      assert.deepEqual(before.body, {
        object: 'usage',
        key_id: k.id,
        account: 'acme',
        spent: 0,
        reserved: 0,
        remaining: 100_000,
        window: { limit: 50_000, seconds: 3600, spent: 0, reset_at: null },
      });
      const r = await chat(k.key, { messages: user('meter me'), max_tokens: 6 });
      assert.equal(r.status, 200);
      // The window as OpenAI's rate-limit headers show it, after this request's hold; the request id is the workflow's.
      assert.equal(r.headers.get('x-ratelimit-limit-tokens'), '50000');
      const remaining = Number(r.headers.get('x-ratelimit-remaining-tokens'));
      assert.ok(remaining > 0 && remaining < 50_000, String(remaining));
      assert.equal(r.headers.get('x-ratelimit-reset-tokens'), '3600s');
      assert.equal(r.headers.get('x-request-id'), r.body.id);
      await settledOf(k.id, 1);
      const u = (await call(`${api}/v1/usage`, { token: k.key })).body;
      const total = r.body.usage.total_tokens;
      assert.equal(u.spent, total);
      assert.equal(u.reserved, 0);
      assert.equal(u.remaining, 100_000 - total);
      assert.equal(u.window.spent, total);
      // When the newest spend leaves the window: up to one bucket (36 s of 3600) later than exact.
      const reset = Date.parse(u.window.reset_at);
      assert.ok(reset > Date.now() + 3500_000 && reset <= Date.now() + 3636_000, u.window.reset_at);
      const buckets = await f.stack.db.db.selectFrom('key_window_buckets').selectAll().where('key_id', '=', k.id).execute();
      assert.equal(buckets.reduce((s, b) => s + b.tokens, 0), total);
      const [ledger] = await ledgerOf(k.id);
      assert.deepEqual([ledger!.prompt_tokens, ledger!.completion_tokens], [r.body.usage.prompt_tokens, r.body.usage.completion_tokens]);
      const metrics = await (await fetch(`${api}/metrics`)).text();
      assert.match(metrics, new RegExp(`fleet_key_tokens_total\\{account="acme",key="${k.id}",kind="completion"\\} ${r.body.usage.completion_tokens}`));
    });

    test('30 concurrent requests on a capped key: the served fit the cap, the rest are 429 before dispatch', async (t) => {
      const content = 'concurrent request';
      const maxTokens = 8;
      const bound = reservationUpperBound({
        contextLength: TINY_MODEL_SIZES.tiny.contextLength,
        promptBound: promptUpperBound({ kind: 'chat', messages: user(content) }),
        maxTokens,
      });
      const cap = Math.floor(4.5 * bound); // at most 4 holds fit at once
      const k = await newKey({ name: 'capped', balance_tokens: cap });
      const answers = await Promise.all(Array.from({ length: 30 }, () => chat(k.key, { messages: user(content), max_tokens: maxTokens, temperature: 0 })));
      const served = answers.filter((a) => a.status === 200);
      const refused = answers.filter((a) => a.status !== 200);
      assert.ok(served.length >= 4, `served ${served.length}`);
      assert.ok(refused.length >= 1, 'some were refused');
      for (const r of refused) {
        assert.equal(r.status, 429);
        assert.equal(r.body.error.code, 'insufficient_quota');
        assert.equal(r.body.error.type, 'insufficient_quota');
        assert.equal(r.headers.get('retry-after'), null);
      }
      const usedByServed = served.reduce((s, a) => s + (a.body.usage.total_tokens as number), 0);
      assert.ok(usedByServed <= cap, `${usedByServed} ≤ ${cap}`);
      t.diagnostic(`cap ${cap} (reservation ${bound} each): ${served.length} served using ${usedByServed}, ${refused.length} refused`);

      const { res, logs } = (await settledOf(k.id, 30))!;
      assert.equal((await keyRow(k.id)).spent, usedByServed);
      assert.ok(usedByServed <= cap);
      assert.equal(res.filter((r) => r.state === 'held').length, 0, 'no reservation left held');
      assert.equal(res.filter((r) => r.state === 'settled').length, served.length);
      assert.equal((await ledgerOf(k.id)).reduce((s, l) => s + l.tokens, 0), usedByServed);
      // The host saw only the served ones; the refused never started a workflow.
      assert.equal(logs.filter((l) => l.host_id !== null).length, served.length);
      const refusedLogs = logs.filter((l) => l.host_id === null);
      assert.equal(refusedLogs.length, refused.length);
      assert.ok(refusedLogs.every((l) => l.error_code === 'insufficient_quota' && l.completion_tokens === 0));
      for (const l of refusedLogs.slice(0, 3)) {
        await assert.rejects(f.stack.temporal.client.workflow.getHandle(l.id).describe(), WorkflowNotFoundError);
      }
    });

    test('a full rolling window answers 429 rate_limit_exceeded with Retry-After; a request larger than the window without', async () => {
      const content = 'window request';
      const bound = reservationUpperBound({
        contextLength: TINY_MODEL_SIZES.tiny.contextLength,
        promptBound: promptUpperBound({ kind: 'chat', messages: user(content) }),
        maxTokens: 8,
      });
      const limit = 3 * bound;
      const k = await newKey({ window_tokens: limit, window_seconds: 600 });
      const answers = await Promise.all(Array.from({ length: 10 }, () => chat(k.key, { messages: user(content), max_tokens: 8 })));
      const refused = answers.filter((a) => a.status !== 200);
      assert.ok(refused.length >= 1);
      for (const r of refused) {
        assert.equal(r.status, 429);
        assert.equal(r.body.error.code, 'rate_limit_exceeded');
        const retry = Number(r.headers.get('retry-after'));
        assert.ok(retry >= 1 && retry <= 600, `Retry-After ${retry}`);
      }
      await settledOf(k.id, 10);
      const u = (await call(`${api}/v1/usage`, { token: k.key })).body;
      assert.ok(u.window.spent <= limit);
      assert.equal(u.remaining, null);
      const huge = await chat(k.key, { messages: user(content) }); // no max_tokens: the whole context
      assert.equal(huge.status, 429);
      assert.equal(huge.body.error.code, 'rate_limit_exceeded');
      assert.equal(huge.headers.get('retry-after'), null);
    });

    test('a client that disconnects mid-stream is settled to the tokens generated', async (t) => {
      assert.equal((await chat('sk-no-key', { model: 'small', messages: user('load'), max_tokens: 1 })).status, 200);
      const k = await newKey({ balance_tokens: 100_000 });
      const maxTokens = 1800;
      const ac = new AbortController();
      const res = await fetch(`${api}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${k.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'small', messages: user('talk for a long time'), max_tokens: maxTokens, stream: true }),
        signal: ac.signal,
      });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      const first = new TextDecoder().decode((await reader.read()).value);
      const id = /"id":"(chatcmpl-[^"]+)"/.exec(first)![1]!;
      ac.abort(); // after the first chunk
      await reader.cancel().catch(() => undefined);

      const { res: reservations, logs } = (await settledOf(k.id, 1))!;
      const [r] = reservations;
      const [logged] = logs;
      assert.equal(r!.request_id, id);
      assert.equal(r!.state, 'settled');
      assert.equal(logged!.status, 'cancelled');
      assert.ok(r!.completion_tokens > 0 && r!.completion_tokens < maxTokens, `settled ${r!.completion_tokens} completion tokens`);
      assert.ok(r!.prompt_tokens > 0);
      t.diagnostic(`settled ${r!.prompt_tokens} prompt + ${r!.completion_tokens} completion tokens of max_tokens ${maxTokens}`);
      assert.deepEqual([logged!.prompt_tokens, logged!.completion_tokens], [r!.prompt_tokens, r!.completion_tokens]);
      const [ledger] = await ledgerOf(k.id);
      assert.equal(ledger!.tokens, r!.prompt_tokens + r!.completion_tokens);
      assert.equal((await keyRow(k.id)).spent, ledger!.tokens);
      // The workflow closed only after the host's cancellation (and its settlement) completed.
      const events = (await f.stack.temporal.client.workflow.getHandle(id).fetchHistory()).events!;
      const canceledActivity = events.findIndex((e) => e.activityTaskCanceledEventAttributes);
      const canceledWorkflow = events.findIndex((e) => e.workflowExecutionCanceledEventAttributes);
      assert.ok(canceledActivity >= 0 && canceledActivity < canceledWorkflow, `activity cancelled at ${canceledActivity}, workflow at ${canceledWorkflow}`);
    });

    test('a held reservation past its expiry is released by the scheduled sweep (which also drops stale window buckets)', async () => {
      const k = await newKey({ balance_tokens: 1000, window_tokens: 10_000, window_seconds: 60 });
      const stale = { key_id: k.id, bucket_start: new Date(Date.now() - 86_400_000), tokens: 5 };
      await f.stack.db.db.insertInto('key_window_buckets').values(stale).execute();
      // What a crash leaves: a hold nobody will settle (here already past its expiry).
      assert.equal((await reserveTokens(f.stack.db.db, { requestId: `crash-${k.id}`, keyId: k.id, amount: 950, ttlSeconds: -60 })).kind, 'reserved');
      assert.equal((await chat(k.key, { messages: user('blocked'), max_tokens: 8 })).body.error.code, 'insufficient_quota');
      await triggerSweep(f);
      const released = await waitFor(async () => ((await reservationsOf(k.id)).find((r) => r.request_id === `crash-${k.id}`)?.state === 'released' ? true : undefined), 30_000);
      assert.ok(released, 'released by the sweep');
      assert.deepEqual(await f.stack.db.db.selectFrom('key_window_buckets').selectAll().where('key_id', '=', k.id).execute(), []);
      assert.equal((await chat(k.key, { messages: user('free again'), max_tokens: 8 })).status, 200);
    });

    if (db === 'pglite') {
      test('fleet keys create | list | revoke talk to the admin API with the admin token', async () => {
        const withToken = { FLEET_ADMIN_TOKEN: ADMIN };
        const created = await fleet(withToken, 'keys', 'create', '--account', 'cli-acct', '--name', 'from-cli', '--balance', '5000', '--window-tokens', '900', '--window-seconds', '60', '--url', api);
        assert.equal(created.code, 0, created.stderr);
        const key = /^(sk-fleet-\S+)$/m.exec(created.stdout)?.[1];
        assert.ok(key, created.stdout);
        assert.match(created.stdout, /only time it is shown/);
        const id = /created key ([0-9a-f]{16})/.exec(created.stdout)![1]!;
        assert.equal((await chat(key, { messages: user('cli key'), max_tokens: 2 })).status, 200);

        const listed = await fleet(withToken, 'keys', 'list', '--account', 'cli-acct', '--url', api);
        assert.equal(listed.code, 0, listed.stderr);
        assert.match(listed.stdout, new RegExp(`${id}\\s+cli-acct\\s+from-cli\\s+balance 5000, 900/60s\\s+\\d+\\s+active`));
        assert.ok(!listed.stdout.includes(key.split('-').slice(3).join('-')), 'no secret listed');

        const denied = await fleet({}, 'keys', 'list', '--url', api);
        assert.equal(denied.code, 1);
        assert.match(denied.stderr, /HTTP 401: .*admin token/);

        const revoked = await fleet(withToken, 'keys', 'revoke', id, '--url', api);
        assert.equal(revoked.code, 0, revoked.stderr);
        assert.match((await fleet(withToken, 'keys', 'list', '--url', api)).stdout, new RegExp(`${id}.*revoked`));
        assert.equal((await chat(key, { messages: user('revoked'), max_tokens: 2 }, { base: strict.url })).status, 401);
      });
    }

    if (db === 'postgres') {
      test('a `fleet api` process SIGKILLed between reserve and settle: its hold is released by the sweep', async () => {
        const k = await newKey({ balance_tokens: 100_000 });
        const port = await freePort();
        const child = spawn(process.execPath, [path.join(root, 'bin/fleet.js'), 'api'], {
          env: {
            PATH: process.env.PATH,
            HOME: process.env.HOME,
            DATABASE_URL: f.stack.config.databaseUrl,
            TEMPORAL_ADDRESS: testEnv.temporalAddress,
            FLEET_PAYLOAD_KEYS: process.env.FLEET_PAYLOAD_KEYS,
            FLEET_HTTP_PORT: String(port),
            FLEET_DATA_DIR: path.join(f.tmpDir, 'child-api'),
            FLEET_LOG_LEVEL: 'error',
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        try {
          const child_api = `http://127.0.0.1:${port}`;
          const up = await waitFor(() => fetch(`${child_api}/health`).then((r) => (r.ok ? true : undefined), () => undefined), 60_000);
          assert.ok(up, `the child API came up:\n${out}`);
          // Held on a gate until the child is gone: the request outlives its gateway by construction.
          const gate = `outlive-${k.id}`.toLowerCase().replace(/[^a-z0-9-]/g, '-');
          const pending = chat(k.key, { model: 'small', messages: user(f.gated(gate, 'outlive my gateway')), max_tokens: 16 }, { base: child_api }).catch((e: Error) => e);
          const held = await waitFor(async () => (await reservationsOf(k.id)).find((r) => r.state === 'held'), 20_000);
          assert.ok(held, 'the child reserved');
          // Kill it once the request runs (a kill before the start strands the hold just the same).
          const handle = f.stack.temporal.client.workflow.getHandle(held.request_id);
          assert.ok(await waitFor(() => handle.describe().then(() => true, () => undefined), 20_000), 'the workflow started');
          child.kill('SIGKILL');
          await exited;
          assert.ok((await pending) instanceof Error, 'the client lost its connection');
          await f.release(gate);
          // The request's workflow runs on (nobody cancelled it) and completes; nobody settles.
          await handle.result();
          assert.equal((await reservationsOf(k.id))[0]!.state, 'held');
          // Let the TTL pass (900 s) without waiting for it.
          await f.stack.db.db.updateTable('reservations').set({ expires_at: new Date(Date.now() - 1000) }).where('request_id', '=', held.request_id).execute();
          await triggerSweep(f);
          const released = await waitFor(async () => ((await reservationsOf(k.id))[0]!.state === 'released' ? true : undefined), 30_000);
          assert.ok(released, 'released by the sweep');
          const u = (await call(`${api}/v1/usage`, { token: k.key })).body;
          assert.deepEqual([u.reserved, u.remaining], [0, 100_000 - u.spent]);
        } finally {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
          await exited;
        }
      });
    }
  });
}

/** Runs the real sweep schedule now (as its next tick would) and waits for that run to finish. */
async function triggerSweep(f: TestFleet): Promise<void> {
  const client = f.stack.temporal.client;
  const schedule = client.schedule.getHandle(SWEEP_SCHEDULE_ID);
  const before = new Set((await schedule.describe()).info.recentActions.map((a) => a.action.workflow.firstExecutionRunId));
  await schedule.trigger(ScheduleOverlapPolicy.ALLOW_ALL);
  const run = await waitFor(async () => (await schedule.describe()).info.recentActions.map((a) => a.action.workflow).find((w) => !before.has(w.firstExecutionRunId)), 20_000);
  assert.ok(run, 'the schedule started a sweep');
  const result = (await client.workflow.getHandle(run.workflowId, run.firstExecutionRunId).result()) as { released: number };
  assert.ok(result.released >= 0);
}
