/**
 * Presented API key → principal, cached briefly in the API process so the hot path does not
 * query per request. A key id's row (or its absence: garbage keys must not turn into a query
 * each) is kept for `ttlMs`; concurrent misses for one id share one query. A revoke in this
 * process invalidates at once; other API processes see it within the TTL — and at once for
 * anything budgeted, because the reservation re-reads the key row under its lock.
 */
import type { Kysely } from 'kysely';
import { getKey } from '../db/keysRepo.js';
import type { Database } from '../db/schema.js';
import { parseApiKey, secretMatches } from './apiKey.js';
import type { Principal } from './auth.js';
import { setRecent } from '../common/recentMap.js';

interface CachedKey {
  keyId: string;
  accountId: string;
  secretHash: string;
  revoked: boolean;
}

export class KeyResolver {
  private readonly cache = new Map<string, { at: number; key: CachedKey | null }>();
  private readonly pending = new Map<string, Promise<CachedKey | null>>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly ttlMs = 5_000,
    /** Bound on cached ids, so a stream of made-up key ids cannot grow memory without end. */
    private readonly maxEntries = 10_000,
  ) {}

  /** The principal of a valid, unrevoked key; null for anything else (the caller decides). */
  async resolve(rawKey: string): Promise<Principal | null> {
    const parsed = parseApiKey(rawKey);
    if (!parsed) return null;
    const key = await this.lookup(parsed.keyId);
    if (!key || key.revoked || !secretMatches(parsed.secret, key.secretHash)) return null;
    return { keyId: key.keyId, accountId: key.accountId };
  }

  invalidate(keyId: string): void {
    this.cache.delete(keyId);
  }

  private async lookup(keyId: string): Promise<CachedKey | null> {
    const hit = this.cache.get(keyId);
    if (hit && Date.now() - hit.at < this.ttlMs) return hit.key;
    let p = this.pending.get(keyId);
    if (!p) {
      p = getKey(this.db, keyId)
        .then((row) => {
          const key = row
            ? { keyId: row.id, accountId: row.account_id, secretHash: row.secret_hash, revoked: row.revoked_at !== null }
            : null;
          setRecent(this.cache, keyId, { at: Date.now(), key }, this.maxEntries);
          return key;
        })
        .finally(() => this.pending.delete(keyId));
      this.pending.set(keyId, p);
    }
    return p;
  }
}
