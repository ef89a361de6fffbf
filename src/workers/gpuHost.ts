/**
 * The GPU-host worker: one per machine, polling its own task queue `host.<id>`. It registers
 * the host with its capacity, keeps the heartbeat and load figures flowing, writes load
 * progress to the placement, and runs the host activities on a node-llama-cpp runtime.
 * Stopping it drains the worker, unloads models and deregisters the host (status `down`).
 */
import { Worker } from '@temporalio/worker';
import { createHostActivities } from '../activities/host.js';
import { hostStateDir, identityKeyPath, loadOrCreateIdentityKey } from '../activities/hostIdentity.js';
import { probeRegistry } from '../activities/llama/probe.js';
import { LlamaRuntime } from '../activities/llama/runtime.js';
import { createTestGates } from '../activities/llama/testGates.js';
import { hostQueue } from '../common/taskQueues.js';
import type { DbHandle } from '../db/connect.js';
import { markHostDown, upsertHost } from '../db/hostsRepo.js';
import { resetHostPlacements, setLoadProgress } from '../db/placementsRepo.js';
import type { AdmissionLimits } from '../domain/admission.js';
import type { Logger } from '../logger.js';
import type { StreamChannel } from '../stream/channel.js';
import type { TemporalHandle } from '../temporal/connect.js';
import { SOFTWARE_VERSION } from '../version.js';
import { startHeartbeatLoop, type HeartbeatLoop } from './heartbeatLoop.js';
import { staticHostFacts, watchHostFacts, watchKeyFile } from './hostFacts.js';

export interface GpuHostOptions {
  hostId: string;
  temporal: TemporalHandle;
  db: DbHandle;
  channel: StreamChannel;
  threads: number;
  gpu: 'auto' | false;
  admission: AdmissionLimits;
  maxModelSlots: number;
  modelsDir: string;
  /** `FLEET_DATA_DIR`: the host's identity key lives in `<dataDir>/hosts/<hostId>/`. */
  dataDir: string;
  heartbeatIntervalMs: number;
  /** Probe each build's first load in a child process (FLEET_LOAD_PROBE). */
  loadProbe: boolean;
  /** FLEET_TEST_GATES_DIR: enables test gates (never in production; warned about at start). */
  testGatesDir?: string;
  log: Logger;
}

export type { RunningWorker } from './running.js';
import { runWorker, type RunningWorker } from './running.js';

/** Load progress is written to the placement at most this often. */
const PROGRESS_WRITE_MS = 250;

export async function startGpuHostWorker(o: GpuHostOptions): Promise<RunningWorker & { runtime: LlamaRuntime }> {
  const log = o.log.child({ hostId: o.hostId });
  let heartbeats: HeartbeatLoop | undefined;
  const runtime = new LlamaRuntime({
    threads: o.threads,
    gpu: o.gpu,
    admission: o.admission,
    onLoadChange: () => heartbeats?.poke(),
    log,
  });
  const taskQueue = hostQueue(o.hostId);
  if (o.testGatesDir) log.warn({ dir: o.testGatesDir }, 'test gates are enabled: prompts naming a gate hold their slot (tests only)');
  const identityKeyFile = identityKeyPath(o.dataDir, o.hostId);
  await loadOrCreateIdentityKey(identityKeyFile); // created on first start
  const info = await staticHostFacts(runtime, {
    threads: o.threads,
    maxModelSlots: o.maxModelSlots,
    maxInFlight: o.admission.maxInFlight,
    maxQueue: o.admission.maxQueue,
  });
  const facts = watchHostFacts(runtime, o.modelsDir, Math.max(5_000, o.heartbeatIntervalMs), identityKeyFile);
  await facts.start();
  const register = async () => {
    await upsertHost(o.db.db, { id: o.hostId, taskQueue, info });
  };
  await register();
  // A (re)started process holds no model, whatever the table said before.
  await resetHostPlacements(o.db.db, o.hostId);

  const lastProgressWrite = new Map<string, number>();
  const onLoadProgress = (modelId: string, progress: number) => {
    const now = Date.now();
    if (progress < 1 && now - (lastProgressWrite.get(modelId) ?? 0) < PROGRESS_WRITE_MS) return;
    lastProgressWrite.set(modelId, now);
    setLoadProgress(o.db.db, o.hostId, modelId, progress).catch(() => undefined);
  };

  const worker = await Worker.create({
    connection: o.temporal.connection,
    namespace: o.temporal.namespace,
    dataConverter: o.temporal.dataConverter,
    taskQueue,
    activities: createHostActivities({
      hostId: o.hostId,
      runtime,
      channel: o.channel,
      log,
      softwareVersion: SOFTWARE_VERSION,
      identityKeyFile,
      onLoadProgress,
      onModelsChanged: () => void facts.refresh().catch(() => undefined),
      onIdentityRead: () => void facts.refresh().then(() => heartbeats?.poke(), () => undefined),
      ...(o.testGatesDir ? { gates: createTestGates(o.testGatesDir) } : {}),
      ...(o.loadProbe ? { probe: { registry: probeRegistry(hostStateDir(o.dataDir, o.hostId)) } } : {}),
    }),
    // Admission happens in the runtime (slots, bounded queue, max wait); the worker must not
    // be the bottleneck that hides queue state from it.
    maxConcurrentActivityTaskExecutions: (o.admission.maxInFlight + o.admission.maxQueue) * o.maxModelSlots + 4,
    // A cancellation reaches an activity only in the answer to a heartbeat the SDK actually
    // sends, which it throttles to 0.8 × heartbeatTimeout (4 s for generate). At most 1 s
    // instead: a client that left stops costing GPU time (and budget) a few seconds sooner.
    maxHeartbeatThrottleInterval: '1 second',
    shutdownGraceTime: '10 seconds',
  });
  heartbeats = startHeartbeatLoop({
    db: o.db.db,
    hostId: o.hostId,
    runtime,
    facts: facts.get,
    intervalMs: o.heartbeatIntervalMs,
    reregister: register,
    log,
  });
  // A rotated identity key (`fleet host rotate-key` renames a new file in) reaches routing with
  // the next heartbeat, written at once — and until then this host refuses to sign with it.
  const keyWatcher = watchKeyFile(identityKeyFile, () => void facts.refresh().then(() => heartbeats?.poke(), () => undefined), log);
  const running = runWorker(worker, {
    log,
    name: 'gpu-host',
    afterStop: async () => {
      facts.stop();
      keyWatcher.close();
      await heartbeats?.stop();
      await markHostDown(o.db.db, o.hostId).catch(() => undefined);
      await resetHostPlacements(o.db.db, o.hostId).catch(() => undefined);
      await runtime.close();
      log.info('gpu-host worker stopped');
    },
  });
  log.info({ taskQueue, threads: o.threads, slots: o.maxModelSlots, gpu: info.gpu }, 'gpu-host worker running');
  return { ...running, runtime };
}
