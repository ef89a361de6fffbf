/**
 * `fleet`: the one command line. `fleet dev` runs everything in one process tree; the other
 * subcommands run one process of DESIGN.md each, or an operator task (`status`, `models load`,
 * `keys` talk to a running API over HTTP, with the admin token). Output meant for people is
 * printed; everything else goes through the pino logger.
 */
import { Command, InvalidArgumentError } from 'commander';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError, HOST_ID_PATTERN, HOST_ID_RULE, loadConfig, type FleetConfig } from './config.js';
import { openDatabase } from './db/connect.js';
import { migrateToLatest } from './db/migrate.js';
import { ensureDevModel } from './devModel.js';
import { keyAnswerSchema, keysListSchema, renderKeys } from './keysView.js';
import { configureLogger, log } from './logger.js';
import { makeTinyModel, TINY_MODEL_SIZES, type TinyModelSize } from './model/tinyModel.js';
import { startStack, type Stack, type StackOptions } from './stack.js';
import { hostsResponseSchema, renderStatus } from './statusView.js';
import { TemporalBinaryError } from './temporal/binary.js';
import { defaultPayloadConverter } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { identityKeyPath, writeNewIdentityKey } from './activities/hostIdentity.js';
import type { DiscoveryInput, DiscoveryOutcome } from './common/discovery.js';
import { connectTemporal, type TemporalHandle } from './temporal/connect.js';
import { startDiscoveryCycle } from './temporal/discovery.js';
import { installTemporalLogging } from './temporal/runtimeLogging.js';
import { WORKFLOWS_PATH } from './workers/controlPlane.js';
import { verifyResponseSignature } from './domain/attestation.js';
import { readFile } from 'node:fs/promises';

/** A failure to report to the user in one line, with the process exit code. */
class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

function config(): FleetConfig {
  const c = loadConfig();
  configureLogger(c.logLevel);
  return c;
}

function requireDatabaseUrl(c: FleetConfig, command: string): void {
  if (!c.databaseUrl) {
    throw new ConfigError(
      `DATABASE_URL: required for \`fleet ${command}\` (PGlite serves a single process; use \`fleet dev\` to run everything in one).`,
    );
  }
}

/** Runs a stack until SIGINT/SIGTERM, then stops it; a second signal exits at once. */
async function runUntilSignal(opts: StackOptions, onReady?: (s: Stack) => Promise<void> | void): Promise<void> {
  // Listen first: a signal that arrives during start-up still shuts down cleanly.
  const signalled = new Promise<void>((resolve) => {
    let count = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      if (++count > 1) process.exit(130);
      log.info({ signal: sig }, 'shutting down');
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  const stack = await startStack(opts);
  try {
    await onReady?.(stack);
    await signalled;
  } finally {
    await stack.stop();
  }
}

function int(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return n;
  };
}

function hostId(v: string): string {
  if (!HOST_ID_PATTERN.test(v)) throw new InvalidArgumentError(HOST_ID_RULE);
  return v;
}

/** The API's base URL: `--url`, else this machine's FLEET_HTTP_PORT. */
function apiBase(url: string | undefined): string {
  const raw = url ?? `http://127.0.0.1:${config().http.port}`;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new CliError(`--url: not a URL: ${raw}`, 2);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new CliError(`--url: expected http(s), got ${raw}`, 2);
  return parsed.href.replace(/\/+$/, '');
}

/**
 * One JSON request to the API, with the admin token (FLEET_ADMIN_TOKEN) when one is set: every
 * command here talks to `/admin/*`. node:http rather than fetch: fetch gives up on a response
 * whose headers take over 5 minutes, and `models load` waits for a load that may.
 */
function callApi(
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  base: string,
  route: string,
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  const url = new URL(base + route);
  const transport = url.protocol === 'https:' ? https : http;
  const adminToken = loadConfig().adminToken;
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (adminToken) headers.authorization = `Bearer ${adminToken}`;
    if (payload) headers['content-type'] = 'application/json';
    if (method !== 'GET') headers['content-length'] = String(payload?.length ?? 0);
    const req = transport.request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // not JSON: kept as text for the error message
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => reject(new CliError(`cannot reach the API at ${base} (${err.code ?? err.message})`, 2)));
    req.end(payload);
  });
}

/** The envelope's message for a non-2xx answer, as a CliError (exit 1: the API said no). */
function apiFailure(status: number, body: unknown): CliError {
  const envelope = z.object({ error: z.object({ message: z.string(), code: z.string().nullable().optional() }) }).safeParse(body);
  const detail = envelope.success
    ? `${envelope.data.error.message}${envelope.data.error.code ? ` (${envelope.data.error.code})` : ''}`
    : String(body).slice(0, 200);
  return new CliError(`HTTP ${status}: ${detail}`, 1);
}

async function fetchStatus(base: string): Promise<string> {
  const { status, body } = await callApi('GET', base, '/admin/hosts');
  if (status !== 200) throw apiFailure(status, body);
  const parsed = hostsResponseSchema.safeParse(body);
  if (!parsed.success) throw new CliError(`unexpected answer from ${base}/admin/hosts (is this an inference-fleet API?)`, 1);
  return renderStatus(parsed.data.data);
}

/** Re-renders every second until Ctrl-C; an API that goes away mid-watch is shown, not fatal. */
async function watchStatus(base: string, first: string): Promise<void> {
  let wake: () => void = () => undefined;
  let stopped = false;
  process.once('SIGINT', () => {
    stopped = true;
    wake();
  });
  for (let out = first; !stopped; ) {
    const when = new Date().toLocaleTimeString();
    // Clear the screen and home the cursor, so each frame replaces the previous one.
    process.stdout.write(`\x1b[2J\x1b[Hfleet status  ${base}  ${when}  (Ctrl-C to stop)\n\n${out}`);
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, 1000);
    });
    if (stopped) break;
    out = await fetchStatus(base).catch((err: unknown) => {
      if (err instanceof CliError) return `${err.message}; retrying\n`;
      throw err;
    });
  }
}

const program = new Command('fleet').description('inference-fleet: OpenAI-compatible gateway and GPU fleet on Temporal');

program
  .command('dev')
  .description('everything in one process tree: Temporal dev server, PGlite (unless DATABASE_URL), workers, API')
  .option('--host-id <id>', 'id of the embedded GPU host', hostId, 'local')
  .option('--port <port>', 'HTTP port (default FLEET_HTTP_PORT)', int('port'))
  .option('--no-ui', 'run the Temporal dev server headless')
  .action(async (opts: { hostId: string; port?: number; ui: boolean }) => {
    const c = config();
    await runUntilSignal(
      {
        config: c,
        log,
        devServer: { uiPort: opts.ui ? c.temporal.uiPort : null, port: c.temporal.devPort, persist: true },
        pgliteDir: path.join(c.dataDir, 'pglite'),
        hostIds: [opts.hostId],
        api: { host: c.http.host, port: opts.port ?? c.http.port },
      },
      async (s) => {
        const model = await ensureDevModel(s.db.db, c.modelsDir, log);
        const lines = [
          '',
          `  inference-fleet is up`,
          `  API          ${s.api!.url}/v1   (model: ${model})`,
          `  Temporal UI  ${s.devServer?.uiUrl ?? (c.temporal.address ? `(cluster at ${c.temporal.address})` : '(headless)')}`,
          `  try: curl ${s.api!.url}/v1/chat/completions -H 'Content-Type: application/json' \\`,
          `         -d '{"model":"${model}","messages":[{"role":"user","content":"hello"}],"max_tokens":16}'`,
          `  Ctrl-C stops everything.`,
          '',
        ];
        process.stdout.write(lines.join('\n') + '\n');
      },
    );
  });

program
  .command('api')
  .description('the HTTP API (needs DATABASE_URL and TEMPORAL_ADDRESS or a local dev server)')
  .action(async () => {
    const c = config();
    requireDatabaseUrl(c, 'api');
    await runUntilSignal({ config: c, log, controlPlane: false, api: { host: c.http.host, port: c.http.port } });
  });

const worker = program.command('worker').description('run a Temporal worker');
worker
  .command('control-plane')
  .description('all workflows and the activities that touch Postgres')
  .action(async () => {
    const c = config();
    requireDatabaseUrl(c, 'worker control-plane');
    await runUntilSignal({ config: c, log, controlPlane: true, metricsPort: c.metricsPort });
  });
worker
  .command('gpu-host')
  .description('a GPU host: task queue host.<id>, node-llama-cpp')
  .option('--host-id <id>', 'this host\'s id (default FLEET_HOST_ID)', hostId)
  .action(async (opts: { hostId?: string }) => {
    const c = config();
    requireDatabaseUrl(c, 'worker gpu-host');
    const id = opts.hostId ?? c.hostId;
    if (!id) throw new ConfigError('FLEET_HOST_ID: required (or pass --host-id)');
    await runUntilSignal({ config: c, log, controlPlane: false, hostIds: [id], metricsPort: c.metricsPort });
  });

program
  .command('status')
  .description('hosts, their health and slots, and each model\'s state, requests and load progress (GET /admin/hosts)')
  .option('--url <url>', 'API base URL (default http://127.0.0.1:FLEET_HTTP_PORT)')
  .option('--watch', 're-render every second until Ctrl-C')
  .action(async (opts: { url?: string; watch?: boolean }) => {
    const base = apiBase(opts.url);
    // The first read decides: an API that is not there is an error, even with --watch.
    const first = await fetchStatus(base);
    if (opts.watch) await watchStatus(base, first);
    else process.stdout.write(first);
  });

const models = program.command('models').description('operate on the models of a running fleet');
models
  .command('load <model>')
  .description('load a model onto a host now (the coldLoad workflow a request would start) and wait until it is loaded')
  .requiredOption('--host <id>', 'the host to load it on', hostId)
  .option('--url <url>', 'API base URL (default http://127.0.0.1:FLEET_HTTP_PORT)')
  .action(async (model: string, opts: { host: string; url?: string }) => {
    const base = apiBase(opts.url);
    const started = Date.now();
    const route = `/admin/hosts/${encodeURIComponent(opts.host)}/models/${encodeURIComponent(model)}/load`;
    const { status, body } = await callApi('POST', base, route);
    if (status !== 200) throw apiFailure(status, body);
    const answer = z.object({ host: z.string(), model: z.string(), evicted: z.array(z.string()) }).safeParse(body);
    if (!answer.success) throw new CliError(`unexpected answer from ${base}${route}`, 1);
    const { evicted } = answer.data;
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    process.stdout.write(
      `loaded ${answer.data.model} on ${answer.data.host} in ${seconds}s${evicted.length ? ` (evicted: ${evicted.join(', ')})` : ''}\n`,
    );
  });

const keys = program
  .command('keys')
  .description('API keys of a running fleet (POST/GET/DELETE /admin/keys; sends FLEET_ADMIN_TOKEN when set)');
keys
  .command('create')
  .description('create a key for an account (created if new); the key is printed once and cannot be shown again')
  .requiredOption('--account <id>', 'account the key belongs to')
  .option('--name <name>', 'a label for the key')
  .option('--balance <tokens>', 'hard balance: lifetime tokens (prompt + completion) the key may spend', int('balance'))
  .option('--window-tokens <tokens>', 'rolling window: at most this many tokens …', int('window-tokens'))
  .option('--window-seconds <s>', '… in any window of this many seconds', int('window-seconds'))
  .option('--url <url>', 'API base URL (default http://127.0.0.1:FLEET_HTTP_PORT)')
  .action(async (opts: { account: string; name?: string; balance?: number; windowTokens?: number; windowSeconds?: number; url?: string }) => {
    if ((opts.windowTokens === undefined) !== (opts.windowSeconds === undefined)) {
      throw new InvalidArgumentError('--window-tokens and --window-seconds go together');
    }
    const base = apiBase(opts.url);
    const { status, body } = await callApi('POST', base, '/admin/keys', {
      account: opts.account,
      name: opts.name ?? null,
      balance_tokens: opts.balance ?? null,
      window_tokens: opts.windowTokens ?? null,
      window_seconds: opts.windowSeconds ?? null,
    });
    if (status !== 201) throw apiFailure(status, body);
    const answer = keyAnswerSchema.safeParse(body);
    if (!answer.success) throw new CliError(`unexpected answer from ${base}/admin/keys`, 1);
    const k = answer.data;
    process.stdout.write(
      `created key ${k.id} for account ${k.account}\n${k.key}\n` +
        'Store it now: this is the only time it is shown (only a hash is kept).\n',
    );
  });
keys
  .command('list')
  .description('keys with their budgets and spend (never a secret)')
  .option('--account <id>', 'only this account\'s keys')
  .option('--url <url>', 'API base URL (default http://127.0.0.1:FLEET_HTTP_PORT)')
  .action(async (opts: { account?: string; url?: string }) => {
    const base = apiBase(opts.url);
    const route = `/admin/keys${opts.account ? `?account=${encodeURIComponent(opts.account)}` : ''}`;
    const { status, body } = await callApi('GET', base, route);
    if (status !== 200) throw apiFailure(status, body);
    const parsed = keysListSchema.safeParse(body);
    if (!parsed.success) throw new CliError(`unexpected answer from ${base}/admin/keys`, 1);
    process.stdout.write(renderKeys(parsed.data.data));
  });
keys
  .command('revoke <id>')
  .description('revoke a key: refused at once by this API process, within seconds by others')
  .option('--url <url>', 'API base URL (default http://127.0.0.1:FLEET_HTTP_PORT)')
  .action(async (id: string, opts: { url?: string }) => {
    const base = apiBase(opts.url);
    const { status, body } = await callApi('DELETE', base, `/admin/keys/${encodeURIComponent(id)}`);
    if (status !== 200) throw apiFailure(status, body);
    process.stdout.write(`revoked key ${id}\n`);
  });

program
  .command('migrate')
  .description('apply database migrations (DATABASE_URL, else the PGlite data folder)')
  .action(async () => {
    const c = config();
    const db = await openDatabase({ databaseUrl: c.databaseUrl, pgliteDir: path.join(c.dataDir, 'pglite'), log });
    try {
      const applied = await migrateToLatest(db.db, log);
      process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'up to date\n');
    } finally {
      await db.close();
    }
  });

program
  .command('host')
  .description('operate on this machine\'s GPU-host state')
  .command('rotate-key')
  .description('replace the host\'s Ed25519 identity key (<FLEET_DATA_DIR>/hosts/<id>/identity.key); a running worker signs with it from its next attestation')
  .requiredOption('--host-id <id>', 'the host', hostId)
  .action(async (opts: { hostId: string }) => {
    const file = identityKeyPath(config().dataDir, opts.hostId);
    const fingerprint = await writeNewIdentityKey(file);
    process.stdout.write(`${file}\n  new key fingerprint ${fingerprint}\n`);
  });

/** One line per fact of a cycle's outcome, for people. */
function renderOutcome(o: DiscoveryOutcome): string {
  const list = (xs: string[]) => (xs.length ? xs.map((x) => x.slice(0, 16)).join(', ') : '-');
  return [
    `${o.workflowId}: ${o.mode} (${o.transition}), backends ${o.backendCount ?? 'unknown'}`,
    `  pin set ${o.pinSet.state}: ${list(o.pinSet.fingerprints)}`,
    `  newly pinned: ${list(o.newlyPinned)}; evicted: ${list(o.evicted)}`,
    ...(o.reasons.length ? [`  reasons: ${o.reasons.join('; ')}`] : []),
    '',
  ].join('\n');
}

/** A Temporal connection for the commands that read histories: `--address`, else TEMPORAL_ADDRESS. */
async function temporalFor(address: string | undefined): Promise<TemporalHandle> {
  const c = config();
  const addr = address ?? c.temporal.address;
  if (!addr) throw new CliError('TEMPORAL_ADDRESS (or --address) is required: the address of the Temporal server the fleet runs on', 2);
  installTemporalLogging(log); // the SDK's own logs (e.g. the replay worker's) through pino
  return connectTemporal(addr, c.temporal.namespace);
}

/** A workflow's full history; an unknown id is the user's error, said in one line. */
async function historyOf(t: TemporalHandle, workflowId: string) {
  try {
    return await t.client.workflow.getHandle(workflowId).fetchHistory();
  } catch (err) {
    throw new CliError(`${workflowId}: cannot read its history: ${(err as Error).message}`, 1);
  }
}

const discovery = program.command('discovery').description('pin-set discovery cycles (attest every host serving a model)');
discovery
  .command('run')
  .description('run one discovery cycle now and print its outcome (POST /admin/models/:id/discovery)')
  .requiredOption('--model <id>', 'the model')
  .option('--url <url>', 'API base URL (default http://127.0.0.1:FLEET_HTTP_PORT)')
  .action(async (opts: { model: string; url?: string }) => {
    const base = apiBase(opts.url);
    const { status, body } = await callApi('POST', base, `/admin/models/${encodeURIComponent(opts.model)}/discovery`);
    if (status !== 200) throw apiFailure(status, body);
    process.stdout.write(renderOutcome(body as DiscoveryOutcome));
  });
discovery
  .command('replay <workflowId>')
  .description('replay a discovery cycle\'s recorded history against this build\'s workflow code; prints ok or the determinism error')
  .option('--address <host:port>', 'Temporal address (default TEMPORAL_ADDRESS)')
  .action(async (workflowId: string, opts: { address?: string }) => {
    const t = await temporalFor(opts.address);
    try {
      const history = await historyOf(t, workflowId);
      try {
        await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, history, workflowId);
      } catch (err) {
        throw new CliError(`${workflowId}: replay failed: ${(err as Error).message}`, 1);
      }
      process.stdout.write(`${workflowId}: ok (${history.events?.length ?? 0} events replayed)\n`);
    } finally {
      await t.close();
    }
  });
discovery
  .command('rerun <workflowId>')
  .description('start a new discovery cycle with the input of an earlier one; prints both outcomes')
  .option('--address <host:port>', 'Temporal address (default TEMPORAL_ADDRESS)')
  .action(async (workflowId: string, opts: { address?: string }) => {
    const t = await temporalFor(opts.address);
    try {
      const old = t.client.workflow.getHandle(workflowId);
      const history = await historyOf(t, workflowId);
      const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
      if (!payload) throw new CliError(`${workflowId}: no workflow input in its history`, 1);
      const input = defaultPayloadConverter.fromPayload<DiscoveryInput>(payload);
      const before = await old.result().then(
        (o: DiscoveryOutcome) => renderOutcome(o),
        (err: Error) => `${workflowId}: failed: ${err.message}\n`,
      );
      const next = await startDiscoveryCycle(t.client, { modelId: input.modelId });
      const after = renderOutcome(await next.result());
      process.stdout.write(`before:\n${before}after:\n${after}`);
    } finally {
      await t.close();
    }
  });

const signatureAnswerSchema = z.object({
  request_id: z.string(),
  model: z.string(),
  signed: z.object({ request_id: z.string(), model_sha256: z.string(), response_sha256: z.string() }),
  fingerprint: z.string(),
  public_key: z.string(),
  signature: z.string(),
  algorithm: z.literal('ed25519'),
});

program
  .command('verify <requestId>')
  .description("fetch a verifiable model response's signature (GET /v1/signature/:id) and check it offline")
  .option('--url <url>', 'API base URL (default http://127.0.0.1:FLEET_HTTP_PORT)')
  .option('--text-file <file>', 'the response text as received: its sha256 must be the signed one')
  .option('--api-key <key>', 'API key for /v1 (default: $OPENAI_API_KEY)')
  .action(async (requestId: string, opts: { url?: string; textFile?: string; apiKey?: string }) => {
    const base = apiBase(opts.url);
    const key = opts.apiKey ?? process.env.OPENAI_API_KEY;
    const res = await fetch(`${base}/v1/signature/${encodeURIComponent(requestId)}`, {
      headers: { accept: 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    }).catch((err: Error) => {
      throw new CliError(`cannot reach ${base}: ${err.message}`, 1);
    });
    const body: unknown = await res.json().catch(() => null);
    if (res.status !== 200) throw apiFailure(res.status, body);
    const parsed = signatureAnswerSchema.safeParse(body);
    if (!parsed.success) throw new CliError(`${requestId}: not verified: malformed signature answer`, 1);
    const a = parsed.data;
    const text = opts.textFile === undefined ? undefined : await readFile(opts.textFile, 'utf8');
    const verdict = verifyResponseSignature(
      { signed: a.signed, fingerprint: a.fingerprint, publicKey: a.public_key, signature: a.signature },
      { requestId, ...(text !== undefined ? { text } : {}) },
    );
    if (!verdict.ok) throw new CliError(`${requestId}: not verified: ${verdict.reason}`, 1);
    process.stdout.write(
      `${requestId}: ok (model ${a.model}, build ${a.signed.model_sha256.slice(0, 12)}…, key ${verdict.fingerprint.slice(0, 16)}…, ` +
        `${text !== undefined ? 'response text matches' : 'response text not checked'})\n`,
    );
  });

program
  .command('make-tiny-model <file>')
  .description('write a deterministic random-weight llama GGUF that node-llama-cpp loads (no download)')
  .option('--seed <n>', 'PRNG seed', int('seed'), 1)
  .option('--size <size>', 'tiny | small | medium', 'tiny')
  .action(async (file: string, opts: { seed: number; size: string }) => {
    if (!(opts.size in TINY_MODEL_SIZES)) throw new InvalidArgumentError('--size must be tiny, small or medium');
    const made = await makeTinyModel({ file: path.resolve(file), seed: opts.seed, size: opts.size as TinyModelSize });
    process.stdout.write(
      `${made.file}\n  size ${made.size}, seed ${made.seed}, ${made.bytes} bytes, context ${made.contextLength}\n  sha256 ${made.sha256}\n`,
    );
  });

try {
  await program.parseAsync(process.argv);
  // Handles (pg pools, the llama binding) may linger; the command is done.
  process.exit(0);
} catch (err) {
  if (err instanceof CliError) {
    process.stderr.write(`fleet: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  if (err instanceof ConfigError || err instanceof TemporalBinaryError || err instanceof InvalidArgumentError) {
    process.stderr.write(`fleet: ${err.message}\n`);
    process.exit(2);
  }
  log.fatal({ err }, 'fleet failed');
  process.exit(1);
}
