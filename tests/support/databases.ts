/** Fresh, throw-away databases on the suite's PostgreSQL server, one per test stack. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { testEnv } from './env.js';

export async function createTestDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `fleet_test_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: testEnv.databaseUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(testEnv.databaseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: testEnv.databaseUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
