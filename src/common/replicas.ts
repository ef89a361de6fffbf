/**
 * Replicas and what an attempt on one is asked to do, shared by the route step, the workflow
 * and both `generate` adapters. A replica is one of our GPU hosts or a remote provider; both
 * kinds take the same `generate` input, give the same result and typed failures, and publish
 * on the same stream channel. Plain JSON (Temporal payloads), sandbox-safe.
 */
export type Replica = { kind: 'host'; hostId: string } | { kind: 'provider'; providerId: string };

export type ProviderTier = 'attested' | 'plaintext';
/** Our own hosts are the top tier; then attested providers; plaintext ones last. */
export type Tier = 'own' | ProviderTier;

/** A GGUF build on one of our hosts. */
export interface HostTarget {
  kind: 'gguf';
  build: string;
  contextLength: number;
  /** A verifiable build: the host signs with a key it first checks against these pins. */
  sign?: { modelSha256: string; pinnedFingerprints: string[] };
}

/** A model of a remote provider: the upstream gets its slug, the client sees the canonical id. */
export interface RemoteTarget {
  kind: 'remote';
  build: string;
  upstreamModel: string;
  contextLength: number;
}

export type Target = HostTarget | RemoteTarget;

/** One entry of the route step's ranked answer. */
export interface Attempt {
  replica: Replica;
  target: Target;
  tier: Tier;
  /** Failures in a row the replica had when the request was routed (demotion's input). */
  consecutiveFailures: number;
  demoted: boolean;
}

/** `host:<id>` or `provider:<id>`: the key of a replica in health records, logs and exclusions. */
export function replicaKey(r: Replica): string {
  return r.kind === 'host' ? `host:${r.hostId}` : `provider:${r.providerId}`;
}

/** The name of a replica in the FleetHost search attribute and in results (`hostId`). */
export const replicaSource = (r: Replica): string => (r.kind === 'host' ? r.hostId : `provider:${r.providerId}`);

/**
 * A stream chunk's `source`: one attempt of one replica (the API relays one source's chunks
 * only). Per attempt, not per replica: a later attempt on the same host must never splice its
 * text into an earlier one's.
 */
export const chunkSource = (replicaName: string, activity: { activityId: string; attempt: number }): string =>
  `${replicaName}#${activity.activityId}.${activity.attempt}`;

/** What an attempt did to its replica's failure count (recorded only when it changes). */
export interface ReplicaOutcome {
  replica: string;
  ok: boolean;
  /** A failure's type or timeout kind, for operators (never a URL or a key). */
  error?: string;
}
