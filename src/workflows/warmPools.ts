/**
 * warmPools: the warm-pool planner. Started by a Schedule (every FLEET_POOL_PLANNER_INTERVAL_S,
 * overlap SKIP) and at once when an alias changes. Each round reads the fleet (local
 * activity), lets `planWarmPools` choose loads and moves, runs them (the shared `coldLoad`
 * and `poolReassign` workflows, so a request's load and the planner's are one), and plans
 * again until nothing is left — a rollout upgrades host after host within one run.
 */
import { ActivityFailure, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { ControlPlaneActivities } from '../activities/controlPlane.js';
import type { WarmPoolsOutcome } from '../common/pools.js';
import { planWarmPools } from '../domain/warmPools.js';

const { readPlannerState } = proxyLocalActivities<ControlPlaneActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumAttempts: 5, initialInterval: '200 ms' },
});

const { awaitColdLoad, awaitPoolReassign } = proxyActivities<ControlPlaneActivities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { maximumAttempts: 1 },
});

/** Enough for a rollout across a large pool; an action that keeps failing stops the run. */
const MAX_ROUNDS = 32;

export async function warmPools(): Promise<WarmPoolsOutcome> {
  const outcome: WarmPoolsOutcome = { rounds: 0, actions: [] };
  const failed = new Set<string>();
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const state = await readPlannerState();
    // An action that failed once in this run is not retried until the next run.
    const actions = planWarmPools(state, Date.now()).filter((a) => !failed.has(`${a.kind}:${a.hostId}:${a.alias}`));
    if (actions.length === 0) break;
    outcome.rounds++;
    const results = await Promise.allSettled(
      actions.map((a) =>
        a.kind === 'load'
          ? awaitColdLoad({ hostId: a.hostId, modelId: a.build, hosts: [a.hostId] })
          : awaitPoolReassign({ hostId: a.hostId, toAlias: a.alias, reason: 'planner' }),
      ),
    );
    results.forEach((r, i) => {
      const a = actions[i]!;
      if (r.status === 'rejected') failed.add(`${a.kind}:${a.hostId}:${a.alias}`);
      outcome.actions.push({
        ...a,
        ok: r.status === 'fulfilled',
        ...(r.status === 'rejected' ? { error: describe(r.reason) } : {}),
      });
    });
  }
  return outcome;
}

function describe(err: unknown): string {
  const cause = err instanceof ActivityFailure ? err.cause : undefined;
  return cause?.message ?? (err instanceof Error ? err.message : String(err));
}
