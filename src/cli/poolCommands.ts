/**
 * Pool and alias subcommands: `fleet pools` (GET /admin/pools), `fleet pools move <host>
 * <alias>` (the poolReassign workflow, through POST /admin/pools/:alias/hosts), `fleet pools
 * plan` (run the warm-pool planner now) and `fleet models alias <alias>` (PATCH
 * /admin/models/:alias: desired and previous builds, min_warm).
 */
import { Command } from 'commander';
import { z } from 'zod';
import { apiBase, apiJson, hostId, int, JSON_OPTION, printListing, URL_OPTION } from './common.js';
import { renderTable } from '../textTable.js';

const poolSchema = z.object({
  alias: z.string(),
  desired: z.string(),
  previous: z.string().nullable(),
  min_warm: z.number(),
  hosts: z.array(z.string()),
  healthy: z.number(),
  loaded: z.number(),
  desired_loaded: z.number(),
  busy: z.number(),
  queued: z.number(),
  capacity_left: z.number().nullable(),
  /** The alias's builds that are quarantined (absent from older APIs). */
  quarantined: z.array(z.string()).optional(),
});
const poolsSchema = z.object({
  enabled: z.boolean(),
  unassigned: z.array(z.string()),
  moving: z.array(z.string()),
  quarantined: z.array(z.object({ build: z.string(), reason: z.string() })).optional(),
  data: z.array(poolSchema),
});

/** A fixed-width table, one row per alias, then the hosts in no pool. */
export function renderPools(p: z.infer<typeof poolsSchema>): string {
  const head = ['ALIAS', 'DESIRED', 'PREVIOUS', 'MIN_WARM', 'HOSTS', 'LOADED', 'BUSY', 'QUEUED', 'CAPACITY_LEFT', 'MEMBERS'];
  const rows = p.data.map((x) => [
    x.alias,
    x.desired,
    x.previous ?? '-',
    String(x.min_warm),
    `${x.healthy}/${x.hosts.length}`,
    `${x.loaded}${x.previous ? ` (${x.desired_loaded} desired)` : ''}`,
    String(x.busy),
    String(x.queued),
    x.capacity_left === null ? '?' : String(x.capacity_left),
    x.hosts.join(',') || '-',
  ]);
  const notes = [
    p.enabled ? '' : 'pools are OFF (FLEET_MODEL_POOLS=false): every host serves every alias',
    p.unassigned.length ? `hosts in no pool: ${p.unassigned.join(', ')}` : '',
    p.moving.length ? `moving: ${p.moving.join(', ')}` : '',
    ...(p.quarantined ?? []).map((q) => `quarantined: ${q.build}: ${q.reason} (fleet models release ${q.build})`),
  ].filter(Boolean);
  return renderTable([head, ...rows]) + notes.map((n) => `${n}\n`).join('');
}

export function registerPoolCommands(program: Command, models: Command): void {
  const pools = program
    .command('pools')
    .description('model pools: per alias its hosts, loaded, busy, queued, capacity left (GET /admin/pools)')
    .option(...URL_OPTION)
    .option(...JSON_OPTION)
    .action(async (opts: { url?: string; json?: boolean }) => {
      const base = apiBase(opts.url);
      await printListing(poolsSchema, { base, route: '/admin/pools' }, { json: opts.json, render: renderPools });
    });
  pools
    .command('move <host> <alias>')
    .description("move an idle host into an alias's pool (the poolReassign workflow: unload, assign, load) and wait")
    .option(...URL_OPTION)
    .action(async (host: string, alias: string, opts: { url?: string }) => {
      hostId(host);
      const base = apiBase(opts.url ?? pools.opts<{ url?: string }>().url);
      const started = Date.now();
      const route = `/admin/pools/${encodeURIComponent(alias)}/hosts`;
      const moveSchema = z.object({ host: z.string(), from: z.string().nullable(), alias: z.string(), build: z.string(), unloaded: z.array(z.string()), workflow_id: z.string() });
      const a = await apiJson(moveSchema, { method: 'POST', base, route, body: { host } });
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      process.stdout.write(
        `moved ${a.host} from ${a.from ?? '(no pool)'} to ${a.alias} in ${seconds}s: ` +
          `${a.unloaded.length ? `unloaded ${a.unloaded.join(', ')}, ` : ''}loaded ${a.build} (workflow ${a.workflow_id})\n`,
      );
    });
  pools
    .command('plan')
    .description('run the warm-pool planner now (min_warm, rollouts) and print what it did')
    .option(...URL_OPTION)
    .action(async (opts: { url?: string }) => {
      const base = apiBase(opts.url ?? pools.opts<{ url?: string }>().url);
      const planSchema = z.object({
        actions: z.array(z.object({ kind: z.string(), hostId: z.string(), alias: z.string(), why: z.string(), ok: z.boolean(), error: z.string().optional() })),
      });
      const { actions } = await apiJson(planSchema, { method: 'POST', base, route: '/admin/pools/plan' });
      if (actions.length === 0) process.stdout.write('nothing to do: every pool is warm\n');
      for (const x of actions) {
        process.stdout.write(`${x.kind} ${x.hostId} → ${x.alias} (${x.why}): ${x.ok ? 'ok' : `failed: ${x.error ?? ''}`}\n`);
      }
    });

  models
    .command('alias <alias>')
    .description('point an alias at a desired build (the old one becomes previous: a rollout), or set its min_warm')
    .option('--desired <build>', 'the build clients get (a registered model id)')
    .option('--previous <build>', 'the build it rolls from (default: the old desired build)')
    .option('--no-previous', 'no previous build (ends a rollout)')
    .option('--min-warm <n>', 'hosts the planner keeps loaded with the desired build', int('min-warm'))
    .option(...URL_OPTION)
    .action(async (alias: string, opts: { desired?: string; previous?: string | false; minWarm?: number; url?: string }) => {
      const base = apiBase(opts.url);
      const body = {
        ...(opts.desired !== undefined ? { desired: opts.desired } : {}),
        ...(opts.previous === false ? { previous: null } : typeof opts.previous === 'string' ? { previous: opts.previous } : {}),
        ...(opts.minWarm !== undefined ? { min_warm: opts.minWarm } : {}),
      };
      const route = `/admin/models/${encodeURIComponent(alias)}`;
      const a = await apiJson(z.object({ desired: z.string(), previous: z.string().nullable(), min_warm: z.number() }), { method: 'PATCH', base, route, body });
      process.stdout.write(`${alias} → ${a.desired}${a.previous ? ` (previous ${a.previous})` : ''}, min_warm ${a.min_warm}\n`);
    });
}
