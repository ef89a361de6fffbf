/**
 * coldLoad: load one model onto one host and record the placement. Its id is
 * `coldload:<host>:<model>`, and callers start it with the USE_EXISTING conflict policy, so
 * concurrent requests for a model nobody holds attach to a single load.
 */
import { ApplicationFailure, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { ControlPlaneActivities } from '../activities/controlPlane.js';
import type { HostActivities } from '../activities/host.js';
import type { ColdLoadInput, ColdLoadResult } from '../common/coldLoad.js';
import { FailureType } from '../common/failures.js';
import { hostQueue } from '../common/taskQueues.js';

const { beginColdLoad, finishColdLoad } = proxyLocalActivities<ControlPlaneActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumAttempts: 5, initialInterval: '200 ms' },
});

/** Load profile: the host's queue; if nobody picks it up quickly the host is gone. */
const LOAD_PROFILE = {
  scheduleToStartTimeout: '15 seconds',
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { maximumAttempts: 1 },
} as const;

export async function coldLoad(input: ColdLoadInput): Promise<ColdLoadResult> {
  const model = await beginColdLoad(input);
  const host = proxyActivities<HostActivities>({ ...LOAD_PROFILE, taskQueue: hostQueue(input.hostId) });
  try {
    await host.loadModel({
      modelId: model.id,
      path: model.path,
      sha256: model.sha256,
      contextLength: model.contextLength,
    });
  } catch (err) {
    const reason = describe(err);
    await finishColdLoad({ ...input, ok: false, error: reason });
    throw ApplicationFailure.create({
      message: `loading ${input.modelId} on ${input.hostId} failed: ${reason}`,
      type: FailureType.LoadFailed,
      nonRetryable: true,
    });
  }
  await finishColdLoad({ ...input, ok: true });
  return input;
}

function describe(err: unknown): string {
  const e = err as { cause?: { message?: string }; message?: string };
  return e.cause?.message ?? e.message ?? 'unknown error';
}
