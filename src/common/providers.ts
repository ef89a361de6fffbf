/**
 * The providerRefresh workflow's ids and shapes, shared by the workflow, its Schedule and the
 * API that starts it after an admin change. Sandbox-safe.
 */
export interface ProviderRefreshInput {
  /** Only these providers (an admin change: a partial batch that merges). Absent: every provider. */
  providerIds?: string[];
}

export interface ProviderRefreshOutcome {
  /** Every enabled provider was asked and answered: what they no longer list was pruned. */
  complete: boolean;
  answered: string[];
  failed: Array<{ providerId: string; reason: string }>;
  added: string[];
  removed: string[];
  aliasesRemoved: string[];
}

export const PROVIDER_REFRESH_SCHEDULE_ID = 'fleet.provider-refresh';
export const PROVIDER_REFRESH_WORKFLOW_ID = 'provider-refresh';
/** Runs started outside the Schedule (after a provider changed). */
export const providerRefreshNowId = (at: Date): string => `provider-refresh:${at.toISOString()}`;
