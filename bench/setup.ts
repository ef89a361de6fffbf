/**
 * The start every benchmark shares: parse and validate argv (`--help` prints the usage), read
 * the config (the one place env is read), and a logger on stderr so stdout carries figures
 * only. A bad option or variable exits 2 with a message.
 */
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { startPrivateCluster, type PrivateCluster } from '../scripts/postgres.js';
import { findTemporalBinary } from '../src/temporal/binary.js';
import { freePort, startDevServer, type DevServer } from '../src/temporal/devServer.js';
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

/** What the process-fleet benchmarks run against, and how to stop what they started. */
export interface BenchBackends {
  temporalAddress: string;
  databaseUrl: string;
  stop(): Promise<void>;
}

/**
 * `TEMPORAL_ADDRESS`, else a headless dev server of the bench's own; `DATABASE_URL`, else a
 * private PostgreSQL cluster in `<FLEET_TOOLS_DIR>/pg-bench` (host processes need a real server).
 */
export async function startBenchBackends(config: FleetConfig, log: Logger): Promise<BenchBackends> {
  let devServer: DevServer | undefined;
  let cluster: PrivateCluster | undefined;
  let temporalAddress = config.temporal.address;
  if (!temporalAddress) {
    const binary = await findTemporalBinary({ cliPath: config.temporal.cliPath, toolsDir: config.toolsDir, log });
    devServer = await startDevServer({ binary, port: 0, uiPort: null, namespace: 'default', log });
    temporalAddress = devServer.address;
  }
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    cluster = startPrivateCluster(path.join(config.toolsDir, 'pg-bench'), await freePort());
    databaseUrl = cluster.url;
  }
  return {
    temporalAddress,
    databaseUrl,
    async stop() {
      await devServer?.stop();
      cluster?.stop();
    },
  };
}
