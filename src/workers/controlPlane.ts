/**
 * The control-plane worker: every workflow, plus the activities that touch Postgres or start
 * other workflows. Any number of these can poll the same queue; Temporal spreads the work.
 * At start it makes sure the reservation sweep and the warm-pool planner are scheduled.
 */
import type { DemotionPolicy } from '../domain/replicas.js';
import { bundleWorkflowCode, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { fileURLToPath } from 'node:url';
import { createControlPlaneActivities } from '../activities/controlPlane.js';
import { CONTROL_PLANE_QUEUE, REQUEST_QUEUE } from '../common/taskQueues.js';
import type { DbHandle } from '../db/connect.js';
import type { Logger } from '../logger.js';
import type { TemporalHandle } from '../temporal/connect.js';
import type { FleetConfig } from '../config.js';
import { ensureWarmPoolsSchedule } from '../temporal/poolStarters.js';
import { ensureSweepSchedule } from '../temporal/sweepSchedule.js';
import { startHousekeepingTicker } from './housekeepingTicker.js';
import { syncConfigProviders } from '../db/providersRepo.js';
import { parseCanonicalMap } from '../domain/canonicalIds.js';
import { ensureProviderRefreshSchedule, startProviderRefresh } from '../temporal/providerRefresh.js';
import { reconcileAttestedSchedules } from '../temporal/attestedDiscovery.js';
import { reconcileDiscoverySchedules } from '../temporal/discovery.js';
import { runWorker, type RunningWorker } from './running.js';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));
/** The request queue's bundle: `inferenceRequest` alone (see REQUEST_QUEUE). */
export const REQUEST_WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/requests.ts', import.meta.url));

export interface ControlPlaneOptions {
  temporal: TemporalHandle;
  db: DbHandle;
  heartbeatIntervalMs: number;
  pools: FleetConfig['pools'];
  demotion: DemotionPolicy;
  secrets: FleetConfig['secrets'];
  /** How routing weighs prefix reuse against load (absent: the defaults). */
  prefixRouting?: FleetConfig['prefixRouting'];
  /** The config file's providers (made the `config` providers at start; undefined: no file) and the refresh period. */
  providers: { fromConfig: NonNullable<FleetConfig['file']>['providers'] | undefined; refreshIntervalS: number };
  log: Logger;
}

export async function startControlPlaneWorker(o: ControlPlaneOptions): Promise<RunningWorker> {
  const log = o.log.child({ worker: 'control-plane' });
  // The config file is the truth for its providers: in step with it before the worker runs, then
  // a refresh at once (a complete one: the same code path as the Schedule's). No file: no change.
  const synced = o.providers.fromConfig ? await syncConfigProviders(o.db.db, o.providers.fromConfig) : undefined;
  for (const w of (o.providers.fromConfig ?? []).flatMap((p) => parseCanonicalMap(p.models).warnings.map((m) => `${p.id}: ${m}`))) log.warn(w);
  await reconcileAttestedSchedules(o.temporal.client, o.db.db, log).catch((err: Error) => {
    log.error({ err: err.message }, 'could not reconcile the attested discovery schedules');
  });
  await reconcileDiscoverySchedules(o.temporal.client, o.db.db, log).catch((err: Error) => {
    log.error({ err: err.message }, 'could not reconcile the discovery schedules');
  });
  if (synced && (synced.saved.length || synced.removed.length)) log.info(synced, 'providers from the config file');
  // One set of activities for both queues: the request workflow's local activities (routing,
  // outcomes) run on the worker that runs the workflow.
  const activities = createControlPlaneActivities({
    db: o.db.db,
    client: o.temporal.client,
    heartbeatIntervalMs: o.heartbeatIntervalMs,
    pools: { enabled: o.pools.enabled, cooldownMs: o.pools.cooldownMs },
    demotion: o.demotion,
    secrets: o.secrets,
    ...(o.prefixRouting ? { prefixRouting: o.prefixRouting } : {}),
    log,
  });
  const common = { connection: o.temporal.connection, namespace: o.temporal.namespace, dataConverter: o.temporal.dataConverter, activities, shutdownGraceTime: '5 seconds' };
  const [controlBundle, requestBundle] = await Promise.all([workflowBundleOf(WORKFLOWS_PATH), workflowBundleOf(REQUEST_WORKFLOWS_PATH)]);
  const [worker, requests] = await Promise.all([
    Worker.create({ ...common, taskQueue: CONTROL_PLANE_QUEUE, workflowBundle: controlBundle }),
    Worker.create({ ...common, taskQueue: REQUEST_QUEUE, workflowBundle: requestBundle }),
  ]);
  const workers = bothWorkers(runWorker(worker, { log, name: 'control-plane' }), runWorker(requests, { log, name: 'request' }));
  const ticker = startHousekeepingTicker({ client: o.temporal.client, db: o.db.db, plannerIntervalS: o.pools.plannerIntervalS, readPlannerState: activities.readPlannerState, log });
  const running: RunningWorker = {
    done: workers.done,
    stop: async () => {
      ticker.stop();
      await workers.stop();
    },
  };
  log.info({ taskQueues: [CONTROL_PLANE_QUEUE, REQUEST_QUEUE] }, 'control-plane worker running');
  await ensureSweepSchedule(o.temporal.client, log).catch((err: Error) => {
    // Not fatal: requests still settle and release; only crash leftovers wait for a later start.
    log.error({ err: err.message }, 'could not schedule the reservation sweep');
  });
  await ensureWarmPoolsSchedule(o.temporal.client, o.pools.plannerIntervalS, log).catch((err: Error) => {
    log.error({ err: err.message }, 'could not schedule the warm-pool planner');
  });
  await ensureProviderRefreshSchedule(o.temporal.client, o.providers.refreshIntervalS, log).catch((err: Error) => {
    log.error({ err: err.message }, 'could not schedule the provider refresh');
  });
  if (synced && (synced.saved.length || synced.removed.length)) {
    await startProviderRefresh(o.temporal.client).catch((err: Error) => log.warn({ err: err.message }, 'could not start a provider refresh'));
  }
  return running;
}

/**
 * A workflow bundle, built once per process and path: every control plane started in this
 * process (tests start many; a restart inside `fleet dev` another; the replay test) reuses it
 * instead of running webpack again. The code does not change while the process runs.
 */
const bundles = new Map<string, Promise<WorkflowBundleWithSourceMap>>();
export function workflowBundleOf(workflowsPath: string): Promise<WorkflowBundleWithSourceMap> {
  let b = bundles.get(workflowsPath);
  if (!b) {
    // The SDK's logger, as Worker.create would use when given the path.
    b = bundleWorkflowCode({ workflowsPath, logger: Runtime.instance().logger });
    b.catch(() => bundles.delete(workflowsPath));
    bundles.set(workflowsPath, b);
  }
  return b;
}

/** Two workers as one: done when both are, stopped together. */
function bothWorkers(a: RunningWorker, b: RunningWorker): RunningWorker {
  return { done: Promise.all([a.done, b.done]).then(() => undefined), stop: async () => void (await Promise.all([a.stop(), b.stop()])) };
}
