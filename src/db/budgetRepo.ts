/**
 * Reserve → settle / release of API-key token budgets, in PostgreSQL (or PGlite).
 *
 * Why it cannot overshoot: `reserveTokens` runs one transaction that first locks the key's
 * row (`SELECT … FOR UPDATE`), then reads spend, held reservations and window spend in ONE
 * statement — so one snapshot, taken after the lock — and inserts the reservation only if
 * the pure decision (src/domain/budget.ts) allows it. Concurrent reservations for a key are
 * therefore serialized, and a settlement (a single statement, atomic) is seen either whole
 * or not at all. PGlite's driver serializes transactions outright, so the same holds there.
 *
 * Every exit of a request ends its reservation exactly once: `settleReservation` (actual
 * usage; idempotent) or `releaseReservationIfHeld` (gives the hold back; a settled one stays
 * settled). `releaseExpiredReservations` is the sweep's safety net for processes that died.
 * Times come from the database clock, so API processes with skewed clocks agree.
 *
 * Rolling windows read `key_window_buckets` (the ledger summed per bucket of 1/100 of the
 * window, written by the settlement in the same statement), not the ledger itself: the ledger
 * grows with traffic, and the window check runs under the key's lock on every request.
 */
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Usage } from '../common/inference.js';
import {
  checkReservation,
  WINDOW_BUCKETS,
  windowResetAt,
  windowRetryAfterSeconds,
  type BudgetLimits,
  type BudgetRefusal,
} from '../domain/budget.js';
import { ReservationState, type Database } from './schema.js';

/** A key's rolling window as its rate-limit headers show it, after this reservation. */
export interface WindowState {
  limit: number;
  remaining: number;
  seconds: number;
}

export type ReserveOutcome =
  | { kind: 'reserved'; window?: WindowState }
  | { kind: 'refused'; refusal: BudgetRefusal }
  /** The key is unknown or was revoked (possibly by another API process, after our cache read it). */
  | { kind: 'revoked' };

interface KeyBudgetRow {
  account_id: string;
  revoked_at: Date | null;
  balance_limit: number | null;
  window_limit: number | null;
  window_seconds: number | null;
  spent: number;
  reserved: number;
  window_spent: number;
  window_newest: Date | null;
  now: Date;
}

/** SQL for a key's window bucket length in seconds: windowBucketSeconds() of src/domain/budget.ts. */
const bucketSecondsOf = (windowSeconds: RawBuilder<unknown>) => sql`greatest(1, ceil(${windowSeconds}::numeric / ${WINDOW_BUCKETS}::numeric))`;
/** Buckets that still overlap the window ending now: their end is after its start. */
const inWindow = (b: string, k: string) =>
  sql`${sql.ref(`${b}.key_id`)} = ${sql.ref(`${k}.id`)} and ${sql.ref(`${b}.bucket_start`)} > now() - make_interval(secs => (${sql.ref(`${k}.window_seconds`)} + ${bucketSecondsOf(sql.ref(`${k}.window_seconds`))})::float8)`;

/** The key's limits and current figures, in one statement (one snapshot). */
async function readKeyBudget(db: Kysely<Database>, keyId: string): Promise<KeyBudgetRow | undefined> {
  const { rows } = await sql<KeyBudgetRow>`
    select k.account_id, k.revoked_at, k.balance_limit, k.window_limit, k.window_seconds, k.spent,
      (select coalesce(sum(r.amount), 0) from reservations r where r.key_id = k.id and r.state = 'held') as reserved,
      case when k.window_seconds is null then 0 else
        (select coalesce(sum(b.tokens), 0) from key_window_buckets b where ${inWindow('b', 'k')}) end as window_spent,
      case when k.window_seconds is null then null else
        (select max(b.bucket_start) + make_interval(secs => ${bucketSecondsOf(sql.ref('k.window_seconds'))}::float8)
          from key_window_buckets b where ${inWindow('b', 'k')}) end as window_newest,
      now() as now
    from api_keys k where k.id = ${keyId}`.execute(db);
  const row = rows[0];
  // Sums come back as int8 (a number through our parsers); normalise anything else defensively.
  return row && { ...row, spent: Number(row.spent), reserved: Number(row.reserved), window_spent: Number(row.window_spent) };
}

const limitsOf = (k: KeyBudgetRow): BudgetLimits => ({
  balance: k.balance_limit === null ? null : Number(k.balance_limit),
  window: k.window_limit === null || k.window_seconds === null ? null : { limit: Number(k.window_limit), seconds: k.window_seconds },
});

/**
 * Holds `amount` tokens of the key's budget for `requestId` until settled or released, or
 * refuses. The hold expires `ttlSeconds` from now (the sweep releases it if nobody did).
 */
export async function reserveTokens(
  db: Kysely<Database>,
  o: { requestId: string; keyId: string; amount: number; ttlSeconds: number },
): Promise<ReserveOutcome> {
  return db.transaction().execute(async (tx) => {
    // The lock first; the figures in a separate statement, so its snapshot postdates the lock.
    const locked = await tx.selectFrom('api_keys').select('id').where('id', '=', o.keyId).forUpdate().executeTakeFirst();
    if (!locked) return { kind: 'revoked' };
    const k = (await readKeyBudget(tx, o.keyId))!;
    if (k.revoked_at !== null) return { kind: 'revoked' };
    const limits = limitsOf(k);
    const verdict = checkReservation(o.amount, limits, { spent: k.spent, reserved: k.reserved, windowSpent: k.window_spent });
    switch (verdict.kind) {
      case 'ok':
        await tx
          .insertInto('reservations')
          .values({
            request_id: o.requestId,
            key_id: o.keyId,
            amount: o.amount,
            expires_at: sql<Date>`now() + make_interval(secs => ${o.ttlSeconds}::float8)`,
          })
          .execute();
        if (!limits.window) return { kind: 'reserved' };
        const remaining = Math.max(0, limits.window.limit - k.window_spent - k.reserved - o.amount);
        return { kind: 'reserved', window: { limit: limits.window.limit, remaining, seconds: limits.window.seconds } };
      case 'balance':
        return { kind: 'refused', refusal: { kind: 'balance', amount: o.amount, remaining: verdict.remaining, reserved: k.reserved } };
      case 'exceedsWindow':
        return { kind: 'refused', refusal: { kind: 'exceedsWindow', amount: o.amount, limit: verdict.limit, seconds: verdict.seconds } };
      case 'window': {
        const w = limits.window!;
        // Only on this (refusing) path: the entries that decide when room comes back.
        // Each bucket dated by its end: its tokens have surely aged out once that leaves the window.
        const { rows: buckets } = await sql<{ ends_at: Date; tokens: number }>`
          select b.bucket_start + make_interval(secs => ${bucketSecondsOf(sql.ref('k.window_seconds'))}::float8) as ends_at, b.tokens
          from key_window_buckets b join api_keys k on k.id = b.key_id
          where k.id = ${o.keyId} and ${inWindow('b', 'k')}`.execute(tx);
        const retryAfterSeconds = windowRetryAfterSeconds({
          entries: buckets.map((b) => ({ at: b.ends_at.getTime(), tokens: Number(b.tokens) })),
          limit: w.limit,
          seconds: w.seconds,
          reserved: k.reserved,
          amount: o.amount,
          now: k.now.getTime(),
        });
        return { kind: 'refused', refusal: { kind: 'window', amount: o.amount, limit: w.limit, seconds: w.seconds, retryAfterSeconds } };
      }
    }
  });
}

export interface SettledReservation {
  keyId: string;
  accountId: string;
}

/**
 * Settles the request's reservation to its actual usage: the hold ends, a ledger row is
 * written and the key's spend grows — all in one statement. Idempotent: returns the key only
 * when this call settled it, null when it was already settled or there is no reservation
 * (an anonymous request). A reservation already released (the sweep, or a crash path) is
 * still settled: tokens that were generated are spent, whatever happened to the hold.
 */
export async function settleReservation(db: Kysely<Database>, requestId: string, usage: Usage): Promise<SettledReservation | null> {
  const p = Math.max(0, Math.round(usage.promptTokens));
  const c = Math.max(0, Math.round(usage.completionTokens));
  const { rows } = await sql<{ key_id: string; account_id: string }>`
    with r as (
      update reservations set state = ${ReservationState.Settled}, prompt_tokens = ${p}::int, completion_tokens = ${c}::int, finished_at = now()
      where request_id = ${requestId} and state <> ${ReservationState.Settled}
      returning key_id, request_id
    ), l as (
      insert into key_ledger (key_id, request_id, prompt_tokens, completion_tokens, tokens)
      select key_id, request_id, ${p}::int, ${c}::int, ${p + c}::int from r
    ), k as (
      update api_keys k set spent = k.spent + ${p + c}::bigint, last_used_at = now()
      from r where k.id = r.key_id
      returning k.id, k.account_id, k.window_seconds
    ), b as (
      insert into key_window_buckets (key_id, bucket_start, tokens)
      select k.id, to_timestamp((floor(extract(epoch from now())::numeric / s.len) * s.len)::float8), ${p + c}::bigint
      from k, lateral (select ${bucketSecondsOf(sql.ref('k.window_seconds'))} as len) s
      where k.window_seconds is not null
      on conflict (key_id, bucket_start) do update set tokens = key_window_buckets.tokens + excluded.tokens
    )
    select id as key_id, account_id from k`.execute(db);
  const row = rows[0];
  return row ? { keyId: row.key_id, accountId: row.account_id } : null;
}

export interface ReservationOutcome {
  state: ReservationState;
  promptTokens: number;
  completionTokens: number;
}

/**
 * Gives a held reservation back (any exit but success). Idempotent; a settled reservation
 * stays settled. Returns the reservation's final state — with the usage a host settled for a
 * cancelled generation — or null when the request had none.
 */
export async function releaseReservationIfHeld(db: Kysely<Database>, requestId: string): Promise<ReservationOutcome | null> {
  await db
    .updateTable('reservations')
    .set({ state: ReservationState.Released, finished_at: sql<Date>`now()` })
    .where('request_id', '=', requestId)
    .where('state', '=', ReservationState.Held)
    .execute();
  const row = await db
    .selectFrom('reservations')
    .select(['state', 'prompt_tokens', 'completion_tokens'])
    .where('request_id', '=', requestId)
    .executeTakeFirst();
  return row ? { state: row.state, promptTokens: row.prompt_tokens, completionTokens: row.completion_tokens } : null;
}

/** The sweep: releases held reservations past their expiry; returns how many. */
export async function releaseExpiredReservations(db: Kysely<Database>): Promise<number> {
  const r = await db
    .updateTable('reservations')
    .set({ state: ReservationState.Released, finished_at: sql<Date>`now()` })
    .where('state', '=', ReservationState.Held)
    .where('expires_at', '<=', sql<Date>`now()`)
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}

/** Whether a sweep would change anything: a held reservation past its expiry, or a stale window bucket. */
export async function hasSweepWork(db: Kysely<Database>): Promise<boolean> {
  const r = await sql<{ work: boolean }>`
    select exists (select 1 from reservations where state = ${ReservationState.Held} and expires_at <= now())
        or exists (select 1 from key_window_buckets b join api_keys k on k.id = b.key_id where not (${inWindow('b', 'k')})) as work`.execute(db);
  return r.rows[0]?.work === true;
}

/** Also the sweep's: deletes window buckets entirely outside their key's window; returns how many. */
export async function deleteStaleWindowBuckets(db: Kysely<Database>): Promise<number> {
  const r = await sql`
    delete from key_window_buckets b using api_keys k
    where k.id = b.key_id and not (${inWindow('b', 'k')})`.execute(db);
  return Number(r.numAffectedRows ?? 0);
}

export interface KeyUsage {
  keyId: string;
  accountId: string;
  spent: number;
  reserved: number;
  /** Balance left after spend and holds; null without a hard balance. */
  remaining: number | null;
  window: { limit: number; seconds: number; spent: number; resetAt: Date | null } | null;
}

/** What `GET /v1/usage` shows for a key; undefined for an unknown key. */
export async function readKeyUsage(db: Kysely<Database>, keyId: string): Promise<KeyUsage | undefined> {
  const k = await readKeyBudget(db, keyId);
  if (!k) return undefined;
  const limits = limitsOf(k);
  const now = k.now.getTime();
  const resetAt =
    limits.window && k.window_newest ? windowResetAt([{ at: k.window_newest.getTime(), tokens: 0 }], limits.window.seconds, now) : null;
  return {
    keyId,
    accountId: k.account_id,
    spent: k.spent,
    reserved: k.reserved,
    remaining: limits.balance === null ? null : Math.max(0, limits.balance - k.spent - k.reserved),
    window: limits.window && { ...limits.window, spent: k.window_spent, resetAt: resetAt === null ? null : new Date(resetAt) },
  };
}
