/**
 * Starts `poolReassign` (one per host, id `pool:<host>`) and the warm-pool planner, in one
 * place: the on-demand path (a request's activity), the operator's endpoint and the
 * planner's Schedule must agree on ids and conflict policies, or one host could be moved by
 * two workflows at once. The planner runs every FLEET_POOL_PLANNER_INTERVAL_S seconds
 * (overlap SKIP); changing an alias starts an extra run at once.
 */
import {
  ScheduleAlreadyRunning,
  ScheduleOverlapPolicy,
  WorkflowIdConflictPolicy,
  type Client,
  type WorkflowHandle,
} from '@temporalio/client';
import {
  poolReassignWorkflowId,
  WARM_POOLS_NOW_WORKFLOW_ID,
  WARM_POOLS_SCHEDULE_ID,
  WARM_POOLS_WORKFLOW_ID,
  type PoolReassignInput,
} from '../common/pools.js';
import { CONTROL_PLANE_QUEUE } from '../common/taskQueues.js';
import type { Logger } from '../logger.js';
import { pauseIfRunning, TRIGGERED_NOTE } from './sweepSchedule.js';
import type { poolReassign } from '../workflows/poolReassign.js';
import type { warmPools } from '../workflows/warmPools.js';

export type PoolReassignHandle = WorkflowHandle<typeof poolReassign>;

/**
 * Starts the host's reassignment. `attach`: join one already running for the same host (the
 * on-demand path); otherwise a running one makes the start fail (WorkflowExecutionAlreadyStartedError).
 */
export function startPoolReassign(client: Client, input: PoolReassignInput, attach: boolean): Promise<PoolReassignHandle> {
  return client.workflow.start<typeof poolReassign>('poolReassign', {
    taskQueue: CONTROL_PLANE_QUEUE,
    workflowId: poolReassignWorkflowId(input.hostId),
    workflowIdConflictPolicy: attach ? WorkflowIdConflictPolicy.USE_EXISTING : WorkflowIdConflictPolicy.FAIL,
    workflowExecutionTimeout: '1 hour',
    args: [input],
  });
}

/** Runs the planner now (joins a run started the same way that is still going). */
export function startWarmPoolsNow(client: Client): Promise<WorkflowHandle<typeof warmPools>> {
  return client.workflow.start<typeof warmPools>('warmPools', {
    taskQueue: CONTROL_PLANE_QUEUE,
    workflowId: WARM_POOLS_NOW_WORKFLOW_ID,
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    workflowExecutionTimeout: '1 hour',
    args: [],
  });
}

/** Creates the planner's Schedule, or updates its period when it differs (idempotent). */
export async function ensureWarmPoolsSchedule(client: Client, intervalS: number, log: Logger): Promise<void> {
  const spec = { intervals: [{ every: `${intervalS} seconds` }] };
  try {
    await client.schedule.create({
      scheduleId: WARM_POOLS_SCHEDULE_ID,
      spec,
      action: {
        type: 'startWorkflow',
        workflowType: 'warmPools',
        args: [],
        taskQueue: CONTROL_PLANE_QUEUE,
        workflowId: WARM_POOLS_WORKFLOW_ID,
        workflowExecutionTimeout: '1 hour',
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP },
      // Triggered by the control plane when the planner has work (housekeepingTicker.ts).
      state: { paused: true, note: TRIGGERED_NOTE },
    });
    log.info({ scheduleId: WARM_POOLS_SCHEDULE_ID, intervalS }, 'warm-pool planner scheduled');
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await pauseIfRunning(client, WARM_POOLS_SCHEDULE_ID);
    const handle = client.schedule.getHandle(WARM_POOLS_SCHEDULE_ID);
    const current = await handle.describe();
    const every = current.spec.intervals?.[0]?.every;
    if (every !== undefined && Number(every) === intervalS * 1000) return;
    await handle.update((prev) => ({ ...prev, spec }));
    log.info({ scheduleId: WARM_POOLS_SCHEDULE_ID, intervalS }, 'warm-pool planner period updated');
  }
}
