/**
 * warmPools: the warm-pool planner. Started by a Schedule (every FLEET_POOL_PLANNER_INTERVAL_S,
 * overlap SKIP) and at once when an alias changes. Each round reads the fleet (local
 * activity), lets `planWarmPools` choose loads and moves, runs them (the shared `coldLoad`
 * and `poolReassign` workflows, so a request's load and the planner's are one), and plans
 * again until nothing is left — a rollout upgrades host after host within one run.
 *
 * Under steady load no host of a rollout is ever idle by itself: the run drains the next one
 * (routing sends it nothing while another host serves), so it empties within a request and the step takes one load —
 * not however long a lucky idle moment takes to come. The drain is cleared after its step,
 * and a drain older than DRAIN_TTL_MS is ignored and cleared by the next run (a run that died
 * mid-step leaves no host drained for long); a live run refreshes its own.
 */
import { ActivityFailure, CancellationScope, patched, proxyActivities, proxyLocalActivities, sleep } from '@temporalio/workflow';
import type { ControlPlaneActivities } from '../activities/controlPlane.js';
import type { WarmPoolsOutcome } from '../common/pools.js';
import { DRAIN_TTL_MS } from '../domain/pools.js';
import { drainCandidate, needsDrain, pendingRollouts, planWarmPools } from '../domain/warmPools.js';
import { AWAIT_WORKFLOW_PROFILE, STATE_LOCAL_PROFILE } from './profiles.js';

const { readPlannerState, setHostDraining } = proxyLocalActivities<ControlPlaneActivities>(STATE_LOCAL_PROFILE);

/** Histories recorded before rollouts drained their next host waited for an idle moment only. */
const DRAIN_PATCH = 'rollout-drain';

const { awaitColdLoad, awaitPoolReassign } = proxyActivities<ControlPlaneActivities>(AWAIT_WORKFLOW_PROFILE);

/** Enough for a rollout across a large pool. */
const MAX_ROUNDS = 32;
/**
 * A host whose action failed (a request reached it between the plan and the unload) is tried
 * again after a pause, up to this many times per run; then it is left for the next run.
 */
const MAX_FAILURES_PER_HOST = 3;
/** Seconds a rollout step waits for its busy (drained) host to become idle (then: next run). */
const MAX_ROLLOUT_WAITS = 120;

export async function warmPools(): Promise<WarmPoolsOutcome> {
  const drains = patched(DRAIN_PATCH);
  if (drains) await setHostDraining({ draining: false });
  /** The host this run drains for its rollout's next step, if any, and when it last said so. */
  const drain: { hostId?: string; at?: number } = {};
  try {
    return await plan({ drains, drain });
  } finally {
    const { hostId } = drain;
    if (hostId !== undefined) await CancellationScope.nonCancellable(() => setHostDraining({ hostId, draining: false }));
  }
}

async function plan({ drains, drain }: { drains: boolean; drain: { hostId?: string; at?: number } }): Promise<WarmPoolsOutcome> {
  const mark = async (hostId: string) => {
    await setHostDraining({ hostId, draining: true });
    drain.hostId = hostId;
    drain.at = Date.now();
  };
  const outcome: WarmPoolsOutcome = { rounds: 0, actions: [] };
  // Per host: a host whose actions keep failing (requests keep reaching it) is left alone for
  // the rest of the run, and the plan offers another host instead of waiting on it.
  const failures = new Map<string, number>();
  const skip = () => [...failures].filter(([, n]) => n >= MAX_FAILURES_PER_HOST).map(([hostId]) => hostId);
  let waits = 0;
  for (let round = 0; round < MAX_ROUNDS + MAX_ROLLOUT_WAITS; round++) {
    const state = await readPlannerState();
    const actions = planWarmPools(state, Date.now(), { skip: skip() });
    if (actions.length === 0) {
      // A rollout waits for its next host to be idle, within this run: drained, it soon is.
      if (pendingRollouts(state, Date.now(), { skip: skip() }).length > 0 && waits++ < MAX_ROLLOUT_WAITS) {
        const next = drains && drain.hostId === undefined ? drainCandidate(state, Date.now(), { skip: skip() }) : null;
        if (next) await mark(next);
        // A live drain is refreshed well within its TTL; a stale one (a dead run's) is ignored.
        else if (drain.hostId !== undefined && Date.now() - (drain.at ?? 0) > DRAIN_TTL_MS / 3) await mark(drain.hostId);
        await sleep('1 second');
        continue;
      }
      break;
    }
    if (drains) {
      // A rollout step on a host serving the previous build: drain it first, then act on a
      // fresh plan once it is idle (no request can race the eviction).
      const step = actions.find((a) => needsDrain(state, a));
      if (step && drain.hostId !== step.hostId) {
        if (drain.hostId !== undefined) await setHostDraining({ hostId: drain.hostId, draining: false });
        await mark(step.hostId);
        await sleep('1 second');
        continue;
      }
    }
    if (actions.some((a) => failures.has(a.hostId))) await sleep('1 second');
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
      if (r.status === 'rejected') failures.set(a.hostId, (failures.get(a.hostId) ?? 0) + 1);
      outcome.actions.push({
        ...a,
        ok: r.status === 'fulfilled',
        ...(r.status === 'rejected' ? { error: describe(r.reason) } : {}),
      });
    });
    if (drains) {
      // The wait budget is per step: a rollout across many hosts is not cut short.
      if (results.some((r) => r.status === 'fulfilled')) waits = 0;
      const drained = drain.hostId;
      const step = actions.findIndex((a) => a.hostId === drained);
      // Its step done, it serves like any other host again; a failed step keeps it drained for
      // the retry, unless the host is given up on for this run.
      if (drained !== undefined && step >= 0 && (results[step]!.status === 'fulfilled' || skip().includes(drained))) {
        await setHostDraining({ hostId: drained, draining: false });
        drain.hostId = undefined;
      }
    }
  }
  return outcome;
}

function describe(err: unknown): string {
  const cause = err instanceof ActivityFailure ? err.cause : undefined;
  return cause?.message ?? (err instanceof Error ? err.message : String(err));
}
