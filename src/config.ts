/**
 * The one place the environment is read. Every variable is validated once, at start, and a
 * bad value fails fast with a message that names the variable — never later, mid-request.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { fleetConfigFileSchema, type FleetConfigFile } from './providers/providerSpec.js';
import { parsePayloadKeys, PayloadCodecError, type PayloadKey } from './temporal/payloadCodec.js';
import { DEFAULT_PREFIX_POLICY } from './domain/prefixRouting.js';

const boolFromEnv = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const port = z.coerce.number().int().min(0).max(65535);

/** A GPU host id: also part of a task-queue name and a workflow id, so kept to a safe alphabet. */
export const HOST_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
export const HOST_ID_RULE = 'letters, digits, "_", "-", "." (max 63)';

/** Default llama.cpp thread count: the CPU default of 4 is ~1000x slower on 2 cores than 1. */
export function defaultLlamaThreads(cores = os.availableParallelism()): number {
  return cores <= 2 ? 1 : Math.max(1, Math.floor(cores / 2));
}

/**
 * A request's workflow must close before its budget reservation expires (else the sweep could
 * release a hold whose request still runs): the API's workflow execution timeout is the
 * reservation TTL minus this margin, which covers settling after the close.
 */
export const RESERVATION_MARGIN_S = 60;
const MIN_RESERVATION_TTL_S = 2 * RESERVATION_MARGIN_S;

const envSchema = z.object({
  TEMPORAL_ADDRESS: z.string().regex(/^[^\s:]+:\d+$/, 'expected host:port').optional(),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_CLI_PATH: z.string().min(1).optional(),
  TEMPORAL_DEV_PORT: port.default(7233),
  TEMPORAL_UI_PORT: port.default(8233),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'expected a postgres:// URL')
    .optional(),
  FLEET_DATA_DIR: z.string().min(1).default('.data'),
  FLEET_TOOLS_DIR: z.string().min(1).default('.tools'),
  FLEET_MODELS_DIR: z.string().min(1).optional(),
  FLEET_HTTP_HOST: z.string().min(1).default('127.0.0.1'),
  FLEET_HTTP_PORT: port.default(8080),
  FLEET_METRICS_PORT: port.optional(),
  FLEET_REQUIRE_AUTH: boolFromEnv.default(false),
  FLEET_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').regex(/^\S+$/, 'must not contain whitespace').optional(),
  /** Log lines: JSON, or pino-pretty's (auto: pretty on a terminal). Read by logger.ts at import. */
  FLEET_LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
  FLEET_METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').regex(/^\S+$/, 'must not contain whitespace').optional(),
  FLEET_RESERVATION_TTL_S: z.coerce.number().int().min(MIN_RESERVATION_TTL_S).max(7 * 24 * 3600).default(900),
  FLEET_BODY_LIMIT_BYTES: z.coerce.number().int().min(1024).default(1024 * 1024),
  FLEET_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  FLEET_HOST_ID: z.string().regex(HOST_ID_PATTERN, HOST_ID_RULE).optional(),
  FLEET_LLAMA_THREADS: z.coerce.number().int().min(1).max(256).optional(),
  FLEET_LLAMA_GPU: z.enum(['auto', 'false']).default('auto'),
  FLEET_MAX_IN_FLIGHT: z.coerce.number().int().min(1).max(64).default(4),
  FLEET_MAX_QUEUE: z.coerce.number().int().min(0).max(10_000).optional(),
  FLEET_ADMISSION_MAX_WAIT_MS: z.coerce.number().int().min(1).max(600_000).default(10_000),
  FLEET_PER_PRINCIPAL_CAP: z.coerce.number().int().min(0).max(10_000).default(16),
  FLEET_MAX_MODEL_SLOTS: z.coerce.number().int().min(1).max(64).default(1),
  FLEET_HEARTBEAT_INTERVAL_MS: z.coerce.number().int().min(100).max(60_000).default(2000),
  FLEET_MODEL_POOLS: boolFromEnv.default(true),
  FLEET_POOL_COOLDOWN_S: z.coerce.number().int().min(0).max(86_400).default(300),
  FLEET_POOL_PLANNER_INTERVAL_S: z.coerce.number().int().min(1).max(86_400).default(30),
  FLEET_PREFIX_ROUTING: boolFromEnv.default(DEFAULT_PREFIX_POLICY.enabled),
  FLEET_PREFIX_MAX_LOAD_GAP: z.coerce.number().int().min(0).max(10_000).default(DEFAULT_PREFIX_POLICY.maxLoadGap),
  FLEET_PREFIX_MIN_BLOCKS: z.coerce.number().int().min(1).max(10_000).default(DEFAULT_PREFIX_POLICY.minBlocks),
  FLEET_LOAD_PROBE: boolFromEnv.default(true),
  FLEET_PAYLOAD_KEYS: z.string().min(1).optional(),
  FLEET_PAYLOAD_KEYS_FILE: z.string().min(1).optional(),
  FLEET_CODEC_CORS_ORIGINS: z.string().optional(),
  FLEET_CORS_ORIGINS: z.string().optional(),
  FLEET_CONFIG: z.string().min(1).optional(),
  FLEET_DEMOTE_AFTER: z.coerce.number().int().min(0).max(1_000_000).default(10),
  FLEET_DEMOTE_RETRY_S: z.coerce.number().int().min(1).max(86_400).default(60),
  FLEET_PROVIDER_WORKER: boolFromEnv.default(true),
  FLEET_PROVIDER_REFRESH_S: z.coerce.number().int().min(10).max(86_400).default(300),
  FLEET_TEST_GATES_DIR: z.string().min(1).optional(),
  FLEET_PCCS_URL: z.string().url().refine((u) => u.startsWith('https://') || u.startsWith('http://'), 'must be an http(s) URL').default('https://api.trustedservices.intel.com'),
  FLEET_TCB_ALLOWED: z
    .string()
    .regex(/^[A-Za-z]+(,[A-Za-z]+)*$/, 'a comma-separated list of TCB statuses, e.g. UpToDate,SWHardeningNeeded')
    .default('UpToDate'),
  FLEET_ALLOW_SOFTWARE_TEE: boolFromEnv.default(false),
  FLEET_SOFTWARE_TEE_PUBLIC_KEY: z.string().regex(/^[0-9a-f]{64}$/, '32 bytes of lower-case hex').optional(),
});

export type FleetConfig = ReturnType<typeof toConfig>;

function toConfig(e: z.infer<typeof envSchema>, env: NodeJS.ProcessEnv) {
  const dataDir = path.resolve(e.FLEET_DATA_DIR);
  return {
    temporal: {
      /** Unset: `fleet dev` and the tests start a dev server. */
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      cliPath: e.TEMPORAL_CLI_PATH,
      devPort: e.TEMPORAL_DEV_PORT,
      uiPort: e.TEMPORAL_UI_PORT,
    },
    /** Unset: PGlite persisted under `<dataDir>/pglite` (single process only). */
    databaseUrl: e.DATABASE_URL,
    dataDir,
    toolsDir: path.resolve(e.FLEET_TOOLS_DIR),
    modelsDir: path.resolve(e.FLEET_MODELS_DIR ?? path.join(dataDir, 'models')),
    http: {
      host: e.FLEET_HTTP_HOST,
      port: e.FLEET_HTTP_PORT,
      bodyLimitBytes: e.FLEET_BODY_LIMIT_BYTES,
    },
    /**
     * Port of a bare `/metrics` server for processes without the API (`fleet worker …`);
     * unset: none. The API always serves `/metrics` itself. Listens on `http.host`.
     */
    metricsPort: e.FLEET_METRICS_PORT,
    requireAuth: e.FLEET_REQUIRE_AUTH,
    /** Bearer token for `/admin/*`; unset: admin endpoints are open (local dev), with a warning. */
    adminToken: e.FLEET_ADMIN_TOKEN,
    /** Bearer token /metrics needs (every process); unset: open, like Prometheus's default. */
    metricsToken: e.FLEET_METRICS_TOKEN,
    budgets: {
      /** A reservation not settled or released by then is released by the sweep. */
      reservationTtlS: e.FLEET_RESERVATION_TTL_S,
      /** The API's workflowExecutionTimeout for a request: always shorter than the TTL. */
      requestTimeoutS: e.FLEET_RESERVATION_TTL_S - RESERVATION_MARGIN_S,
    },
    logLevel: e.FLEET_LOG_LEVEL,
    hostId: e.FLEET_HOST_ID,
    llama: {
      threads: e.FLEET_LLAMA_THREADS ?? defaultLlamaThreads(),
      gpu: e.FLEET_LLAMA_GPU === 'auto' ? ('auto' as const) : (false as const),
    },
    /** Per model on a host. */
    admission: {
      maxInFlight: e.FLEET_MAX_IN_FLIGHT,
      maxQueue: e.FLEET_MAX_QUEUE ?? e.FLEET_MAX_IN_FLIGHT * 8,
      maxWaitMs: e.FLEET_ADMISSION_MAX_WAIT_MS,
      perPrincipalCap: e.FLEET_PER_PRINCIPAL_CAP,
    },
    /**
     * Probe a build's first load on each host in a child process, so a file that aborts
     * llama.cpp costs a probe, not the worker (src/activities/llama/probe.ts).
     */
    loadProbe: e.FLEET_LOAD_PROBE,
    /** Models a host keeps loaded at once; loading another evicts the least recently used idle one. */
    maxModelSlots: e.FLEET_MAX_MODEL_SLOTS,
    heartbeatIntervalMs: e.FLEET_HEARTBEAT_INTERVAL_MS,
    /**
     * Prefix-cache-aware routing (src/domain/prefixRouting.ts): a replica holding the longest
     * prefix of the conversation goes first unless it is busier than the least busy one by more
     * than `maxLoadGap` (running + queued); `enabled: false` routes by load only.
     */
    prefixRouting: { enabled: e.FLEET_PREFIX_ROUTING, maxLoadGap: e.FLEET_PREFIX_MAX_LOAD_GAP, minBlocks: e.FLEET_PREFIX_MIN_BLOCKS },
    pools: {
      /** Kill switch: false turns pool enforcement off in routing, the planner and the lists. */
      enabled: e.FLEET_MODEL_POOLS,
      /** A host the planner moved is not moved again for this long. */
      cooldownMs: e.FLEET_POOL_COOLDOWN_S * 1000,
      /** Period of the warm-pool planner Schedule. */
      plannerIntervalS: e.FLEET_POOL_PLANNER_INTERVAL_S,
    },
    /**
     * Test only: a folder of gate files; a generation whose prompt names `⟦gate:NAME⟧` holds
     * its slot until `NAME` exists there (src/activities/llama/testGates.ts). Unset: off.
     */
    testGatesDir: e.FLEET_TEST_GATES_DIR ? path.resolve(e.FLEET_TEST_GATES_DIR) : undefined,
    /**
     * Keys of the payload codec that encrypts every workflow and activity payload
     * (src/temporal/payloadCodec.ts): `FLEET_PAYLOAD_KEYS` (`id:base64,…`, first encrypts), else
     * the file `FLEET_PAYLOAD_KEYS_FILE` (same format). Neither: payloads in clear, except under
     * `fleet dev`, which keeps a generated key in `<dataDir>/payload-keys`.
     */
    /** Origins whose browsers may call the codec endpoint: the Web UI's (default: the dev UI's). */
    /** Origins whose browsers may call `/v1` (`*`: any); default none. */
    corsOrigins: (e.FLEET_CORS_ORIGINS ?? '')
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
    codecCorsOrigins: (e.FLEET_CODEC_CORS_ORIGINS ?? `http://127.0.0.1:${e.TEMPORAL_UI_PORT},http://localhost:${e.TEMPORAL_UI_PORT}`)
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
    /**
     * Providers declared in the `FLEET_CONFIG` file (YAML or JSON). Unset: undefined — not an
     * empty list, which would remove every provider the file declared on another process.
     */
    file: e.FLEET_CONFIG ? loadConfigFile(e.FLEET_CONFIG) : undefined,
    providers: {
      /**
       * A replica that failed `after` times in a row sorts after the next tier (0: never), for
       * `retryAfterMs` after each failure; then it gets a try in its place (see isDemoted).
       */
      demotion: { after: e.FLEET_DEMOTE_AFTER, retryAfterMs: e.FLEET_DEMOTE_RETRY_S * 1000 },
      /** Run the provider worker inside the control-plane process (and `fleet dev`). */
      workerInControlPlane: e.FLEET_PROVIDER_WORKER,
      /** Period of the `fleet.provider-refresh` Schedule (every provider's /v1/models). */
      refreshIntervalS: e.FLEET_PROVIDER_REFRESH_S,
      /**
       * How attested providers' TEE quotes are verified: Intel DCAP with collateral from the
       * PCCS (cached until its nextUpdate) and the TCB statuses accepted; or — only when
       * FLEET_ALLOW_SOFTWARE_TEE=true, for tests and local development — the software TEE whose
       * public key is FLEET_SOFTWARE_TEE_PUBLIC_KEY.
       */
      quotes: softwareTeeOf(e) ?? { kind: 'dcap' as const, pccsUrl: e.FLEET_PCCS_URL, allowedTcbStatuses: e.FLEET_TCB_ALLOWED.split(',') },
    },
    /**
     * Provider API keys are read by the NAME a provider stores (`api_key_env`), here, from the
     * environment this config was loaded from — the one place the environment is read.
     */
    secrets: { get: (name: string): string | undefined => (env[name] ? env[name] : undefined) },
    payloadKeys: { keys: payloadKeysOf(e.FLEET_PAYLOAD_KEYS), file: e.FLEET_PAYLOAD_KEYS_FILE ? path.resolve(e.FLEET_PAYLOAD_KEYS_FILE) : undefined },
  };
}

function softwareTeeOf(e: z.infer<typeof envSchema>): { kind: 'software'; publicKey: string } | undefined {
  if (!e.FLEET_ALLOW_SOFTWARE_TEE) {
    if (e.FLEET_SOFTWARE_TEE_PUBLIC_KEY) throw new ConfigError('invalid environment:\n  FLEET_SOFTWARE_TEE_PUBLIC_KEY: set, but FLEET_ALLOW_SOFTWARE_TEE is not true (the software TEE is for tests only)');
    return undefined;
  }
  if (!e.FLEET_SOFTWARE_TEE_PUBLIC_KEY) throw new ConfigError('invalid environment:\n  FLEET_SOFTWARE_TEE_PUBLIC_KEY: required when FLEET_ALLOW_SOFTWARE_TEE=true');
  return { kind: 'software', publicKey: e.FLEET_SOFTWARE_TEE_PUBLIC_KEY };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function payloadKeysOf(spec: string | undefined): PayloadKey[] | undefined {
  if (spec === undefined) return undefined;
  try {
    return parsePayloadKeys(spec);
  } catch (err) {
    if (err instanceof PayloadCodecError) throw new ConfigError(`invalid environment:\n  FLEET_PAYLOAD_KEYS: ${err.message}`);
    throw err;
  }
}

/** Reads and validates the environment; throws a ConfigError naming each bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): FleetConfig {
  const present = Object.fromEntries(
    Object.entries(env).filter(([k, v]) => k in envSchema.shape && v !== undefined && v !== ''),
  );
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid environment:\n  ${lines.join('\n  ')}`);
  }
  return toConfig(parsed.data, env);
}

/** Reads and validates the `FLEET_CONFIG` file; a ConfigError names the file and the field. */
function loadConfigFile(file: string): FleetConfigFile {
  const where = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(where, 'utf8');
  } catch (err) {
    throw new ConfigError(`invalid environment:\n  FLEET_CONFIG: cannot read ${where} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (err) {
    throw new ConfigError(`FLEET_CONFIG (${where}): not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  const parsed = fleetConfigFileSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw new ConfigError(`FLEET_CONFIG (${where}):\n  ${lines.join('\n  ')}`);
  }
  const ids = parsed.data.providers.map((p) => p.id);
  const dup = ids.find((id, i) => ids.indexOf(id) !== i);
  if (dup) throw new ConfigError(`FLEET_CONFIG (${where}): provider id '${dup}' appears twice`);
  return parsed.data;
}
