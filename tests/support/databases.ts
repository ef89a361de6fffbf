/** Fresh, throw-away databases on a PostgreSQL server (the suite's by default), one per test stack. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { testEnv } from './env.js';

export async function createTestDatabase(serverUrl: string = testEnv.databaseUrl): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `fleet_test_${randomBytes(5).toString('hex')}`;
  const admin = async (text: string) => {
    const client = new pg.Client({ connectionString: serverUrl });
    await client.connect();
    try {
      await client.query(text);
    } finally {
      await client.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}
