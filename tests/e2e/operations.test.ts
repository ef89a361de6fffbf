/**
 * Operating the fleet, on the real stack (Temporal, PGlite, node-llama-cpp, one host): the
 * operator's load endpoint and its errors, `/admin/hosts` slots and per-placement figures,
 * Prometheus `/metrics` after real traffic, the bare metrics server of split workers, and the
 * `fleet status` / `fleet models load` commands run as child processes against the API.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { serveMetrics } from '../../src/metrics.js';
import { runFleet } from '../support/cli.js';
import { startTestFleet, type TestFleet } from '../support/stack.js';
import { waitFor } from '../support/wait.js';


const fleet = (...args: string[]) => runFleet(args);

/** `promtool check metrics` on an exposition (promtool is on PATH: .ci/run installs it). */
function promtoolCheck(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.on('data', (d: Buffer) => (output += d.toString()));
    p.stderr.on('data', (d: Buffer) => (output += d.toString()));
    p.on('error', (err) => reject(new Error(`promtool: ${err.message} (.ci/run installs it: Debian package prometheus)`)));
    p.on('close', (code) => resolve({ code, output }));
    p.stdin.end(text);
  });
}

/** The value of the first sample of `name` whose labels include `labels` (Prometheus text format). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

interface HostsAnswer {
  data: Array<{
    id: string;
    healthy: boolean;
    slots: { used: number; total: number | null };
    placements: Array<{ model: string; state: string; progress: number; running: number; queued: number }>;
  }>;
}

describe('operations', () => {
  let f: TestFleet;
  let api: string;
  let host: string;
  before(async () => {
    f = await startTestFleet({ db: 'pglite' });
    api = f.stack.api!.url;
    host = f.hostIds[0]!;
  });
  after(async () => {
    await f?.stop();
  });

  test('POST /admin/hosts/:host/models/:model/load loads the model before any request', async () => {
    const r = await fetch(`${api}/admin/hosts/${host}/models/tiny/load`, { method: 'POST' });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { host, model: 'tiny', evicted: [] });

    const hosts = (await (await fetch(`${api}/admin/hosts`)).json()) as HostsAnswer;
    const h = hosts.data.find((x) => x.id === host)!;
    assert.deepEqual(h.slots, { used: 1, total: 1 });
    const p = h.placements.find((x) => x.model === 'tiny')!;
    assert.equal(p.state, 'loaded');
    assert.equal(p.progress, 1);
    assert.equal(p.running, 0);
    assert.equal(p.queued, 0);

    // The same workflow a request's cold load is: same id, so the two would share one load.
    const desc = await f.stack.temporal.client.workflow.getHandle(`coldload:${host}:tiny`).describe();
    assert.equal(desc.status.name, 'COMPLETED');
    assert.equal(desc.typedSearchAttributes.get({ name: 'FleetRequestKind', type: 'KEYWORD' } as never), 'coldLoad');
  });

  test('load errors come in the OpenAI envelope', async () => {
    const cases: Array<{ path: string; status: number; code: string | null; param: string }> = [
      { path: `/admin/hosts/no-such-host/models/tiny/load`, status: 404, code: 'host_not_found', param: 'host' },
      { path: `/admin/hosts/${host}/models/gpt-17/load`, status: 404, code: 'model_not_found', param: 'model' },
      { path: `/admin/hosts/-bad/models/tiny/load`, status: 400, code: null, param: 'host' },
      { path: `/admin/hosts/${host}/models/bad%20model/load`, status: 400, code: null, param: 'model' },
    ];
    for (const c of cases) {
      const r = await fetch(api + c.path, { method: 'POST' });
      assert.equal(r.status, c.status, c.path);
      const body = (await r.json()) as { error: { message: string; type: string; param: string | null; code: string | null } };
      assert.equal(body.error.code, c.code, c.path);
      assert.equal(body.error.param, c.param, c.path);
      assert.equal(body.error.type, 'invalid_request_error', c.path);
      assert.ok(body.error.message.length > 0);
    }
  });

  test('/metrics answers with the fleet metrics after real traffic', async () => {
    await f.openai.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'hello' }], max_tokens: 8 });
    const stream = await f.openai.chat.completions.create({
      model: 'tiny',
      messages: [{ role: 'user', content: 'stream please' }],
      max_tokens: 8,
      stream: true,
    });
    for await (const _chunk of stream) {
      // drain
    }

    // Refused before dispatch: counted by status and code.
    const refused = await fetch(`${api}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }) });
    assert.equal(refused.status, 404);
    const bad = await fetch(`${api}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":' });
    assert.equal(bad.status, 400);

    const r = await fetch(`${api}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4; charset=utf-8$/);
    const text = await r.text();
    for (const name of [
      'fleet_request_duration_seconds',
      'fleet_time_to_first_token_seconds',
      'fleet_tokens_per_second',
      'fleet_running_requests',
      'fleet_queued_requests',
      'fleet_host_healthy',
      'fleet_admission_rejections_total',
      'fleet_cold_loads_total',
      'fleet_cold_load_duration_seconds',
      'fleet_failovers_total',
      'fleet_tokens_total',
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
    }
    // Default Node metrics, under the prefix (prom-client prepends it to its own names).
    assert.match(text, /^fleet_process_cpu_user_seconds_total /m);
    assert.match(text, /^fleet_nodejs_eventloop_lag_seconds /m);

    const chat = { endpoint: 'chat', status: '200' };
    assert.ok(sample(text, 'fleet_request_duration_seconds_count', { ...chat, stream: 'false' })! >= 1);
    assert.ok(sample(text, 'fleet_request_duration_seconds_count', { ...chat, stream: 'true' })! >= 1);
    assert.ok(sample(text, 'fleet_time_to_first_token_seconds_count', { endpoint: 'chat', model: 'tiny' })! >= 1);
    assert.ok(sample(text, 'fleet_request_duration_seconds_count', { ...chat, model: 'tiny', stream: 'false' })! >= 1);
    assert.ok(sample(text, 'fleet_request_errors_total', { endpoint: 'chat', status: '404', code: 'model_not_found' })! >= 1);
    assert.ok(sample(text, 'fleet_request_errors_total', { endpoint: 'chat', status: '400', code: 'invalid_json' })! >= 1);
    // The phases a GPU host measures, per model: queue, prefill, inter-token latency, lengths.
    for (const name of ['fleet_queue_time_seconds_count', 'fleet_prefill_time_seconds_count', 'fleet_request_prompt_tokens_count', 'fleet_request_completion_tokens_count']) {
      assert.ok(sample(text, name, { model: 'tiny' })! >= 2, name);
    }
    assert.ok(sample(text, 'fleet_time_per_output_token_seconds_count', { model: 'tiny' })! >= 1);
    // KV cache usage from the host's heartbeats: the sequences keep their last prompt and answer.
    const kv = await waitFor(async () => {
      const v = sample(await (await fetch(`${api}/metrics`)).text(), 'fleet_kv_cache_usage_ratio', { host, model: 'tiny' });
      return v !== undefined && v > 0 ? v : undefined;
    });
    assert.ok(kv !== undefined && kv > 0 && kv <= 1, `kv usage ${kv}`);
    assert.ok(sample(text, 'fleet_tokens_total', { model: 'tiny', kind: 'completion' })! > 0);
    assert.ok(sample(text, 'fleet_tokens_total', { model: 'tiny', kind: 'prompt' })! > 0);
    assert.ok(sample(text, 'fleet_tokens_per_second_count', { model: 'tiny' })! >= 2);
    // Loaded once, by the operator; the requests found it resident.
    assert.equal(sample(text, 'fleet_cold_loads_total', { model: 'tiny', outcome: 'ok' }), 1);
    assert.equal(sample(text, 'fleet_cold_loads_total', { model: 'tiny', outcome: 'failed' }), undefined);
    assert.equal(sample(text, 'fleet_cold_load_duration_seconds_count', { model: 'tiny' }), 1);
    assert.equal(sample(text, 'fleet_host_healthy', { host }), 1);
    assert.equal(sample(text, 'fleet_running_requests', { host, model: 'tiny' }), 0);
    assert.equal(sample(text, 'fleet_queued_requests', { host, model: 'tiny' }), 0);
    // Names, types and suffixes as Prometheus's own linter wants them (.ci/run installs it).
    const lint = await promtoolCheck(text);
    assert.equal(lint.code, 0, `promtool check metrics:\n${lint.output}`);
  });

  test('/metrics needs no API key', async () => {
    // Mounted before auth: a scraper has no key even when FLEET_REQUIRE_AUTH=true.
    const r = await fetch(`${api}/metrics`, { headers: { authorization: 'Bearer sk-unknown' } });
    assert.equal(r.status, 200);
  });

  test('serveMetrics: a bare /metrics server for workers without the API', async () => {
    const m = await serveMetrics({ port: 0, host: '127.0.0.1' });
    try {
      const r = await fetch(`${m.url}/metrics`);
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      assert.match(await r.text(), /^# TYPE fleet_cold_loads_total counter$/m);
      assert.equal((await fetch(`${m.url}/other`)).status, 404);
    } finally {
      await m.close();
    }
    // With FLEET_METRICS_TOKEN, only a scraper that sends it reads the topology.
    const token = 'metrics-token-0123456789';
    const locked = await serveMetrics({ port: 0, host: '127.0.0.1', token });
    try {
      const none = await fetch(`${locked.url}/metrics`);
      assert.equal(none.status, 401);
      assert.match(await none.text(), /FLEET_METRICS_TOKEN/);
      assert.equal((await fetch(`${locked.url}/metrics`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status, 401);
      const ok = await fetch(`${locked.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(ok.status, 200);
      assert.match(await ok.text(), /^# TYPE fleet_cold_loads_total counter$/m);
    } finally {
      await locked.close();
    }
  });

  test('`fleet status` prints the host, its health, slots and the model', async () => {
    const { code, stdout, stderr } = await fleet('status', '--url', api);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^HOST\s+HEALTH\s+SLOTS\s+MODEL\s+STATE/m);
    assert.match(stdout, new RegExp(`^${host}\\s+healthy\\s+1/1\\s+tiny\\s+loaded\\s+0/0`, 'm'));
  });

  test('`fleet models load` loads through the API and reports errors', async () => {
    const ok = await fleet('models', 'load', 'tiny', '--host', host, '--url', api);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`^loaded tiny on ${host} in [\\d.]+s\\n$`));
    const missing = await fleet('models', 'load', 'tiny', '--host', 'no-such-host', '--url', api);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /HTTP 404: .*host_not_found/);
  });

  test('`fleet pools`, `fleet pools move`, `fleet models alias` and `fleet pools plan` through the API', async () => {
    const list = await fleet('pools', '--url', api);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^ALIAS\s+DESIRED\s+PREVIOUS\s+MIN_WARM\s+HOSTS\s+LOADED\s+BUSY\s+QUEUED\s+CAPACITY_LEFT\s+MEMBERS$/m);
    assert.match(list.stdout, new RegExp(`^tiny\\s+tiny\\s+-\\s+0\\s+1/1\\s+\\d\\s+0\\s+0\\s+\\d+\\s+${host}$`, 'm'));
    const move = await fleet('pools', 'move', host, 'tiny', '--url', api);
    assert.equal(move.code, 0, move.stderr);
    assert.match(move.stdout, new RegExp(`^moved ${host} from tiny to tiny in [\\d.]+s: loaded tiny \\(workflow pool:${host}\\)$`, 'm'));
    const unknown = await fleet('pools', 'move', host, 'no-such-alias', '--url', api);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /HTTP 404: .*model_not_found/);
    const alias = await fleet('models', 'alias', 'tiny', '--min-warm', '1', '--url', api);
    assert.equal(alias.code, 0, alias.stderr);
    assert.equal(alias.stdout, 'tiny → tiny, min_warm 1\n');
    const badBuild = await fleet('models', 'alias', 'tiny', '--desired', 'nope', '--url', api);
    assert.equal(badBuild.code, 1);
    assert.match(badBuild.stderr, /HTTP 404: .*model_not_found/);
    const plan = await fleet('pools', 'plan', '--url', api);
    assert.equal(plan.code, 0, plan.stderr);
    assert.equal(plan.stdout, 'nothing to do: every pool is warm\n');
    const metrics = await (await fetch(`${api}/metrics`)).text();
    assert.match(metrics, /^fleet_pool_hosts\{pool="tiny"\} 1$/m);
    assert.match(metrics, /^fleet_pool_min_warm\{pool="tiny"\} 1$/m);
  });

  test('`fleet status` against an unreachable API exits 2 with a clear message', async () => {
    const { code, stderr } = await fleet('status', '--url', 'http://127.0.0.1:1');
    assert.equal(code, 2);
    assert.match(stderr, /^fleet: cannot reach the API at http:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\)$/m);
  });
});
