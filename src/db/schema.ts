/**
 * The Kysely view of the database: one interface per table, mirroring `migrations/`. Queries
 * are type-checked against it, so a column rename breaks the build instead of a request.
 *
 * Conventions:
 * - timestamptz columns select as `Date` (both drivers parse them) and accept `Date` or an ISO
 *   string on write.
 * - jsonb columns select as `unknown` on purpose: repositories validate them with zod where they
 *   are read, and write them as JSON text (a JS array would otherwise be sent by `pg` as a
 *   Postgres array literal).
 * - int8 selects as `number`: both connections install an int8 → Number parser (counts and byte
 *   sizes stay far below 2^53).
 */
import type { ColumnType, Insertable, Selectable, Updateable } from 'kysely';

/** A timestamptz column without a default. */
export type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** A timestamptz column with a database default (usually now()). */
export type DefaultTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;
/** A jsonb column: read as unknown (validate it), written as JSON text. */
export type Json = ColumnType<unknown, string, string>;
/** A jsonb column with a database default. */
export type DefaultJson = ColumnType<unknown, string | undefined, string>;

export const HostStatus = { Up: 'up', Down: 'down' } as const;
export type HostStatus = (typeof HostStatus)[keyof typeof HostStatus];

export const PlacementState = {
  Unloaded: 'unloaded',
  Loading: 'loading',
  Loaded: 'loaded',
  Unloading: 'unloading',
  Failed: 'failed',
} as const;
export type PlacementState = (typeof PlacementState)[keyof typeof PlacementState];
export const PLACEMENT_STATES: readonly PlacementState[] = Object.values(PlacementState);

export const RequestKind = { Chat: 'chat', Completion: 'completion', Embedding: 'embedding', CountTokens: 'count_tokens' } as const;
export type RequestKind = (typeof RequestKind)[keyof typeof RequestKind];

export const RequestStatus = { Ok: 'ok', Error: 'error', Cancelled: 'cancelled' } as const;
export type RequestStatus = (typeof RequestStatus)[keyof typeof RequestStatus];

export interface HostsTable {
  id: string;
  task_queue: string;
  status: ColumnType<HostStatus, HostStatus | undefined, HostStatus>;
  started_at: DefaultTimestamp;
  last_heartbeat_at: DefaultTimestamp;
  /** Free-form host facts (cpu count, threads, gpu, memory, software version). */
  info: DefaultJson;
  /** Per-model running/queued counts, rewritten by every heartbeat. */
  stats: DefaultJson;
  /** A request's generate was never picked up here (or went silent): avoided until the next heartbeat. */
  suspect_since: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}

export const BuildKind = { Gguf: 'gguf', Remote: 'remote' } as const;
export type BuildKind = (typeof BuildKind)[keyof typeof BuildKind];

/**
 * A build: a GGUF file our hosts load (`gguf`: path, sha256, size set) or a model of a remote
 * provider (`remote`: provider, upstream slug, canonical id set) — a check constraint holds it.
 */
export interface ModelsTable {
  id: string;
  kind: ColumnType<BuildKind, BuildKind | undefined, BuildKind>;
  path: ColumnType<string | null, string | null | undefined, string | null>;
  sha256: ColumnType<string | null, string | null | undefined, string | null>;
  /** bigint in Postgres; a number here (see the int8 parser note above). */
  size_bytes: ColumnType<number | null, number | bigint | null | undefined, number | bigint | null>;
  provider_id: ColumnType<string | null, string | null | undefined, string | null>;
  upstream_model: ColumnType<string | null, string | null | undefined, string | null>;
  /** The public id a remote build serves (its provider's canonical=slug map, or the slug). */
  canonical_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** A remote build discovered only at a third party stays inactive until an operator activates it. */
  active: ColumnType<boolean, boolean | undefined, boolean>;
  origin: ColumnType<'mapped' | 'discovered' | null, 'mapped' | 'discovered' | null | undefined, 'mapped' | 'discovered' | null>;
  context_length: number;
  created_at: DefaultTimestamp;
  /** Served only by pinned hosts; its pin set is refreshed by a Schedule. */
  verifiable: ColumnType<boolean, boolean | undefined, boolean>;
  /** Seconds between discovery cycles (≥ 10). */
  discovery_interval_s: ColumnType<number, number | undefined, number>;
  /** Set when a load failed for the build's own sake: no host loads it until released. */
  quarantined_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  quarantine_reason: ColumnType<string | null, string | null | undefined, string | null>;
  /** The host whose load put it in quarantine. */
  quarantine_host: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface PinSetsTable {
  model_id: string;
  state: string;
  /** Sorted, distinct key fingerprints (jsonb array of strings). */
  fingerprints: Json;
  /** Attested providers: fingerprint → the signing addresses its report vouched for. */
  keys: DefaultJson;
  /** Attested providers: the backend count of the last cycle. */
  backend_count: number | null;
  /** Attested providers: cycles run (a capped cycle's window starts at cycle_seq · cap). */
  cycle_seq: ColumnType<number, number | undefined, number>;
  updated_at: DefaultTimestamp;
}

export interface ResponseSignaturesTable {
  request_id: string;
  model_id: string;
  /** The account whose key made the request (null: anonymous); only it may read the signature. */
  account_id: ColumnType<string | null, string | null | undefined, string | null>;
  fingerprint: string;
  public_key: string;
  /** host: { request_id, model_sha256, response_sha256 }; provider_tee: { text, upstream_id, signing_algo }. */
  signed: Json;
  signature: string;
  signature_kind: ColumnType<'host' | 'provider_tee', 'host' | 'provider_tee' | undefined, 'host' | 'provider_tee'>;
  created_at: DefaultTimestamp;
}

export interface DiscoveryCyclesTable {
  /** The discoveryCycle workflow id. */
  workflow_id: string;
  model_id: string;
  started_at: Timestamp;
  /** The cycle's outcome (jsonb). */
  outcome: Json;
}

export interface PlacementsTable {
  host_id: string;
  model_id: string;
  state: PlacementState;
  /** 0..1 */
  progress: ColumnType<number, number | undefined, number>;
  error: string | null;
  updated_at: DefaultTimestamp;
  last_used_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}

export interface RequestLogTable {
  /** The request id (also the workflow id and the OpenAI response id). */
  id: string;
  kind: RequestKind;
  model_id: string;
  host_id: string | null;
  /** The provider that served, when a remote one did. */
  provider_id: ColumnType<string | null, string | null | undefined, string | null>;
  principal: string | null;
  stream: boolean;
  status: RequestStatus;
  finish_reason: string | null;
  error_code: string | null;
  prompt_tokens: number;
  completion_tokens: number;
  started_at: Timestamp;
  finished_at: Timestamp;
  duration_ms: number;
}

export const ReservationState = { Held: 'held', Settled: 'settled', Released: 'released' } as const;
export type ReservationState = (typeof ReservationState)[keyof typeof ReservationState];

/** A bigint column read as a number (see the int8 parser note above). */
type BigintColumn = ColumnType<number, number | undefined, number>;
type NullableBigint = ColumnType<number | null, number | null | undefined, number | null>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;

export interface AccountsTable {
  id: string;
  created_at: DefaultTimestamp;
}

export interface ApiKeysTable {
  id: string;
  account_id: string;
  name: string | null;
  /** sha256 (hex) of the key's secret. Never logged, never returned by the API. */
  secret_hash: string;
  balance_limit: NullableBigint;
  window_limit: NullableBigint;
  window_seconds: number | null;
  /** Settled tokens over the key's lifetime. */
  spent: BigintColumn;
  created_at: DefaultTimestamp;
  revoked_at: NullableTimestamp;
  last_used_at: NullableTimestamp;
}

export interface ReservationsTable {
  /** The request id (also the workflow id). */
  request_id: string;
  key_id: string;
  /** Tokens held: the request's upper bound. */
  amount: number;
  state: ColumnType<ReservationState, ReservationState | undefined, ReservationState>;
  prompt_tokens: ColumnType<number, number | undefined, number>;
  completion_tokens: ColumnType<number, number | undefined, number>;
  created_at: DefaultTimestamp;
  expires_at: Timestamp;
  finished_at: NullableTimestamp;
}

export interface KeyLedgerTable {
  id: ColumnType<number, never, never>;
  key_id: string;
  request_id: string;
  prompt_tokens: number;
  completion_tokens: number;
  tokens: number;
  created_at: DefaultTimestamp;
}

/** The ledger summed per key and time bucket (see budgetRepo.ts); read by window checks. */
export interface KeyWindowBucketsTable {
  key_id: string;
  bucket_start: Timestamp;
  tokens: BigintColumn;
}

export const ProviderTier = { Attested: 'attested', Plaintext: 'plaintext' } as const;
export type ProviderTier = (typeof ProviderTier)[keyof typeof ProviderTier];

/** A remote OpenAI-compatible provider (see migrations/0007_providers.ts). */
export interface ProvidersTable {
  id: string;
  base_url: string;
  tier: ProviderTier;
  /** The name of the environment variable holding the API key (never the key). */
  api_key_env: string | null;
  streaming: ColumnType<boolean, boolean | undefined, boolean>;
  e2ee: ColumnType<boolean, boolean | undefined, boolean>;
  enabled: ColumnType<boolean, boolean | undefined, boolean>;
  /** `canonical=slug,…` (src/domain/canonicalIds.ts). */
  models_spec: ColumnType<string, string | undefined, string>;
  /** Context length assumed for its models when its /v1/models does not say. */
  context_length: ColumnType<number, number | undefined, number>;
  timeouts: DefaultJson;
  /** `{resolve?: {host: address}, ca_file?: path}` (migrations/0008). */
  transport: DefaultJson;
  discovery_interval_s: ColumnType<number, number | undefined, number>;
  source: 'config' | 'admin';
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

/** Consecutive failures per replica, for demotion. */
export interface ReplicaHealthTable {
  /** `host:<id>` or `provider:<id>`. */
  replica: string;
  consecutive_failures: ColumnType<number, number | undefined, number>;
  last_failure_at: NullableTimestamp;
  last_success_at: NullableTimestamp;
  last_error: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface Database {
  providers: ProvidersTable;
  replica_health: ReplicaHealthTable;
  hosts: HostsTable;
  models: ModelsTable;
  placements: PlacementsTable;
  request_log: RequestLogTable;
  accounts: AccountsTable;
  api_keys: ApiKeysTable;
  reservations: ReservationsTable;
  key_ledger: KeyLedgerTable;
  key_window_buckets: KeyWindowBucketsTable;
  pin_sets: PinSetsTable;
  discovery_cycles: DiscoveryCyclesTable;
  response_signatures: ResponseSignaturesTable;
  aliases: AliasesTable;
  host_pools: HostPoolsTable;
}

/** A public model id: the build clients get now, and the one it rolls from. */
export interface AliasesTable {
  id: string;
  desired_build: string;
  previous_build: string | null;
  /** Hosts the warm-pool planner keeps loaded with the desired build. */
  min_warm: ColumnType<number, number | undefined, number>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export const HostPoolState = { Serving: 'serving', Moving: 'moving', Failed: 'failed' } as const;
export type HostPoolState = (typeof HostPoolState)[keyof typeof HostPoolState];
export const PoolSource = { Running: 'running', Advertised: 'advertised', Moved: 'moved' } as const;
export type PoolSource = (typeof PoolSource)[keyof typeof PoolSource];

/** The pool (alias) each host serves; see migrations/0005_pools.ts. */
export interface HostPoolsTable {
  host_id: string;
  alias: string | null;
  state: HostPoolState;
  /** How the host got its pool: seeded from what it ran or advertised, or moved by a workflow. */
  source: PoolSource;
  /** When a reassignment last moved the host (the planner's cool-down). */
  moved_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  /** Since when the planner drains the host for a rollout step (migrations/0010); null: not. */
  draining_since: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  error: string | null;
  updated_at: DefaultTimestamp;
}

export type HostRow = Selectable<HostsTable>;
export type ModelRow = Selectable<ModelsTable>;
export type ProviderRow = Selectable<ProvidersTable>;
export type AliasRow = Selectable<AliasesTable>;
export type HostPoolRow = Selectable<HostPoolsTable>;
export type PlacementRow = Selectable<PlacementsTable>;
export type RequestLogRow = Selectable<RequestLogTable>;
export type ApiKeyRow = Selectable<ApiKeysTable>;
export type ReservationRow = Selectable<ReservationsTable>;
export type KeyLedgerRow = Selectable<KeyLedgerTable>;

export type NewRequestLog = Insertable<RequestLogTable>;
export type PlacementUpdate = Updateable<PlacementsTable>;
