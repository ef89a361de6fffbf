/**
 * A whole fleet in the test process, on real parts: the suite's Temporal server, real
 * PostgreSQL (a fresh database) or PGlite, GPU-host workers running node-llama-cpp on a
 * generated tiny GGUF model, and the API on a free port, plus an official `openai` client.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { gateMarker } from '../../src/activities/llama/testGates.js';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { sha256File } from '../../src/activities/fileHash.js';
import { registerModel } from '../../src/db/modelsRepo.js';
import { configureLogger, log } from '../../src/logger.js';
import { makeTinyModel, TINY_MODEL_SIZES, type TinyModelSize } from '../../src/model/tinyModel.js';
import { startStack, type Stack } from '../../src/stack.js';
import { createTestDatabase } from './databases.js';
import { testConfig } from './env.js';
import { waitForPoolSeeding } from './wait.js';

export type DbKind = 'postgres' | 'pglite';

export interface TestFleet {
  stack: Stack;
  baseURL: string;
  openai: OpenAI;
  modelId: string;
  hostIds: string[];
  tmpDir: string;
  /** A prompt that holds its host's slot until `release(name)` (see testGates.ts). */
  gated(name: string, text?: string): string;
  release(name: string): Promise<void>;
  stop(): Promise<void>;
}

/** `size`: the generated model (default `tiny`, 512 tokens of context; `small` has 2048, room for tools and schemas). */
export async function startTestFleet(o: { db: DbKind; hosts?: number; env?: Record<string, string>; size?: TinyModelSize }): Promise<TestFleet> {
  const size = o.size ?? 'tiny';
  const tmpDir = await mkdtemp(path.join(os.tmpdir(), 'fleet-test-'));
  const database = o.db === 'postgres' ? await createTestDatabase() : undefined;
  const config = testConfig({
    DATABASE_URL: database?.url,
    FLEET_DATA_DIR: tmpDir,
    FLEET_MODELS_DIR: tmpDir,
    FLEET_TEST_GATES_DIR: path.join(tmpDir, 'gates'),
    ...o.env,
  });
  configureLogger(config.logLevel);
  const suffix = randomBytes(3).toString('hex');
  const hostIds = Array.from({ length: o.hosts ?? 1 }, (_, i) => `t${i}-${suffix}`);
  const stack = await startStack({
    config,
    log,
    pgliteDir: undefined, // in memory
    hostIds,
    api: { host: '127.0.0.1', port: 0 },
  });
  const file = path.join(tmpDir, 'tiny.gguf');
  await makeTinyModel({ file, seed: 7, size });
  const { sha256, sizeBytes } = await sha256File(file);
  const modelId = 'tiny';
  await registerModel(stack.db.db, { id: modelId, path: file, sha256, sizeBytes, contextLength: TINY_MODEL_SIZES[size].contextLength });
  if (config.pools.enabled) await waitForPoolSeeding(stack.db.db, hostIds);
  const baseURL = `${stack.api!.url}/v1`;
  return {
    stack,
    baseURL,
    openai: new OpenAI({ baseURL, apiKey: 'sk-no-key', maxRetries: 0, timeout: 60_000 }),
    modelId,
    hostIds,
    tmpDir,
    gated: (name, text = 'hold the slot') => `${gateMarker(name)} ${text}`,
    release: (name) => writeFile(path.join(tmpDir, 'gates', name), ''),
    async stop() {
      await stack.stop();
      await database?.drop();
      await rm(tmpDir, { recursive: true, force: true });
    },
  };
}
