/**
 * `fleet models list | register | load | unload | release | delete`: a model's life on a
 * running fleet, over `/admin/models` and `/admin/hosts/:h/models/:m/*` with the admin token.
 * `models alias` (rollouts) is added by poolCommands.ts.
 */
import { Presets, SingleBar } from 'cli-progress';
import { Command } from 'commander';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { hostsResponseSchema } from '../statusView.js';
import { apiBase, apiJson, hostId, int, JSON_OPTION, printListing, URL_OPTION } from './common.js';
import { renderTable } from '../textTable.js';

/** How often `models load` reads the load's progress (GET /admin/hosts) while it waits. */
const PROGRESS_POLL_MS = 500;

/**
 * Shows the host's load progress on a terminal while `wait` runs (the placement the host
 * reports as loading, from its heartbeats); piped or redirected output gets no bar.
 */
async function withLoadProgress<T>(o: { base: string; host: string }, wait: Promise<T>): Promise<T> {
  if (!process.stderr.isTTY) return wait;
  const bar = new SingleBar({ format: 'loading {model} on {host} [{bar}] {percentage}%', stream: process.stderr, hideCursor: true, clearOnComplete: true }, Presets.shades_classic);
  bar.start(100, 0, { model: '…', host: o.host });
  const timer = setInterval(() => {
    apiJson(hostsResponseSchema, { base: o.base, route: '/admin/hosts' }).then(
      (a) => {
        const loading = a.data.find((h) => h.id === o.host)?.placements.find((p) => p.state === 'loading');
        if (loading) bar.update(Math.floor(loading.progress * 100), { model: loading.model });
      },
      () => undefined, // the answer to the load itself reports a lost API
    );
  }, PROGRESS_POLL_MS);
  try {
    return await wait;
  } finally {
    clearInterval(timer);
    bar.stop();
  }
}

const buildSchema = z.object({
  id: z.string(),
  kind: z.enum(['gguf', 'remote']),
  context_length: z.number(),
  aliases: z.array(z.string()),
  path: z.string().optional(),
  size_bytes: z.number().optional(),
  provider: z.string().optional(),
  upstream_model: z.string().optional(),
  active: z.boolean().optional(),
});
const buildsSchema = z.object({ data: z.array(buildSchema) });

export function renderBuilds(list: Array<z.infer<typeof buildSchema>>): string {
  if (list.length === 0) return 'no models: register one with fleet models register <id> <file.gguf>\n';
  const head = ['BUILD', 'KIND', 'CONTEXT', 'ALIASES', 'SOURCE'];
  const rows = list.map((b) => [
    b.id,
    b.kind,
    String(b.context_length),
    b.aliases.join(',') || '-',
    b.kind === 'gguf' ? `${b.path ?? '?'} (${((b.size_bytes ?? 0) / 1e6).toFixed(1)} MB)` : `${b.provider ?? '?'}: ${b.upstream_model ?? '?'}${b.active === false ? ' (inactive)' : ''}`,
  ]);
  return renderTable([head, ...rows]);
}

/** Returns the `models` command, which poolCommands.ts adds `alias` to. */
export function registerModelCommands(program: Command): Command {
  const models = program.command('models').description('the models of a running fleet: catalog, loads, unloads (/admin/models)');
  models
    .command('list')
    .description('every build (a GGUF file or a provider\'s model) with its context length and aliases')
    .option(...URL_OPTION)
    .option(...JSON_OPTION)
    .action(async (opts: { url?: string; json?: boolean }) => {
      await printListing(buildsSchema, { base: apiBase(opts.url), route: '/admin/models' }, { json: opts.json, render: (a) => renderBuilds(a.data) });
    });

  models
    .command('register <id> <file>')
    .description('add a GGUF file to the catalog (checked and hashed by the API; an alias of the same id is created)')
    .option('--context-length <n>', 'context to serve it with (default: what the file declares)', int('context-length'))
    .option('--alias <alias>', 'the alias clients reach it by (default: its id)')
    .option('--no-alias', 'no alias (reach it later with fleet models alias)')
    .option(...URL_OPTION)
    .action(async (id: string, file: string, opts: { contextLength?: number; alias?: string | false; url?: string }) => {
      // A file that exists here is sent absolute (fleet dev: the API shares this machine);
      // otherwise it is the API's path, relative to its FLEET_MODELS_DIR.
      const sent = existsSync(file) ? path.resolve(file) : file;
      const body = { id, path: sent, ...(opts.contextLength !== undefined ? { context_length: opts.contextLength } : {}), ...(opts.alias !== undefined ? { alias: opts.alias } : {}) };
      const answerSchema = z.object({ id: z.string(), sha256: z.string(), size_bytes: z.number(), context_length: z.number(), alias: z.string().nullable() });
      const a = await apiJson(answerSchema, { method: 'POST', base: apiBase(opts.url), route: '/admin/models', body, ok: 201 });
      process.stdout.write(`registered ${a.id}: context ${a.context_length}, ${a.size_bytes} bytes, sha256 ${a.sha256.slice(0, 16)}…${a.alias ? `, alias ${a.alias}` : ', no alias'}\n`);
    });

  models
    .command('load <model>')
    .description("load a model onto a host now (the coldLoad workflow a request would start; a host of another pool moves into the model's pool) and wait, with a progress bar on a terminal")
    .requiredOption('--host <id>', 'the host to load it on', hostId)
    .option(...URL_OPTION)
    .action(async (model: string, opts: { host: string; url?: string }) => {
      const started = Date.now();
      const route = `/admin/hosts/${encodeURIComponent(opts.host)}/models/${encodeURIComponent(model)}/load`;
      const loadSchema = z.object({ host: z.string(), model: z.string(), evicted: z.array(z.string()), moved_from: z.string().nullable().optional(), pool: z.string().optional() });
      const base = apiBase(opts.url);
      const answer = await withLoadProgress({ base, host: opts.host }, apiJson(loadSchema, { method: 'POST', base, route }));
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      const notes = [
        ...(answer.pool ? [`moved from pool ${answer.moved_from ?? '(none)'} to ${answer.pool}`] : []),
        ...(answer.evicted.length ? [`evicted: ${answer.evicted.join(', ')}`] : []),
      ];
      process.stdout.write(`loaded ${answer.model} on ${answer.host} in ${seconds}s${notes.length ? ` (${notes.join('; ')})` : ''}\n`);
    });

  models
    .command('unload <model>')
    .description('free a model\'s slot on a host (the modelUnload workflow); refused while requests run on it')
    .requiredOption('--host <id>', 'the host to unload it from', hostId)
    .option(...URL_OPTION)
    .action(async (model: string, opts: { host: string; url?: string }) => {
      const route = `/admin/hosts/${encodeURIComponent(opts.host)}/models/${encodeURIComponent(model)}/unload`;
      const a = await apiJson(z.object({ host: z.string(), model: z.string(), unloaded: z.boolean() }), { method: 'POST', base: apiBase(opts.url), route });
      process.stdout.write(a.unloaded ? `unloaded ${a.model} from ${a.host}\n` : `${a.model} was not loaded on ${a.host}\n`);
    });

  models
    .command('release <build>')
    .description('lift a build\'s quarantine (after fixing or replacing its file): hosts may load it again')
    .option(...URL_OPTION)
    .action(async (build: string, opts: { url?: string }) => {
      const route = `/admin/models/${encodeURIComponent(build)}/release`;
      const a = await apiJson(z.object({ id: z.string(), was_quarantined: z.boolean() }), { method: 'POST', base: apiBase(opts.url), route });
      process.stdout.write(a.was_quarantined ? `released ${a.id}: hosts may load it again\n` : `${a.id} was not quarantined\n`);
    });

  models
    .command('delete <build>')
    .description('remove a GGUF build from the catalog (with its own alias); refused while another alias points at it or a host holds it')
    .option(...URL_OPTION)
    .action(async (build: string, opts: { url?: string }) => {
      const route = `/admin/models/${encodeURIComponent(build)}`;
      const a = await apiJson(z.object({ id: z.string(), deleted: z.boolean() }), { method: 'DELETE', base: apiBase(opts.url), route });
      process.stdout.write(`deleted ${a.id}\n`);
    });
  return models;
}
