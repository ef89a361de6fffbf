/**
 * inferenceRequest: one API call. Reads fleet state (local activity), lets the routing policy
 * rank hosts, runs `generate` on the chosen host's own queue with a short schedule-to-start
 * timeout, falls through to the next replica when a host refuses or is gone, and cold-loads
 * (attaching to a shared `coldLoad` workflow) when no host of the alias's pool holds it, or
 * borrows an idle host from another pool (`poolReassign`) when the pool is full. A host that
 * dies before the first token is routed around transparently, streams included; after
 * tokens were streamed the request fails rather than splice two hosts' answers.
 * The workflow id is the request id, which is also the OpenAI response id.
 *
 * Cancellation (the client went away) waits for the host's `generate` to finish cancelling:
 * the host settles the key's budget to the tokens it produced in that time, and the API
 * cleans up only once the workflow has closed, so it must close after the settlement.
 */
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancelledFailure,
  patched,
  proxyActivities,
  proxyLocalActivities,
  TimeoutFailure,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { ControlPlaneActivities } from '../activities/controlPlane.js';
import type { HostActivities } from '../activities/host.js';
import { FailureType, type LoadFailureDetails } from '../common/failures.js';
import type { InferenceRequestInput, InferenceResult } from '../common/inference.js';
import { FleetHost } from '../common/searchAttributes.js';
import { hostQueue } from '../common/taskQueues.js';
import { classifyAttemptFailure, type AttemptFailure } from '../domain/failover.js';
import { poolHostIds } from '../domain/pools.js';
import { RETRY_AFTER_BUSY_S, routeRequest, type RouteDecision } from '../domain/routing.js';
import { quarantinedFailure } from './failures.js';
import { AWAIT_WORKFLOW_PROFILE } from './profiles.js';

const { readFleetState, markHostSuspect } = proxyLocalActivities<ControlPlaneActivities>({
  startToCloseTimeout: '5 seconds',
  retry: { maximumAttempts: 3, initialInterval: '100 ms' },
});

const { awaitColdLoad, awaitPoolReassign } = proxyActivities<ControlPlaneActivities>(AWAIT_WORKFLOW_PROFILE);

/**
 * Generate profile: a host that has not picked the task up within seconds is gone or
 * swamped, so the request moves on; once running, heartbeats prove it is alive.
 */
const GENERATE_PROFILE = {
  scheduleToStartTimeout: '5 seconds',
  startToCloseTimeout: '10 minutes',
  // The host heartbeats every second while queued or generating.
  heartbeatTimeout: '5 seconds',
  retry: { maximumAttempts: 1 },
} as const;

/**
 * Histories recorded before this patch cancelled `generate` with TRY_CANCEL (the workflow
 * closed at once); they must replay as they ran.
 */
const WAIT_CANCELLATION_PATCH = 'generate-wait-cancellation';

/**
 * Histories recorded before hosts could be suspected: a host whose generate was never picked up
 * (or went silent) was only skipped by this request, and a failed load always excluded its host.
 */
const SUSPECT_PATCH = 'suspect-gone-hosts';

/** Histories recorded before requests joined a load under way (they answered 503 `loading`). */
const JOIN_LOADS_PATCH = 'join-loads';

/** Histories recorded before the host checked its key against the pins it is sent. */
const PIN_CHECK_PATCH = 'sign-with-pinned-key';

/** Wait reasons that, after hosts failed to load the build, mean "it cannot be loaded". */
const LOAD_BLOCKED: ReadonlySet<string> = new Set(['pool_exhausted', 'all_tried', 'no_free_slot']);

/** Route → (cold load | generate) rounds before giving up with 503. */
const MAX_ROUNDS = 4;

export async function inferenceRequest(input: InferenceRequestInput): Promise<InferenceResult> {
  const tried: string[] = [];
  let coldLoaded = false;
  let moved = false;
  let failovers = 0;
  let busyRetryAfter: number | undefined;
  let lastDecision: RouteDecision | undefined;
  /** The last load or move that failed on a host: what the client hears if nothing else serves. */
  let loadFailure: unknown;

  for (let round = 0; round < MAX_ROUNDS; round++) {
    const view = await readState(input.modelId);
    const decision = routeRequest(view, { now: Date.now(), exclude: tried, joinLoads: patched(JOIN_LOADS_PATCH) });
    lastDecision = decision;
    if (decision.kind === 'notFound') {
      throw ApplicationFailure.create({
        message: `The model '${input.modelId}' does not exist or no host can serve it`,
        type: FailureType.ModelNotFound,
        nonRetryable: true,
      });
    }
    if (decision.kind === 'wait') {
      if (decision.reason === 'quarantined') throw quarantinedFailure(view.model!.id, view.model!.quarantined?.reason ?? 'a load failed');
      // Every host that could load it failed to: "cannot load", not "busy".
      if (loadFailure && LOAD_BLOCKED.has(decision.reason)) throw surface(loadFailure);
      break;
    }
    if (decision.kind === 'coldLoad' || decision.kind === 'movePool') {
      try {
        if (decision.kind === 'coldLoad') {
          // Single flight among the pool's hosts: a load of this build elsewhere in the pool is joined.
          await awaitColdLoad({ hostId: decision.hostId, modelId: decision.build ?? view.model!.id, hosts: poolHostIds(view) });
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
        if (refusal === 'host' || !patched(SUSPECT_PATCH)) tried.push(decision.hostId);
      }
      continue;
    }
    // The desired build's replicas first, then the previous build's (a rollout in progress).
    const attempts = [
      ...decision.candidates.map((hostId) => ({ hostId, build: view.model! })),
      ...(decision.fallback ?? []).map((hostId) => ({ hostId, build: view.previous! })),
    ];
    for (const { hostId, build } of attempts) {
      tried.push(hostId);
      upsertSearchAttributes([{ key: FleetHost, value: hostId }]);
      const host = proxyActivities<HostActivities>({
        ...GENERATE_PROFILE,
        taskQueue: hostQueue(hostId),
        cancellationType: patched(WAIT_CANCELLATION_PATCH)
          ? ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
          : ActivityCancellationType.TRY_CANCEL,
      });
      // A verifiable build's response is signed by the host over the build's hash, with a key
      // the host first checks against the pins it is given (else it refuses: Unpinned).
      const pins = build.verifiable && patched(PIN_CHECK_PATCH) ? (build.pinnedFingerprints ?? []) : undefined;
      const sign = build.verifiable ? { sign: { modelSha256: build.sha256, ...(pins ? { pinnedFingerprints: pins } : {}) } } : {};
      try {
        const result = await host.generate({ ...input, modelId: build.id, contextLength: build.contextLength, ...sign });
        if (pins && !pins.includes(result.signature?.fingerprint ?? '')) {
          // Belt and braces: an answer signed by anything but a pinned key is never relayed.
          throw ApplicationFailure.create({ message: `host ${hostId} signed with an unpinned key`, type: FailureType.Unpinned, nonRetryable: true });
        }
        // The client asked for the alias: the response names it, never the build.
        return { ...result, modelId: input.modelId, build: build.id, coldLoaded, moved, failovers };
      } catch (err) {
        const facts = attemptFacts(err);
        const verdict = classifyAttemptFailure(facts, input.stream);
        if (verdict === 'fail') throw surface(err);
        if (verdict === 'stream_broken') {
          throw ApplicationFailure.create({
            message: `the host failed after ${facts.charsStreamed} characters were streamed`,
            type: FailureType.StreamBroken,
            nonRetryable: true,
          });
        }
        if (facts.retryAfterSeconds !== undefined) {
          busyRetryAfter = Math.min(busyRetryAfter ?? Infinity, facts.retryAfterSeconds);
        }
        // Never picked up, or silent mid-generation: the host is gone. Every request avoids it
        // from now on (until it heartbeats again), and this one may cold-load elsewhere.
        if ((facts.timeoutType === 'SCHEDULE_TO_START' || facts.timeoutType === 'HEARTBEAT') && patched(SUSPECT_PATCH)) {
          // Best effort: the request goes on either way, and the heartbeat rule catches the host later.
          await markHostSuspect(hostId).catch(() => undefined);
          // Gone is not busy: the suspect mark keeps it out of routing until it heartbeats again,
          // and a host that comes back (a Temporal restart, a pause) may serve this request after all.
          tried.splice(tried.lastIndexOf(hostId), 1);
        }
        failovers++;
      }
    }
  }
  const wait = lastDecision?.kind === 'wait' ? lastDecision : undefined;
  if (loadFailure && (!wait || LOAD_BLOCKED.has(wait.reason))) throw surface(loadFailure);
  throw unavailable({
    reason: wait?.reason ?? 'all_tried',
    retryAfterSeconds: busyRetryAfter ?? wait?.retryAfterSeconds ?? RETRY_AFTER_BUSY_S,
  });
}

/**
 * The fleet view, or a 503 when it cannot be read (the database is down or restarting): the
 * request may succeed in a moment, so it is transient, never an internal error.
 */
async function readState(alias: string) {
  try {
    return await readFleetState(alias, 'alias');
  } catch {
    throw unavailable({ reason: 'state_unavailable', retryAfterSeconds: 2 });
  }
}

function unavailable(d: { reason: string; retryAfterSeconds: number }): ApplicationFailure {
  const why: Record<string, string> = {
    loading: 'the model is loading',
    no_healthy_host: 'no healthy host can serve the model right now',
    no_pinned_host: 'no host with a pinned (attested) key can serve this verifiable model right now',
    no_free_slot: 'no host has a free slot for the model right now',
    all_tried: 'every host serving the model is busy',
    pool_exhausted: "the model's pool has no capacity left and no idle host can join it",
    state_unavailable: 'the fleet state cannot be read (the database is not reachable)',
  };
  return ApplicationFailure.create({
    message: `Service unavailable: ${why[d.reason] ?? d.reason}. Retry after ${d.retryAfterSeconds}s.`,
    type: FailureType.Unavailable,
    nonRetryable: true,
    details: [{ retryAfterSeconds: d.retryAfterSeconds, reason: d.reason }],
  });
}

/** The facts the failover policy needs, read off a failed activity. */
function attemptFacts(err: unknown): AttemptFailure & { retryAfterSeconds?: number } {
  if (err instanceof CancelledFailure) return { cancelled: true, charsStreamed: 0 };
  if (!(err instanceof ActivityFailure)) return { type: 'unknown', charsStreamed: 0 };
  const cause = err.cause;
  if (cause instanceof ApplicationFailure) {
    const d = cause.details?.[0] as { retryAfterSeconds?: number } | undefined;
    return { type: cause.type ?? undefined, charsStreamed: 0, retryAfterSeconds: d?.retryAfterSeconds };
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

/** Re-throws a host's typed failure at top level so the API sees its type directly. */
function surface(err: unknown): unknown {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return err.cause;
  return err;
}
