/**
 * discoveryCycle: refresh one model's pin set. Its id is `discovery:<model>:<ISO time>`; a
 * per-model Schedule starts one every interval (overlap SKIP), and operators start one on
 * demand. Steps: count the healthy hosts serving the model (local activity), fan out one
 * `attest` per host on that host's own queue (short schedule-to-start: a host that is gone
 * fails fast instead of stalling the cycle), verify every report here against the catalog's
 * hash and this cycle's nonce, apply the pin-update policy, record the result. Every decision
 * is the pure policy of src/domain/pinSet.ts; nonces come from the SDK's deterministic uuid4.
 */
import { ActivityFailure, log, proxyActivities, proxyLocalActivities, upsertSearchAttributes, uuid4, workflowInfo } from '@temporalio/workflow';
import type { ControlPlaneActivities } from '../activities/controlPlane.js';
import type { HostActivities } from '../activities/host.js';
import { pinUpdateSummary, type DiscoveryInput, type DiscoveryOutcome } from '../common/discovery.js';
import { FleetBackendCount, FleetModel, FleetPinReplaced } from '../common/searchAttributes.js';
import { hostQueue } from '../common/taskQueues.js';
import { ed25519Verifier } from '../domain/attestation.js';
import { applyPinUpdate, attestationTargets, planFanOut, type BackendCount, type HostAttestation } from '../domain/pinSet.js';

const { countServingHosts, readPinSet } = proxyLocalActivities<ControlPlaneActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumAttempts: 3, initialInterval: '200 ms' },
});

const { recordDiscoveryCycle } = proxyActivities<ControlPlaneActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 5, initialInterval: '500 ms' },
});

/** Host-queue profile: a host that does not pick the task up within seconds is gone. */
const ATTEST_PROFILE = {
  scheduleToStartTimeout: '5 seconds',
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 1 },
} as const;

export async function discoveryCycle(input: DiscoveryInput): Promise<DiscoveryOutcome> {
  const { modelId } = input;
  const info = workflowInfo();

  let count: BackendCount;
  let hostIds: string[] = [];
  let sha256: string | null = null;
  let rotation = 0;
  let path: string | undefined;
  try {
    const serving = await countServingHosts(modelId);
    hostIds = serving.hostIds;
    sha256 = serving.sha256;
    rotation = serving.cycle ?? 0;
    path = serving.path;
    count = sha256 === null ? { ok: false, error: 'model not in the catalog' } : { ok: true, count: hostIds.length };
  } catch (err) {
    count = { ok: false, error: describe(err) };
  }

  const plan = planFanOut(count);
  const targets = attestationTargets(hostIds, { attest: plan.attest, rotation });
  const results: HostAttestation[] = await Promise.all(
    targets.map(async (hostId): Promise<HostAttestation> => {
      const nonce = uuid4();
      const host = proxyActivities<HostActivities>({ ...ATTEST_PROFILE, taskQueue: hostQueue(hostId) });
      try {
        const report = await host.attest({ nonce, modelId, ...(path !== undefined ? { path } : {}) });
        const verdict = ed25519Verifier.verify(report, { nonce, hostId, models: { [modelId]: sha256 ?? '' } });
        if (verdict.ok) return { hostId, ok: true, fingerprint: verdict.fingerprint, verified: true };
        return { hostId, ok: true, fingerprint: String(report.keyFingerprint), verified: false, reason: verdict.reason };
      } catch (err) {
        return { hostId, ok: false, error: describe(err) };
      }
    }),
  );

  const current = await readPinSet(modelId);
  const update = applyPinUpdate(current, { count, results });
  const outcome: DiscoveryOutcome = { modelId, workflowId: info.workflowId, pinSet: update.next, ...update.outcome };
  await recordDiscoveryCycle({
    workflowId: info.workflowId,
    modelId,
    startedAt: info.startTime.toISOString(),
    pinSet: update.next,
    outcome,
  });
  upsertSearchAttributes([
    { key: FleetModel, value: modelId },
    { key: FleetBackendCount, value: update.outcome.backendCount ?? 0 },
    { key: FleetPinReplaced, value: update.outcome.mode === 'replaced' },
  ]);
  // The outcome holds fingerprints and reasons only; nonces never leave this function.
  log.info('discovery cycle done', { modelId, ...pinUpdateSummary(outcome) });
  return outcome;
}

function describe(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : 'unknown error';
}
