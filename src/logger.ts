/**
 * The one pino logger. Modules take child loggers carrying request id, workflow id or host id;
 * the level is set once from config at start (`configureLogger`).
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export const log: Logger = pino({
  level: 'info',
  base: { pid: process.pid },
  // Secrets never belong in logs; these paths are redacted if a caller passes them anyway.
  redact: ['authorization', 'headers.authorization', 'apiKey', 'nonce', 'databaseUrl'],
});

export function configureLogger(level: string): void {
  log.level = level;
}
