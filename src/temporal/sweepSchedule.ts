/**
 * The Temporal Schedule that runs `sweepReservations`, created idempotently by every
 * control-plane worker at start (the first one wins; the rest find it). It is paused: the
 * control plane triggers it when a sweep has work (src/workers/housekeepingTicker.ts), so
 * idle minutes add no runs. Overlap SKIP: a sweep still running (or waiting for a worker) is
 * never stacked on. A sweep run that finds no worker gives up after a few minutes.
 */
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import { CONTROL_PLANE_QUEUE } from '../common/taskQueues.js';
import type { Logger } from '../logger.js';

export const SWEEP_SCHEDULE_ID = 'fleet.sweep-reservations';
export const SWEEP_WORKFLOW_ID = 'sweep-reservations';
/** How often the control plane asks whether a sweep has work. */
export const SWEEP_INTERVAL_S = 60;

/** Why the housekeeping Schedules are paused (shown in the Web UI). */
export const TRIGGERED_NOTE = 'paused on purpose: the control plane triggers a run when there is work (housekeepingTicker.ts)';

export async function ensureSweepSchedule(client: Client, log: Logger): Promise<void> {
  try {
    await client.schedule.create({
      scheduleId: SWEEP_SCHEDULE_ID,
      spec: { intervals: [{ every: `${SWEEP_INTERVAL_S} seconds` }] },
      action: {
        type: 'startWorkflow',
        workflowType: 'sweepReservations',
        args: [],
        taskQueue: CONTROL_PLANE_QUEUE,
        workflowId: SWEEP_WORKFLOW_ID,
        workflowExecutionTimeout: '5 minutes',
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP },
      state: { paused: true, note: TRIGGERED_NOTE },
    });
    log.info({ scheduleId: SWEEP_SCHEDULE_ID }, 'reservation sweep scheduled');
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await pauseIfRunning(client, SWEEP_SCHEDULE_ID);
  }
}

/** A Schedule made before the ticker ran on its own period: paused now, so it stops firing. */
export async function pauseIfRunning(client: Client, scheduleId: string): Promise<void> {
  const handle = client.schedule.getHandle(scheduleId);
  if (!(await handle.describe()).state.paused) await handle.pause(TRIGGERED_NOTE);
}
