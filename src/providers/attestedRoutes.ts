/**
 * Request-time state of attested provider builds, for the provider worker: the build's pinned
 * TLS fingerprints (with the signing keys they vouch for) and backend count, read from its pin
 * set (cached for a moment), and one connection pool per build whose connector admits only a
 * pinned fingerprint. When the pin set changes the pool is replaced, so no keep-alive
 * connection to an evicted key outlives the cycle that evicted it. Calls go to the rotation
 * hosts round-robin; a retry walks to the next index (another backend).
 */
import type { Kysely } from 'kysely';
import { Agent } from 'undici';
import { readPinRecord } from '../db/pinSetsRepo.js';
import type { Database } from '../db/schema.js';
import { rotationBaseUrl, splitInferenceUrl, type VouchedKeys } from '../domain/attestedProvider.js';
import type { ProviderRecord } from '../db/providersRepo.js';
import { providerConnector } from './attestedTransport.js';

export interface AttestedRoute {
  pins: ReadonlySet<string>;
  keys: Readonly<Record<string, VouchedKeys>>;
  dispatcher: Agent;
  /** The base URL of the next backend to try (rotation host), or the provider's URL when it cannot rotate. */
  nextBaseUrl(): string;
}

interface Entry {
  at: number;
  version: string;
  route: AttestedRoute;
}

export class AttestedRoutes {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly ttlMs = 2000,
  ) {}

  async route(record: ProviderRecord, buildId: string): Promise<AttestedRoute> {
    const hit = this.entries.get(buildId);
    if (hit && Date.now() - hit.at < this.ttlMs) return hit.route;
    const pin = await readPinRecord(this.db, buildId);
    const version = JSON.stringify([pin.pinSet.fingerprints, pin.keys, pin.backendCount, record.base_url, record.transport, record.timeouts.connect_ms]);
    if (hit && hit.version === version) {
      hit.at = Date.now();
      return hit.route;
    }
    void hit?.route.dispatcher.destroy().catch(() => undefined);
    const pins = new Set(pin.pinSet.fingerprints);
    const split = splitInferenceUrl(record.base_url);
    const count = pin.backendCount ?? 0;
    let next = 0;
    const route: AttestedRoute = {
      pins,
      keys: pin.keys,
      dispatcher: new Agent({
        connect: providerConnector({ transport: record.transport, connectMs: record.timeouts.connect_ms, accept: (fp) => pins.has(fp) }),
        keepAliveTimeout: 30_000,
        connections: 64,
      }),
      nextBaseUrl: () => (split.ok && count > 0 ? rotationBaseUrl(split.parts, next++ % count) : record.base_url),
    };
    this.entries.set(buildId, { at: Date.now(), version, route });
    return route;
  }

  async close(): Promise<void> {
    await Promise.all([...this.entries.values()].map((e) => e.route.dispatcher.destroy().catch(() => undefined)));
    this.entries.clear();
  }
}
