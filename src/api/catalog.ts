/**
 * The model catalog as the API sees it: public aliases (what clients name) and the builds
 * they point to, read from Postgres and cached for a moment, so the per-request model lookup
 * is a map hit, not a query. A change in this process invalidates it at once; other API
 * processes see it within the TTL.
 */
import type { Kysely } from 'kysely';
import { listAliases } from '../db/aliasesRepo.js';
import { listModels } from '../db/modelsRepo.js';
import type { Database } from '../db/schema.js';
import { modelNotFound } from './errors.js';

/** One build: a GGUF file our hosts load, or a model of a remote provider. */
export type CatalogEntry =
  | { kind: 'gguf'; id: string; path: string; sha256: string; sizeBytes: number; contextLength: number; createdAt: Date }
  | { kind: 'remote'; id: string; providerId: string; upstreamModel: string; canonicalId: string; active: boolean; contextLength: number; createdAt: Date };

/** A public model id (an alias): what clients name; its context length is the desired build's. */
export interface AliasEntry {
  id: string;
  /** The desired build's id and kind. */
  build: string;
  kind: CatalogEntry['kind'];
  previous: string | null;
  minWarm: number;
  contextLength: number;
  createdAt: Date;
}

interface Snapshot {
  at: number;
  aliases: Map<string, AliasEntry>;
  builds: Map<string, CatalogEntry>;
}

export class ModelCatalog {
  private cache: Snapshot | undefined;
  private loading: Promise<Snapshot> | undefined;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly ttlMs = 2000,
  ) {}

  private async snapshot(): Promise<Snapshot> {
    if (this.cache && Date.now() - this.cache.at < this.ttlMs) return this.cache;
    this.loading ??= Promise.all([listModels(this.db), listAliases(this.db)])
      .then(([rows, aliasRows]) => {
        const builds = new Map<string, CatalogEntry>(
          rows.map((r): [string, CatalogEntry] => [
            r.id,
            r.kind === 'gguf'
              ? { kind: 'gguf', id: r.id, path: r.path ?? '', sha256: r.sha256 ?? '', sizeBytes: Number(r.size_bytes ?? 0), contextLength: r.context_length, createdAt: new Date(r.created_at) }
              : {
                  kind: 'remote',
                  id: r.id,
                  providerId: r.provider_id ?? '',
                  upstreamModel: r.upstream_model ?? '',
                  canonicalId: r.canonical_id ?? r.id,
                  active: r.active,
                  contextLength: r.context_length,
                  createdAt: new Date(r.created_at),
                },
          ]),
        );
        const aliases = new Map<string, AliasEntry>();
        for (const a of aliasRows) {
          const b = builds.get(a.desired_build);
          if (!b) continue;
          aliases.set(a.id, {
            id: a.id,
            build: b.id,
            kind: b.kind,
            previous: a.previous_build,
            minWarm: a.min_warm,
            contextLength: b.contextLength,
            createdAt: new Date(a.created_at),
          });
        }
        this.cache = { at: Date.now(), aliases, builds };
        return this.cache;
      })
      .finally(() => (this.loading = undefined));
    return this.loading;
  }

  /** Every alias (what `GET /v1/models` lists). */
  async all(): Promise<Map<string, AliasEntry>> {
    return (await this.snapshot()).aliases;
  }

  private async lookup<T>(pick: (s: Snapshot) => T | undefined): Promise<T | undefined> {
    const hit = pick(await this.snapshot());
    if (hit) return hit;
    // A miss may be a model registered by another process since the last refresh.
    this.invalidate();
    return pick(await this.snapshot());
  }

  /** Every build by id (both kinds). */
  async builds(): Promise<Map<string, CatalogEntry>> {
    return (await this.snapshot()).builds;
  }

  /** The alias a client names. */
  async get(id: string): Promise<AliasEntry | undefined> {
    return this.lookup((s) => s.aliases.get(id));
  }

  /** A build by its catalog id (operator endpoints). */
  async getBuild(id: string): Promise<CatalogEntry | undefined> {
    return this.lookup((s) => s.builds.get(id));
  }

  /** What an operator's load or unload names: a build by its id, else an alias's desired build. */
  async resolveBuild(id: string): Promise<CatalogEntry | undefined> {
    return (await this.getBuild(id)) ?? this.lookup((s) => {
      const build = s.aliases.get(id)?.build;
      return build === undefined ? undefined : s.builds.get(build);
    });
  }

  invalidate(): void {
    this.cache = undefined;
  }
}

/** The alias a request names, or the 404 every inference route answers for an unknown one. */
export async function aliasOr404(catalog: ModelCatalog, id: string): Promise<AliasEntry> {
  const model = await catalog.get(id);
  if (!model) throw modelNotFound(id);
  return model;
}
