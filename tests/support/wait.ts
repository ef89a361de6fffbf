import type { Kysely } from 'kysely';
import type { Database } from '../../src/db/schema.js';

/** Polls an eventually-consistent read (visibility, an async log write) until it yields. */
export async function waitFor<T>(probe: () => Promise<T | undefined | null>, timeoutMs = 10_000): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
    const v = await probe();
    if (v !== undefined && v !== null) return v;
    if (Date.now() > deadline) return undefined;
    await new Promise((r) => setTimeout(r, delay));
  }
}

/**
 * Hosts join a pool on their first heartbeat after a matching build is registered: waits for
 * every one of `hostIds`, so a test's first request does not find them pool-less (and borrow
 * one through a reassignment).
 */
export async function waitForPoolSeeding(db: Kysely<Database>, hostIds: string[]): Promise<void> {
  if (hostIds.length === 0) return;
  const seeded = await waitFor(async () => {
    const rows = await db.selectFrom('host_pools').select('host_id').where('host_id', 'in', hostIds).execute();
    return rows.length === hostIds.length ? true : undefined;
  }, 10_000);
  if (!seeded) throw new Error('hosts were not seeded into pools');
}
