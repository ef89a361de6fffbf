/**
 * attestedDiscoveryCycle: refresh the pin set of one remote build of an attested provider. Its
 * id is `discovery:<provider>:<slug>:<time>`; a Schedule per build starts one every interval
 * (overlap SKIP), the first at once when the build appears. Steps: count the proxy's healthy
 * backends, attest each backend index through its rotation host (a window of at most 256 that
 * rotates from cycle to cycle when capped), fold the calls into one verdict per index, apply
 * the same pin-update policy as our own hosts (src/domain/pinSet.ts), and record the set with
 * the signing keys each fingerprint vouched for. Nonces are made and checked in the activity:
 * they never enter the history.
 */
import { log, proxyActivities, proxyLocalActivities, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { AttestedProviderActivities } from '../activities/attestedProvider.js';
import type { ControlPlaneActivities } from '../activities/controlPlane.js';
import { pinUpdateSummary, type AttestedDiscoveryInput, type AttestedDiscoveryOutcome } from '../common/discovery.js';
import { FleetBackendCount, FleetModel, FleetPinReplaced, FleetProvider } from '../common/searchAttributes.js';
import { PROVIDER_QUEUE } from '../common/taskQueues.js';
import { foldIndexResults, keysForPins, planAttestationCalls, type IndexAttestation } from '../domain/attestedProvider.js';
import { applyPinUpdate, MAX_ATTESTATION_FANOUT, type BackendCount } from '../domain/pinSet.js';
import { remoteBuildId } from '../domain/providerCatalog.js';

const { readPinRecord } = proxyLocalActivities<ControlPlaneActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumAttempts: 3, initialInterval: '200 ms' },
});

const { recordDiscoveryCycle } = proxyActivities<ControlPlaneActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 5, initialInterval: '500 ms' },
});

/** Each call has its own network timeout (≤ 10 s); one attempt — a failure is an answer. */
const { countProviderBackends, attestProviderBackend } = proxyActivities<AttestedProviderActivities>({
  taskQueue: PROVIDER_QUEUE,
  scheduleToStartTimeout: '30 seconds',
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 1 },
});

export async function attestedDiscoveryCycle(input: AttestedDiscoveryInput): Promise<AttestedDiscoveryOutcome> {
  const info = workflowInfo();
  const buildId = remoteBuildId(input.providerId, input.slug);
  const before = await readPinRecord(buildId);

  const counted = await countProviderBackends({ providerId: input.providerId });
  const count: BackendCount = counted.ok ? { ok: true, count: counted.healthy } : { ok: false, error: counted.reason };
  const calls = counted.ok ? planAttestationCalls({ count: counted.healthy, cap: MAX_ATTESTATION_FANOUT, cycleSeq: before.cycleSeq }) : [];
  const results: IndexAttestation[] = await Promise.all(
    calls.map((c) =>
      attestProviderBackend({ providerId: input.providerId, slug: input.slug, index: c.index, algo: c.algo }).catch(
        (err: Error): IndexAttestation => ({ index: c.index, algo: c.algo, ok: false, reason: `activity: ${err.message}` }),
      ),
    ),
  );
  const folded = foldIndexResults(results);
  // Without a count the policy changes nothing; a count failure keeps its own wording (count_*, url_parse: …).
  const update = applyPinUpdate(before.pinSet, { count, results: folded.attestations });
  if (!counted.ok) update.outcome.reasons = [counted.reason];

  const indices = [...new Set(calls.map((c) => c.index))].sort((a, b) => a - b);
  const outcome: AttestedDiscoveryOutcome = { providerId: input.providerId, buildId, workflowId: info.workflowId, pinSet: update.next, indices, ...update.outcome };
  await recordDiscoveryCycle({
    workflowId: info.workflowId,
    modelId: buildId,
    startedAt: info.startTime.toISOString(),
    pinSet: update.next,
    outcome,
    attested: {
      keys: keysForPins(update.next.fingerprints, before.keys, folded.keys),
      backendCount: counted.ok ? counted.healthy : before.backendCount,
      cycleSeq: before.cycleSeq + 1,
    },
  });
  upsertSearchAttributes([
    { key: FleetProvider, value: input.providerId },
    { key: FleetModel, value: buildId },
    { key: FleetBackendCount, value: update.outcome.backendCount ?? 0 },
    { key: FleetPinReplaced, value: update.outcome.mode === 'replaced' },
  ]);
  log.info('attested discovery cycle done', { providerId: input.providerId, buildId, ...pinUpdateSummary(outcome) });
  return outcome;
}
