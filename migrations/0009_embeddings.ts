/**
 * Embeddings and token counts: `request_log.kind` may be `embedding` (POST /v1/embeddings) or
 * `count_tokens` (POST /v1/messages/count_tokens); both run as an inferenceRequest like a chat.
 * The check constraint is replaced by one that admits them.
 * Self-contained (no src/ imports).
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table request_log drop constraint if exists request_log_kind_check`.execute(db);
  await sql`alter table request_log add constraint request_log_kind_check check (kind in ('chat', 'completion', 'embedding', 'count_tokens'))`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`delete from request_log where kind in ('embedding', 'count_tokens')`.execute(db);
  await sql`alter table request_log drop constraint if exists request_log_kind_check`.execute(db);
  await sql`alter table request_log add constraint request_log_kind_check check (kind in ('chat', 'completion'))`.execute(db);
}
