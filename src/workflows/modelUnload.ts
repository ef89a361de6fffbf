/**
 * modelUnload: an operator frees a model's slot on one host (`fleet models unload`). Durable
 * for the same reason a load is: the placement row says `unloading` while the host works, and
 * whatever happens to the caller, the row ends `unloaded`, or `loaded` again when the host
 * refused because requests are running or queued on the model (ModelBusy, which the API
 * answers with 409). A model that is loading, or not loaded there, is not touched.
 */
import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { ControlPlaneActivities } from '../activities/controlPlane.js';
import type { HostActivities } from '../activities/host.js';
import type { ColdLoadInput, ModelUnloadResult } from '../common/coldLoad.js';
import { FailureType } from '../common/failures.js';
import { typedFailure } from '../common/typedFailure.js';
import { hostQueue } from '../common/taskQueues.js';
import { STATE_LOCAL_PROFILE } from './profiles.js';

const { readFleetState, setPlacement } = proxyLocalActivities<ControlPlaneActivities>(STATE_LOCAL_PROFILE);

/** An unload is quick; a host that does not pick it up within seconds is gone. */
const HOST_PROFILE = {
  scheduleToStartTimeout: '15 seconds',
  startToCloseTimeout: '2 minutes',
  retry: { maximumAttempts: 1 },
} as const;

export async function modelUnload(input: ColdLoadInput): Promise<ModelUnloadResult> {
  const { hostId, modelId } = input;
  const view = await readFleetState(modelId);
  const host = view.hosts.find((h) => h.id === hostId);
  const state = host?.placements.find((p) => p.modelId === modelId)?.state;
  if (state === 'loading' || state === 'unloading') {
    throw typedFailure(FailureType.ModelBusy, `${modelId} is ${state} on host ${hostId}`);
  }
  if (state !== 'loaded') return { hostId, modelId, unloaded: false };
  await setPlacement({ hostId, modelId, state: 'unloading' });
  const acts = proxyActivities<HostActivities>({ ...HOST_PROFILE, taskQueue: hostQueue(hostId) });
  try {
    await acts.unloadModel({ modelId });
  } catch (err) {
    // Refused (requests in flight) or the host is gone: the row says what the host holds.
    await setPlacement({ hostId, modelId, state: 'loaded' });
    throw err;
  }
  await setPlacement({ hostId, modelId, state: 'unloaded' });
  return { hostId, modelId, unloaded: true };
}
