/**
 * Starting provider refreshes: the Schedule `fleet.provider-refresh` (every
 * FLEET_PROVIDER_REFRESH_S, overlap SKIP, created idempotently by the control plane at start)
 * and a run now, after an admin change to a provider or for `fleet providers refresh`.
 */
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import { PROVIDER_REFRESH_SCHEDULE_ID, PROVIDER_REFRESH_WORKFLOW_ID, providerRefreshNowId, type ProviderRefreshInput } from '../common/providers.js';
import { CONTROL_PLANE_QUEUE } from '../common/taskQueues.js';
import type { Logger } from '../logger.js';
import type { providerRefresh } from '../workflows/providerRefresh.js';

export async function ensureProviderRefreshSchedule(client: Client, intervalS: number, log: Logger): Promise<void> {
  try {
    await client.schedule.create({
      scheduleId: PROVIDER_REFRESH_SCHEDULE_ID,
      spec: { intervals: [{ every: `${intervalS} seconds` }] },
      action: {
        type: 'startWorkflow',
        workflowType: 'providerRefresh',
        args: [{}],
        taskQueue: CONTROL_PLANE_QUEUE,
        workflowId: PROVIDER_REFRESH_WORKFLOW_ID,
        workflowExecutionTimeout: '5 minutes',
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP },
    });
    log.info({ scheduleId: PROVIDER_REFRESH_SCHEDULE_ID, intervalS }, 'provider refresh scheduled');
  } catch (err) {
    if (err instanceof ScheduleAlreadyRunning) return;
    throw err;
  }
}

/** Starts a refresh now (all providers, or the given ones: then a partial batch that merges). */
export function startProviderRefresh(client: Client, input: ProviderRefreshInput = {}) {
  return client.workflow.start<typeof providerRefresh>('providerRefresh', {
    taskQueue: CONTROL_PLANE_QUEUE,
    workflowId: providerRefreshNowId(new Date()),
    args: [input],
    workflowExecutionTimeout: '5 minutes',
  });
}
