/**
 * poolReassign(host, toAlias): moves an idle host into another alias's pool. Id `pool:<host>`,
 * so one host is moved by one workflow at a time; the history records each step:
 *   1. check (fresh state): the host is healthy and idle — nothing running, queued or
 *      loading — else it fails `ReassignRefused` with the reason, and nothing changed;
 *   2. mark the host moving (routing stops offering it to any pool);
 *   3. unload what belongs to other pools (a request that slipped in makes the host refuse:
 *      the host goes back to its pool, refused `busy`);
 *   4. assign it to the new pool (the move's time starts the planner's cool-down);
 *   5. load the alias's desired build (the shared `coldLoad`, progress in its heartbeats).
 * A load that fails leaves the host assigned to the new pool with state `failed` and the
 * reason recorded; routing may cold-load it again later.
 */
import { ActivityFailure, ApplicationFailure, proxyActivities, proxyLocalActivities, upsertSearchAttributes } from '@temporalio/workflow';
import type { ControlPlaneActivities } from '../activities/controlPlane.js';
import type { HostActivities } from '../activities/host.js';
import { FailureType } from '../common/failures.js';
import type { PoolReassignInput, PoolReassignResult } from '../common/pools.js';
import { FleetHost, FleetModel, FleetRequestKind } from '../common/searchAttributes.js';
import { hostQueue } from '../common/taskQueues.js';
import { canEverHost } from '../domain/placement.js';
import { aliasBuilds, REFUSAL_TEXT, reassignRefusal, type ReassignRefusal } from '../domain/pools.js';
import { AWAIT_WORKFLOW_PROFILE, STATE_LOCAL_PROFILE } from './profiles.js';

const { readFleetState, markHostMoving, setHostPool, setPlacement } = proxyLocalActivities<ControlPlaneActivities>(STATE_LOCAL_PROFILE);

const { awaitColdLoad } = proxyActivities<ControlPlaneActivities>(AWAIT_WORKFLOW_PROFILE);

/** Host-queue profile: if nobody picks the task up quickly the host is gone. */
const HOST_PROFILE = {
  scheduleToStartTimeout: '15 seconds',
  startToCloseTimeout: '5 minutes',
  retry: { maximumAttempts: 1 },
} as const;

function refused(hostId: string, reason: ReassignRefusal | 'too_small', toAlias: string): ApplicationFailure {
  const text = reason === 'too_small' ? `the host can never hold ${toAlias}'s build` : REFUSAL_TEXT[reason];
  return ApplicationFailure.create({
    message: `host ${hostId} cannot move to pool ${toAlias}: ${text}`,
    type: FailureType.ReassignRefused,
    nonRetryable: true,
    details: [{ reason, retryAfterSeconds: 1 }],
  });
}

export async function poolReassign(input: PoolReassignInput): Promise<PoolReassignResult> {
  const { hostId, toAlias } = input;
  upsertSearchAttributes([
    { key: FleetHost, value: hostId },
    { key: FleetModel, value: toAlias },
    { key: FleetRequestKind, value: 'poolReassign' },
  ]);
  const view = await readFleetState(toAlias, 'alias');
  const model = view.model;
  if (!model || !view.alias) {
    throw ApplicationFailure.create({ message: `no alias ${toAlias}`, type: FailureType.ModelNotFound, nonRetryable: true });
  }
  const host = view.hosts.find((h) => h.id === hostId);
  const pool = view.pools?.hostPools[hostId];
  const refusal = reassignRefusal(host, pool, { now: Date.now(), heartbeatIntervalMs: view.heartbeatIntervalMs });
  if (refusal) throw refused(hostId, refusal, toAlias);
  if (!canEverHost(host!, model)) throw refused(hostId, 'too_small', toAlias);
  if (!(await markHostMoving(hostId))) throw refused(hostId, 'moving', toAlias);

  const fromAlias = pool?.alias ?? null;
  const keep = new Set(aliasBuilds(view.alias));
  const others = host!.placements.filter((p) => p.state === 'loaded' && !keep.has(p.modelId)).map((p) => p.modelId);
  const hostActs = proxyActivities<HostActivities>({ ...HOST_PROFILE, taskQueue: hostQueue(hostId) });
  for (const modelId of others) {
    await setPlacement({ hostId, modelId, state: 'unloading' });
    try {
      await hostActs.unloadModel({ modelId });
    } catch (err) {
      // A request reached the host after the check: it stays where it was.
      await setPlacement({ hostId, modelId, state: 'loaded' });
      await setHostPool({ hostId, alias: fromAlias, state: 'serving' });
      throw refused(hostId, 'busy', toAlias);
    }
    await setPlacement({ hostId, modelId, state: 'unloaded' });
  }

  await setHostPool({ hostId, alias: toAlias, state: 'serving', moved: true });
  try {
    await awaitColdLoad({ hostId, modelId: model.id, hosts: [hostId] });
  } catch (err) {
    const reason = err instanceof ActivityFailure && err.cause ? err.cause.message : String(err);
    await setHostPool({ hostId, alias: toAlias, state: 'failed', error: reason });
    throw ApplicationFailure.create({
      message: `host ${hostId} joined pool ${toAlias} but loading ${model.id} failed: ${reason}`,
      type: FailureType.LoadFailed,
      nonRetryable: true,
    });
  }
  return { hostId, fromAlias, toAlias, build: model.id, unloaded: others };
}
