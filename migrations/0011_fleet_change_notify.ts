/**
 * Fleet change notifications: every write to what routing reads (hosts, placements, pools,
 * aliases, builds, pin sets, providers, replica health) sends a NOTIFY on `fleet_changes`, so an
 * API process can keep its routing snapshot current without a query per request. The payload
 * is `load:<host id>` when only a host's reported load or heartbeat time changed (the snapshot
 * re-reads that host alone), `load` when only a placement's load progress did (routing does not
 * use it), and the table's name for anything else, which the snapshot must read before it routes
 * again.
 * Self-contained (no src/ imports).
 */
import { sql, type Kysely } from 'kysely';

const STATEMENT_TABLES = ['host_pools', 'aliases', 'models', 'pin_sets', 'providers', 'replica_health'];
/**
 * Row-level, with one function each (PL/pgSQL resolves every column it names): an UPDATE that
 * changed nothing but these columns is a load change.
 */
const ROW_TABLES: Record<string, { structural: string[]; load: string }> = {
  hosts: { structural: ['status', 'suspect_since', 'info', 'task_queue'], load: `'load:' || NEW.id` },
  placements: { structural: ['state', 'last_used_at'], load: `'load'` },
};

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create function fleet_notify_change() returns trigger language plpgsql as $$
    begin
      perform pg_notify('fleet_changes', TG_TABLE_NAME);
      return null;
    end $$`.execute(db);
  for (const [t, { structural, load }] of Object.entries(ROW_TABLES)) {
    const same = structural.map((c) => `OLD.${c} is not distinct from NEW.${c}`).join(' and ');
    await sql`
      create function ${sql.raw(`fleet_notify_${t}_change`)}() returns trigger language plpgsql as $$
      begin
        if TG_OP = 'UPDATE' and ${sql.raw(same)} then
          perform pg_notify('fleet_changes', ${sql.raw(load)});
        else
          perform pg_notify('fleet_changes', TG_TABLE_NAME);
        end if;
        return null;
      end $$`.execute(db);
    await sql`create trigger ${sql.raw(`${t}_fleet_change`)} after insert or update or delete on ${sql.table(t)} for each row execute function ${sql.raw(`fleet_notify_${t}_change`)}()`.execute(db);
    // TRUNCATE has no rows: its own statement-level trigger.
    await sql`create trigger ${sql.raw(`${t}_fleet_truncate`)} after truncate on ${sql.table(t)} for each statement execute function fleet_notify_change()`.execute(db);
  }
  for (const t of STATEMENT_TABLES) {
    await sql`create trigger ${sql.raw(`${t}_fleet_change`)} after insert or update or delete or truncate on ${sql.table(t)} for each statement execute function fleet_notify_change()`.execute(db);
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of Object.keys(ROW_TABLES)) {
    await sql`drop trigger if exists ${sql.raw(`${t}_fleet_change`)} on ${sql.table(t)}`.execute(db);
    await sql`drop trigger if exists ${sql.raw(`${t}_fleet_truncate`)} on ${sql.table(t)}`.execute(db);
    await sql`drop function if exists ${sql.raw(`fleet_notify_${t}_change`)}()`.execute(db);
  }
  for (const t of STATEMENT_TABLES) await sql`drop trigger if exists ${sql.raw(`${t}_fleet_change`)} on ${sql.table(t)}`.execute(db);
  await sql`drop function if exists fleet_notify_change()`.execute(db);
}
