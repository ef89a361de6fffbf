/**
 * `fleet`: the one command line. `fleet dev` runs everything in one process tree; the other
 * subcommands run one process of DESIGN.md each, or an operator task. Output meant for people
 * is printed; everything else goes through the pino logger.
 */
import { Command, InvalidArgumentError } from 'commander';
import path from 'node:path';
import { ConfigError, loadConfig, type FleetConfig } from './config.js';
import { openDatabase } from './db/connect.js';
import { migrateToLatest } from './db/migrate.js';
import { ensureDevModel } from './devModel.js';
import { configureLogger, log } from './logger.js';
import { makeTinyModel } from './model/tinyModel.js';
import { startStack, type Stack, type StackOptions } from './stack.js';
import { TemporalBinaryError } from './temporal/binary.js';

const HOST_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

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
  if (!HOST_ID.test(v)) throw new InvalidArgumentError('letters, digits, "_", "-", "." (max 63)');
  return v;
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
    await runUntilSignal({ config: c, log, controlPlane: true });
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
    await runUntilSignal({ config: c, log, controlPlane: false, hostIds: [id] });
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
  .command('make-tiny-model <file>')
  .description('write a deterministic random-weight llama GGUF that node-llama-cpp loads (no download)')
  .option('--seed <n>', 'PRNG seed', int('seed'), 1)
  .option('--size <size>', 'tiny | small', 'tiny')
  .action(async (file: string, opts: { seed: number; size: string }) => {
    if (opts.size !== 'tiny' && opts.size !== 'small') throw new InvalidArgumentError('--size must be tiny or small');
    const made = await makeTinyModel({ file: path.resolve(file), seed: opts.seed, size: opts.size });
    process.stdout.write(
      `${made.file}\n  size ${made.size}, seed ${made.seed}, ${made.bytes} bytes, context ${made.contextLength}\n  sha256 ${made.sha256}\n`,
    );
  });

try {
  await program.parseAsync(process.argv);
  // Handles (pg pools, the llama binding) may linger; the command is done.
  process.exit(0);
} catch (err) {
  if (err instanceof ConfigError || err instanceof TemporalBinaryError || err instanceof InvalidArgumentError) {
    process.stderr.write(`fleet: ${err.message}\n`);
    process.exit(2);
  }
  log.fatal({ err }, 'fleet failed');
  process.exit(1);
}
