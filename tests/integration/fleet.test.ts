/**
 * A fleet of 3 real GPU-host processes (each its own task queue, node-llama-cpp, heartbeat)
 * behind the real control plane and API: load spreads, a saturated pool answers fast with 429
 * pool_exhausted + Retry-After, a host killed mid-request is routed around (non-streaming and
 * streaming), a paused host that misses one heartbeat stays routable, cold loads evict the LRU
 * idle model, and a burst for a model on no host triggers exactly one load (those last with
 * pools off). Busy hosts are held by test gates, never by long generations, and each test of
 * the first group starts from the same state (every host up, loaded, idle).
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { getHost } from '../../src/db/hostsRepo.js';
import { getRequestLog } from '../../src/db/requestLogRepo.js';
import { listPlacements } from '../../src/db/placementsRepo.js';
import { startProcessFleet, type ProcessFleet } from '../support/processFleet.js';
import { waitFor } from '../support/wait.js';

const user = (content: string) => [{ role: 'user' as const, content }];
/** Short answers: how long a host stays busy is decided by the test's gates, not by generation speed. */
const SMALL = { model: 'small', max_tokens: 16, temperature: 0 } as const;
const HOSTS = ['h0', 'h1', 'h2'];

async function servedBy(f: ProcessFleet, requestId: string): Promise<string | null | undefined> {
  return (await waitFor(() => getRequestLog(f.stack.db.db, requestId)))?.host_id;
}

async function waitLoad(f: ProcessFleet, hostId: string, model: string, pred: (l: { running: number; queued: number }) => boolean) {
  return waitFor(async () => {
    const h = await getHost(f.stack.db.db, hostId);
    const l = h?.stats.models[model];
    return l && pred(l) ? l : undefined;
  }, 60_000);
}

describe('fleet of 3 host processes', () => {
  let f: ProcessFleet;
  before(async () => {
    f = await startProcessFleet({
      hosts: 3,
      // Gates hold requests as long as a test needs; the wait limit only has to outlast the test.
      hostEnv: { FLEET_MAX_IN_FLIGHT: '1', FLEET_MAX_QUEUE: '1', FLEET_ADMISSION_MAX_WAIT_MS: '300000', FLEET_MAX_MODEL_SLOTS: '2' },
    });
    await f.addModel('small', 'small', 5);
  });
  beforeEach(async () => {
    await f.reset({ models: { small: HOSTS } });
  });
  after(async () => {
    await f?.stop();
  });

  test('load spreads to the idle replica', async () => {
    const long = f.openai.chat.completions.create({ ...SMALL, messages: user(f.gated('spread')) });
    assert.ok(await waitLoad(f, 'h0', 'small', (l) => l.running === 1));
    const quick = await f.openai.chat.completions.create({ model: 'small', messages: user('who is free?'), max_tokens: 4 });
    assert.equal(await servedBy(f, quick.id), 'h1');
    await f.release('spread');
    const first = await long;
    assert.equal(await servedBy(f, first.id), 'h0');
  });

  test('a saturated pool answers 429 pool_exhausted + Retry-After at once instead of stalling', async () => {
    // 3 hosts × (1 running + 1 queued) fill every slot and queue place; each request holds on its gate.
    const fill = Array.from({ length: 6 }, (_, i) => f.openai.chat.completions.create({ ...SMALL, messages: user(f.gated(`fill-${i}`)) }));
    for (const h of HOSTS) assert.ok(await waitLoad(f, h, 'small', (l) => l.running === 1 && l.queued === 1), h);
    const res = await fetch(`${f.apiUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'small', messages: user('one too many'), max_tokens: 4 }),
    });
    // Every host is in the model's pool: there is no idle host to borrow.
    assert.equal(res.status, 429);
    assert.ok(Number(res.headers.get('retry-after')) >= 1);
    const body = (await res.json()) as { error: { code: string } };
    assert.equal(body.error.code, 'pool_exhausted');
    for (let i = 0; i < 6; i++) await f.release(`fill-${i}`);
    const settled = await Promise.allSettled(fill);
    assert.deepEqual(settled.map((s) => s.status), Array(6).fill('fulfilled'), 'the admitted requests all finish');
  });

  test('a host killed mid-request: the non-streaming request completes on another replica', async () => {
    const pending = f.openai.chat.completions.create({ ...SMALL, messages: user(f.gated('crash')) });
    assert.ok(await waitLoad(f, 'h0', 'small', (l) => l.running === 1));
    await f.kill('h0');
    // Open the gate only now: the retry on another host passes it at once.
    await f.release('crash');
    const r = await pending;
    assert.ok(r.choices[0]!.message.content!.length > 0);
    const host = await servedBy(f, r.id);
    assert.ok(host === 'h1' || host === 'h2', `served by ${host}`);
    const history = await f.stack.temporal.client.workflow.getHandle(r.id).fetchHistory();
    assert.ok(history.events?.some((e) => e.activityTaskTimedOutEventAttributes), 'the dead host\'s attempt timed out');
  });

  test('a stream that had not started moves to another replica when its host dies', async () => {
    // h0 is gone; h1 and h2 each run one gated request, so the stream waits in a queue.
    await f.kill('h0');
    await waitFor(async () => {
      const h0 = await getHost(f.stack.db.db, 'h0');
      return h0 && Date.now() - h0.last_heartbeat_at.getTime() > 4 * 500 ? true : undefined;
    });
    const busy = [f.openai.chat.completions.create({ ...SMALL, messages: user(f.gated('busy-1')) })];
    assert.ok(await waitLoad(f, 'h1', 'small', (l) => l.running === 1));
    busy.push(f.openai.chat.completions.create({ ...SMALL, messages: user(f.gated('busy-2')) }));
    assert.ok(await waitLoad(f, 'h2', 'small', (l) => l.running === 1));
    // Not awaited: the response headers only come with the first token.
    const streaming = f.openai.chat.completions.create({ model: 'small', messages: user('stream me'), max_tokens: 8, stream: true });
    const queuedOn = await waitFor(async () => {
      for (const h of ['h1', 'h2']) if ((await getHost(f.stack.db.db, h))?.stats.models.small?.queued === 1) return h;
      return undefined;
    }, 60_000);
    assert.ok(queuedOn);
    await f.kill(queuedOn);
    await f.release('busy-1');
    await f.release('busy-2');
    const stream = await streaming;
    let text = '';
    let finish: string | null = null;
    let id = '';
    for await (const chunk of stream) {
      id = chunk.id;
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.ok(text.length > 0);
    assert.ok(finish === 'length' || finish === 'stop');
    const host = await servedBy(f, id);
    assert.ok(host && host !== queuedOn && host !== 'h0', `served by ${host}`);
    await Promise.allSettled(busy);
  });
});

describe('health, eviction and single loads', () => {
  let f: ProcessFleet;
  before(async () => {
    // Several models per host, evicting each other: the behaviour with pools switched off.
    f = await startProcessFleet({
      hosts: 2,
      hostEnv: { FLEET_MAX_MODEL_SLOTS: '1', FLEET_HEARTBEAT_INTERVAL_MS: '400' },
      stackEnv: { FLEET_MODEL_POOLS: 'false' },
    });
    await f.addModel('a', 'tiny', 1);
    await f.addModel('b', 'tiny', 2);
    await f.addModel('c', 'tiny', 3);
  });
  after(async () => {
    await f?.stop();
  });

  test('a host that misses one heartbeat stays routable; three in a row make it unhealthy', async () => {
    await f.load('h0', 'a');
    const h0 = f.hosts.get('h0')!.child;
    const hostsView = async () =>
      ((await (await fetch(`${f.apiUrl}/admin/hosts`)).json()) as { data: Array<{ id: string; healthy: boolean; missed_heartbeats: number }> }).data.find(
        (h) => h.id === 'h0',
      )!;
    h0.kill('SIGSTOP');
    try {
      const one = await waitFor(async () => {
        const v = await hostsView();
        return v.missed_heartbeats === 1 ? v : undefined;
      });
      assert.equal(one?.healthy, true, 'one missed heartbeat: still healthy');
      const pending = f.openai.chat.completions.create({ model: 'a', messages: user('wait for me'), max_tokens: 4 });
      const three = await waitFor(async () => {
        const v = await hostsView();
        return v.missed_heartbeats >= 3 ? v : undefined;
      });
      assert.equal(three?.healthy, false);
      h0.kill('SIGCONT');
      const r = await pending;
      assert.equal(await servedBy(f, r.id), 'h0', 'routed to the paused host, served when it resumed');
    } finally {
      h0.kill('SIGCONT');
    }
    const back = await waitFor(async () => ((await hostsView()).healthy ? true : undefined));
    assert.equal(back, true, 'one heartbeat makes it healthy again');
  });

  test('cold load on demand evicts the least recently used idle model', async () => {
    await f.load('h1', 'b');
    // Both hosts are full (one slot each: a on h0, b on h1); c must evict one of them.
    const r = await f.openai.chat.completions.create({ model: 'c', messages: user('make room'), max_tokens: 4 });
    const host = await servedBy(f, r.id);
    const placements = await listPlacements(f.stack.db.db);
    const on = (h: string) => placements.filter((p) => p.host_id === h && p.state === 'loaded').map((p) => p.model_id);
    assert.deepEqual(on(host!), ['c']);
    assert.equal(placements.find((p) => p.host_id === host && p.model_id !== 'c')?.state, 'unloaded');
  });

  test('the kill switch: every host counts for every alias, and no host is moved', async () => {
    const res = await fetch(`${f.apiUrl}/admin/pools`);
    const body = (await res.json()) as { enabled: boolean; data: Array<{ alias: string; hosts: string[] }> };
    assert.equal(body.enabled, false);
    for (const p of body.data) assert.deepEqual(p.hosts, ['h0', 'h1'], p.alias);
    const move = await fetch(`${f.apiUrl}/admin/pools/a/hosts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ host: 'h0' }),
    });
    assert.equal(move.status, 409);
    assert.equal(((await move.json()) as { error: { code: string } }).error.code, 'pools_disabled');
  });

  test('20 concurrent requests for a model on no host trigger exactly one load', async () => {
    // A fresh model id: visibility is shared by every fleet that ever ran on this server.
    const model = await f.addModel(`burst-${Date.now().toString(36)}`, 'tiny', 4);
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => f.openai.chat.completions.create({ model, messages: user(`burst ${i}`), max_tokens: 4 })),
    );
    const client = f.stack.temporal.client;
    const loads: string[] = [];
    await waitFor(async () => {
      loads.length = 0;
      for await (const w of client.workflow.list({ query: `FleetRequestKind = "coldLoad" AND FleetModel = "${model}"` })) {
        loads.push(w.workflowId);
      }
      return loads.length > 0 ? true : undefined;
    });
    assert.equal(loads.length, 1, `loads: ${loads.join(', ')}`);
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    assert.ok(ok >= 1);
    for (const r of results) {
      if (r.status === 'rejected') {
        const e = r.reason as { status?: number; headers?: Headers };
        assert.equal(e.status, 503, 'a request that arrived while loading is told to retry');
        assert.ok(Number(e.headers?.get('retry-after')) >= 1);
      }
    }
  });
});

describe('losing the only loaded host beside an idle one', () => {
  let f: ProcessFleet;
  before(async () => {
    // Heartbeats at the production default: three missed take 6 s, longer than a request waits
    // for a dead host to pick its task up (5 s) — so the suspect mark is what moves traffic.
    f = await startProcessFleet({ hosts: 2, hostEnv: { FLEET_HEARTBEAT_INTERVAL_MS: '2000' } });
    await f.addModel('tiny', 'tiny', 8);
    await f.load('h0', 'tiny');
  });
  after(async () => {
    await f?.stop();
  });

  test('SIGKILL under steady load: every request is answered 200, the idle pool host takes over', async (t) => {
    const outcomes: Array<{ ok: boolean; at: number; id?: string; error?: string }> = [];
    let stop = false;
    const clients = Array.from({ length: 3 }, async (_, i) => {
      while (!stop) {
        try {
          const r = await f.openai.chat.completions.create({ model: 'tiny', messages: user(`steady ${i}`), max_tokens: 4 });
          outcomes.push({ ok: true, at: Date.now(), id: r.id });
        } catch (err) {
          outcomes.push({ ok: false, at: Date.now(), error: String(err) });
        }
      }
    });
    const count = (n: number) => waitFor(async () => (outcomes.length >= n ? true : undefined), 120_000);
    assert.ok(await count(10));
    const killedAt = Date.now();
    const before = outcomes.length;
    await f.kill('h0');
    // Enough answers after the kill that the idle host must have taken over.
    const served = await waitFor(async () => {
      for (const o of outcomes.slice(before)) if (o.ok && (await servedBy(f, o.id!)) === 'h1') return o;
      return undefined;
    }, 120_000);
    assert.ok(await count(outcomes.length + 10));
    stop = true;
    await Promise.all(clients);
    const failed = outcomes.filter((o) => !o.ok);
    assert.deepEqual(failed, [], `${failed.length} of ${outcomes.length} failed`);
    assert.ok(served, 'h1 served after the kill');
    t.diagnostic(`first success on h1 ${served.at - killedAt} ms after SIGKILL; ${outcomes.length - before} requests after the kill, all 200`);
  });
});
