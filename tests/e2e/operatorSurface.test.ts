/**
 * What an operator and a client meet first, on the real stack (Temporal, PGlite,
 * node-llama-cpp): a 503 + Retry-After before any host registers; an over-long prompt refused
 * at the edge without a cold load; a principal's cap surfacing as a 429 that says so; model
 * management (list, register, unload, delete and their refusals) through the `fleet` CLI as a
 * child process, with `--json` parsed; `--version`, usage errors and a piped `--watch`; and a
 * verifiable model pinned and served with no manual load.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WorkflowNotFoundError } from '@temporalio/client';
import { listPlacements } from '../../src/db/placementsRepo.js';
import { readPinSet } from '../../src/db/pinSetsRepo.js';
import { setAlias } from '../../src/db/aliasesRepo.js';
import { makeTinyModel } from '../../src/model/tinyModel.js';
import { runFleet } from '../support/cli.js';
import { startTestFleet, type TestFleet } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

const fleet = (...args: string[]) => runFleet(args);
const METRICS_TOKEN = 'scrape-token-0123456789';
const user = (content: string) => [{ role: 'user' as const, content }];

async function post(url: string, body: object, token?: string): Promise<{ status: number; headers: Headers; body: { error?: { message: string; type: string; code: string | null; param: string | null } } & Record<string, unknown> }> {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: r.status, headers: r.headers, body: (await r.json()) as never };
}

describe('before any host registers', () => {
  let f: TestFleet;
  before(async () => {
    f = await startTestFleet({ db: 'pglite', hosts: 0 });
  });
  after(async () => {
    await f?.stop();
  });

  test('a request is a transient 503 service_unavailable + Retry-After, not a 404', async () => {
    const r = await post(`${f.baseURL}/chat/completions`, { model: 'tiny', messages: user('hi'), max_tokens: 4 });
    assert.equal(r.status, 503);
    assert.equal(r.body.error?.code, 'service_unavailable');
    assert.equal(r.body.error?.type, 'server_error');
    assert.match(r.body.error?.message ?? '', /^Model unavailable: no GPU host has registered yet/);
    assert.equal(r.headers.get('retry-after'), '5');
    // A model no host could ever serve stays a 404.
    const unknown = await post(`${f.baseURL}/chat/completions`, { model: 'nope', messages: user('hi') });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error?.code, 'model_not_found');
  });
});

describe('operator surface, one host', () => {
  let f: TestFleet;
  let api: string;
  let host: string;
  before(async () => {
    // A cap of one request per API key per host (anonymous requests are exempt).
    f = await startTestFleet({ db: 'pglite', env: { FLEET_PER_PRINCIPAL_CAP: '1', FLEET_METRICS_TOKEN: METRICS_TOKEN } });
    api = f.stack.api!.url;
    host = f.hostIds[0]!;
  });
  after(async () => {
    await f?.stop();
  });

  test('an over-long prompt is refused at the edge and never starts a coldLoad', async () => {
    const r = await post(`${f.baseURL}/chat/completions`, { model: 'tiny', messages: user('word '.repeat(1000)), max_tokens: 8 });
    assert.equal(r.status, 400);
    assert.equal(r.body.error?.code, 'context_length_exceeded');
    assert.match(r.body.error?.message ?? '', /maximum context length is 512 tokens.*estimated at about 1250 tokens/);
    // Nothing was loaded: no coldLoad workflow, no placement.
    await assert.rejects(f.stack.temporal.client.workflow.getHandle(`coldload:${host}:tiny`).describe(), WorkflowNotFoundError);
    assert.deepEqual(await listPlacements(f.stack.db.db, { modelId: 'tiny' }), []);
  });

  test('/v1/models entries carry the context length and the default output limit', async () => {
    const list = await f.openai.models.list();
    const tiny = list.data.find((m) => m.id === 'tiny') as unknown as { context_length: number; max_output_tokens: number };
    assert.equal(tiny.context_length, 512);
    assert.equal(tiny.max_output_tokens, 511);
  });

  test("a key's per-host cap reached on every host is a 429 rate_limit_error that says so", async () => {
    const created = await post(`${api}/admin/keys`, { account: 'capped' });
    assert.equal(created.status, 201);
    const key = created.body.key as string;
    const held = post(`${f.baseURL}/chat/completions`, { model: 'tiny', messages: user(f.gated('cap')), max_tokens: 2 }, key);
    try {
      assert.ok(await waitFor(async () => (await hostLoad(api, host)).running === 1 || undefined, 60_000), 'the gated request holds the slot');
      const second = await post(`${f.baseURL}/chat/completions`, { model: 'tiny', messages: user('me too'), max_tokens: 2 }, key);
      assert.equal(second.status, 429);
      assert.equal(second.body.error?.type, 'rate_limit_error');
      assert.equal(second.body.error?.code, 'rate_limit_exceeded');
      assert.match(second.body.error?.message ?? '', /Too many concurrent requests for tiny from this API key/);
      assert.ok(Number(second.headers.get('retry-after')) >= 1);
    } finally {
      await f.release('cap'); // a failed check must not leave the host held for the next test
    }
    assert.equal((await held).status, 200);
  });

  test('`fleet models unload` is refused while a request runs, then unloads', async () => {
    const held = f.openai.chat.completions.create({ model: 'tiny', messages: user(f.gated('unload')), max_tokens: 2 });
    try {
      assert.ok(await waitFor(async () => (await hostLoad(api, host)).running === 1 || undefined, 60_000));
      const busy = await fleet('models', 'unload', 'tiny', '--host', host, '--url', api);
      assert.equal(busy.code, 1);
      assert.match(busy.stderr, /HTTP 409: 'tiny' is busy on host .* \(model_busy\)/);
      assert.equal((await listPlacements(f.stack.db.db, { modelId: 'tiny' }))[0]?.state, 'loaded');
    } finally {
      await f.release('unload');
    }
    await held;
    assert.ok(await waitFor(async () => (await hostLoad(api, host)).running === 0 || undefined, 60_000));
    const ok = await fleet('models', 'unload', 'tiny', '--host', host, '--url', api);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, `unloaded tiny from ${host}\n`);
    assert.equal((await listPlacements(f.stack.db.db, { modelId: 'tiny' }))[0]?.state, 'unloaded');
    const desc = await f.stack.temporal.client.workflow.getHandle(`unload:${host}:tiny`).describe();
    assert.equal(desc.typedSearchAttributes.get({ name: 'FleetRequestKind', type: 'KEYWORD' } as never), 'modelUnload');
    const again = await fleet('models', 'unload', 'tiny', '--host', host, '--url', api);
    assert.equal(again.stdout, `tiny was not loaded on ${host}\n`);
    // The next request loads it again, on demand.
    const r = await f.openai.chat.completions.create({ model: 'tiny', messages: user('back?'), max_tokens: 2 });
    assert.ok(r.id);
  });

  test('`fleet models register | list --json | delete`, and delete refused while aliased or loaded', async () => {
    const file = path.join(f.tmpDir, 'second.gguf');
    await makeTinyModel({ file, seed: 8, size: 'tiny' });
    const reg = await fleet('models', 'register', 'second', file, '--url', api);
    assert.equal(reg.code, 0, reg.stderr);
    assert.match(reg.stdout, /^registered second: context 512, \d+ bytes, sha256 [0-9a-f]{16}…, alias second\n$/);

    const list = await fleet('models', 'list', '--json', '--url', api);
    assert.equal(list.code, 0, list.stderr);
    const builds = (JSON.parse(list.stdout) as { data: Array<{ id: string; kind: string; context_length: number; aliases: string[] }> }).data;
    assert.deepEqual(
      builds.filter((b) => b.kind === 'gguf').map((b) => [b.id, b.context_length, b.aliases]).sort(),
      [['second', 512, ['second']], ['tiny', 512, ['tiny']]],
    );
    const table = await fleet('models', 'list', '--url', api);
    assert.match(table.stdout, /^BUILD\s+KIND\s+CONTEXT\s+ALIASES\s+SOURCE$/m);
    assert.match(table.stdout, /^second\s+gguf\s+512\s+second\s+\S+second\.gguf/m);

    // Another alias points at it: refused until it is repointed.
    const alias = await fleet('models', 'alias', 'other', '--desired', 'second', '--url', api);
    assert.equal(alias.code, 0, alias.stderr);
    const aliased = await fleet('models', 'delete', 'second', '--url', api);
    assert.equal(aliased.code, 1);
    assert.match(aliased.stderr, /HTTP 409: 'second' is still served through 'other'.*\(model_in_use\)/);
    assert.equal((await fleet('models', 'alias', 'other', '--desired', 'tiny', '--no-previous', '--url', api)).code, 0);

    const viaOther = await fleet('models', 'delete', 'tiny', '--url', api);
    assert.equal(viaOther.code, 1);
    assert.match(viaOther.stderr, /HTTP 409: 'tiny' is still served through 'other'.*\(model_in_use\)/);

    // The README's flow: loading a model onto a host of another pool moves the host into
    // the model's pool (the one host serves pool tiny).
    const load = await fleet('models', 'load', 'second', '--host', host, '--url', api);
    assert.equal(load.code, 0, load.stderr);
    assert.match(load.stdout, new RegExp(`^loaded second on ${host} in [\\d.]+s \\(moved from pool tiny to second; evicted: tiny\\)\n$`));
    // Two aliases taking turns on one host do not move it back on the next request: the
    // cool-down (FLEET_POOL_COOLDOWN_S, 300 s by default) binds on-demand moves too.
    const turn = await post(`${f.baseURL}/chat/completions`, { model: 'tiny', messages: user('my turn'), max_tokens: 2 });
    assert.equal(turn.status, 429);
    assert.equal(turn.body.error?.code, 'pool_exhausted');
    assert.match(turn.body.error?.message ?? '', /moved between pools recently/);
    assert.ok(Number(turn.headers.get('retry-after')) > 200, `Retry-After ${turn.headers.get('retry-after')}: the cool-down left`);
    assert.equal((await listPlacements(f.stack.db.db, { modelId: 'second' }))[0]?.state, 'loaded');

    // Loaded on the host: refused until unloaded.
    const loaded = await fleet('models', 'delete', 'second', '--url', api);
    assert.equal(loaded.code, 1);
    assert.match(loaded.stderr, new RegExp(`HTTP 409: 'second' is loaded on ${host}: unload it first .*\\(model_loaded\\)`));
    assert.equal((await fleet('models', 'unload', 'second', '--host', host, '--url', api)).code, 0);

    const deleted = await fleet('models', 'delete', 'second', '--url', api);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(deleted.stdout, 'deleted second\n');
    const gone = await post(`${f.baseURL}/chat/completions`, { model: 'second', messages: user('hi') });
    assert.equal(gone.status, 404);
    const missing = await fleet('models', 'delete', 'second', '--url', api);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /HTTP 404: .*model_not_found/);
  });

  test('with FLEET_METRICS_TOKEN, /metrics answers only a scraper that sends it', async () => {
    const none = await fetch(`${api}/metrics`);
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    assert.ok(!(await none.text()).includes(host), 'no topology without the token');
    const ok = await fetch(`${api}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), new RegExp(`^fleet_host_healthy\\{host="${host}"\\} 1$`, 'm'));
  });

  test('every listing command takes --json and prints the API answer', async () => {
    for (const args of [['status'], ['pools'], ['keys', 'list'], ['providers', 'list'], ['models', 'list']]) {
      const r = await fleet(...args, '--json', '--url', api);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      const parsed = JSON.parse(r.stdout) as { object?: string; data?: unknown[] };
      assert.ok(Array.isArray(parsed.data) || typeof parsed === 'object', args.join(' '));
    }
    const status = JSON.parse((await fleet('status', '--json', '--url', api)).stdout) as { data: Array<{ id: string }> };
    assert.deepEqual(status.data.map((h) => h.id), [host]);
  });

  test('`--version`, usage errors exit 2, and `status --watch` piped prints once', async () => {
    const pkg = JSON.parse(await readFile(path.resolve(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string };
    const v = await fleet('--version');
    assert.equal(v.code, 0);
    assert.equal(v.stdout, `${pkg.version}\n`);
    for (const args of [['no-such-command'], ['status', '--no-such-option'], ['models', 'delete'], ['status', '--watch', '--json']]) {
      const r = await fleet(...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.ok(r.stderr.length > 0);
    }
    // Not a terminal (a pipe): one frame, no escape codes, and the command ends.
    const watch = await fleet('status', '--watch', '--url', api);
    assert.equal(watch.code, 0, watch.stderr);
    assert.ok(!watch.stdout.includes('\x1b['), 'no escape codes');
    assert.match(watch.stdout, /^HOST\s+HEALTH/m);
    assert.match(watch.stderr, /--watch: stdout is not a terminal, printed once/);
  });
});

/** The host's running/queued for tiny, from /admin/hosts (the host's last heartbeat). */
async function hostLoad(api: string, host: string): Promise<{ running: number; queued: number }> {
  const hosts = (await (await fetch(`${api}/admin/hosts`)).json()) as { data: Array<{ id: string; placements: Array<{ model: string; running: number; queued: number }> }> };
  const p = hosts.data.find((h) => h.id === host)?.placements.find((x) => x.model === 'tiny');
  return { running: p?.running ?? 0, queued: p?.queued ?? 0 };
}

describe('a verifiable model bootstraps without a manual load', () => {
  let f: TestFleet;
  before(async () => {
    f = await startTestFleet({ db: 'pglite' });
  });
  after(async () => {
    // The Schedule lives on the suite's Temporal server: removed with the verifiability.
    await fetch(`${f.stack.api!.url}/admin/models/tiny`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ verifiable: false }) }).catch(() => undefined);
    await f?.stop();
  });

  test('marking it verifiable runs its first cycle at once, pins the host that has the file, and a request is served and signed', async () => {
    const api = f.stack.api!.url;
    const host = f.hostIds[0]!;
    assert.deepEqual(await listPlacements(f.stack.db.db, { modelId: 'tiny' }), [], 'nothing loaded');
    const patch = await fetch(`${api}/admin/models/tiny`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ verifiable: true, discovery_interval_s: 3600 }) });
    assert.equal(patch.status, 200, await patch.clone().text());
    assert.equal(((await patch.json()) as { schedule: string }).schedule, 'created');
    // The Schedule's first run, started at once: the host attests the file it would load.
    const pins = await waitFor(async () => {
      const p = await readPinSet(f.stack.db.db, 'tiny');
      return p.state === 'pinned' && p.fingerprints.length === 1 ? p : undefined;
    }, 60_000);
    assert.ok(pins, 'pinned by the first cycle');
    const r = await post(`${f.baseURL}/chat/completions`, { model: 'tiny', messages: user('signed?'), max_tokens: 4 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const id = r.body.id as string;
    const placements = await listPlacements(f.stack.db.db, { modelId: 'tiny' });
    assert.deepEqual(placements.map((p) => [p.host_id, p.state]), [[host, 'loaded']]);
    const sig = await waitFor(async () => {
      const s = await fetch(`${api}/v1/signature/${id}`);
      return s.status === 200 ? ((await s.json()) as { fingerprint: string }) : undefined;
    });
    assert.equal(sig?.fingerprint, pins!.fingerprints[0]);
  });
});

describe('housekeeping runs only when it has work', () => {
  let f: TestFleet;
  before(async () => {
    f = await startTestFleet({ db: 'pglite', env: { FLEET_POOL_PLANNER_INTERVAL_S: '1' } });
  });
  after(async () => {
    await f?.stop();
  });

  test('the planner and sweep Schedules stay paused and idle; a min_warm the fleet misses gets a planner run', async () => {
    const client = f.stack.temporal.client;
    const planner = client.schedule.getHandle('fleet.warm-pools');
    const sweep = client.schedule.getHandle('fleet.sweep-reservations');
    for (const s of [planner, sweep]) assert.equal((await s.describe()).state.paused, true);
    const since = Date.now();
    const runsSince = async () => (await planner.describe()).info.recentActions.filter((a) => a.takenAt.getTime() >= since);
    // Idle: a negative check needs a window — three check periods pass without a run (the
    // check itself is not a workflow). On a slow machine fewer checks run: weaker, not flaky.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    assert.deepEqual(await runsSince(), [], 'no planner run while nothing would change');
    // Work the planner would do, written behind its back (no alias-change trigger): min_warm 1.
    await setAlias(f.stack.db.db, { id: 'tiny', minWarm: 1 });
    const run = await waitFor(async () => (await runsSince())[0], 30_000);
    assert.ok(run, 'the control plane triggered the planner');
    assert.ok(await waitFor(async () => (await listPlacements(f.stack.db.db, { modelId: 'tiny' })).find((p) => p.state === 'loaded'), 60_000), 'the planner warmed the pool');
  });
});
