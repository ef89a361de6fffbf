/**
 * The one pino logger. Modules take child loggers carrying request id, workflow id or host id;
 * the level is set once from config at start (`configureLogger`).
 *
 * Lines are JSON (for collectors) unless a person is watching: on a terminal (`fleet dev` in a
 * shell) they go through pino-pretty, in process and synchronously, so an abort still flushes
 * the last line. FLEET_LOG_FORMAT=json|pretty overrides the choice (config.ts validates it).
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

function wantsPretty(format: string | undefined, isTTY: boolean): boolean {
  if (format === 'pretty') return true;
  if (format === 'json') return false;
  return isTTY;
}

const options = {
  level: 'info',
  base: { pid: process.pid },
  // Secrets never belong in logs; these paths are redacted if a caller passes them anyway.
  redact: ['authorization', 'headers.authorization', 'apiKey', 'nonce', 'databaseUrl'],
};

export const log: Logger = wantsPretty(process.env.FLEET_LOG_FORMAT, process.stdout.isTTY === true)
  ? pino(options, pretty({ sync: true, colorize: process.stdout.isTTY === true, ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss.l' }))
  : pino(options);

export function configureLogger(level: string): void {
  log.level = level;
}
