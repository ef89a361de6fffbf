/**
 * Request-time state of attested provider builds, for the provider worker: the build's pinned
 * TLS fingerprints (with the signing keys they vouch for) and backend count, read from its pin
 * set (cached for a moment), and one connection pool per build whose connector admits only a
 * pinned fingerprint. When the pin set changes the pool is replaced, so no keep-alive
 * connection to an evicted key outlives the cycle that evicted it. A call goes first to the
 * backend that served its conversation's earlier turns (its KV cache may hold the prefix), or
 * its session's, else round-robin, avoiding backends whose first token comes far later than the
 * others'; a retry walks to the next index (another backend). What a route remembers goes with
 * it when the pin set changes (the indices may mean other backends then).
 */
import type { Kysely } from 'kysely';
import { Agent } from 'undici';
import { readPinRecord } from '../db/pinSetsRepo.js';
import type { Database } from '../db/schema.js';
import { rotationBaseUrl, splitInferenceUrl, type VouchedKeys } from '../domain/attestedProvider.js';
import { chooseBackend, ewma, lastKnownBlock } from '../domain/prefixRouting.js';
import type { ProviderRecord } from '../db/providersRepo.js';
import { providerConnector } from './attestedTransport.js';
import { setRecent } from '../common/recentMap.js';

export interface AttestedRoute {
  pins: ReadonlySet<string>;
  keys: Readonly<Record<string, VouchedKeys>>;
  dispatcher: Agent;
  /** The base URL of the next backend to try (rotation host), or the provider's URL when it cannot rotate. */
  nextBaseUrl(): string;
  /**
   * The backend a request tries first (src/domain/prefixRouting.ts chooseBackend): the one that
   * served its conversation before, else its session's, else the next in rotation — passing
   * over one whose first-token time is far behind the others'.
   */
  firstBaseUrl(o: { blocks: readonly string[]; session?: string }): string;
  /** A backend answered: its time to first text, and the conversation (block hashes) it now holds. */
  served(baseUrl: string, o: { ttftMs: number; blocks: readonly string[] }): void;
}

/** Conversations remembered per build (their last block hash → backend index), least recent dropped first. */
const MAX_REMEMBERED = 10_000;

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
    const rotates = split.ok && count > 0;
    const urlOf = (i: number) => (rotates ? rotationBaseUrl(split.parts, i) : record.base_url);
    const indexOf = new Map(Array.from({ length: rotates ? count : 0 }, (_, i) => [urlOf(i), i]));
    const ttftMs: Array<number | undefined> = [];
    const conversations = new Map<string, number>();
    const route: AttestedRoute = {
      pins,
      keys: pin.keys,
      dispatcher: new Agent({
        connect: providerConnector({ transport: record.transport, connectMs: record.timeouts.connect_ms, accept: (fp) => pins.has(fp) }),
        keepAliveTimeout: 30_000,
        connections: 64,
      }),
      nextBaseUrl: () => urlOf(next++ % Math.max(count, 1)),
      firstBaseUrl({ blocks, session }) {
        if (!rotates) return record.base_url;
        const held = lastKnownBlock(blocks, (h) => conversations.get(h))?.value;
        const i = chooseBackend({ count, next, ...(held !== undefined ? { held } : {}), ...(session !== undefined ? { session } : {}), ttftMs });
        // Only a call that went by rotation moves it on.
        if (held === undefined && session === undefined) next++;
        return urlOf(i);
      },
      served(baseUrl, o) {
        const i = indexOf.get(baseUrl);
        if (i === undefined) return;
        ttftMs[i] = ewma(ttftMs[i], o.ttftMs);
        const last = o.blocks.at(-1);
        if (last === undefined) return;
        setRecent(conversations, last, i, MAX_REMEMBERED);
      },
    };
    this.entries.set(buildId, { at: Date.now(), version, route });
    return route;
  }

  async close(): Promise<void> {
    await Promise.all([...this.entries.values()].map((e) => e.route.dispatcher.destroy().catch(() => undefined)));
    this.entries.clear();
  }
}
