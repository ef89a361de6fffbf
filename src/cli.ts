/**
 * `fleet`: the one command line. `fleet dev` runs everything in one process tree; the other
 * subcommands run one process of DESIGN.md each, or an operator task (`status`, `models load`,
 * `keys` talk to a running API over HTTP, with the admin token). Output meant for people is
 * printed; everything else goes through the pino logger.
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import http from 'node:http';
import path from 'node:path';
import { ConfigError } from './config.js';
import { openDatabase } from './db/connect.js';
import { migrateToLatest } from './db/migrate.js';
import { ensureDevModel } from './devModel.js';
import { log } from './logger.js';
import { makeTinyModel, TINY_MODEL_SIZES, type TinyModelSize } from './model/tinyModel.js';
import { TemporalBinaryError } from './temporal/binary.js';
import { SOFTWARE_VERSION } from './version.js';
import { CliError, config, requireDatabaseUrl, runUntilSignal, int, hostId } from './cli/common.js';
import { registerDiscoveryCommands } from './cli/discoveryCommands.js';
import { registerModelCommands } from './cli/modelCommands.js';
import { registerOperatorCommands } from './cli/operatorCommands.js';
import { registerPoolCommands } from './cli/poolCommands.js';
import { registerProviderCommands } from './cli/providerCommands.js';

const program = new Command('fleet')
  .description('inference-fleet: OpenAI-compatible gateway and GPU fleet on Temporal')
  .version(SOFTWARE_VERSION, '-V, --version', 'print the version')
  // Usage errors (unknown command or option, missing argument) reach the catch below, which
  // exits 2 as command-line tools do; subcommands made after this inherit it.
  .exitOverride();

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
        devServer: {
          uiPort: opts.ui ? c.temporal.uiPort : null,
          port: c.temporal.devPort,
          persist: true,
          // The UI shows encrypted payloads decrypted through the API's codec endpoint.
          uiCodecEndpoint: `http://${c.http.host === '0.0.0.0' ? '127.0.0.1' : c.http.host}:${opts.port ?? c.http.port}/codec`,
        },
        generatePayloadKey: true,
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
    await runUntilSignal({ config: c, log, controlPlane: false, providerWorker: false, api: { host: c.http.host, port: c.http.port } });
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
    await runUntilSignal({ config: c, log, controlPlane: false, providerWorker: false, hostIds: [id], metricsPort: c.metricsPort });
  });

worker
  .command('provider')
  .description('a provider worker: queue fleet.providers, generate against remote OpenAI-compatible providers (stateless; run many)')
  .action(async () => {
    const c = config();
    requireDatabaseUrl(c, 'worker provider');
    await runUntilSignal({ config: c, log, controlPlane: false, providerWorker: true, metricsPort: c.metricsPort });
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

registerOperatorCommands(program);
registerPoolCommands(program, registerModelCommands(program));
registerDiscoveryCommands(program);
registerProviderCommands(program);

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
  // Thrown by an action (not yet printed); commander's own usage errors are printed already,
  // and help and --version end here too, with 0.
  if (err instanceof InvalidArgumentError) {
    process.stderr.write(`fleet: ${err.message}\n`);
    process.exit(2);
  }
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  if (err instanceof CliError) {
    process.stderr.write(`fleet: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  if (err instanceof ConfigError || err instanceof TemporalBinaryError) {
    process.stderr.write(`fleet: ${err.message}\n`);
    process.exit(2);
  }
  log.fatal({ err }, 'fleet failed');
  process.exit(1);
}

