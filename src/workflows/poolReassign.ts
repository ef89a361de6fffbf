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
 * Before step 2 the host verifies the new build (hash, header, probe load): a build that cannot
 * load never drags a healthy host out of its pool, and one at fault is quarantined. A load that
 * still fails after the move puts the host back in its old pool, with the reason recorded.
 * A quarantined build is refused outright.
 */
import { ActivityFailure, ApplicationFailure, patched, proxyActivities, proxyLocalActivities, upsertSearchAttributes } from '@temporalio/workflow';
import type { ControlPlaneActivities } from '../activities/controlPlane.js';
import type { HostActivities } from '../activities/host.js';
import { FailureType, type LoadFailureDetails } from '../common/failures.js';
import { typedFailure } from '../common/typedFailure.js';
import type { PoolReassignInput, PoolReassignResult } from '../common/pools.js';
import { FleetHost, FleetModel, FleetRequestKind } from '../common/searchAttributes.js';
import { hostQueue } from '../common/taskQueues.js';
import { canEverHost } from '../domain/placement.js';
import { aliasBuilds, REFUSAL_TEXT, reassignRefusal, type ReassignRefusal } from '../domain/pools.js';
import { judgeLoadFailure, loadFailedFailure, quarantinedFailure } from './failures.js';
import { AWAIT_WORKFLOW_PROFILE, STATE_LOCAL_PROFILE } from './profiles.js';

const { readFleetState, markHostMoving, setHostPool, setPlacement, quarantineBuild, markHostSuspect } =
  proxyLocalActivities<ControlPlaneActivities>(STATE_LOCAL_PROFILE);

const { awaitColdLoad } = proxyActivities<ControlPlaneActivities>(AWAIT_WORKFLOW_PROFILE);

/** Host-queue profile: if nobody picks the task up quickly the host is gone. */
const HOST_PROFILE = {
  scheduleToStartTimeout: '15 seconds',
  startToCloseTimeout: '5 minutes',
  retry: { maximumAttempts: 1 },
} as const;

/** Verifying a build (hashing, probing) beats every second: silence means the host died. */
const CHECK_PROFILE = { ...HOST_PROFILE, startToCloseTimeout: '30 minutes', heartbeatTimeout: '10 seconds' } as const;

/** Histories recorded before the build was verified ahead of the move (and a failed load kept the new pool). */
const VERIFY_BEFORE_MOVE_PATCH = 'verify-before-move';

function refused(hostId: string, reason: ReassignRefusal | 'too_small', toAlias: string): ApplicationFailure {
  const text = reason === 'too_small' ? `the host can never hold ${toAlias}'s build` : REFUSAL_TEXT[reason];
  return typedFailure(FailureType.ReassignRefused, `host ${hostId} cannot move to pool ${toAlias}: ${text}`, { reason, retryAfterSeconds: 1 });
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
    throw typedFailure(FailureType.ModelNotFound, `no alias ${toAlias}`);
  }
  const host = view.hosts.find((h) => h.id === hostId);
  const pool = view.pools?.hostPools[hostId];
  const refusal = reassignRefusal(host, pool, { now: Date.now(), heartbeatIntervalMs: view.heartbeatIntervalMs });
  if (refusal) throw refused(hostId, refusal, toAlias);
  if (!canEverHost(host!, model)) throw refused(hostId, 'too_small', toAlias);
  const verified = patched(VERIFY_BEFORE_MOVE_PATCH);
  if (verified) {
    if (model.quarantined) throw quarantinedFailure(model.id, model.quarantined.reason);
    // The host keeps serving its pool while it checks the build it would load.
    const check = proxyActivities<HostActivities>({ ...CHECK_PROFILE, taskQueue: hostQueue(hostId) });
    try {
      await check.checkModel({ modelId: model.id, path: model.path, sha256: model.sha256, contextLength: model.contextLength });
    } catch (err) {
      const { details, hostGone, reason } = judgeLoadFailure(err, hostId);
      if (hostGone) await markHostSuspect(hostId);
      if (details.scope === 'build') await quarantineBuild({ modelId: model.id, reason, hostId });
      throw loadFailedFailure(`host ${hostId} stays in its pool: ${model.id} cannot be loaded: ${reason}`, details);
    }
  }
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
    if (verified) {
      // Back where it was (the planner or a request loads its old build again when needed).
      await setHostPool({ hostId, alias: fromAlias, state: 'serving', error: `moving to ${toAlias} failed: ${reason}` });
      const details = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause.details?.[0] : undefined;
      throw loadFailedFailure(`host ${hostId} went back to pool ${fromAlias ?? 'none'}: loading ${model.id} failed: ${reason}`, details as LoadFailureDetails | undefined);
    }
    await setHostPool({ hostId, alias: toAlias, state: 'failed', error: reason });
    throw loadFailedFailure(`host ${hostId} joined pool ${toAlias} but loading ${model.id} failed: ${reason}`);
  }
  return { hostId, fromAlias, toAlias, build: model.id, unloaded: others };
}
