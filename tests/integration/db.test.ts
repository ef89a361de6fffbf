/**
 * The database layer against both backends it ships with: one suite body, run on in-memory
 * PGlite, on PGlite in a folder (reopened to prove persistence) and on a real PostgreSQL server
 * (FLEET_TEST_DATABASE_URL, a fresh database per run). The Postgres half never skips: without
 * the variable it fails, because a green run that never touched Postgres proves nothing.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NO_MIGRATIONS, sql } from 'kysely';
import { openDatabase, MAX_NOTIFY_PAYLOAD_BYTES, type DbHandle } from '../../src/db/connect.js';
import { readFleetState } from '../../src/db/fleetStateRepo.js';
import { getHost, listHosts, markHostDown, recordHeartbeat, upsertHost } from '../../src/db/hostsRepo.js';
import { createMigrator, migrateToLatest } from '../../src/db/migrate.js';
import { getModel, listModels, registerModel } from '../../src/db/modelsRepo.js';
import { LISTENER_APPLICATION_NAME } from '../../src/db/pgListener.js';
import { getPlacement, listPlacements, setPlacementState, touchPlacement } from '../../src/db/placementsRepo.js';
import { getRequestLog, insertRequestLog } from '../../src/db/requestLogRepo.js';
import type { NewRequestLog } from '../../src/db/schema.js';
import { log } from '../../src/logger.js';
import { createTestDatabase } from '../support/databases.js';

const testLog = log.child({ test: 'db' }, { level: 'warn' });
const SHA = 'a'.repeat(64);

interface Backend {
  kind: 'postgres' | 'pglite';
  open(): Promise<DbHandle>;
  /** True when a second open() sees the first one's data (folder PGlite, Postgres). */
  persistent: boolean;
  cleanup(): Promise<void>;
}

async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function logRow(id: string, over: Partial<NewRequestLog> = {}): NewRequestLog {
  const started = new Date('2030-01-01T00:00:00.000Z');
  return {
    id, kind: 'chat', model_id: 'm-counter', host_id: 'h1', provider_id: null, principal: null, stream: false, status: 'ok',
    finish_reason: 'stop', error_code: null, prompt_tokens: 3, completion_tokens: 5,
    started_at: started, finished_at: new Date(started.getTime() + 42), duration_ms: 42, ...over,
  };
}

function defineDbSuite(label: string, makeBackend: () => Promise<Backend>): void {
  describe(label, () => {
    let backend: Backend;
    let h: DbHandle;
    before(async () => {
      backend = await makeBackend();
      h = await backend.open();
    });
    after(async () => {
      await h?.close();
      await backend?.cleanup();
    });

    const ALL_MIGRATIONS = ['0001_initial', '0002_keys_budgets', '0003_attestation', '0004_signatures', '0005_pools', '0006_resilience', '0007_providers', '0008_attested_providers', '0009_embeddings', '0010_rollout_drain', '0011_fleet_change_notify'];

    it('migrations apply once under concurrency, re-apply as a no-op, and roll back', async () => {
      // On Postgres these are separate pools, i.e. what separate processes would do.
      const others = backend.kind === 'postgres' ? [await backend.open(), await backend.open()] : [h, h];
      try {
        const runs = await Promise.all([h, ...others].map((x) => migrateToLatest(x.db, testLog)));
        assert.deepEqual(runs.flat(), ALL_MIGRATIONS);
      } finally {
        for (const o of others) if (o !== h) await o.close();
      }
      assert.deepEqual(await migrateToLatest(h.db, testLog), []);
      const { rows } = await sql<{ indexname: string }>`select indexname from pg_indexes
        where tablename = 'request_log' and indexname = 'request_log_model_started_idx'`.execute(h.db);
      assert.equal(rows.length, 1);
      const down = await createMigrator(h.db).migrateTo(NO_MIGRATIONS);
      assert.equal(down.error, undefined);
      const tables = await h.db.introspection.getTables();
      assert.deepEqual(tables.map((t) => t.name), []);
      assert.deepEqual(await migrateToLatest(h.db, testLog), ALL_MIGRATIONS);
    });

    it('hosts: register, heartbeat, mark down, re-register', async () => {
      const info = { cpuCount: 8, threads: 4, gpu: false as const, memoryBytes: 16e9, version: '0.1.0', rack: 'r1' };
      const host = await upsertHost(h.db, { id: 'h1', taskQueue: 'host.h1', info });
      assert.equal(host.status, 'up');
      assert.deepEqual(host.info, info);
      assert.deepEqual(host.stats, { models: {} });
      assert.ok(host.started_at instanceof Date && host.last_heartbeat_at instanceof Date);
      assert.equal(await recordHeartbeat(h.db, 'h1', { models: { m1: { running: 2, queued: 1 } } }), true);
      assert.equal(await recordHeartbeat(h.db, 'nope', {}), false);
      assert.deepEqual((await getHost(h.db, 'h1'))?.stats, { models: { m1: { running: 2, queued: 1 } } });
      assert.equal(await markHostDown(h.db, 'h1'), true);
      assert.equal(await markHostDown(h.db, 'nope'), false);
      assert.equal((await getHost(h.db, 'h1'))?.status, 'down');
      await recordHeartbeat(h.db, 'h1', {});
      assert.equal((await getHost(h.db, 'h1'))?.status, 'up');
      const again = await upsertHost(h.db, { id: 'h1', taskQueue: 'host.h1b', info: { version: '0.2.0' } });
      assert.equal(again.task_queue, 'host.h1b');
      assert.deepEqual(again.stats, { models: {} }, 'a restarted host runs nothing');
      await upsertHost(h.db, { id: 'h0', taskQueue: 'host.h0', info: {} });
      await sql`update hosts set stats = '[1,2]'::jsonb where id = 'h0'`.execute(h.db);
      const hosts = await listHosts(h.db);
      assert.deepEqual(hosts.map((x) => x.id), ['h0', 'h1']);
      assert.deepEqual(hosts[0]?.stats, { models: {} }, 'malformed jsonb is replaced, not thrown');
    });

    it('models: register, update on conflict, read back (bigint as number)', async () => {
      const m = await registerModel(h.db, { id: 'm1', path: '/m/1.gguf', sha256: SHA, sizeBytes: 5e9, contextLength: 2048 });
      assert.equal(m.size_bytes, 5_000_000_000);
      assert.equal(m.context_length, 2048);
      assert.ok(m.created_at instanceof Date);
      await registerModel(h.db, { id: 'm1', path: '/m/1b.gguf', sha256: SHA, sizeBytes: 7, contextLength: 4096 });
      await registerModel(h.db, { id: 'm0', path: '/m/0.gguf', sha256: SHA, sizeBytes: 1, contextLength: 512 });
      const got = await getModel(h.db, 'm1');
      assert.equal(got?.path, '/m/1b.gguf');
      assert.equal(got?.size_bytes, 7);
      assert.equal(await getModel(h.db, 'missing'), undefined);
      assert.deepEqual((await listModels(h.db)).map((x) => x.id), ['m0', 'm1']);
    });

    it('placements: state upserts keep last_used_at; touches never go backwards', async () => {
      const p = await setPlacementState(h.db, { hostId: 'h1', modelId: 'm1', state: 'loading', progress: 0.25 });
      assert.equal(p.state, 'loading');
      assert.equal(p.progress, 0.25);
      assert.equal(p.last_used_at, null);
      const t1 = new Date('2030-01-01T00:00:01.000Z');
      assert.equal(await touchPlacement(h.db, 'h1', 'm1', t1), true);
      assert.equal(await touchPlacement(h.db, 'h1', 'm1', new Date(t1.getTime() - 1000)), true);
      assert.equal(await touchPlacement(h.db, 'h1', 'missing', t1), false);
      const loaded = await setPlacementState(h.db, { hostId: 'h1', modelId: 'm1', state: 'loaded' });
      assert.equal(loaded.progress, 1);
      assert.equal(loaded.error, null);
      assert.equal(loaded.last_used_at?.toISOString(), t1.toISOString());
      const failed = await setPlacementState(h.db, { hostId: 'h0', modelId: 'm1', state: 'failed', error: 'oom' });
      assert.equal(failed.error, 'oom');
      await setPlacementState(h.db, { hostId: 'h0', modelId: 'm0', state: 'unloaded' });
      await assert.rejects(setPlacementState(h.db, { hostId: 'h0', modelId: 'm0', state: 'loading', progress: 2 }), RangeError);
      assert.deepEqual((await listPlacements(h.db, { modelId: 'm1' })).map((x) => x.host_id), ['h0', 'h1']);
      assert.equal((await listPlacements(h.db)).length, 3);
      await h.db.deleteFrom('hosts').where('id', '=', 'h0').execute();
      assert.equal(await getPlacement(h.db, 'h0', 'm1'), undefined, 'deleting a host cascades');
    });

    it('readFleetState: plain JSON with placements and load', async () => {
      await recordHeartbeat(h.db, 'h1', { models: { m1: { running: 1, queued: 3 } }, freeMemoryBytes: 500, files: ['/m/1b.gguf'] });
      await upsertHost(h.db, { id: 'h2', taskQueue: 'host.h2', info: { maxModelSlots: 2, gpuCount: 1, totalMemoryBytes: 9000 } });
      const state = await readFleetState(h.db, 'm1');
      assert.deepEqual(JSON.parse(JSON.stringify(state)), state);
      assert.deepEqual(state.model, { id: 'm1', contextLength: 4096, sha256: SHA, path: '/m/1b.gguf', sizeBytes: 7 });
      const [h1, h2] = state.hosts;
      assert.equal(h1?.id, 'h1');
      assert.deepEqual(h1?.placements, [{ modelId: 'm1', state: 'loaded', lastUsedAt: '2030-01-01T00:00:01.000Z' }]);
      assert.deepEqual(h1?.load, { m1: { running: 1, queued: 3, lastUsedAt: null } });
      assert.deepEqual(h1?.files, ['/m/1b.gguf']);
      assert.equal(h1?.capacity.freeMemoryBytes, 500);
      assert.deepEqual(h2?.capacity, { maxModelSlots: 2, gpuCount: 1, totalMemoryBytes: 9000, freeMemoryBytes: 0 });
      assert.equal(Number.isNaN(Date.parse(h1?.lastHeartbeatAt ?? '')), false);
      assert.deepEqual(h2?.placements, []);
      assert.equal((await readFleetState(h.db, 'missing')).model, null);
    });

    it('request log: idempotent insert and read back', async () => {
      assert.equal(await insertRequestLog(h.db, logRow('req-1', { stream: true, principal: 'alice' })), true);
      assert.equal(await insertRequestLog(h.db, logRow('req-1', { status: 'error' })), false, 'a retry is a no-op');
      const row = await getRequestLog(h.db, 'req-1');
      assert.deepEqual({ ...row }, logRow('req-1', { stream: true, principal: 'alice' }));
      assert.equal(await getRequestLog(h.db, 'missing'), undefined);
    });

    it('concurrent writes and transactions lose nothing', async () => {
      const hosts = ['c1', 'c2', 'c3', 'c4', 'c5'];
      const models = Array.from({ length: 10 }, (_, i) => `cm${i}`);
      for (const id of hosts) await upsertHost(h.db, { id, taskQueue: `host.${id}`, info: {} });
      for (const id of [...models, 'counter']) {
        await registerModel(h.db, { id, path: `/m/${id}`, sha256: SHA, sizeBytes: 1, contextLength: 1 });
      }
      const pairs = hosts.flatMap((hostId) => models.map((modelId) => ({ hostId, modelId })));
      await Promise.all(pairs.map((p) => setPlacementState(h.db, { ...p, state: 'loading' })));
      const touchedAt = (i: number) => new Date(Date.UTC(2030, 0, 1, 0, 0, i));
      const bump = sql<number>`context_length + 1`;
      await Promise.all([
        ...pairs.map((p) => setPlacementState(h.db, { ...p, state: 'loaded' })),
        ...pairs.map((p, i) => touchPlacement(h.db, p.hostId, p.modelId, touchedAt(i))),
        ...pairs.map((_, i) =>
          h.db.transaction().execute(async (trx) => {
            await insertRequestLog(trx, logRow(`tx-${i}`));
            await new Promise((r) => setTimeout(r, 1)); // hold the transaction open a moment
            await trx.updateTable('models').set({ context_length: bump }).where('id', '=', 'counter').execute();
          }),
        ),
        // Writes outside any transaction, racing ones that roll back: none may be swept along.
        ...Array.from({ length: 25 }, (_, i) => insertRequestLog(h.db, logRow(`solo-${i}`))),
        ...Array.from({ length: 10 }, (_, i) =>
          assert.rejects(
            h.db.transaction().execute(async (trx) => {
              await insertRequestLog(trx, logRow(`rolled-back-${i}`));
              await new Promise((r) => setTimeout(r, 1));
              throw new Error('boom');
            }),
            /boom/,
          ),
        ),
      ]);
      const placements = await h.db.selectFrom('placements').selectAll().where('host_id', 'in', hosts).execute();
      assert.equal(placements.length, 50);
      for (const [i, p] of pairs.entries()) {
        const row = placements.find((x) => x.host_id === p.hostId && x.model_id === p.modelId);
        assert.equal(row?.state, 'loaded');
        assert.equal(row?.last_used_at?.toISOString(), touchedAt(i).toISOString());
      }
      const count = (prefix: string) =>
        h.db.selectFrom('request_log').select((eb) => eb.fn.countAll<number>().as('n'))
          .where('id', 'like', `${prefix}%`).executeTakeFirstOrThrow();
      assert.equal((await count('tx-')).n, 50);
      assert.equal((await count('solo-')).n, 25);
      assert.equal((await count('rolled-back-')).n, 0);
      assert.equal((await getModel(h.db, 'counter'))?.context_length, 51);
    });

    it('listen/notify: in order, fan-out, unsubscribe, size limit', async () => {
      const ch = 'stream:Req-AbC_1';
      const a: string[] = [];
      const b: string[] = [];
      const other: string[] = [];
      const offA = await h.listen(ch, (p) => a.push(p));
      const offB = await h.listen(ch, (p) => b.push(p));
      const offOther = await h.listen('other_channel', (p) => other.push(p));
      const sent = [...Array.from({ length: 20 }, (_, i) => `m${i}`), '', 'héllo ✓', 'x'.repeat(MAX_NOTIFY_PAYLOAD_BYTES)];
      for (const p of sent) await h.notify(ch, p);
      await waitFor(() => a.length === sent.length && b.length === sent.length, 'all payloads');
      assert.deepEqual(a, sent);
      assert.deepEqual(b, sent);
      await offA();
      await offA(); // idempotent
      await h.notify(ch, 'after');
      await waitFor(() => b.at(-1) === 'after', 'the remaining listener');
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(a.length, sent.length, 'an unsubscribed listener gets nothing more');
      assert.deepEqual(other, []);
      const tooBig = 'é'.repeat(3951); // 3951 chars, 7902 bytes
      await assert.rejects(h.notify(ch, tooBig), /7902 bytes; the limit is 7900/);
      await assert.rejects(h.notify('bad name!', 'x'), /invalid channel name/);
      // A LISTEN issued while another caller holds a transaction open must not be rolled back with it.
      const late: string[] = [];
      let entered!: () => void;
      const inside = new Promise<void>((resolve) => (entered = resolve));
      const tx = h.db.transaction().execute(async (trx) => {
        await insertRequestLog(trx, logRow('never'));
        entered();
        await new Promise((r) => setTimeout(r, 30));
        throw new Error('rollback');
      });
      await inside;
      const offLate = await h.listen('late', (p) => late.push(p));
      await assert.rejects(tx, /rollback/);
      await h.notify('late', 'still listening');
      await waitFor(() => late.length === 1, 'the late listener');
      await Promise.all([offB(), offOther(), offLate()]);
    });

    if (label.includes('Postgres')) {
      it('postgres: notifications cross connections and survive a dropped LISTEN connection', async () => {
        const got: string[] = [];
        const off = await h.listen('resilient', (p) => got.push(p));
        const sender = await backend.open();
        try {
          await sender.notify('resilient', 'from another pool');
          await waitFor(() => got.includes('from another pool'), 'a cross-connection notification');
          const killed = await sql<{ ok: boolean }>`select pg_terminate_backend(pid) as ok from pg_stat_activity
            where application_name = ${LISTENER_APPLICATION_NAME} and datname = current_database()`.execute(sender.db);
          assert.equal(killed.rows.length, 1, 'exactly one listener connection per handle');
          for (let i = 0; !got.some((p) => p.startsWith('ping-')); i++) {
            assert.ok(i < 150, 'the listener did not reconnect within 15 s');
            await sender.notify('resilient', `ping-${i}`);
            await new Promise((r) => setTimeout(r, 100));
          }
        } finally {
          await off();
          await sender.close();
        }
      });
    }

    it('close is idempotent; data persists across reopen where the backend persists', async () => {
      await h.close();
      await h.close();
      await assert.rejects(h.listen('x', () => undefined), /closed/);
      if (!backend.persistent) return;
      h = await backend.open();
      assert.deepEqual(await migrateToLatest(h.db, testLog), []);
      assert.equal((await getModel(h.db, 'm1'))?.path, '/m/1b.gguf');
      assert.equal((await getRequestLog(h.db, 'req-1'))?.principal, 'alice');
    });
  });
}

defineDbSuite('db on PGlite (in memory)', async () => ({
  kind: 'pglite',
  persistent: false,
  open: () => openDatabase({ log: testLog }),
  cleanup: async () => undefined,
}));

defineDbSuite('db on PGlite (folder)', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fleet-pglite-'));
  return {
    kind: 'pglite',
    persistent: true,
    open: () => openDatabase({ pgliteDir: path.join(dir, 'db'), log: testLog }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

const serverUrl = process.env.FLEET_TEST_DATABASE_URL;
if (!serverUrl) {
  describe('db on Postgres', () => {
    it('needs FLEET_TEST_DATABASE_URL', () => {
      assert.fail(
        'FLEET_TEST_DATABASE_URL is not set: set it to a PostgreSQL server URL (e.g. ' +
          'postgres://postgres@127.0.0.1:5432/postgres); the test creates and drops its own database in it',
      );
    });
  });
} else {
  defineDbSuite('db on Postgres', async () => {
    const database = await createTestDatabase(serverUrl);
    return {
      kind: 'postgres',
      persistent: true,
      open: () => openDatabase({ databaseUrl: database.url, log: testLog }),
      cleanup: () => database.drop(),
    };
  });
}
