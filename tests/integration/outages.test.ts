/**
 * Dependency outages are transient for clients: PostgreSQL crashed (`pg_ctl stop -m immediate`)
 * and started again under steady load, then the Temporal server killed and started again on
 * its file — every answer is a 200 or a 503 with Retry-After (never a 500), the fleet recovers
 * by itself (API, control plane and host process reconnect), and no budget reservation is left
 * held for the sweep. The fleet has a PostgreSQL cluster and a Temporal server of its own, so
 * the suite's are never touched.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort, startDevServer, type DevServer } from '../../src/temporal/devServer.js';
import { log } from '../../src/logger.js';
import { startPrivateCluster, type PrivateCluster } from '../../scripts/postgres.js';
import { startProcessFleet, type ProcessFleet } from '../support/processFleet.js';
import { testEnv } from '../support/env.js';
import { waitFor } from '../support/wait.js';

const root = path.resolve(import.meta.dirname, '../..');
const ADMIN = 'outage-admin-token-0123456789';

interface Outcome {
  status: number;
  code?: string;
  retryAfter: string | null;
  message?: string;
}

/** Closed-loop clients that keep one request each in flight until stopped. */
function steadyLoad(f: ProcessFleet, key: string, clients = 3) {
  const outcomes: Outcome[] = [];
  let stop = false;
  const loops = Array.from({ length: clients }, async (_, i) => {
    while (!stop) {
      try {
        const res = await fetch(`${f.apiUrl}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
          body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: `steady ${i}` }], max_tokens: 4 }),
          signal: AbortSignal.timeout(60_000),
        });
        const body = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
        outcomes.push({ status: res.status, code: body.error?.code, retryAfter: res.headers.get('retry-after'), ...(body.error ? { message: body.error.message } : {}) });
        // Refused: back off as told, so the loop does not spin on a dead dependency.
        if (res.status !== 200) await new Promise((r) => setTimeout(r, 200));
      } catch (err) {
        outcomes.push({ status: -1, code: (err as Error).name, retryAfter: null });
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  });
  return {
    outcomes,
    /** Waits until `n` more requests in a row succeeded. */
    async recovered(n: number, timeoutMs = 90_000): Promise<boolean> {
      const ok = await waitFor(async () => {
        const tail = outcomes.slice(-n);
        return tail.length === n && tail.every((o) => o.status === 200) ? true : undefined;
      }, timeoutMs);
      return ok === true;
    },
    async stop() {
      stop = true;
      await Promise.all(loops);
    },
  };
}

function assertOnlyTransient(outcomes: Outcome[]): void {
  const bad = outcomes.filter((o) => o.status !== 200 && !(o.status === 503 && Number(o.retryAfter) >= 1));
  assert.deepEqual(bad, [], `answers other than 200 or 503 + Retry-After: ${JSON.stringify(bad.slice(0, 5))}`);
  assert.ok(outcomes.some((o) => o.status === 200));
}

describe('dependency outages under load', () => {
  let cluster: PrivateCluster;
  let temporal: DevServer;
  let temporalPort: number;
  let tmp: string;
  let f: ProcessFleet;
  let key: string;
  const startTemporal = () =>
    startDevServer({ binary: testEnv.temporalCli, port: temporalPort, uiPort: null, namespace: 'default', dbFile: path.join(tmp, 'temporal.db'), log });

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'fleet-outage-'));
    cluster = startPrivateCluster(path.join(root, '.tools', 'pg-outage'), await freePort());
    temporalPort = await freePort();
    temporal = await startTemporal();
    f = await startProcessFleet({
      hosts: 1,
      temporalAddress: temporal.address,
      databaseUrl: cluster.url,
      stackEnv: { FLEET_ADMIN_TOKEN: ADMIN },
    });
    await f.addModel('tiny', 'tiny', 3);
    await f.load('h0', 'tiny');
    const res = await fetch(`${f.apiUrl}/admin/keys`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
      body: JSON.stringify({ account: 'outage', balance_tokens: 10_000_000 }),
    });
    key = ((await res.json()) as { key: string }).key;
  });
  after(async () => {
    await f?.stop();
    await temporal?.stop();
    cluster?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  const held = async () =>
    Number((await f.stack.db.db.selectFrom('reservations').select((eb) => eb.fn.countAll<number>().as('n')).where('state', '=', 'held').executeTakeFirstOrThrow()).n);

  const report = (t: { diagnostic(m: string): void }, outcomes: Outcome[], restartedAt: number, recoveredAt: number) => {
    const by = new Map<string, number>();
    for (const o of outcomes) {
      const k = `${o.status}${o.code ? ` ${o.code}` : ''}`;
      by.set(k, (by.get(k) ?? 0) + 1);
    }
    t.diagnostic(`answers during the outage: ${[...by].map(([k, n]) => `${k}×${n}`).join(', ')}; serving 10 in a row ${recoveredAt - restartedAt} ms after the restart`);
  };

  /** Steady load across `stop` … `start` of a dependency: only transient answers, then recovery, no held budget. */
  async function outageUnderLoad(t: { diagnostic(m: string): void }, stop: () => Promise<void> | void, start: () => Promise<void> | void) {
    const load = steadyLoad(f, key);
    try {
      assert.ok(await load.recovered(5), 'serving before the outage');
      const before = load.outcomes.length;
      await stop();
      const down = await waitFor(async () => (load.outcomes.slice(before).some((o) => o.status === 503) ? true : undefined), 30_000);
      assert.ok(down, 'the outage was seen by clients');
      await start();
      const restartedAt = Date.now();
      const recovered = await load.recovered(10);
      assert.ok(recovered, `recovered: ${JSON.stringify(load.outcomes.slice(-3))}\nhost h0 (exit ${f.hosts.get('h0')!.child.exitCode ?? f.hosts.get('h0')!.child.signalCode}):\n${f.hosts.get('h0')!.output().slice(-3000)}`);
      assertOnlyTransient(load.outcomes.slice(before));
      report(t, load.outcomes.slice(before), restartedAt, Date.now());
    } finally {
      await load.stop();
    }
    // Settlements that met the outage were retried, not left to the expiry sweep.
    assert.equal(await waitFor(async () => ((await held()) === 0 ? 0 : undefined), 60_000), 0, 'no reservation left held');
  }

  test('PostgreSQL crashes and comes back under load: only 503 + Retry-After, then full recovery', (t) =>
    outageUnderLoad(t, () => cluster.stop('immediate'), () => cluster.start()));

  test('the Temporal server is killed and restarted under load: only 503 + Retry-After, then full recovery', (t) =>
    outageUnderLoad(
      t,
      () => temporal.stop(),
      async () => {
        temporal = await startTemporal();
      },
    ));
});
