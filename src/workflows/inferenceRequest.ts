/**
 * inferenceRequest: one API call. The route step (a local activity over the pure policy of
 * src/domain/requestPlan.ts) returns ranked attempts — our hosts first, attested providers next,
 * plaintext ones only for a model nothing attested serves — and only that decision is recorded.
 * Each attempt runs `generate` on its replica's queue (`host.<id>`, or the provider queue); a
 * replica that refuses, is gone, or fails before the first token falls through to the next.
 * When no replica can serve now, a host of the alias's pool cold-loads the model (attaching to
 * a shared `coldLoad`), or an idle host of another pool is moved in (`poolReassign`).
 * After tokens were streamed a failure ends the request rather than splice two answers.
 * The workflow id is the request id, which is also the OpenAI response id.
 *
 * A host whose task was never picked up (or went silent) is marked suspect: routing avoids it
 * until its next heartbeat. Attempts that change a replica's failure count (a failure, or a
 * success after failures) are recorded once, at the end — the usual request writes nothing.
 *
 * Cancellation (the client went away) waits for the replica's `generate` to finish cancelling;
 * its cancellation carries what was used, and the API settles the key's budget to it.
 */
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancelledFailure,
  CancellationScope,
  isCancellation,
  patched,
  proxyActivities,
  proxyLocalActivities,
  TimeoutFailure,
  upsertSearchAttributes,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { ControlPlaneActivities } from '../activities/controlPlane.js';
import type { HostActivities } from '../activities/host.js';
import { FailureType, type LoadFailureDetails, type UpstreamUnavailableDetails } from '../common/failures.js';
import type { GenerateInput, InferenceRequestInput, InferenceResult } from '../common/inference.js';
import type { Attempt, ReplicaOutcome } from '../common/replicas.js';
import { replicaKey, replicaSource } from '../common/replicas.js';
import { FleetHost } from '../common/searchAttributes.js';
import { replicaQueue } from '../common/taskQueues.js';
import { detailsOf, typedFailure } from '../common/typedFailure.js';
import { classifyAttemptFailure, countsTowardDemotion, type AttemptFailure } from '../domain/failover.js';
import { WAIT_REASON_TEXT, type PlanWaitReason, type RouteOutcome } from '../domain/requestPlan.js';
import { RETRY_AFTER_BUSY_S } from '../domain/routing.js';
import { quarantinedFailure } from './failures.js';
import { AWAIT_WORKFLOW_PROFILE } from './profiles.js';

const { route, markHostSuspect, recordReplicaOutcomes } = proxyLocalActivities<ControlPlaneActivities>({
  startToCloseTimeout: '5 seconds',
  retry: { maximumAttempts: 3, initialInterval: '100 ms' },
});

const { awaitColdLoad, awaitPoolReassign } = proxyActivities<ControlPlaneActivities>(AWAIT_WORKFLOW_PROFILE);

/**
 * A host that has not picked the task up within seconds is gone or swamped, so the request
 * moves on; once running, heartbeats (every second, while queued or generating) prove it alive.
 */
const HOST_PROFILE: ActivityOptions = {
  scheduleToStartTimeout: '5 seconds',
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '5 seconds',
  retry: { maximumAttempts: 1 },
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
};
/**
 * Provider workers are interchangeable and stateless: a longer schedule-to-start (any of them
 * may take it); the upstream's own timeouts bound the call, heartbeats carry cancellation.
 */
const PROVIDER_PROFILE: ActivityOptions = { ...HOST_PROFILE, scheduleToStartTimeout: '30 seconds' };

/** Histories recorded before PrincipalLimited was retried on the next replica (it failed the request). */
const PRINCIPAL_NEXT_REPLICA_PATCH = 'principal-next-replica';

/** Route → (cold load | move | attempts) rounds before giving up with 503. */
const MAX_ROUNDS = 4;
/**
 * Wait reasons that mean "no capacity left for this request": after hosts failed to load the
 * build, it cannot be loaded; after the key's per-host cap refused it, the key's share is why.
 */
const CAPACITY_WAITS: ReadonlySet<string> = new Set(['pool_exhausted', 'pool_cooling', 'all_tried', 'no_free_slot']);

export async function inferenceRequest(input: InferenceRequestInput): Promise<InferenceResult> {
  const tried: string[] = [];
  const outcomes: ReplicaOutcome[] = [];
  let coldLoaded = false;
  let moved = false;
  let failovers = 0;
  let busyRetryAfter: number | undefined;
  let lastDecision: RouteOutcome | undefined;
  /** The last load or move that failed on a host: what the client hears if nothing else serves. */
  let loadFailure: unknown;
  /** The last failure of a replica, surfaced when nothing else serves (not "every host is busy"). */
  let lastAttemptFailure: unknown;
  /** A host refused for the caller's per-host cap: the 429 the client hears if nothing serves. */
  let principalLimited: unknown;
  let hostAtStart = input.route?.attempts[0] ? replicaSource(input.route.attempts[0].replica) : undefined;
  try {
    return await serve();
  } finally {
    // Every exit (served, failed, cancelled) records the attempts that changed a failure count.
    if (outcomes.length > 0) await CancellationScope.nonCancellable(() => recordReplicaOutcomes(outcomes)).catch(() => undefined);
  }

  async function serve(): Promise<InferenceResult> {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      // The API's decision from its fleet snapshot stands for the first round's route step.
      const decision = round === 0 && input.route ? input.route : await routeOrUnavailable({ alias: input.modelId, requestId: input.requestId, stream: input.stream, exclude: tried, joinLoads: true, ...(input.prefix ? { prefix: input.prefix } : {}) });
      lastDecision = decision;
      if (decision.kind === 'notFound') {
        throw typedFailure(FailureType.ModelNotFound, `The model '${input.modelId}' does not exist or no replica can serve it`);
      }
      if (decision.kind === 'wait') {
        if (decision.reason === 'quarantined') throw quarantinedFailure(decision.quarantine?.build ?? input.modelId, decision.quarantine?.reason ?? 'a load failed');
        if (loadFailure && CAPACITY_WAITS.has(decision.reason)) throw surface(loadFailure);
        break;
      }
      if (decision.kind === 'coldLoad' || decision.kind === 'movePool') {
        try {
          if (decision.kind === 'coldLoad') {
            // Single flight among the pool's hosts: a load of this build elsewhere in the pool is joined.
            await awaitColdLoad({ hostId: decision.hostId, modelId: decision.build, hosts: decision.poolHosts });
            coldLoaded = true;
          } else {
            await awaitPoolReassign({ hostId: decision.hostId, toAlias: input.modelId, reason: 'on_demand' });
            moved = true;
          }
        } catch (err) {
          // A load or move that failed or was refused on this host: another host may do better —
          // unless the build itself is at fault (quarantined now: the next route says so).
          const refusal = loadRefusal(err);
          if (!refusal) throw surface(err);
          if (isLoadFailed(err)) loadFailure = err;
          if (refusal === 'host') tried.push(`host:${decision.hostId}`);
        }
        continue;
      }
      for (const attempt of decision.attempts) {
        const key = replicaKey(attempt.replica);
        tried.push(key);
        // The API set it at start for its decision's first attempt; every other attempt sets it here.
        const source = replicaSource(attempt.replica);
        if (source !== hostAtStart) upsertSearchAttributes([{ key: FleetHost, value: source }]);
        hostAtStart = undefined;
        try {
          const result = await run(attempt, input, failovers);
          if (attempt.consecutiveFailures > 0) outcomes.push({ replica: key, ok: true });
            // The client asked for the alias: the response names it, never the build.
          return { ...result, modelId: input.modelId, build: attempt.target.build, coldLoaded, moved, failovers };
        } catch (err) {
          const facts = attemptFacts(err);
          if (countsTowardDemotion(facts)) outcomes.push({ replica: key, ok: false, error: facts.type ?? facts.timeoutType ?? 'failure' });
          // Histories from before a principal's cap moved on to the next replica ended here.
          const verdict = facts.type === FailureType.PrincipalLimited && !patched(PRINCIPAL_NEXT_REPLICA_PATCH) ? 'fail' : classifyAttemptFailure(facts, input.stream);
          if (verdict === 'fail') {
                throw surface(err);
          }
          if (verdict === 'stream_broken') {
                throw typedFailure(FailureType.StreamBroken, `the replica failed after ${facts.charsStreamed} characters were streamed`);
          }
          if (facts.retryAfterSeconds !== undefined) busyRetryAfter = Math.min(busyRetryAfter ?? Infinity, facts.retryAfterSeconds);
          if (attempt.replica.kind === 'host' && (facts.timeoutType === 'SCHEDULE_TO_START' || facts.timeoutType === 'HEARTBEAT')) {
            // Gone: every request avoids it until it heartbeats again (best effort), and it is not
            // excluded here — a host that comes back (a server restart, a pause) may still serve.
            await markHostSuspect(attempt.replica.hostId).catch(() => undefined);
            tried.splice(tried.lastIndexOf(key), 1);
          }
          // What the client hears if no replica serves: the caller's share being full (a 429
          // for this key, not "every replica is busy"), else the last replica's own failure.
          if (facts.type === FailureType.PrincipalLimited) principalLimited = err;
          else if (attempt.replica.kind === 'provider' || facts.type === FailureType.GenerationFailed) lastAttemptFailure = err;
          failovers++;
        }
      }
    }
    const wait = lastDecision?.kind === 'wait' ? lastDecision : undefined;
    if (loadFailure && (!wait || CAPACITY_WAITS.has(wait.reason))) throw surface(loadFailure);
    // Every replica failed on its own account (not for load): say so, with the last one's reason.
    if (principalLimited && (!wait || CAPACITY_WAITS.has(wait.reason))) throw surface(principalLimited);
    if (lastAttemptFailure && (!wait || wait.reason === 'all_tried')) throw surface(lastAttemptFailure);
    throw unavailable({ reason: wait?.reason ?? 'all_tried', retryAfterSeconds: busyRetryAfter ?? wait?.retryAfterSeconds ?? RETRY_AFTER_BUSY_S });
  }
}

/** Runs one attempt's `generate` on its replica's queue, with the input its kind takes. */
function run(attempt: Attempt, { route: _decided, prefix, ...input }: InferenceRequestInput, failovers: number) {
  const t = attempt.target;
  const base: GenerateInput = { ...input, modelId: t.build, contextLength: t.contextLength, failovers };
  const generateInput: GenerateInput =
    t.kind === 'gguf'
      ? { ...base, ...(t.sign ? { sign: t.sign } : {}) }
      : { ...base, remote: { providerId: (attempt.replica as { providerId: string }).providerId, upstreamModel: t.upstreamModel }, ...(prefix?.session !== undefined ? { session: prefix.session } : {}) };
  const profile = attempt.replica.kind === 'host' ? HOST_PROFILE : PROVIDER_PROFILE;
  const acts = proxyActivities<HostActivities>({ ...profile, taskQueue: replicaQueue(attempt.replica) });
  return acts.generate(generateInput).then((result) => {
    const pins = t.kind === 'gguf' ? t.sign?.pinnedFingerprints : undefined;
    if (pins && !pins.includes(result.signature?.fingerprint ?? '')) {
      // Belt and braces: an answer signed by anything but a pinned key is never relayed.
      throw typedFailure(FailureType.Unpinned, `host ${result.hostId} signed with an unpinned key`);
    }
    return result;
  });
}

/**
 * The route decision, or a 503 when the fleet state cannot be read (the database is down or
 * restarting): the request may succeed in a moment, so it is transient, never an internal error.
 */
async function routeOrUnavailable(i: Parameters<ControlPlaneActivities['route']>[0]): Promise<RouteOutcome> {
  try {
    return await route(i);
  } catch (err) {
    if (isCancellation(err)) throw err;
    throw unavailable({ reason: 'state_unavailable', retryAfterSeconds: 2 });
  }
}

function unavailable(d: { reason: PlanWaitReason; retryAfterSeconds: number }): ApplicationFailure {
  return typedFailure(FailureType.Unavailable, `${WAIT_REASON_TEXT[d.reason] ?? d.reason}; retry after ${d.retryAfterSeconds}s`, d);
}

/** The facts the failover policy needs, read off a failed activity. */
function attemptFacts(err: unknown): AttemptFailure & { retryAfterSeconds?: number } {
  if (err instanceof CancelledFailure) return { cancelled: true, charsStreamed: 0 };
  if (err instanceof ApplicationFailure) return { type: err.type ?? undefined, charsStreamed: 0 };
  if (!(err instanceof ActivityFailure)) return { type: 'unknown', charsStreamed: 0 };
  const cause = err.cause;
  if (cause instanceof ApplicationFailure) {
    const d = cause.details?.[0] as { retryAfterSeconds?: number } | undefined;
    const upstream = detailsOf(cause, FailureType.UpstreamUnavailable) as UpstreamUnavailableDetails | undefined;
    return {
      type: cause.type ?? undefined,
      charsStreamed: upstream?.charsStreamed ?? 0,
      ...(upstream?.counts === false ? { counts: false } : {}),
      ...(d?.retryAfterSeconds !== undefined ? { retryAfterSeconds: d.retryAfterSeconds } : {}),
    };
  }
  if (cause instanceof TimeoutFailure) {
    const beat = cause.lastHeartbeatDetails as { chars?: number } | undefined;
    return { timeoutType: cause.timeoutType, charsStreamed: beat?.chars ?? 0 };
  }
  if (cause instanceof CancelledFailure) return { cancelled: true, charsStreamed: 0 };
  return { type: 'unknown', charsStreamed: 0 };
}

/**
 * A load or move that did not happen, and whose fault: `host` (refused, busy, its copy of the
 * file, its resources: try another) or `build` (the file is at fault: quarantined). Null: a
 * failure to surface as it is.
 */
function loadRefusal(err: unknown): 'host' | 'build' | null {
  const cause = err instanceof ActivityFailure ? err.cause : undefined;
  if (!(cause instanceof ApplicationFailure)) return null;
  if (cause.type === FailureType.ModelQuarantined) return 'build';
  if (cause.type === FailureType.LoadFailed) {
    return (cause.details?.[0] as Partial<LoadFailureDetails> | undefined)?.scope === 'build' ? 'build' : 'host';
  }
  return cause.type === FailureType.Unavailable || cause.type === FailureType.ReassignRefused ? 'host' : null;
}

function isLoadFailed(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === FailureType.LoadFailed;
}

/** Re-throws a replica's typed failure at top level so the API sees its type directly. */
function surface(err: unknown): unknown {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return err.cause;
  return err;
}
