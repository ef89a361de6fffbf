/**
 * Model pools on 3 real GPU-host processes and 2 aliases (alpha, beta): operator moves and
 * their refusal on a busy host, a request whose pool is full borrowing an idle host of the
 * other pool (poolReassign on demand), requests never spilling into the other pool's hosts
 * (429 pool_exhausted + Retry-After instead), a rollout of alpha to a new build under steady
 * load with no failed request, and the warm-pool planner restoring min_warm after a host is
 * killed. Hosts admit 1 request and queue none, so "full" is easy to reach.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { getHost } from '../../src/db/hostsRepo.js';
import { listPlacements } from '../../src/db/placementsRepo.js';
import { getRequestLog } from '../../src/db/requestLogRepo.js';
import { startProcessFleet, type ProcessFleet } from '../support/processFleet.js';
import { waitFor } from '../support/wait.js';

const user = (content: string) => [{ role: 'user' as const, content }];

interface PoolRow {
  alias: string;
  desired: string;
  previous: string | null;
  hosts: string[];
  healthy: number;
  loaded: number;
  desired_loaded: number;
}

describe('model pools: 3 hosts, 2 aliases', () => {
  let f: ProcessFleet;
  const admin = async (method: string, route: string, body?: unknown) => {
    const res = await fetch(`${f.apiUrl}${route}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
  };
  const pools = async () => ((await admin('GET', '/admin/pools')).body.data as PoolRow[]).reduce<Record<string, PoolRow>>((m, p) => ({ ...m, [p.alias]: p }), {});
  const move = (host: string, alias: string) => admin('POST', `/admin/pools/${alias}/hosts`, { host });
  const servedBy = async (id: string) => (await waitFor(() => getRequestLog(f.stack.db.db, id)))?.host_id;
  const running = (host: string, build: string) =>
    waitFor(async () => ((await getHost(f.stack.db.db, host))?.stats.models[build]?.running === 1 ? true : undefined), 20_000);
  /** Holds its host's slot until the test opens gate `gate` (never a race with generation speed). */
  const held = (model: string, gate: string) =>
    f.openai.chat.completions.create({ model, messages: user(f.gated(gate)), max_tokens: 8, temperature: 0 });

  before(async () => {
    f = await startProcessFleet({
      hosts: 3,
      hostEnv: { FLEET_MAX_IN_FLIGHT: '1', FLEET_MAX_QUEUE: '0', FLEET_MAX_MODEL_SLOTS: '1' },
      // The Schedule's planner stays out of the way; the tests run it through /admin/pools/plan.
      stackEnv: { FLEET_POOL_PLANNER_INTERVAL_S: '3600', FLEET_POOL_COOLDOWN_S: '1' },
    });
    await f.addModel('alpha', 'small', 11);
    await f.addModel('beta', 'tiny', 12);
    await f.addModel('alpha-v2', 'small', 13, false);
  });
  after(async () => {
    await f?.stop();
  });

  test('hosts are seeded into a pool; an operator moves idle hosts, a busy one is refused', async () => {
    // alpha was the only alias when the hosts' heartbeats first found one of their files.
    assert.deepEqual((await pools()).alpha!.hosts, ['h0', 'h1', 'h2']);
    // Layout for what follows: alpha {h0}, beta {h1, h2}.
    for (const [host, alias] of [['h0', 'alpha'], ['h1', 'beta'], ['h2', 'beta']] as const) {
      const r = await move(host, alias);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.alias, alias);
    }
    const now = await pools();
    assert.deepEqual(now.alpha!.hosts, ['h0']);
    assert.deepEqual(now.beta!.hosts, ['h1', 'h2']);
    assert.equal(now.alpha!.loaded, 1);

    const busy = held('alpha', 'keep-h0-busy');
    assert.ok(await running('h0', 'alpha'));
    const refused = await move('h0', 'beta');
    assert.equal(refused.status, 409);
    assert.equal((refused.body.error as { code: string }).code, 'host_busy');
    assert.match((refused.body.error as { message: string }).message, /requests are running/);
    await f.release('keep-h0-busy');
    await busy;
    assert.deepEqual((await pools()).alpha!.hosts, ['h0'], 'a refused move changes nothing');
  });

  test('a full pool borrows an idle host from the other pool, which then serves it', async () => {
    const first = held('alpha', 'occupy-h0');
    assert.ok(await running('h0', 'alpha'));
    const second = await f.openai.chat.completions.create({ model: 'alpha', messages: user('overflow'), max_tokens: 8 });
    assert.equal(second.model, 'alpha', 'the response names the alias');
    const host = await servedBy(second.id);
    assert.ok(host === 'h1' || host === 'h2', `served by ${host}`);
    await f.release('occupy-h0');
    await first;
    const after = await pools();
    assert.deepEqual(after.alpha!.hosts, ['h0', host].sort());
    assert.equal(after.beta!.hosts.length, 1);
    const moves = [];
    for await (const w of f.stack.temporal.client.workflow.list({ query: `FleetRequestKind = "poolReassign" AND FleetHost = "${host}" AND FleetModel = "alpha"` })) {
      moves.push(w.status.name);
    }
    assert.ok(moves.includes('COMPLETED'), `reassignment workflows of ${host}: ${moves.join(', ')}`);
  });

  test('requests never spill into the other pool: 429 pool_exhausted + Retry-After instead', async () => {
    // beta keeps its last host (min_warm 1), so nothing can be borrowed.
    assert.equal((await admin('PATCH', '/admin/models/beta', { min_warm: 1 })).status, 200);
    const alphaHosts = (await pools()).alpha!.hosts;
    const betaHost = (await pools()).beta!.hosts[0]!;
    assert.equal(alphaHosts.length, 2);
    // Both alpha hosts run a held request (one slot each, no queue): alpha has no room left.
    const holding = alphaHosts.map((_, i) => held('alpha', `flood-${i}`));
    for (const h of alphaHosts) assert.ok(await running(h, 'alpha'), h);
    const results = await Promise.allSettled([
      ...Array.from({ length: 4 }, (_, i) => f.openai.chat.completions.create({ model: 'alpha', messages: user(`flood ${i}`), max_tokens: 8 })),
      f.openai.chat.completions.create({ model: 'beta', messages: user('beta is fine'), max_tokens: 8 }),
    ]);
    for (const r of results.slice(0, 4)) {
      assert.equal(r.status, 'rejected', 'no alpha request runs outside its pool');
      const e = (r as PromiseRejectedResult).reason as { status?: number; code?: string; headers?: Headers };
      assert.equal(e.status, 429, String(e));
      assert.equal(e.code, 'pool_exhausted');
      assert.ok(Number(e.headers?.get('retry-after')) >= 1);
    }
    assert.equal(results[4]!.status, 'fulfilled', 'the other pool keeps serving');
    assert.equal(await servedBy((results[4] as PromiseFulfilledResult<{ id: string }>).value.id), betaHost);
    for (let i = 0; i < alphaHosts.length; i++) await f.release(`flood-${i}`);
    for (const r of await Promise.all(holding)) assert.ok(alphaHosts.includes((await servedBy(r.id))!));
  });

  test('a rollout from the previous to the desired build serves every request throughout', async () => {
    let stop = false;
    const outcomes: Array<{ ok: boolean; model?: string; error?: string }> = [];
    const client = (async () => {
      while (!stop) {
        try {
          const r = await f.openai.chat.completions.create({ model: 'alpha', messages: user('steady'), max_tokens: 8 });
          outcomes.push({ ok: true, model: r.model });
        } catch (err) {
          outcomes.push({ ok: false, error: String(err) });
        }
      }
    })();
    while (outcomes.length < 5) await new Promise((r) => setTimeout(r, 50));
    const patched = await admin('PATCH', '/admin/models/alpha', { desired: 'alpha-v2' });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.previous, 'alpha', 'the old desired build becomes previous');
    const done = await waitFor(async () => {
      const p = (await pools()).alpha!;
      return p.desired_loaded === p.hosts.length ? p : undefined;
    }, 90_000);
    const afterSwitch = outcomes.length;
    while (outcomes.length < afterSwitch + 5) await new Promise((r) => setTimeout(r, 50));
    stop = true;
    await client;
    assert.ok(done, `rollout finished: ${JSON.stringify((await pools()).alpha)}`);
    const failed = outcomes.filter((o) => !o.ok);
    assert.deepEqual(failed, [], `${failed.length} of ${outcomes.length} requests failed`);
    assert.ok(outcomes.every((o) => o.model === 'alpha'), 'responses name the alias, never a build');
  });

  test('a rollout whose hosts are all busy drains one at a time and upgrades each once its request ends', async () => {
    const alphaHosts = (await pools()).alpha!.hosts;
    assert.equal(alphaHosts.length, 2);
    // Both alpha hosts busy, each on a gate of its own: no idle moment will come by itself.
    // One at a time, so the test knows which host holds which gate.
    const gateOn = new Map<string, string>();
    const holding = [];
    for (let i = 0; i < alphaHosts.length; i++) {
      holding.push(held('alpha', `drain-${i}`));
      const busyNow = await waitFor(async () => {
        for (const h of alphaHosts) if (!gateOn.has(h) && (await getHost(f.stack.db.db, h))?.stats.models['alpha-v2']?.running === 1) return h;
        return undefined;
      }, 20_000);
      assert.ok(busyNow, `gate drain-${i} holds a host`);
      gateOn.set(busyNow, `drain-${i}`);
    }
    try {
      const draining = async () =>
        (await f.stack.db.db.selectFrom('host_pools').select('host_id').where('draining_since', 'is not', null).execute()).map((r) => r.host_id);
      const servedBuild = async (h: string) => (await listPlacements(f.stack.db.db, {})).find((p) => p.host_id === h && p.state === 'loaded')?.model_id;
      const rolled = await admin('PATCH', '/admin/models/alpha', { desired: 'alpha' });
      assert.equal(rolled.status, 200, JSON.stringify(rolled.body));
      // The planner drains one of them (equally busy: the first by name), never both.
      const first = await waitFor(async () => ((await draining()).length === 1 ? (await draining())[0] : undefined), 30_000);
      assert.equal(first, alphaHosts[0]);
      assert.deepEqual(await draining(), [first]);
      // Its request ends: it is upgraded at once, and the drain moves to the other host.
      await f.release(gateOn.get(first!)!);
      const up = await waitFor(async () => ((await servedBuild(first!)) === 'alpha' ? true : undefined), 60_000);
      if (!up) {
        const h = f.stack.temporal.client.workflow.getHandle('warm-pools:now');
        const d = await h.describe();
        process.stderr.write(`DEBUG planner ${d.status.name} ${JSON.stringify(d.status.name === 'RUNNING' ? null : await h.result().catch((e: Error) => e.message))}\nDEBUG pools ${JSON.stringify((await pools()).alpha)} draining ${await draining()} placements ${JSON.stringify(await listPlacements(f.stack.db.db, {}))}\n`);
      }
      assert.ok(up, `${first} upgraded`);
      const second = alphaHosts.find((h) => h !== first)!;
      assert.ok(await waitFor(async () => ((await draining()).join() === second ? true : undefined), 30_000), `${second} drained next`);
      await f.release(gateOn.get(second)!);
      const done = await waitFor(async () => {
        const p = (await pools()).alpha!;
        return p.desired_loaded === p.hosts.length && (await draining()).length === 0 ? p : undefined;
      }, 60_000);
      assert.ok(done, `rollout finished, no host left drained: ${JSON.stringify((await pools()).alpha)} ${await draining()}`);
    } finally {
      // A failed check must not leave a host held for the tests after this one.
      for (const g of gateOn.values()) await f.release(g);
    }
    for (const r of await Promise.all(holding)) assert.equal(r.model, 'alpha');
  });

  test('the planner restores min_warm after a host is killed', async () => {
    const before = await pools();
    const alphaHosts = before.alpha!.hosts;
    assert.equal(alphaHosts.length, 2);
    assert.equal((await admin('PATCH', '/admin/models/alpha', { min_warm: 2 })).status, 200);
    assert.equal((await admin('PATCH', '/admin/models/beta', { min_warm: 0 })).status, 200);
    const victim = alphaHosts[0]!;
    await f.kill(victim);
    const down = await waitFor(async () => ((await pools()).alpha!.healthy === 1 ? true : undefined), 20_000);
    assert.ok(down, 'the killed host is unhealthy');
    const restored = await waitFor(async () => {
      const plan = await admin('POST', '/admin/pools/plan');
      assert.equal(plan.status, 200, JSON.stringify(plan.body));
      const p = (await pools()).alpha!;
      return p.healthy === 2 && p.desired_loaded === 2 ? p : undefined;
    }, 60_000);
    assert.ok(restored, `alpha: ${JSON.stringify((await pools()).alpha)}`);
    assert.ok(restored.hosts.some((h) => !alphaHosts.includes(h)), 'the former beta host was moved in');
    const r = await f.openai.chat.completions.create({ model: 'alpha', messages: user('after the planner'), max_tokens: 4 });
    assert.equal(r.model, 'alpha');
  });
});
