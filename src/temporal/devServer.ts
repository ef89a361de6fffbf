/**
 * Runs `temporal server start-dev` as a child process for `fleet dev` and the tests, with the
 * Web UI and the project's search attributes. The child runs under a tiny shell watchdog that
 * kills it when our stdin pipe closes, so the server dies with us even on SIGKILL of `fleet`;
 * `stop()` ends its whole process group.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../common/searchAttributes.js';
import type { Logger } from '../logger.js';

export interface DevServerOptions {
  binary: string;
  ip?: string;
  /** 0 picks a free port. */
  port: number;
  /** 0 picks a free port; null turns the UI off (`--headless`). */
  uiPort: number | null;
  namespace: string;
  /** SQLite file for persistence; undefined keeps state in memory. */
  dbFile?: string;
  /** The Web UI decodes payloads through this codec endpoint (the API's `/codec`). */
  uiCodecEndpoint?: string;
  log: Logger;
}

export interface DevServer {
  address: string;
  uiUrl: string | null;
  stop(): Promise<void>;
}

// "$@" runs the server; when our end of stdin closes (we exited, however), kill it.
// sh gives background jobs /dev/null as stdin unless redirected, hence the explicit fd 3.
const WATCHDOG =
  'exec 3<&0; "$@" </dev/null & pid=$!; (cat <&3 >/dev/null; kill -TERM $pid 2>/dev/null) & exec 3<&-; wait $pid';

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

export async function startDevServer(o: DevServerOptions): Promise<DevServer> {
  const ip = o.ip ?? '127.0.0.1';
  const port = o.port || (await freePort(ip));
  const uiPort = o.uiPort === null ? null : o.uiPort || (await freePort(ip));
  const args = ['server', 'start-dev', '--ip', ip, '--port', String(port), '--namespace', o.namespace, '--log-level', 'error'];
  args.push(...(uiPort === null ? ['--headless'] : ['--ui-port', String(uiPort)]));
  if (uiPort !== null && o.uiCodecEndpoint) args.push('--ui-codec-endpoint', o.uiCodecEndpoint);
  if (o.dbFile) {
    await mkdir(path.dirname(o.dbFile), { recursive: true });
    args.push('--db-filename', o.dbFile);
    // Write-ahead log, synced at checkpoints: a commit survives a crash or restart of the server
    // (only a power cut can lose the last ones), and the file store nearly doubles its throughput
    // (bench/proxy's design-floor rows; the default rollback journal syncs every commit).
    args.push('--sqlite-pragma', 'journal_mode=wal', '--sqlite-pragma', 'synchronous=normal');
  }
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) args.push('--search-attribute', `${name}=${type}`);
  // The dev server polls its transfer queue at most 20 times a second by default, which puts
  // up to 50 ms on every activity dispatch and workflow completion (measured by bench/overhead).
  args.push('--dynamic-config-value', 'history.transferProcessorMaxPollRPS=10000');

  const child = spawn('sh', ['-c', WATCHDOG, 'temporal-watchdog', o.binary, ...args], {
    stdio: ['pipe', 'ignore', 'pipe'],
    detached: true,
  });
  const stderr: string[] = [];
  child.stderr?.on('data', (d: Buffer) => {
    stderr.push(d.toString());
    if (stderr.length > 50) stderr.shift();
  });
  const address = `${ip}:${port}`;
  try {
    await waitReady(address, child, stderr);
  } catch (err) {
    await stopChild(child);
    throw err;
  }
  o.log.info({ address, ui: uiPort }, 'temporal dev server ready');
  return {
    address,
    uiUrl: uiPort === null ? null : `http://${ip}:${uiPort}`,
    stop: () => stopChild(child),
  };
}

async function waitReady(address: string, child: ChildProcess, stderr: string[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  let exited: number | null = null;
  child.once('exit', (code) => (exited = code ?? -1));
  for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
    if (exited !== null) throw new Error(`temporal dev server exited (${exited}): ${stderr.join('').slice(-600)}`);
    try {
      const conn = await Connection.connect({ address, connectTimeout: 1000 });
      try {
        await conn.workflowService.getSystemInfo({});
        return;
      } finally {
        await conn.close();
      }
    } catch {
      if (Date.now() > deadline) throw new Error(`temporal dev server at ${address} not ready after 60 s`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = (sig: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      /* already gone */
    }
  };
  kill('SIGTERM');
  const timer = setTimeout(() => kill('SIGKILL'), 5_000);
  await gone;
  clearTimeout(timer);
  child.stdin?.destroy();
}
