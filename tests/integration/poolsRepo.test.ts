/**
 * Aliases and host pools in the database, on PGlite and on a real PostgreSQL: registering a
 * build creates its alias (never repoints one), setting a new desired build keeps the old one
 * as previous, seeding a host's pool from what it runs or has, a second concurrent move of
 * one host is refused, and the fleet view resolves an alias to its builds.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openDatabase, type DbHandle } from '../../src/db/connect.js';
import { getAlias, setAlias } from '../../src/db/aliasesRepo.js';
import { readFleetState } from '../../src/db/fleetStateRepo.js';
import { recordHeartbeat, upsertHost } from '../../src/db/hostsRepo.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { registerModel } from '../../src/db/modelsRepo.js';
import { setPlacementState } from '../../src/db/placementsRepo.js';
import { getHostPool, markHostMoving, seedHostPool, setHostPool } from '../../src/db/poolsRepo.js';
import { log } from '../../src/logger.js';
import { createTestDatabase } from '../support/databases.js';

const testLog = log.child({ test: 'poolsRepo' }, { level: 'warn' });
const SHA = 'b'.repeat(64);
const build = (id: string) => ({ id, path: `/m/${id}.gguf`, sha256: SHA, sizeBytes: 10, contextLength: 512 });

function suite(label: string, open: () => Promise<{ h: DbHandle; drop: () => Promise<void> }>) {
  describe(label, () => {
    let h: DbHandle;
    let drop: () => Promise<void>;
    before(async () => {
      ({ h, drop } = await open());
      await migrateToLatest(h.db, testLog);
    });
    after(async () => {
      await h?.close();
      await drop?.();
    });

    it('a build gets an alias of its id, unless told otherwise; registration never repoints one', async () => {
      await registerModel(h.db, build('chat-1'));
      await registerModel(h.db, { ...build('chat-2'), alias: false });
      await registerModel(h.db, { ...build('code-1'), alias: 'code' });
      assert.equal((await getAlias(h.db, 'chat-1'))?.desired_build, 'chat-1');
      assert.equal(await getAlias(h.db, 'chat-2'), undefined);
      assert.equal((await getAlias(h.db, 'code'))?.desired_build, 'code-1');
      await registerModel(h.db, { ...build('code-2'), alias: 'code' });
      assert.equal((await getAlias(h.db, 'code'))?.desired_build, 'code-1', 'an existing alias is not repointed');
    });

    it('a new desired build keeps the old one as previous; null clears it; bad builds are refused', async () => {
      const r = await setAlias(h.db, { id: 'chat-1', desired: 'chat-2' });
      assert.equal(r.kind, 'ok');
      assert.deepEqual(r.kind === 'ok' && [r.alias.desired_build, r.alias.previous_build, r.created], ['chat-2', 'chat-1', false]);
      const warm = await setAlias(h.db, { id: 'chat-1', minWarm: 2 });
      assert.deepEqual(warm.kind === 'ok' && [warm.alias.desired_build, warm.alias.previous_build, warm.alias.min_warm], ['chat-2', 'chat-1', 2]);
      const back = await setAlias(h.db, { id: 'chat-1', desired: 'chat-1' });
      assert.deepEqual(back.kind === 'ok' && [back.alias.desired_build, back.alias.previous_build], ['chat-1', 'chat-2']);
      const end = await setAlias(h.db, { id: 'chat-1', previous: null });
      assert.deepEqual(end.kind === 'ok' && end.alias.previous_build, null);
      assert.deepEqual(await setAlias(h.db, { id: 'chat-1', desired: 'nope' }), { kind: 'unknown_build', build: 'nope', param: 'desired' });
      assert.deepEqual(await setAlias(h.db, { id: 'new', minWarm: 1 }), { kind: 'desired_required' });
      const created = await setAlias(h.db, { id: 'new', desired: 'chat-2' });
      assert.equal(created.kind === 'ok' && created.created, true);
    });

    it('seeding: what a host runs wins over what it has; an unmatched host waits; a seeded host keeps its pool', async () => {
      for (const id of ['s1', 's2', 's3']) await upsertHost(h.db, { id, taskQueue: `host.${id}`, info: {} });
      await recordHeartbeat(h.db, 's1', { models: { 'code-1': { running: 0, queued: 0 } }, files: ['/m/chat-1.gguf'] });
      await recordHeartbeat(h.db, 's2', { models: {}, files: ['/m/chat-1.gguf'] });
      await recordHeartbeat(h.db, 's3', { models: {}, files: ['/m/other.gguf'] });
      assert.deepEqual(await seedHostPool(h.db, 's1'), { alias: 'code', source: 'running' });
      assert.deepEqual(await seedHostPool(h.db, 's2'), { alias: 'chat-1', source: 'advertised' });
      assert.equal(await seedHostPool(h.db, 's3'), null);
      assert.equal(await seedHostPool(h.db, 's1'), 'kept');
    });

    it('one move at a time per host; the fleet view resolves an alias to its builds and pools', async () => {
      assert.equal(await markHostMoving(h.db, 's2'), true);
      assert.equal(await markHostMoving(h.db, 's2'), false, 'a second move of the same host is refused');
      await setHostPool(h.db, { hostId: 's2', alias: 'chat-1', state: 'serving', moved: true });
      const row = await getHostPool(h.db, 's2');
      assert.equal(row?.state, 'serving');
      assert.ok(row?.moved_at instanceof Date);
      await setAlias(h.db, { id: 'chat-1', desired: 'chat-2' });
      await setPlacementState(h.db, { hostId: 's2', modelId: 'chat-1', state: 'loaded' });
      const view = await readFleetState(h.db, 'chat-1', 'alias');
      assert.equal(view.model?.id, 'chat-2');
      assert.equal(view.previous?.id, 'chat-1');
      assert.deepEqual(view.alias, { id: 'chat-1', desired: 'chat-2', previous: 'chat-1', minWarm: 2 });
      assert.equal(view.pools.hostPools.s2?.alias, 'chat-1');
      assert.equal((await readFleetState(h.db, 'chat-2', 'alias')).model, null, 'a build without an alias is no public model');
      assert.equal((await readFleetState(h.db, 'chat-2', 'build')).model?.id, 'chat-2');
    });
  });
}

suite('pools repo on PGlite', async () => {
  const h = await openDatabase({ log: testLog });
  return { h, drop: async () => undefined };
});
suite('pools repo on Postgres', async () => {
  const db = await createTestDatabase();
  const h = await openDatabase({ databaseUrl: db.url, log: testLog });
  return { h, drop: () => db.drop() };
});
