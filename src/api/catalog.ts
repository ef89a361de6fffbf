/**
 * The model catalog as the API sees it: read from Postgres and cached for a moment, so the
 * per-request model lookup is a map hit, not a query. A registration in this process
 * invalidates it at once; other API processes see it within the TTL.
 */
import type { Kysely } from 'kysely';
import { listModels } from '../db/modelsRepo.js';
import type { Database } from '../db/schema.js';

export interface CatalogEntry {
  id: string;
  path: string;
  sha256: string;
  sizeBytes: number;
  contextLength: number;
  createdAt: Date;
}

export class ModelCatalog {
  private cache: { at: number; models: Map<string, CatalogEntry> } | undefined;
  private loading: Promise<Map<string, CatalogEntry>> | undefined;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly ttlMs = 2000,
  ) {}

  async all(): Promise<Map<string, CatalogEntry>> {
    if (this.cache && Date.now() - this.cache.at < this.ttlMs) return this.cache.models;
    this.loading ??= listModels(this.db)
      .then((rows) => {
        const models = new Map(
          rows.map((r) => [
            r.id,
            {
              id: r.id,
              path: r.path,
              sha256: r.sha256,
              sizeBytes: Number(r.size_bytes),
              contextLength: r.context_length,
              createdAt: new Date(r.created_at),
            },
          ]),
        );
        this.cache = { at: Date.now(), models };
        return models;
      })
      .finally(() => (this.loading = undefined));
    return this.loading;
  }

  async get(id: string): Promise<CatalogEntry | undefined> {
    const hit = (await this.all()).get(id);
    if (hit) return hit;
    // A miss may be a model registered by another process since the last refresh.
    this.invalidate();
    return (await this.all()).get(id);
  }

  invalidate(): void {
    this.cache = undefined;
  }
}
