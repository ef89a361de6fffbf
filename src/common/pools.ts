/**
 * The poolReassign and warmPools workflows' ids and shapes, shared by the workflows, the
 * activities and the API that start them (so activity code never imports workflow modules).
 * Sandbox-safe.
 */
export type ReassignReason = 'operator' | 'on_demand' | 'planner';

export interface PoolReassignInput {
  hostId: string;
  toAlias: string;
  reason: ReassignReason;
}

export interface PoolReassignResult {
  hostId: string;
  fromAlias: string | null;
  toAlias: string;
  /** The build loaded for the new pool. */
  build: string;
  /** Models unloaded because they belong to another pool. */
  unloaded: string[];
}

/** One reassignment per host at a time: the id is the host's. */
export function poolReassignWorkflowId(hostId: string): string {
  return `pool:${hostId}`;
}

export const WARM_POOLS_SCHEDULE_ID = 'fleet.warm-pools';
export const WARM_POOLS_WORKFLOW_ID = 'warm-pools';
/** Runs started outside the Schedule (after an alias changes, or by an operator). */
export const WARM_POOLS_NOW_WORKFLOW_ID = 'warm-pools:now';

export interface WarmPoolsOutcome {
  rounds: number;
  actions: Array<{ kind: 'load' | 'move'; hostId: string; alias: string; build?: string; why: string; ok: boolean; error?: string }>;
}
