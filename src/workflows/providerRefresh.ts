/**
 * providerRefresh: list every provider's `/v1/models` (activities on the provider queue, in
 * parallel), then apply merge-or-prune (src/domain/providerCatalog.ts) in one local activity.
 * Only a complete refresh — every enabled provider asked and answered — prunes; a run for some
 * providers (after an admin change) or one where any provider failed only merges. Runs on the
 * Schedule `fleet.provider-refresh` (overlap SKIP) and at once after a provider is added or
 * changed (same code path).
 */
import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { ControlPlaneActivities } from '../activities/controlPlane.js';
import type { ProviderActivities } from '../activities/provider.js';
import type { ProviderRefreshInput, ProviderRefreshOutcome } from '../common/providers.js';
import { PROVIDER_QUEUE } from '../common/taskQueues.js';
import { STATE_LOCAL_PROFILE } from './profiles.js';

const { listRefreshTargets, applyProviderListings } = proxyLocalActivities<ControlPlaneActivities>(STATE_LOCAL_PROFILE);

/** A listing is one small GET: if no provider worker takes it soon, it counts as failed. */
const { listModels } = proxyActivities<ProviderActivities>({
  taskQueue: PROVIDER_QUEUE,
  scheduleToCloseTimeout: '2 minutes',
  retry: { maximumAttempts: 1 },
});

export async function providerRefresh(input: ProviderRefreshInput = {}): Promise<ProviderRefreshOutcome> {
  const { enabled } = await listRefreshTargets();
  const asked = input.providerIds ? enabled.filter((id) => input.providerIds!.includes(id)) : enabled;
  const listings = await Promise.all(
    asked.map((providerId) => listModels({ providerId }).catch((err: Error) => ({ providerId, ok: false as const, reason: err.message }))),
  );
  const complete = !input.providerIds && listings.every((l) => l.ok);
  const applied = await applyProviderListings({ listings, complete });
  return {
    complete,
    answered: listings.filter((l) => l.ok).map((l) => l.providerId),
    failed: listings.flatMap((l) => (l.ok ? [] : [{ providerId: l.providerId, reason: l.reason }])),
    ...applied,
  };
}
