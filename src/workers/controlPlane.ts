/**
 * The control-plane worker: every workflow, plus the activities that touch Postgres or start
 * other workflows. Any number of these can poll the same queue; Temporal spreads the work.
 * At start it makes sure the reservation sweep and the warm-pool planner are scheduled.
 */
import { Worker } from '@temporalio/worker';
import { fileURLToPath } from 'node:url';
import { createControlPlaneActivities } from '../activities/controlPlane.js';
import { CONTROL_PLANE_QUEUE } from '../common/taskQueues.js';
import type { DbHandle } from '../db/connect.js';
import type { Logger } from '../logger.js';
import type { TemporalHandle } from '../temporal/connect.js';
import type { FleetConfig } from '../config.js';
import { ensureWarmPoolsSchedule } from '../temporal/poolStarters.js';
import { ensureSweepSchedule } from '../temporal/sweepSchedule.js';
import type { RunningWorker } from './gpuHost.js';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface ControlPlaneOptions {
  temporal: TemporalHandle;
  db: DbHandle;
  heartbeatIntervalMs: number;
  pools: FleetConfig['pools'];
  log: Logger;
}

export async function startControlPlaneWorker(o: ControlPlaneOptions): Promise<RunningWorker> {
  const log = o.log.child({ worker: 'control-plane' });
  const worker = await Worker.create({
    connection: o.temporal.connection,
    namespace: o.temporal.namespace,
    dataConverter: o.temporal.dataConverter,
    taskQueue: CONTROL_PLANE_QUEUE,
    workflowsPath: WORKFLOWS_PATH,
    activities: createControlPlaneActivities({
      db: o.db.db,
      client: o.temporal.client,
      heartbeatIntervalMs: o.heartbeatIntervalMs,
      pools: { enabled: o.pools.enabled, cooldownMs: o.pools.cooldownMs },
      log,
    }),
    shutdownGraceTime: '5 seconds',
  });
  const done = worker.run();
  log.info({ taskQueue: CONTROL_PLANE_QUEUE }, 'control-plane worker running');
  await ensureSweepSchedule(o.temporal.client, log).catch((err: Error) => {
    // Not fatal: requests still settle and release; only crash leftovers wait for a later start.
    log.error({ err: err.message }, 'could not schedule the reservation sweep');
  });
  await ensureWarmPoolsSchedule(o.temporal.client, o.pools.plannerIntervalS, log).catch((err: Error) => {
    log.error({ err: err.message }, 'could not schedule the warm-pool planner');
  });
  let stopping: Promise<void> | undefined;
  return {
    done,
    stop: () =>
      (stopping ??= (async () => {
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await done.catch((err: Error) => log.error({ err: err.message }, 'control-plane worker failed'));
      })()),
  };
}
