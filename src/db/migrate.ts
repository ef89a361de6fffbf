/**
 * Applies the migrations in `migrations/` with Kysely's Migrator. The folder is resolved from
 * this file's URL, not the working directory, so `fleet` works from anywhere. On PostgreSQL the
 * Migrator runs inside a transaction holding an advisory lock, so processes that start at the
 * same moment migrate one after the other and the later ones find nothing to do; on PGlite
 * there is a single connection anyway.
 */
import { readdir } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import { Migrator, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import { log as rootLog, type Logger } from '../logger.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

const MIGRATION_FILE = /^(?<name>.+?)\.(?<ext>ts|mts|js|mjs)$/;

/** Imports every migration module in `dir`, keyed by file name without extension. */
export class FolderMigrationProvider implements MigrationProvider {
  constructor(private readonly dir: string = MIGRATIONS_DIR) {}

  async getMigrations(): Promise<Record<string, Migration>> {
    const files = (await readdir(this.dir)).filter((f) => !f.endsWith('.d.ts')).sort();
    const migrations: Record<string, Migration> = {};
    for (const file of files) {
      const name = MIGRATION_FILE.exec(file)?.groups?.name;
      // A built copy next to the source (0001_x.js beside 0001_x.ts) is the same migration.
      if (!name || name in migrations) continue;
      const mod = (await import(pathToFileURL(path.join(this.dir, file)).href)) as Partial<Migration>;
      if (typeof mod.up !== 'function') {
        throw new Error(`migration ${file} does not export an up() function`);
      }
      migrations[name] = { up: mod.up, ...(typeof mod.down === 'function' ? { down: mod.down } : {}) };
    }
    return migrations;
  }
}

/** A Migrator over `migrations/` (or `dir`), e.g. for migrateDown in tests and tools. */
export function createMigrator<DB>(db: Kysely<DB>, dir?: string): Migrator {
  return new Migrator({ db, provider: new FolderMigrationProvider(dir) });
}

/**
 * Brings the schema up to date and returns the names of the migrations applied by this call
 * (empty when already current). Throws naming the migration that failed; its transaction is
 * rolled back, so nothing of it remains.
 */
export async function migrateToLatest<DB>(db: Kysely<DB>, log: Logger = rootLog): Promise<string[]> {
  const { error, results = [] } = await createMigrator(db).migrateToLatest();
  const applied = results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
  if (error !== undefined) {
    const failed = results.find((r) => r.status === 'Error')?.migrationName;
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      failed ? `database migration "${failed}" failed: ${reason}` : `database migration failed: ${reason}`,
      { cause: error },
    );
  }
  if (applied.length > 0) log.info({ applied }, 'database migrations applied');
  else log.debug('database schema is up to date');
  return applied;
}
