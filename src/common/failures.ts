/**
 * Stable `ApplicationFailure` types thrown by activities and workflows. The API maps each to
 * an HTTP status and OpenAI error code in one place (`src/api/errors.ts`); retry policies and
 * the workflow's fall-through match on them. Sandbox-safe.
 */
export const FailureType = {
  /** The model is not in the catalog, or no host could ever serve it. Terminal. */
  ModelNotFound: 'ModelNotFound',
  /** Prompt plus requested output does not fit the model's context. Terminal. */
  ContextLengthExceeded: 'ContextLengthExceeded',
  /** The request is malformed in a way only the host could see. Terminal. */
  InvalidRequest: 'InvalidRequest',
  /** Nothing can serve it right now (no healthy host, model loading, all busy). Retry later. */
  Unavailable: 'Unavailable',
  /** A host refused for load (queue full, wait elapsed): the workflow tries the next one. */
  HostBusy: 'HostBusy',
  /** The caller already has its share of this host's queue: 429 with Retry-After. */
  PrincipalLimited: 'PrincipalLimited',
  /** An unload was refused because requests are in flight on the model. */
  ModelBusy: 'ModelBusy',
  /** A stream broke after tokens were sent: it cannot move to another host. */
  StreamBroken: 'StreamBroken',
  /** The model is not loaded on the host the request reached (placement went stale). */
  ModelNotLoaded: 'ModelNotLoaded',
  /** Loading a model failed on the host (bad file, out of memory); details: LoadFailureDetails. */
  LoadFailed: 'LoadFailed',
  /** The build is quarantined (a load of it failed for the build's own sake): 503 until released. */
  ModelQuarantined: 'ModelQuarantined',
  /** A pool reassignment was refused (host busy, queued, loading, unhealthy, cooling down). */
  ReassignRefused: 'ReassignRefused',
  /** Inference itself failed on the host. */
  GenerationFailed: 'GenerationFailed',
  /** A verifiable model's attempt reached a host whose current key is not pinned: next replica. */
  Unpinned: 'Unpinned',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/** Failure types that mean "the client asked for something impossible": never retried. */
export const CLIENT_FAILURES: ReadonlySet<string> = new Set([
  FailureType.ModelNotFound,
  FailureType.ContextLengthExceeded,
  FailureType.InvalidRequest,
  FailureType.PrincipalLimited,
]);

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
