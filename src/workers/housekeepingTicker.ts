/**
 * Starts the housekeeping workflows only when they have work. The reservation sweep and the
 * warm-pool planner are Temporal Schedules (durable, visible, retried like any workflow) but
 * paused: a run every minute that changes nothing would fill the Web UI's default list with
 * thousands of idle runs a day. This ticker, in each control-plane process, asks the cheap
 * questions on the schedules' periods — is any reservation expired, any window bucket stale;
 * would the planner (the same pure policy) load, move or roll anything — and triggers the
 * Schedule when the answer is yes. An operator can still trigger either from the UI or CLI.
 */
import { ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type { Kysely } from 'kysely';
import { hasSweepWork } from '../db/budgetRepo.js';
import type { Database } from '../db/schema.js';
import { plannerHasWork, type PlannerState } from '../domain/warmPools.js';
import type { Logger } from '../logger.js';
import { WARM_POOLS_SCHEDULE_ID } from '../common/pools.js';
import { SWEEP_INTERVAL_S, SWEEP_SCHEDULE_ID } from '../temporal/sweepSchedule.js';

export interface HousekeepingTicker {
  stop(): void;
}

export function startHousekeepingTicker(o: {
  client: Client;
  db: Kysely<Database>;
  plannerIntervalS: number;
  readPlannerState: () => Promise<PlannerState>;
  log: Logger;
}): HousekeepingTicker {
  const log = o.log.child({ component: 'housekeeping' });
  const tick = (scheduleId: string, hasWork: () => Promise<boolean>) => {
    let running = false;
    return async () => {
      if (running) return; // a slow database: one question at a time
      running = true;
      try {
        if (await hasWork()) await o.client.schedule.getHandle(scheduleId).trigger(ScheduleOverlapPolicy.SKIP);
      } catch (err) {
        // Transient (database or Temporal restarting): the next tick asks again.
        log.debug({ scheduleId, err: (err as Error).message }, 'housekeeping check failed');
      } finally {
        running = false;
      }
    };
  };
  const timers = [
    setInterval(tick(SWEEP_SCHEDULE_ID, () => hasSweepWork(o.db)), SWEEP_INTERVAL_S * 1000),
    setInterval(tick(WARM_POOLS_SCHEDULE_ID, async () => plannerHasWork(await o.readPlannerState(), Date.now())), o.plannerIntervalS * 1000),
  ];
  for (const t of timers) t.unref();
  return {
    stop: () => {
      for (const t of timers) clearInterval(t);
    },
  };
}
