/**
 * The providers a provider worker calls, by id: their records read from the database (cached
 * for a moment, so a generate costs no query) and one connection pool each, rebuilt when the
 * provider's connect timeout or transport changes; attested builds get pinned-only pools
 * (src/providers/attestedRoutes.ts). The key is looked up by the variable name the provider
 * stores, through the config module's secrets — never stored, never logged.
 */
import { providerUnusable } from '../domain/providerCatalog.js';
import type { Agent } from 'undici';
import type { Kysely } from 'kysely';
import { getProvider, type ProviderRecord } from '../db/providersRepo.js';
import type { Database } from '../db/schema.js';
import { AttestedRoutes } from './attestedRoutes.js';
import { upstreamAgent, type UpstreamTarget } from './openaiUpstream.js';

export interface ResolvedProvider {
  record: ProviderRecord;
  target: UpstreamTarget;
}

export class ProviderDirectory {
  private readonly cache = new Map<string, { at: number; record: ProviderRecord | undefined }>();
  private readonly agents = new Map<string, { version: string; agent: Agent }>();
  /** Attested builds: pins, keys and a pinned-only pool each. */
  readonly attested: AttestedRoutes;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly secrets: { get(name: string): string | undefined },
    private readonly ttlMs = 2000,
  ) {
    this.attested = new AttestedRoutes(db, ttlMs);
  }

  /** The provider, or why it cannot be called (unknown, disabled, its key not set). */
  async resolve(id: string): Promise<ResolvedProvider | { unusable: string }> {
    const hit = this.cache.get(id);
    let record = hit && Date.now() - hit.at < this.ttlMs ? hit.record : undefined;
    if (!record) {
      record = await getProvider(this.db, id);
      this.cache.set(id, { at: Date.now(), record });
    }
    if (!record) return { unusable: `provider ${id} is not configured` };
    const apiKey = record.api_key_env ? this.secrets.get(record.api_key_env) : undefined;
    const why = providerUnusable({ enabled: record.enabled, apiKeyEnv: record.api_key_env ?? null, keySet: apiKey !== undefined });
    if (why) return { unusable: `provider ${id}: ${why}` };
    let dispatcher: Agent;
    try {
      dispatcher = this.agentFor(record);
    } catch (err) {
      return { unusable: `provider ${id}: ${(err as Error).message}` }; // e.g. its CA file cannot be read
    }
    return { record, target: { baseUrl: record.base_url, apiKey, timeouts: record.timeouts, dispatcher } };
  }

  private agentFor(p: ProviderRecord): Agent {
    const version = JSON.stringify([p.timeouts.connect_ms, p.transport]);
    const have = this.agents.get(p.id);
    if (have && have.version === version) return have.agent;
    void have?.agent.close().catch(() => undefined);
    const agent = upstreamAgent(p);
    this.agents.set(p.id, { version, agent });
    return agent;
  }

  async close(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.agent.close().catch(() => undefined)));
    this.agents.clear();
    await this.attested.close();
  }
}
