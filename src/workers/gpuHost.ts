/**
 * The GPU-host worker: one per machine, polling its own task queue `host.<id>`. It registers
 * the host, starts the heartbeat loop, and runs the host activities on a node-llama-cpp
 * runtime. Stopping it drains the worker, unloads models and marks the host down.
 */
import { Worker } from '@temporalio/worker';
import os from 'node:os';
import { createHostActivities } from '../activities/host.js';
import { LlamaRuntime } from '../activities/llama/runtime.js';
import { hostQueue } from '../common/taskQueues.js';
import type { DbHandle } from '../db/connect.js';
import { markHostDown, upsertHost } from '../db/hostsRepo.js';
import { resetHostPlacements } from '../db/placementsRepo.js';
import type { Logger } from '../logger.js';
import type { StreamChannel } from '../stream/channel.js';
import type { TemporalHandle } from '../temporal/connect.js';
import { SOFTWARE_VERSION } from '../version.js';
import { startHeartbeatLoop } from './heartbeatLoop.js';

export interface GpuHostOptions {
  hostId: string;
  temporal: TemporalHandle;
  db: DbHandle;
  channel: StreamChannel;
  threads: number;
  gpu: 'auto' | false;
  maxInFlight: number;
  heartbeatIntervalMs: number;
  log: Logger;
}

export interface RunningWorker {
  /** Settles when the worker stops (rejects if it crashed). */
  done: Promise<void>;
  stop(): Promise<void>;
}

export async function startGpuHostWorker(o: GpuHostOptions): Promise<RunningWorker & { runtime: LlamaRuntime }> {
  const log = o.log.child({ hostId: o.hostId });
  const maxQueue = o.maxInFlight * 8;
  const runtime = new LlamaRuntime({ threads: o.threads, gpu: o.gpu, maxInFlight: o.maxInFlight, maxQueue, log });
  const taskQueue = hostQueue(o.hostId);
  const register = async () => {
    await upsertHost(o.db.db, {
      id: o.hostId,
      taskQueue,
      info: { cpuCount: os.availableParallelism(), threads: o.threads, memoryBytes: os.totalmem(), version: SOFTWARE_VERSION },
    });
  };
  await register();
  // A (re)started process holds no model, whatever the table said before.
  await resetHostPlacements(o.db.db, o.hostId);

  const worker = await Worker.create({
    connection: o.temporal.connection,
    namespace: o.temporal.namespace,
    taskQueue,
    activities: createHostActivities({
      hostId: o.hostId,
      runtime,
      channel: o.channel,
      log,
      softwareVersion: SOFTWARE_VERSION,
    }),
    // Admission happens in the runtime (slots + bounded queue); the worker must not be the
    // bottleneck that hides queue state from it.
    maxConcurrentActivityTaskExecutions: o.maxInFlight + maxQueue + 4,
    shutdownGraceTime: '10 seconds',
  });
  const heartbeats = startHeartbeatLoop({
    db: o.db.db,
    hostId: o.hostId,
    runtime,
    intervalMs: o.heartbeatIntervalMs,
    reregister: register,
    log,
  });
  const done = worker.run();
  log.info({ taskQueue, threads: o.threads }, 'gpu-host worker running');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await done.catch((err: Error) => log.error({ err: err.message }, 'gpu-host worker failed'));
      await heartbeats.stop();
      await markHostDown(o.db.db, o.hostId).catch(() => undefined);
      await resetHostPlacements(o.db.db, o.hostId).catch(() => undefined);
      await runtime.close();
      log.info('gpu-host worker stopped');
    })());
  return { done, stop, runtime };
}
