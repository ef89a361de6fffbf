/**
 * A fleet with GPU hosts as separate processes (`fleet worker gpu-host`), as in production:
 * the suite's Temporal server, a fresh PostgreSQL database, the control-plane worker and the
 * API in the test process, and N host processes that can be killed (SIGKILL), paused
 * (SIGSTOP) and resumed. Hosts share one generated model file. The benchmarks pass their own
 * Temporal address and PostgreSQL server instead of the suite's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { sha256File } from '../../src/activities/fileHash.js';
import { coldLoadWorkflowId } from '../../src/common/coldLoad.js';
import { CONTROL_PLANE_QUEUE } from '../../src/common/taskQueues.js';
import { loadConfig } from '../../src/config.js';
import { getHost, listHosts } from '../../src/db/hostsRepo.js';
import { gateMarker } from '../../src/activities/llama/testGates.js';
import { registerModel } from '../../src/db/modelsRepo.js';
import { configureLogger, log, type Logger } from '../../src/logger.js';
import { makeTinyModel, TINY_MODEL_SIZES, type TinyModelSize } from '../../src/model/tinyModel.js';
import { startStack, type Stack } from '../../src/stack.js';
import { createTestDatabase } from './databases.js';
import { testConfig, testEnv } from './env.js';
import { waitFor, waitForPoolSeeding } from './wait.js';

const root = path.resolve(import.meta.dirname, '../..');

export interface HostProcess {
  id: string;
  child: ChildProcess;
  output: () => string;
}

export interface ProcessFleet {
  stack: Stack;
  apiUrl: string;
  openai: OpenAI;
  hosts: Map<string, HostProcess>;
  tmpDir: string;
  /** Generates a model file and registers it under `id` (and an alias `id`, unless `alias: false`). */
  addModel(id: string, size?: TinyModelSize, seed?: number, alias?: false): Promise<string>;
  /** Loads a model on a host through the coldLoad workflow, as an operator would. */
  load(hostId: string, modelId: string): Promise<unknown>;
  /** Starts (or restarts) a host process; `env` adds to the fleet's host environment. */
  startHost(id: string, env?: Record<string, string>): Promise<HostProcess>;
  kill(id: string, signal?: NodeJS.Signals): Promise<void>;
  /** A prompt that holds its host's slot (running) until `release(name)`: see testGates.ts. */
  gated(name: string, text?: string): string;
  /** Opens a gate: the generations waiting on it go on (and later ones pass at once). */
  release(name: string): Promise<void>;
  /**
   * A known state for the next test: every gate opened, killed hosts restarted, `models`
   * loaded on each of `hostIds` (default: every host), and nothing running or queued.
   */
  reset(o?: { models?: Record<string, string[]> }): Promise<void>;
  stop(): Promise<void>;
}

export interface ProcessFleetOptions {
  hosts: number;
  /** Extra environment for the host processes (admission limits, slots, heartbeat). */
  hostEnv?: Record<string, string>;
  /** Extra environment for the in-process stack (control plane and API: pools, planner). */
  stackEnv?: Record<string, string>;
  /** Temporal frontend (host:port); default the suite's. */
  temporalAddress?: string;
  /** A PostgreSQL server URL to create the fleet's fresh database in; default the suite's. */
  databaseUrl?: string;
  /** Logger of the in-process stack; default the project's (stdout). */
  log?: Logger;
}

export async function startProcessFleet(o: ProcessFleetOptions): Promise<ProcessFleet> {
  const tmpDir = await mkdtemp(path.join(os.tmpdir(), 'fleet-proc-'));
  const gatesDir = path.join(tmpDir, 'gates');
  await mkdir(gatesDir, { recursive: true });
  const gates = new Set<string>();
  const database = await createTestDatabase(o.databaseUrl);
  const temporalAddress = o.temporalAddress ?? testEnv.temporalAddress;
  const heartbeat = o.hostEnv?.FLEET_HEARTBEAT_INTERVAL_MS ?? '500';
  const stackEnv = {
    DATABASE_URL: database.url,
    FLEET_DATA_DIR: tmpDir,
    FLEET_MODELS_DIR: tmpDir,
    FLEET_HEARTBEAT_INTERVAL_MS: heartbeat,
    ...o.stackEnv,
  };
  // testConfig reads the suite's Temporal address, which a bench run does not have.
  const config = o.temporalAddress
    ? loadConfig({ FLEET_LOG_LEVEL: 'warn', FLEET_PAYLOAD_KEYS: process.env.FLEET_PAYLOAD_KEYS, ...stackEnv, TEMPORAL_ADDRESS: temporalAddress })
    : testConfig(stackEnv);
  configureLogger(config.logLevel);
  const stack = await startStack({ config, log: o.log ?? log, hostIds: [], api: { host: '127.0.0.1', port: 0 } });
  const hosts = new Map<string, HostProcess>();
  const apiUrl = stack.api!.url;

  const startHost = async (id: string, extraEnv: Record<string, string> = {}): Promise<HostProcess> => {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATABASE_URL: database.url,
      TEMPORAL_ADDRESS: temporalAddress,
      FLEET_MODELS_DIR: tmpDir,
      FLEET_DATA_DIR: path.join(tmpDir, id),
      FLEET_LOG_LEVEL: 'warn',
      FLEET_HEARTBEAT_INTERVAL_MS: heartbeat,
      FLEET_TEST_GATES_DIR: gatesDir,
      ...(process.env.FLEET_PAYLOAD_KEYS ? { FLEET_PAYLOAD_KEYS: process.env.FLEET_PAYLOAD_KEYS } : {}),
      ...o.hostEnv,
      ...extraEnv,
    };
    const child = spawn(process.execPath, [path.join(root, 'bin/fleet.js'), 'worker', 'gpu-host', '--host-id', id], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const host = { id, child, output: () => out };
    hosts.set(id, host);
    const up = await waitFor(async () => {
      if (child.exitCode !== null) return false;
      const rows = await listHosts(stack.db.db);
      return rows.some((h) => h.id === id && h.status === 'up' && Date.now() - h.last_heartbeat_at.getTime() < 2000) ? true : undefined;
    }, 60_000);
    if (up !== true) throw new Error(`host ${id} did not come up:\n${out}`);
    return host;
  };

  const kill = async (id: string, signal: NodeJS.Signals = 'SIGKILL') => {
    const h = hosts.get(id);
    if (!h || h.child.exitCode !== null || h.child.signalCode !== null) return;
    const exited = new Promise<void>((r) => h.child.once('exit', () => r()));
    h.child.kill(signal);
    await exited;
  };

  for (let i = 0; i < o.hosts; i++) await startHost(`h${i}`);

  const alive = (h: HostProcess) => h.child.exitCode === null && h.child.signalCode === null;
  const load = async (hostId: string, modelId: string) => {
    const handle = await stack.temporal.client.workflow.start('coldLoad', {
      taskQueue: CONTROL_PLANE_QUEUE,
      workflowId: coldLoadWorkflowId(hostId, modelId),
      workflowIdConflictPolicy: 'USE_EXISTING',
      args: [{ hostId, modelId }],
    });
    return handle.result();
  };
  const release = async (name: string) => {
    gates.delete(name);
    await writeFile(path.join(gatesDir, name), '');
  };

  return {
    stack,
    apiUrl,
    openai: new OpenAI({ baseURL: `${apiUrl}/v1`, apiKey: 'sk-no-key', maxRetries: 0, timeout: 120_000 }),
    hosts,
    tmpDir,
    async addModel(id, size = 'tiny', seed = 3, alias) {
      const file = path.join(tmpDir, `${id}.gguf`);
      await makeTinyModel({ file, seed, size });
      const { sha256, sizeBytes } = await sha256File(file);
      await registerModel(stack.db.db, { id, path: file, sha256, sizeBytes, contextLength: TINY_MODEL_SIZES[size].contextLength, alias });
      const live = [...hosts.values()].filter((h) => h.child.exitCode === null && h.child.signalCode === null).map((h) => h.id);
      if (stack.config.pools.enabled) await waitForPoolSeeding(stack.db.db, live);
      return id;
    },
    load,
    startHost,
    kill,
    gated(name, text = 'hold the slot') {
      gates.add(name);
      return `${gateMarker(name)} ${text}`;
    },
    release,
    async reset(r = {}) {
      for (const name of [...gates]) await release(name);
      for (const h of [...hosts.values()]) if (!alive(h)) await startHost(h.id);
      for (const [model, on] of Object.entries(r.models ?? {})) for (const h of on) await load(h, model);
      const idle = await waitFor(async () => {
        for (const id of hosts.keys()) {
          const models = (await getHost(stack.db.db, id))?.stats.models ?? {};
          if (Object.values(models).some((l) => l.running + l.queued > 0)) return undefined;
        }
        return true;
      }, 60_000);
      if (!idle) throw new Error('the fleet did not become idle');
    },
    async stop() {
      for (const id of hosts.keys()) await kill(id, 'SIGTERM');
      await stack.stop();
      await database.drop();
      await rm(tmpDir, { recursive: true, force: true });
    },
  };
}
