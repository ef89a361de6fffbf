/**
 * Embeddings: `request_log.kind` may be `embedding` (POST /v1/embeddings runs as an
 * inferenceRequest like a chat). The check constraint is replaced by one that admits it.
 * Self-contained (no src/ imports).
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table request_log drop constraint if exists request_log_kind_check`.execute(db);
  await sql`alter table request_log add constraint request_log_kind_check check (kind in ('chat', 'completion', 'embedding'))`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`delete from request_log where kind = 'embedding'`.execute(db);
  await sql`alter table request_log drop constraint if exists request_log_kind_check`.execute(db);
  await sql`alter table request_log add constraint request_log_kind_check check (kind in ('chat', 'completion'))`.execute(db);
}
