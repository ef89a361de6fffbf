/**
 * The API's fleet snapshot against both databases it runs on (PGlite in memory, a real
 * PostgreSQL): migration 0011's triggers notify every change routing reads, and the snapshot
 * routes from the rows as they are now — a host going down, a busier host, a second host, an
 * alias moved to a build nobody holds — without a query per decision.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFleetSnapshot, type FleetSnapshot } from '../../src/api/fleetSnapshot.js';
import { ensureAlias, setAlias } from '../../src/db/aliasesRepo.js';
import { openDatabase, type DbHandle } from '../../src/db/connect.js';
import { markHostDown, recordHeartbeat, upsertHost } from '../../src/db/hostsRepo.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { registerModel } from '../../src/db/modelsRepo.js';
import { setPlacementState } from '../../src/db/placementsRepo.js';
import { log } from '../../src/logger.js';
import { createTestDatabase } from '../support/databases.js';
import { testEnv } from '../support/env.js';
import { waitFor } from '../support/wait.js';

const testLog = log.child({ test: 'fleet-snapshot' }, { level: 'warn' });
const SHA = 'b'.repeat(64);
const config = {
  heartbeatIntervalMs: 60_000,
  pools: { enabled: false, cooldownMs: 0 },
  demotion: { after: 3, retryAfterMs: 60_000 },
  secrets: { get: () => undefined },
};

function defineSuite(label: string, open: () => Promise<{ h: DbHandle; cleanup(): Promise<void> }>): void {
  describe(label, () => {
    let h: DbHandle;
    let cleanup: () => Promise<void>;
    let snap: FleetSnapshot;
    const first = () => snap.preRoute({ alias: 'm', requestId: 'r', stream: false })?.attempts.map((a) => (a.replica.kind === 'host' ? a.replica.hostId : a.replica.providerId));
    /** Waits until the snapshot's first-round decision is `want` (undefined: not routed here). */
    const until = async (want: string[] | undefined, what: string) => {
      const got = await waitFor(async () => (JSON.stringify(first()) === JSON.stringify(want) ? true : undefined), 10_000);
      assert.ok(got, `${what}: the snapshot still routes ${JSON.stringify(first())}, expected ${JSON.stringify(want)}`);
    };

    before(async () => {
      ({ h, cleanup } = await open());
      await migrateToLatest(h.db, testLog);
      await registerModel(h.db, { id: 'm', path: '/m.gguf', sha256: SHA, sizeBytes: 1, contextLength: 512 });
      await ensureAlias(h.db, 'm');
      await upsertHost(h.db, { id: 'h1', taskQueue: 'host.h1', info: { maxInFlight: 2 } });
      await setPlacementState(h.db, { hostId: 'h1', modelId: 'm', state: 'loaded' });
      snap = await startFleetSnapshot({ db: h, config, log: testLog });
    });
    after(async () => {
      await snap?.close();
      await h?.close();
      await cleanup?.();
    });

    it('serves from the host that holds the model, read at start', () => {
      assert.deepEqual(first(), ['h1']);
    });

    it('a host marked down is no longer routed to, and is again after its heartbeat', async () => {
      await markHostDown(h.db, 'h1');
      await until(undefined, 'after the host went down');
      await recordHeartbeat(h.db, 'h1', { models: { m: { running: 0, queued: 0 } } });
      await until(['h1'], 'after its heartbeat');
    });

    it('a second host is routed to, and a load change reorders them (least busy first)', async () => {
      await upsertHost(h.db, { id: 'h2', taskQueue: 'host.h2', info: { maxInFlight: 2 } });
      await setPlacementState(h.db, { hostId: 'h2', modelId: 'm', state: 'loaded' });
      await until(['h1', 'h2'], 'with two idle hosts (by id)');
      await recordHeartbeat(h.db, 'h1', { models: { m: { running: 1, queued: 0 } } });
      await until(['h2', 'h1'], 'after h1 reported a running request');
    });

    it("a burst: a host counts at least this process's requests in flight there until they settle", async () => {
      await recordHeartbeat(h.db, 'h1', { models: { m: { running: 0, queued: 0 } } });
      await until(['h1', 'h2'], 'both idle');
      const decision = snap.preRoute({ alias: 'm', requestId: 'burst-1', stream: false })!;
      snap.dispatched('burst-1', decision);
      assert.deepEqual(first(), ['h2', 'h1'], 'h1 has one of ours in flight, not reported yet');
      snap.dispatched('burst-2', snap.preRoute({ alias: 'm', requestId: 'burst-2', stream: false })!);
      assert.deepEqual(first(), ['h1', 'h2'], 'one each');
      snap.settled('burst-1');
      snap.settled('burst-2');
      assert.deepEqual(first(), ['h1', 'h2']);
    });

    it('an alias moved to a build no host holds is left to the workflow (a cold load)', async () => {
      await registerModel(h.db, { id: 'm-v2', path: '/m2.gguf', sha256: SHA, sizeBytes: 1, contextLength: 512 });
      await setAlias(h.db, { id: 'm', desired: 'm-v2', previous: null });
      await until(undefined, 'after the alias moved');
      assert.equal(snap.preRoute({ alias: 'nobody', requestId: 'r', stream: false }), undefined, 'an unknown alias is the workflow’s to refuse');
    });
  });
}

defineSuite('fleet snapshot on PGlite (in memory)', async () => ({ h: await openDatabase({ log: testLog }), cleanup: async () => undefined }));

defineSuite('fleet snapshot on Postgres', async () => {
  const database = await createTestDatabase(testEnv.databaseUrl);
  return { h: await openDatabase({ databaseUrl: database.url, log: testLog }), cleanup: () => database.drop() };
});
