/**
 * The start every benchmark shares: parse and validate argv (`--help` prints the usage), read
 * the config (the one place env is read), and a logger on stderr so stdout carries figures
 * only. A bad option or variable exits 2 with a message.
 */
import { pino, type Logger } from 'pino';
import { ConfigError, loadConfig, type FleetConfig } from '../src/config.js';
import { configureLogger } from '../src/logger.js';

export function startBench<O extends { help?: boolean }>(
  parse: (argv: string[]) => O,
  usage: string,
): { opts: O; config: FleetConfig; log: Logger } {
  let opts: O;
  let config: FleetConfig;
  try {
    opts = parse(process.argv.slice(2));
    if (opts.help) {
      process.stdout.write(`${usage}\n`);
      process.exit(0);
    }
    config = loadConfig();
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}${err instanceof ConfigError ? '' : `\n${usage}`}\n`);
    process.exit(2);
  }
  configureLogger(config.logLevel);
  const log = pino({ level: config.logLevel, base: { pid: process.pid } }, pino.destination(2));
  return { opts, config, log };
}
