/**
 * `fleet dev` as a child process, the way a user runs it (its own Temporal dev server, PGlite,
 * workers, the API and the generated `tiny` model), on free ports: for the `fleet dev` test and
 * as a second, independent inference-fleet that another fleet uses as a remote provider.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { freePort } from '../../src/temporal/devServer.js';
import { testEnv } from './env.js';
import { waitFor } from './wait.js';

const root = path.resolve(import.meta.dirname, '../..');

export interface DevFleet {
  child: ChildProcess;
  apiUrl: string;
  /** Its embedded Temporal dev server. */
  temporalAddress: string;
  uiUrl: string;
  output: () => string;
  stop(): Promise<void>;
}

export async function startDevFleet(dataDir: string, o: { ui?: boolean; env?: Record<string, string>; temporalCli?: string } = {}): Promise<DevFleet> {
  await mkdir(dataDir, { recursive: true });
  const [apiPort, devPort, uiPort] = [await freePort(), await freePort(), await freePort()];
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TEMPORAL_CLI_PATH: o.temporalCli ?? testEnv.temporalCli,
    TEMPORAL_DEV_PORT: String(devPort),
    TEMPORAL_UI_PORT: String(uiPort),
    FLEET_HTTP_PORT: String(apiPort),
    FLEET_DATA_DIR: dataDir,
    FLEET_LOG_LEVEL: 'warn',
    ...o.env,
  };
  const args = [path.join(root, 'bin/fleet.js'), 'dev', ...(o.ui === false ? ['--no-ui'] : [])];
  const child = spawn(process.execPath, args, { cwd: dataDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const ready = await waitFor(async () => (out.includes('inference-fleet is up') ? true : child.exitCode !== null ? false : undefined), 120_000);
  assert.equal(ready, true, `fleet dev did not come up:\n${out}`);
  return {
    child,
    apiUrl: `http://127.0.0.1:${apiPort}`,
    temporalAddress: `127.0.0.1:${devPort}`,
    uiUrl: `http://127.0.0.1:${uiPort}`,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGINT');
      await gone;
    },
  };
}
