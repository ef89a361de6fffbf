/**
 * The Temporal Schedule that runs `sweepReservations` every minute, created idempotently by
 * every control-plane worker at start (the first one wins; the rest find it). Overlap SKIP:
 * a sweep still running (or waiting for a worker) is never stacked on. A sweep run that
 * finds no worker gives up after a few minutes rather than lingering.
 */
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import { CONTROL_PLANE_QUEUE } from '../common/taskQueues.js';
import type { Logger } from '../logger.js';

export const SWEEP_SCHEDULE_ID = 'fleet.sweep-reservations';
export const SWEEP_WORKFLOW_ID = 'sweep-reservations';

export async function ensureSweepSchedule(client: Client, log: Logger): Promise<void> {
  try {
    await client.schedule.create({
      scheduleId: SWEEP_SCHEDULE_ID,
      spec: { intervals: [{ every: '60 seconds' }] },
      action: {
        type: 'startWorkflow',
        workflowType: 'sweepReservations',
        args: [],
        taskQueue: CONTROL_PLANE_QUEUE,
        workflowId: SWEEP_WORKFLOW_ID,
        workflowExecutionTimeout: '5 minutes',
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP },
    });
    log.info({ scheduleId: SWEEP_SCHEDULE_ID }, 'reservation sweep scheduled');
  } catch (err) {
    if (err instanceof ScheduleAlreadyRunning) return;
    throw err;
  }
}
