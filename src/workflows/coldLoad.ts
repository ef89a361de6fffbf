/**
 * coldLoad: load one model onto one host and record the placement. Its id is
 * `coldload:<host>:<model>`, and callers start it with the USE_EXISTING conflict policy, so
 * concurrent requests for a model nobody holds attach to a single load. When the host's slots
 * are full it first unloads the least recently used idle models (the placement policy's plan,
 * made again here on fresh state); a model with requests in flight is never evicted.
 *
 * A load that fails for the build's own sake quarantines the build, so no other host is sent
 * to load it: the host refused the file (malformed, or its probe load failed or was killed by
 * llama.cpp), or the host died while loading it (its heartbeat stopped mid-load — an abort in
 * llama.cpp takes the whole worker). Before evicting anything the host verifies the build
 * (hash, header, probe), so a build that cannot load never costs a host the model it holds.
 */
import { ActivityFailure, ApplicationFailure, patched, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { ControlPlaneActivities } from '../activities/controlPlane.js';
import type { HostActivities, LoadModelInput } from '../activities/host.js';
import type { ColdLoadInput, ColdLoadResult } from '../common/coldLoad.js';
import { FailureType } from '../common/failures.js';
import { typedFailure } from '../common/typedFailure.js';
import { hostQueue } from '../common/taskQueues.js';
import { planLoadOnHost } from '../domain/placement.js';
import { judgeLoadFailure, loadFailedFailure, quarantinedFailure } from './failures.js';
import { STATE_LOCAL_PROFILE } from './profiles.js';

const { readFleetState, setPlacement, quarantineBuild, markHostSuspect } = proxyLocalActivities<ControlPlaneActivities>(STATE_LOCAL_PROFILE);

/**
 * Host-queue profile: if nobody picks the task up quickly the host is gone; a host that stops
 * heartbeating mid-load (it beats every second while verifying, probing and loading) died.
 */
const HOST_PROFILE = {
  scheduleToStartTimeout: '15 seconds',
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { maximumAttempts: 1 },
} as const;

/** Histories recorded before quarantine ended a failed load without these steps. */
const QUARANTINE_PATCH = 'load-failure-quarantine';
const VERIFY_BEFORE_EVICT_PATCH = 'verify-before-evict';

export async function coldLoad(input: ColdLoadInput): Promise<ColdLoadResult> {
  const { hostId, modelId } = input;
  const view = await readFleetState(modelId);
  const model = view.model;
  if (!model) throw typedFailure(FailureType.ModelNotFound, `model ${modelId} is not in the catalog`);
  if (model.quarantined && patched(QUARANTINE_PATCH)) {
    await setPlacement({ hostId, modelId, state: 'unloaded', error: 'the build is quarantined' });
    throw quarantinedFailure(modelId, model.quarantined.reason);
  }
  const hostView = view.hosts.find((h) => h.id === hostId);
  const plan = hostView ? planLoadOnHost(hostView, modelId) : null;
  if (!plan) {
    // The placement may hold this load's claim ("loading"): release it.
    await setPlacement({ hostId, modelId, state: 'unloaded', error: 'no free or evictable slot' });
    throw typedFailure(FailureType.Unavailable, `host ${hostId} has no free or evictable slot for ${modelId}`, { retryAfterSeconds: 1, reason: 'no_free_slot' });
  }
  const host = proxyActivities<HostActivities>({ ...HOST_PROFILE, taskQueue: hostQueue(hostId) });
  const load: LoadModelInput = { modelId, path: model.path, sha256: model.sha256, contextLength: model.contextLength };

  if (plan.evict.length > 0 && patched(VERIFY_BEFORE_EVICT_PATCH)) {
    try {
      await host.checkModel(load);
    } catch (err) {
      throw await loadFailure(input, err);
    }
  }
  for (const victim of plan.evict) {
    await setPlacement({ hostId, modelId: victim, state: 'unloading' });
    try {
      await host.unloadModel({ modelId: victim });
    } catch (err) {
      // Requests arrived since the plan was made: it stays loaded, and this load waits.
      await setPlacement({ hostId, modelId: victim, state: 'loaded' });
      await setPlacement({ hostId, modelId, state: 'unloaded', error: `could not evict ${victim}` });
      throw typedFailure(FailureType.Unavailable, `could not evict ${victim} from ${hostId}: ${describe(err)}`, { retryAfterSeconds: 1, reason: 'no_free_slot' });
    }
    await setPlacement({ hostId, modelId: victim, state: 'unloaded' });
  }

  await setPlacement({ hostId, modelId, state: 'loading', progress: 0 });
  try {
    await host.loadModel(load);
  } catch (err) {
    throw await loadFailure(input, err);
  }
  await setPlacement({ hostId, modelId, state: 'loaded' });
  return { hostId, modelId, evicted: plan.evict };
}

/** Records a failed load (and a quarantine, when it is the build's fault); returns the failure to throw. */
async function loadFailure(input: ColdLoadInput, err: unknown): Promise<ApplicationFailure> {
  const { hostId, modelId } = input;
  if (!patched(QUARANTINE_PATCH)) {
    const reason = describe(err);
    await setPlacement({ hostId, modelId, state: 'failed', error: reason });
    return loadFailedFailure(`loading ${modelId} on ${hostId} failed: ${reason}`);
  }
  const { details, hostGone, reason } = judgeLoadFailure(err, hostId);
  if (hostGone) await markHostSuspect(hostId);
  if (details.scope === 'build') await quarantineBuild({ modelId, reason, hostId });
  await setPlacement({ hostId, modelId, state: 'failed', error: reason });
  return loadFailedFailure(`loading ${modelId} on ${hostId} failed: ${reason}`, details);
}

function describe(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : 'unknown error';
}
