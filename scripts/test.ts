/**
 * `npm test`: brings up the real parts the suite needs, once — a Temporal dev server (binary
 * found or installed per DESIGN.md) and a PostgreSQL server (FLEET_TEST_DATABASE_URL, else a
 * private cluster) — runs every test file with Node's built-in runner against them, and tears
 * them down. Pass file paths to run a subset: `npm test -- tests/unit/routing.test.ts`.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { findTemporalBinary } from '../src/temporal/binary.js';
import { freePort, startDevServer } from '../src/temporal/devServer.js';
import { startPrivateCluster, type PrivateCluster } from './postgres.js';
import { newPayloadKeyEntry } from '../src/temporal/payloadCodec.js';

const root = path.resolve(import.meta.dirname, '..');
const log = pino({ level: 'info' }, pino.destination(2));
const toolsDir = path.join(root, '.tools');

const testFiles = (dir: string): string[] =>
  readdirSync(path.join(root, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.test.ts'))
    .map((f) => path.join(dir, f))
    .sort();

const files = process.argv.slice(2).length
  ? process.argv.slice(2)
  : ['tests/unit', 'tests/workflow', 'tests/integration', 'tests/e2e'].flatMap(testFiles);

const temporalBinary = await findTemporalBinary({ cliPath: process.env.TEMPORAL_CLI_PATH, toolsDir, log });
const temporal = await startDevServer({ binary: temporalBinary, port: 0, uiPort: null, namespace: 'default', log });

let cluster: PrivateCluster | undefined;
let databaseUrl = process.env.FLEET_TEST_DATABASE_URL;
if (!databaseUrl) {
  cluster = startPrivateCluster(path.join(toolsDir, 'pg-test'), await freePort());
  databaseUrl = cluster.url;
}

const env = {
  ...process.env,
  // The whole suite runs with payload encryption on, as a deployment does: every process it
  // starts (test stacks, host processes, CLI children) shares this run's key.
  FLEET_PAYLOAD_KEYS: process.env.FLEET_PAYLOAD_KEYS ?? newPayloadKeyEntry('test'),
  FLEET_TEST_TEMPORAL_ADDRESS: temporal.address,
  FLEET_TEST_TEMPORAL_CLI: temporalBinary,
  FLEET_TEST_DATABASE_URL: databaseUrl,
  FLEET_LOG_LEVEL: process.env.FLEET_LOG_LEVEL ?? 'warn',
};
const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files],
  { cwd: root, env, stdio: 'inherit' },
);
const stopAll = async () => {
  await temporal.stop();
  cluster?.stop();
};
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => child.kill(sig));
}
const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
await stopAll();
process.exit(code);
