/**
 * The GPU host's heartbeat: every interval it writes the host row with the load it has cached
 * (running/queued per model, last use, free memory, files). It never awaits inference — the
 * runtime's counters are read synchronously — so a host that is busy generating never looks
 * dead. `poke()` writes at once when the load changes (coalesced: one write in flight at a
 * time), so routing sees a busy replica within milliseconds, not at the next beat. A missing
 * row (deleted by an operator) re-registers the host. A host without a model pool gets one
 * seeded after its first heartbeat (see poolsRepo.seedHostPool).
 */
import type { Kysely } from 'kysely';
import type { LlamaRuntime } from '../activities/llama/runtime.js';
import { recordHeartbeat } from '../db/hostsRepo.js';
import { seedHostPool } from '../db/poolsRepo.js';
import type { Database } from '../db/schema.js';
import type { Logger } from '../logger.js';
import type { DynamicFacts } from './hostFacts.js';

export interface HeartbeatLoopOptions {
  db: Kysely<Database>;
  hostId: string;
  runtime: LlamaRuntime;
  facts: () => DynamicFacts;
  intervalMs: number;
  reregister: () => Promise<void>;
  log: Logger;
}

export interface HeartbeatLoop {
  poke(): void;
  stop(): Promise<void>;
}

export function startHeartbeatLoop(o: HeartbeatLoopOptions): HeartbeatLoop {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let inFlight: Promise<void> | undefined;
  let again = false;
  let pooled = false;
  let poked = false;

  const write = async () => {
    const models = Object.fromEntries(
      o.runtime.loadedModels().map((m) => [
        m.modelId,
        { running: m.running, queued: m.queued, lastUsedAt: m.lastUsedAt ? new Date(m.lastUsedAt).toISOString() : null, kvTokensUsed: m.kvTokensUsed, kvTokensCapacity: m.kvTokensCapacity, ...(m.prefixes?.length ? { prefixes: m.prefixes } : {}), ...(m.liveSequences !== undefined ? { liveSequences: m.liveSequences } : {}) },
      ]),
    );
    try {
      const known = await recordHeartbeat(o.db, o.hostId, { models, ...o.facts() });
      if (!known) await o.reregister();
      else if (!pooled) {
        // Seeded from what this heartbeat reported (running models, files); retried on every
        // beat until an alias matches one of them.
        const seeded = await seedHostPool(o.db, o.hostId);
        if (seeded) {
          pooled = true;
          if (seeded !== 'kept') o.log.info({ pool: seeded.alias, source: seeded.source }, 'host joined a model pool');
        }
      }
    } catch (err) {
      o.log.warn({ err: (err as Error).message }, 'heartbeat write failed');
    }
  };

  const beat = () => {
    if (inFlight) {
      again = true; // a change during a write: one more write after it, not one per change
      return;
    }
    inFlight = write().finally(() => {
      inFlight = undefined;
      if (again && !stopped) {
        again = false;
        beat();
      }
    });
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      beat();
      schedule();
    }, o.intervalMs);
    timer.unref();
  };
  schedule();

  return {
    poke: () => {
      // After the current turn of the event loop: the generation that changed the load starts
      // first (in `fleet dev` the write shares the thread), and changes in one turn write once.
      if (stopped || poked) return;
      poked = true;
      setImmediate(() => {
        poked = false;
        if (!stopped) beat();
      });
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      while (inFlight) await inFlight;
    },
  };
}
