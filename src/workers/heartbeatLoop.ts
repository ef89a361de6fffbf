/**
 * The GPU host's heartbeat: every interval it writes the host row with the load it has cached
 * (running/queued per model, free memory). It never awaits inference — the runtime's counters
 * are read synchronously — so a host that is busy generating never looks dead. A missing row
 * (deleted by an operator) re-registers the host.
 */
import os from 'node:os';
import type { Kysely } from 'kysely';
import { recordHeartbeat } from '../db/hostsRepo.js';
import type { Database } from '../db/schema.js';
import type { LlamaRuntime } from '../activities/llama/runtime.js';
import type { Logger } from '../logger.js';

export interface HeartbeatLoopOptions {
  db: Kysely<Database>;
  hostId: string;
  runtime: LlamaRuntime;
  intervalMs: number;
  reregister: () => Promise<void>;
  log: Logger;
}

export function startHeartbeatLoop(o: HeartbeatLoopOptions): { stop(): Promise<void> } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let current: Promise<void> = Promise.resolve();

  const beat = async () => {
    const models = Object.fromEntries(
      o.runtime.loadedModels().map((m) => [m.modelId, { running: m.running, queued: m.queued }]),
    );
    try {
      const known = await recordHeartbeat(o.db, o.hostId, { models, freeMemoryBytes: os.freemem() });
      if (!known) await o.reregister();
    } catch (err) {
      o.log.warn({ err: (err as Error).message }, 'heartbeat write failed');
    }
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      current = beat().finally(schedule);
    }, o.intervalMs);
    timer.unref();
  };
  schedule();

  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await current;
    },
  };
}
