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
    const level = entry.level === 'ERROR' ? 'error' : entry.level === 'WARN' ? 'warn' : 'debug';
    sdk[level](entry.meta ?? {}, entry.message);
  });
  Runtime.install({ logger });
}
