/**
 * The failure contract, typed end to end: every `ApplicationFailure` type an activity or a
 * workflow throws on purpose, with its details type, its default HTTP status and its retry
 * class, in one table. The workflow's fall-through (src/domain/failover.ts) reads the retry
 * class, the API maps each type in one switch the compiler forces to be complete
 * (src/api/errors.ts), and failures are built by `typedFailure` (src/common/typedFailure.ts)
 * so a type and its details cannot drift apart. Plain data: sandbox-safe, no imports.
 */
export const FailureType = {
  /** The model is not in the catalog, or no replica could ever serve it. */
  ModelNotFound: 'ModelNotFound',
  /** Prompt plus requested output does not fit the model's context. */
  ContextLengthExceeded: 'ContextLengthExceeded',
  /** The request is malformed in a way only the replica could see. */
  InvalidRequest: 'InvalidRequest',
  /** Nothing can serve it right now (no healthy replica, all busy, a dependency down). Retry later. */
  Unavailable: 'Unavailable',
  /** A host refused for load (queue full, wait elapsed): the workflow tries the next replica. */
  HostBusy: 'HostBusy',
  /** The caller already has its share of this host's queue: another replica, else 429 with Retry-After. */
  PrincipalLimited: 'PrincipalLimited',
  /** An unload was refused because requests are in flight on the model. */
  ModelBusy: 'ModelBusy',
  /** A stream broke after tokens were sent: it cannot move to another replica. */
  StreamBroken: 'StreamBroken',
  /** The model is not loaded on the host the request reached (placement went stale). */
  ModelNotLoaded: 'ModelNotLoaded',
  /** Loading a model failed on the host (bad file, out of memory). */
  LoadFailed: 'LoadFailed',
  /** The build is quarantined (a load of it failed for the build's own sake): 503 until released. */
  ModelQuarantined: 'ModelQuarantined',
  /** A pool reassignment was refused (host busy, queued, loading, unhealthy, cooling down). */
  ReassignRefused: 'ReassignRefused',
  /** Inference itself failed on the host. */
  GenerationFailed: 'GenerationFailed',
  /** A verifiable model's attempt reached a replica whose key is not pinned: next replica. */
  Unpinned: 'Unpinned',
  /** A remote provider could not answer (connect, timeout, 5xx, 429) after its retries: next replica. */
  UpstreamUnavailable: 'UpstreamUnavailable',
  /** A remote provider refused the request itself (a 4xx): the client hears its message at once. */
  UpstreamRejected: 'UpstreamRejected',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/**
 * What a failed attempt means for the request:
 * - `client`: the request itself is at fault; every replica would say the same — never retried;
 * - `next_replica`: nothing was served; another replica may (unless a stream already went out);
 * - `terminal`: the request ends here (with this answer);
 * - `load`: a load or a move did not happen (the caller decides: another host, or quarantine).
 */
export type RetryClass = 'client' | 'next_replica' | 'terminal' | 'load';

export interface UnavailableDetails {
  reason: string;
  retryAfterSeconds: number;
}
export interface RetryAfterDetails {
  retryAfterSeconds: number;
  reason?: string;
}
/** Details of a `LoadFailed`: whose failure it is decides what the caller does next. */
export interface LoadFailureDetails {
  /**
   * `build`: the file itself is bad (malformed, refused or killed by llama.cpp): no host will do
   * better, so the build is quarantined. `host`: this host's copy or resources: another may.
   */
  scope: 'build' | 'host';
  /** The load killed its process (a probe child, or the host itself). */
  crashed?: boolean;
}
export interface QuarantineDetails {
  build: string;
  reason: string;
}
export interface ReassignDetails {
  reason: string;
  retryAfterSeconds: number;
}
export interface UnpinnedDetails {
  fingerprint: string;
}
/** What kind of transport failure, never a URL or a key. */
/**
 * `unpinned`: an attested provider's backend presented a TLS key no discovery cycle pinned;
 * `verify`: its response signature did not check out against a pinned key.
 */
export type UpstreamCategory = 'connect' | 'timeout' | 'tls' | 'status' | 'decode' | 'dropped' | 'unusable' | 'unpinned' | 'verify';
export interface UpstreamUnavailableDetails {
  category: UpstreamCategory;
  /** The upstream's HTTP status, for `status`. */
  status?: number;
  /** From the upstream's Retry-After, when it sent one. */
  retryAfterSeconds?: number;
  /** Characters published on the stream before it failed (a stream cannot move after that). */
  charsStreamed?: number;
  /** Counts toward the provider's demotion (false for a stale catalog: "no such model here"). */
  counts?: boolean;
}
export interface UpstreamRejectedDetails {
  status: number;
  /** The upstream's own words (no URL, no key). */
  message: string;
  param: string | null;
  code: string | null;
}

/** The details type each failure carries (undefined: none). */
export interface FailureDetailsMap {
  ModelNotFound: undefined;
  ContextLengthExceeded: undefined;
  InvalidRequest: { param?: string } | undefined;
  Unavailable: UnavailableDetails;
  HostBusy: RetryAfterDetails;
  PrincipalLimited: RetryAfterDetails;
  ModelBusy: undefined;
  StreamBroken: undefined;
  ModelNotLoaded: undefined;
  LoadFailed: LoadFailureDetails | undefined;
  ModelQuarantined: QuarantineDetails;
  ReassignRefused: ReassignDetails;
  GenerationFailed: undefined;
  Unpinned: UnpinnedDetails | undefined;
  UpstreamUnavailable: UpstreamUnavailableDetails;
  UpstreamRejected: UpstreamRejectedDetails;
}

export interface FailureSpec {
  /** The HTTP status a client gets by default (the API may refine it from the details). */
  status: number;
  retry: RetryClass;
}

export const FAILURES = {
  ModelNotFound: { status: 404, retry: 'client' },
  ContextLengthExceeded: { status: 400, retry: 'client' },
  InvalidRequest: { status: 400, retry: 'client' },
  Unavailable: { status: 503, retry: 'terminal' },
  HostBusy: { status: 503, retry: 'next_replica' },
  PrincipalLimited: { status: 429, retry: 'next_replica' },
  ModelBusy: { status: 503, retry: 'load' },
  StreamBroken: { status: 502, retry: 'terminal' },
  ModelNotLoaded: { status: 503, retry: 'next_replica' },
  LoadFailed: { status: 503, retry: 'load' },
  ModelQuarantined: { status: 503, retry: 'terminal' },
  ReassignRefused: { status: 409, retry: 'load' },
  GenerationFailed: { status: 502, retry: 'next_replica' },
  Unpinned: { status: 503, retry: 'next_replica' },
  UpstreamUnavailable: { status: 502, retry: 'next_replica' },
  UpstreamRejected: { status: 400, retry: 'client' },
} as const satisfies Record<FailureType, FailureSpec>;

const TYPES: ReadonlySet<string> = new Set(Object.values(FailureType));

/** Narrows a failure's `type` string to the contract (undefined for anything else). */
export function asFailureType(type: string | null | undefined): FailureType | undefined {
  return type && TYPES.has(type) ? (type as FailureType) : undefined;
}

/** The retry class of a failure type string; undefined outside the contract (the caller decides). */
export function retryClassOf(type: string | null | undefined): RetryClass | undefined {
  const t = asFailureType(type);
  return t ? FAILURES[t].retry : undefined;
}
