/**
 * Routes the Temporal SDK's own log lines (worker lifecycle, workflow and activity context
 * loggers) into the project's pino logger, once per process, before any worker starts.
 */
import { DefaultLogger, Runtime, type LogEntry } from '@temporalio/worker';
import type { Logger } from '../logger.js';

let installed = false;

export function installTemporalLogging(log: Logger): void {
  if (installed) return;
  installed = true;
  const sdk = log.child({ component: 'temporal' });
  const logger = new DefaultLogger('WARN', (entry: LogEntry) => {
    // A typed, non-retryable failure (a client error, a busy host) is an answer, not an
    // incident: the SDK reports those at WARN, we keep them at debug.
    const expected = (entry.meta?.error as { nonRetryable?: boolean } | undefined)?.nonRetryable === true
      || entry.message === 'Workflow failed';
    const level = entry.level === 'ERROR' ? 'error' : entry.level === 'WARN' && !expected ? 'warn' : 'debug';
    sdk[level](entry.meta ?? {}, entry.message);
  });
  // Native (core) log lines go through the same logger instead of straight to the console.
  Runtime.install({ logger, telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' }, forward: {} } } });
}
