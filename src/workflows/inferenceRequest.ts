/**
 * inferenceRequest: one API call. Reads fleet state (local activity), lets the routing policy
 * rank hosts, runs `generate` on the chosen host's own queue with a short schedule-to-start
 * timeout, falls through to the next replica when a host refuses or is gone, and cold-loads
 * (attaching to a shared `coldLoad` workflow) when no host holds the model.
 * The workflow id is the request id, which is also the OpenAI response id.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  proxyActivities,
  proxyLocalActivities,
  TimeoutFailure,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { ControlPlaneActivities } from '../activities/controlPlane.js';
import type { HostActivities } from '../activities/host.js';
import { FailureType } from '../common/failures.js';
import type { InferenceRequestInput, InferenceResult } from '../common/inference.js';
import { FleetHost } from '../common/searchAttributes.js';
import { hostQueue } from '../common/taskQueues.js';
import { routeRequest, type RouteDecision } from '../domain/routing.js';

const { readFleetState } = proxyLocalActivities<ControlPlaneActivities>({
  startToCloseTimeout: '5 seconds',
  retry: { maximumAttempts: 3, initialInterval: '100 ms' },
});

const { awaitColdLoad } = proxyActivities<ControlPlaneActivities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { maximumAttempts: 1 },
});

/**
 * Generate profile: a host that has not picked the task up within seconds is gone or
 * swamped, so the request moves on; once running, heartbeats prove it is alive.
 */
const GENERATE_PROFILE = {
  scheduleToStartTimeout: '5 seconds',
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '20 seconds',
  retry: { maximumAttempts: 1 },
} as const;

/** Route → (cold load | generate) rounds before giving up with 503. */
const MAX_ROUNDS = 4;

export async function inferenceRequest(input: InferenceRequestInput): Promise<InferenceResult> {
  const tried: string[] = [];
  let coldLoaded = false;
  let lastDecision: RouteDecision | undefined;

  for (let round = 0; round < MAX_ROUNDS; round++) {
    const view = await readFleetState(input.modelId);
    const decision = routeRequest(view, { now: Date.now(), exclude: tried });
    lastDecision = decision;
    if (decision.kind === 'notFound') {
      throw ApplicationFailure.create({
        message: `The model '${input.modelId}' does not exist or no host can serve it`,
        type: FailureType.ModelNotFound,
        nonRetryable: true,
      });
    }
    if (decision.kind === 'wait') throw unavailable(decision);
    if (decision.kind === 'coldLoad') {
      await awaitColdLoad({ hostId: decision.hostId, modelId: input.modelId });
      coldLoaded = true;
      continue;
    }
    const contextLength = view.model?.contextLength ?? 0;
    for (const hostId of decision.candidates) {
      tried.push(hostId);
      upsertSearchAttributes([{ key: FleetHost, value: hostId }]);
      const host = proxyActivities<HostActivities>({ ...GENERATE_PROFILE, taskQueue: hostQueue(hostId) });
      try {
        const result = await host.generate({ ...input, contextLength });
        return { ...result, modelId: input.modelId, coldLoaded };
      } catch (err) {
        if (!isFallThrough(err)) throw surface(err);
      }
    }
  }
  throw unavailable(
    lastDecision?.kind === 'wait' ? lastDecision : { reason: 'all_tried', retryAfterSeconds: 1 },
  );
}

function unavailable(d: { reason: string; retryAfterSeconds: number }): ApplicationFailure {
  const why =
    d.reason === 'loading'
      ? 'the model is loading'
      : d.reason === 'no_healthy_host'
        ? 'no healthy host can serve the model right now'
        : 'every host serving the model is busy';
  return ApplicationFailure.create({
    message: `Service unavailable: ${why}. Retry after ${d.retryAfterSeconds}s.`,
    type: FailureType.Unavailable,
    nonRetryable: true,
    details: [{ retryAfterSeconds: d.retryAfterSeconds, reason: d.reason }],
  });
}

/** A refusal or a vanished host before work began: the next replica may succeed. */
function isFallThrough(err: unknown): boolean {
  if (!(err instanceof ActivityFailure)) return false;
  const cause = err.cause;
  if (cause instanceof ApplicationFailure) {
    return cause.type === FailureType.HostBusy || cause.type === FailureType.ModelNotLoaded;
  }
  return cause instanceof TimeoutFailure && cause.timeoutType === 'SCHEDULE_TO_START';
}

/** Re-throws a host's typed failure at top level so the API sees its type directly. */
function surface(err: unknown): unknown {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return err.cause;
  return err;
}
