/**
 * `fleet providers add | list | remove | refresh`: remote OpenAI-compatible providers of a
 * running fleet, over `/admin/providers` with the admin token. `add` takes the key's variable
 * NAME (`--api-key-env`), never a key; the variable must be set where the fleet runs.
 */
import { Command, InvalidArgumentError } from 'commander';
import { z } from 'zod';
import { apiBase, apiFailure, apiJson, callApi, int, JSON_OPTION, printListing, URL_OPTION } from './common.js';
import { renderTable } from '../textTable.js';

const providerSchema = z.object({
  id: z.string(),
  base_url: z.string(),
  tier: z.string(),
  api_key_env: z.string().nullable(),
  key_set: z.boolean().nullable(),
  models: z.string(),
  streaming: z.boolean(),
  enabled: z.boolean(),
  source: z.string(),
  consecutive_failures: z.number(),
  demoted: z.boolean(),
  catalog: z.array(z.object({ build: z.string(), upstream_model: z.string(), canonical_id: z.string(), active: z.boolean(), origin: z.string() })),
});

export function renderProviders(list: Array<z.infer<typeof providerSchema>>): string {
  if (list.length === 0) return 'no providers\n';
  const head = ['PROVIDER', 'TIER', 'ENABLED', 'KEY', 'STREAM', 'FAILURES', 'SOURCE', 'MODELS (canonical ← upstream)'];
  const rows = list.map((p) => [
    p.id,
    p.tier,
    p.enabled ? 'yes' : 'no',
    p.api_key_env ? `${p.api_key_env}${p.key_set ? '' : ' (NOT SET)'}` : '-',
    p.streaming ? 'yes' : 'no',
    `${p.consecutive_failures}${p.demoted ? ' (demoted)' : ''}`,
    p.source,
    p.catalog.map((m) => `${m.canonical_id}${m.canonical_id === m.upstream_model ? '' : ` ← ${m.upstream_model}`}${m.active ? '' : ' (inactive)'}`).join(', ') || '-',
  ]);
  return renderTable([head, ...rows]);
}

export function registerProviderCommands(program: Command): void {
  const providers = program.command('providers').description('remote OpenAI-compatible providers (GET/POST/PATCH/DELETE /admin/providers)');
  providers
    .command('list')
    .description('providers with their tier, key, failures and models')
    .option(...URL_OPTION)
    .option(...JSON_OPTION)
    .action(async (opts: { url?: string; json?: boolean }) => {
      const base = apiBase(opts.url);
      await printListing(z.object({ data: z.array(providerSchema) }), { base, route: '/admin/providers' }, { json: opts.json, render: (a) => renderProviders(a.data) });
    });
  providers
    .command('add <id> <baseUrl>')
    .description('add (or replace) a provider: its OpenAI-compatible base URL, e.g. https://api.example.com/v1')
    .option('--tier <tier>', 'attested | plaintext', 'plaintext')
    .option('--api-key-env <name>', 'the environment variable that holds its API key (the key itself is never stored)')
    .option('--models <list>', 'canonical=slug,… (a bare entry serves the slug under its own name)', '')
    .option('--no-streaming', 'it cannot stream (a stream is then served in one piece)')
    .option('--disabled', 'add it disabled')
    .option('--context-length <n>', 'context length assumed for its models', int('context-length'))
    .option(...URL_OPTION)
    .action(async (id: string, baseUrl: string, opts: { tier: string; apiKeyEnv?: string; models: string; streaming: boolean; disabled?: boolean; contextLength?: number; url?: string }) => {
      if (opts.tier !== 'attested' && opts.tier !== 'plaintext') throw new InvalidArgumentError('--tier must be attested or plaintext');
      const body = {
        id,
        base_url: baseUrl,
        tier: opts.tier,
        ...(opts.apiKeyEnv ? { api_key_env: opts.apiKeyEnv } : {}),
        models: opts.models,
        streaming: opts.streaming,
        enabled: !opts.disabled,
        ...(opts.contextLength ? { context_length: opts.contextLength } : {}),
      };
      const base = apiBase(opts.url);
      const { status, body: answer } = await callApi('POST', base, '/admin/providers', body);
      if (status !== 200 && status !== 201) throw apiFailure(status, answer);
      const p = providerSchema.parse(answer);
      process.stdout.write(`${status === 201 ? 'added' : 'replaced'} provider ${p.id} (${p.tier})\n${renderProviders([p])}`);
    });
  providers
    .command('remove <id>')
    .description('remove a provider and its models (aliases left with no model go too)')
    .option(...URL_OPTION)
    .action(async (id: string, opts: { url?: string }) => {
      const base = apiBase(opts.url);
      await apiJson(z.object({ deleted: z.literal(true) }), { method: 'DELETE', base, route: `/admin/providers/${encodeURIComponent(id)}` });
      process.stdout.write(`removed provider ${id}\n`);
    });
  providers
    .command('refresh')
    .description("list every provider's models now (the providerRefresh workflow) and print the outcome")
    .option(...URL_OPTION)
    .action(async (opts: { url?: string }) => {
      const base = apiBase(opts.url);
      const outcome = await apiJson(
        z.object({ complete: z.boolean(), answered: z.array(z.string()), failed: z.array(z.object({ providerId: z.string(), reason: z.string() })), added: z.array(z.string()), removed: z.array(z.string()) }),
        { method: 'POST', base, route: '/admin/providers/refresh' },
      );
      process.stdout.write(
        `${outcome.complete ? 'complete' : 'partial (merged only)'}: answered ${outcome.answered.join(', ') || '-'}` +
          `${outcome.failed.length ? `; failed ${outcome.failed.map((f) => `${f.providerId} (${f.reason})`).join(', ')}` : ''}` +
          `; added/changed ${outcome.added.length}, removed ${outcome.removed.length}\n`,
      );
    });
}
