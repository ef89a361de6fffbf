/**
 * A started Temporal worker as the stack holds it: `done` settles when it stops, `stop()` (once,
 * however often called) shuts it down, waits for it, then runs the worker's own clean-up.
 */
import type { Worker } from '@temporalio/worker';
import type { Logger } from '../logger.js';

export interface RunningWorker {
  /** Settles when the worker stops (rejects if it crashed). */
  done: Promise<void>;
  stop(): Promise<void>;
}

export function runWorker(worker: Worker, o: { log: Logger; name: string; afterStop?: () => Promise<void> }): RunningWorker {
  const done = worker.run();
  let stopping: Promise<void> | undefined;
  return {
    done,
    stop: () =>
      (stopping ??= (async () => {
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await done.catch((err: Error) => o.log.error({ err: err.message }, `${o.name} worker failed`));
        await o.afterStop?.();
      })()),
  };
}
