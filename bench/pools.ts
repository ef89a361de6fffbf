/**
 * bench/pools.ts — model pools with GPU hosts as separate processes (tests/support/processFleet.ts),
 * 3 hosts, aliases alpha (`small` model) and beta (`tiny`), temperature 0:
 *   1. borrow: alpha's only host is busy, beta's two hosts are idle; a streamed alpha request
 *      makes routing move an idle beta host into alpha (poolReassign: unload beta, load alpha).
 *      Time from sending that request to its first content delta, against the same request's
 *      time to first delta on a free warm host measured in the same round; and the
 *      reassignment workflow's own duration.
 *   2. rollout: an open-loop trickle of alpha requests while alpha's desired build changes
 *      (alpha → alpha-v2 → alpha → …, one rollout per round, 4 by default): success rate and
 *      latency before, during (PATCH → every alpha host serves the desired build) and after
 *      each rollout, and the worst rollout's duration (a rollout is bounded by a load per host).
 * Temporal: `TEMPORAL_ADDRESS`, else a dev server of its own. PostgreSQL: `DATABASE_URL`, else a
 * private cluster in `<FLEET_TOOLS_DIR>/pg-bench`. Figures on stdout, logs on stderr.
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { startProcessFleet, type ProcessFleet } from '../tests/support/processFleet.js';
import { chat, type Outcome } from './fleetScenarios.js';
import { startBench, startBenchBackends, type BenchBackends } from './setup.js';
import { median, percentile, round } from './stats.js';

const USAGE = 'usage: npx tsx bench/pools.ts [--borrow-rounds N=5] [--rollout-rounds N=4] [--trickle-ms N=100] [--pre-s S=4] [--post-s S=4] [--heartbeat-ms N=500]';

function options(argv: string[]) {
  const { values: v } = parseArgs({ args: argv, strict: true, options: {
    'borrow-rounds': { type: 'string', default: '5' }, 'rollout-rounds': { type: 'string', default: '4' },
    'trickle-ms': { type: 'string', default: '100' }, 'pre-s': { type: 'string', default: '4' }, 'post-s': { type: 'string', default: '4' },
    'heartbeat-ms': { type: 'string', default: '500' }, help: { type: 'boolean', short: 'h', default: false },
  } });
  const int = (name: keyof typeof v, min: number, max: number) => {
    const raw = String(v[name]);
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new Error(`--${name} must be an integer from ${min} to ${max}, got '${raw}'`);
    return Number(raw);
  };
  return {
    help: v.help,
    borrowRounds: int('borrow-rounds', 1, 100),
    rolloutRounds: int('rollout-rounds', 1, 20),
    trickleMs: int('trickle-ms', 10, 60_000),
    preS: int('pre-s', 1, 600),
    postS: int('post-s', 1, 600),
    heartbeatMs: int('heartbeat-ms', 100, 60_000),
  };
}

const { opts, config, log } = startBench(options, USAGE);
const loadAtStart = os.loadavg()[0]!;
const sleep = (n: number) => new Promise((r) => setTimeout(r, n));
const user = (content: string) => [{ role: 'user' as const, content }];

let backends: BenchBackends | undefined;
let fleet: ProcessFleet | undefined;
const cleanup = async () => {
  await fleet?.stop().catch((err: Error) => log.warn({ err: err.message }, 'fleet stop failed'));
  await backends?.stop();
};
process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));

async function admin(f: ProcessFleet, method: string, route: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${f.apiUrl}${route}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = (await res.json()) as Record<string, unknown>;
  if (res.status !== 200) throw new Error(`${method} ${route}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}
type Pool = { alias: string; hosts: string[]; desired_loaded: number };
const poolOf = async (f: ProcessFleet, alias: string) => ((await admin(f, 'GET', '/admin/pools')).data as Pool[]).find((p) => p.alias === alias)!;
async function layout(f: ProcessFleet, want: Record<string, string>) {
  for (const [host, alias] of Object.entries(want)) {
    if (!(await poolOf(f, alias)).hosts.includes(host)) await admin(f, 'POST', `/admin/pools/${alias}/hosts`, { host });
  }
}
async function newFleet(hostEnv: Record<string, string>, temporalAddress: string, databaseUrl: string) {
  fleet = await startProcessFleet({
    hosts: 3,
    hostEnv: { FLEET_HEARTBEAT_INTERVAL_MS: String(opts.heartbeatMs), FLEET_LLAMA_THREADS: String(config.llama.threads), FLEET_MAX_MODEL_SLOTS: '1', ...hostEnv },
    stackEnv: { FLEET_POOL_PLANNER_INTERVAL_S: '3600', FLEET_POOL_COOLDOWN_S: '0' },
    temporalAddress,
    databaseUrl,
    log,
  });
  await fleet.addModel('alpha', 'small', 11);
  await fleet.addModel('beta', 'tiny', 12);
  await fleet.addModel('alpha-v2', 'small', 13, false);
  return fleet;
}

/** Time to the first non-empty content delta of a streamed alpha request. */
async function ttft(f: ProcessFleet, tag: string): Promise<{ ms: number; id: string }> {
  const t0 = performance.now();
  const stream = await f.openai.chat.completions.create({ model: 'alpha', messages: user(tag), max_tokens: 16, temperature: 0, stream: true });
  let first: number | undefined;
  let id = '';
  for await (const c of stream) {
    id = c.id;
    if (first === undefined && c.choices[0]?.delta?.content) first = performance.now() - t0;
  }
  return { ms: first ?? NaN, id };
}

async function borrowRound(f: ProcessFleet, round: number) {
  await layout(f, { h0: 'alpha', h1: 'beta', h2: 'beta' });
  const warm = await ttft(f, `warm ${round}`);
  const busy = f.openai.chat.completions.create({ model: 'alpha', messages: user(`occupy ${round}`), max_tokens: 1500, temperature: 0 });
  for (;;) {
    const h0 = (await f.stack.db.db.selectFrom('hosts').select('stats').where('id', '=', 'h0').executeTakeFirst())?.stats as { models?: Record<string, { running: number }> };
    if (h0?.models?.alpha?.running === 1) break;
    await sleep(20);
  }
  const since = new Date();
  const borrowed = await ttft(f, `borrow ${round}`);
  await busy;
  let reassignMs: number | null = null;
  let host: string | null = null;
  for await (const w of f.stack.temporal.client.workflow.list({ query: `FleetRequestKind = "poolReassign" AND FleetModel = "alpha" AND StartTime >= "${since.toISOString()}"` })) {
    if (w.closeTime) reassignMs = w.closeTime.getTime() - w.startTime.getTime();
    host = w.workflowId.replace(/^pool:/, '');
  }
  return { warmMs: round2(warm.ms), borrowedMs: round2(borrowed.ms), reassignMs, host };
}
const round2 = (x: number) => round(x, 1);

async function rolloutRound(f: ProcessFleet, to: string) {
  const outs: Array<Outcome & { phase: 'before' | 'during' | 'after' }> = [];
  let phase: 'before' | 'during' | 'after' = 'before';
  let stop = false;
  const pending: Array<Promise<void>> = [];
  const trickle = (async () => {
    while (!stop) {
      const p = phase;
      pending.push(chat(f.apiUrl, { model: 'alpha', messages: user('steady'), max_tokens: 8, temperature: 0 }).then((o) => void outs.push({ ...o, phase: p })));
      await sleep(opts.trickleMs);
    }
  })();
  await sleep(opts.preS * 1000);
  phase = 'during';
  const t0 = performance.now();
  await admin(f, 'PATCH', '/admin/models/alpha', { desired: to });
  for (const deadline = performance.now() + 180_000; ; ) {
    const p = await poolOf(f, 'alpha');
    if (p.desired_loaded === p.hosts.length) break;
    if (performance.now() > deadline) throw new Error(`the rollout to ${to} did not finish in 180 s: ${JSON.stringify(p)}; planner: ${await plannerRun(f)}`);
    await sleep(50);
  }
  const rolloutMs = performance.now() - t0;
  phase = 'after';
  await sleep(opts.postS * 1000);
  stop = true;
  await trickle;
  await Promise.all(pending);
  const of = (ph: string) => outs.filter((o) => o.phase === ph);
  const stats = (xs: Outcome[]) => {
    const ok = xs.filter((o) => o.status === 200);
    const lat = ok.map((o) => o.doneAt - o.sentAt);
    const statuses = xs.reduce<Record<string, number>>((a, o) => ((a[`${o.status}${o.code ? `:${o.code}` : ''}`] = (a[`${o.status}${o.code ? `:${o.code}` : ''}`] ?? 0) + 1), a), {});
    return { n: xs.length, ok: ok.length, successRate: xs.length ? round(ok.length / xs.length, 4) : null, p50Ms: lat.length ? round(median(lat)) : null, p99Ms: lat.length ? round(percentile(lat, 99)) : null, statuses };
  };
  return { to, rolloutMs: round(rolloutMs), before: stats(of('before')), during: stats(of('during')), after: stats(of('after')) };
}

/** What the last on-demand planner run did (status and actions), for a rollout that stalls. */
async function plannerRun(f: ProcessFleet): Promise<string> {
  try {
    const h = f.stack.temporal.client.workflow.getHandle('warm-pools:now');
    const d = await h.describe();
    if (d.status.name === 'RUNNING') return `running since ${d.startTime.toISOString()}`;
    return `${d.status.name}: ${JSON.stringify(await h.result().catch((err: Error) => err.message))}`;
  } catch (err) {
    return (err as Error).message;
  }
}

let exitCode = 0;
try {
  backends = await startBenchBackends(config, log);
  const { temporalAddress, databaseUrl } = backends;
  log.info('borrow');
  let f = await newFleet({ FLEET_MAX_IN_FLIGHT: '1', FLEET_MAX_QUEUE: '0' }, temporalAddress, databaseUrl);
  const borrows = [];
  for (let r = 0; r < opts.borrowRounds; r++) borrows.push(await borrowRound(f, r));
  await f.stop();
  fleet = undefined;

  log.info('rollout');
  f = await newFleet({ FLEET_MAX_IN_FLIGHT: '2', FLEET_MAX_QUEUE: '4' }, temporalAddress, databaseUrl);
  await layout(f, { h0: 'alpha', h1: 'alpha', h2: 'beta' });
  await admin(f, 'PATCH', '/admin/models/beta', { min_warm: 1 }); // beta keeps its host: alpha cannot borrow it
  await admin(f, 'PATCH', '/admin/models/alpha', { min_warm: 2 }); // both alpha hosts warm before the first rollout
  await admin(f, 'POST', '/admin/pools/plan');
  if ((await poolOf(f, 'alpha')).desired_loaded !== 2) throw new Error('alpha is not warm on both hosts');
  const rollouts = [];
  for (let r = 0; r < opts.rolloutRounds; r++) rollouts.push(await rolloutRound(f, r % 2 === 0 ? 'alpha-v2' : 'alpha'));
  await f.stop();
  fleet = undefined;

  const warmMed = median(borrows.map((b) => b.warmMs));
  const borrowMed = median(borrows.map((b) => b.borrowedMs));
  const reassign = borrows.map((b) => b.reassignMs).filter((x): x is number => x !== null);
  const loadAtEnd = os.loadavg()[0]!;
  const c = (x: unknown, w = 10) => String(x ?? '-').padStart(w);
  const st = (s: Record<string, number>) => Object.entries(s).map(([k, n]) => `${k}×${n}`).join(' ');
  const lines = [
    `pools bench: 3 host processes, alpha = small model, beta = tiny model, ${config.llama.threads} llama thread(s) per host, heartbeat ${opts.heartbeatMs} ms`,
    `machine: ${os.availableParallelism()} cores shared with other jobs (1-min load ${loadAtStart.toFixed(2)} at start, ${loadAtEnd.toFixed(2)} at end)`,
    '',
    `1. borrow an idle host: alpha's only host busy, a streamed alpha request (max_tokens 16) moves an idle beta host in (${opts.borrowRounds} rounds)`,
    `${'round'.padEnd(6)}${c('warm ttft')}${c('borrowed', 12)}${c('reassign', 12)}  moved`,
    ...borrows.map((b, i) => `${String(i + 1).padEnd(6)}${c(b.warmMs)}${c(b.borrowedMs, 12)}${c(b.reassignMs, 12)}  ${b.host ?? '-'}`),
    `   median: first token on a free warm host ${round2(warmMed)} ms; after borrowing a host ${round2(borrowMed)} ms (${(borrowMed / warmMed).toFixed(1)}x); poolReassign workflow ${reassign.length ? round2(median(reassign)) : '-'} ms`,
    '',
    `2. rollout under steady load: 1 alpha request (max_tokens 8) every ${opts.trickleMs} ms; ${opts.preS} s before, the rollout, ${opts.postS} s after (2 alpha hosts, 2 in flight + 4 queued each)`,
    `${'to'.padEnd(10)}${c('rollout ms', 11)}  ${'phase'.padEnd(7)}${c('n', 5)}${c('ok', 5)}${c('success', 9)}${c('p50 ms', 9)}${c('p99 ms', 9)}  statuses`,
    ...rollouts.flatMap((r) =>
      (['before', 'during', 'after'] as const).map((ph, i) => {
        const s = r[ph];
        return `${(i === 0 ? r.to : '').padEnd(10)}${c(i === 0 ? r.rolloutMs : '', 11)}  ${ph.padEnd(7)}${c(s.n, 5)}${c(s.ok, 5)}${c(s.successRate === null ? '-' : `${(s.successRate * 100).toFixed(1)}%`, 9)}${c(s.p50Ms, 9)}${c(s.p99Ms, 9)}  ${st(s.statuses)}`;
      }),
    ),
  ];
  const worst = rollouts.reduce((w, r) => (r.rolloutMs > w.rolloutMs ? r : w), rollouts[0]!);
  lines.push(`   worst rollout of ${rollouts.length}: ${worst.rolloutMs} ms (to ${worst.to}); median ${round(median(rollouts.map((r) => r.rolloutMs)))} ms`);
  console.log(lines.join('\n'));
  const failed = rollouts.reduce((a, r) => a + (r.during.n - r.during.ok) + (r.before.n - r.before.ok) + (r.after.n - r.after.ok), 0);
  console.log(`BENCH_JSON ${JSON.stringify({ bench: 'pools', borrow: { rounds: borrows, warmMedianMs: round2(warmMed), borrowedMedianMs: round2(borrowMed), reassignMedianMs: reassign.length ? round2(median(reassign)) : null }, rollouts, worstRolloutMs: worst.rolloutMs, failed, cores: os.availableParallelism(), loadAvg1m: { start: round(loadAtStart), end: round(loadAtEnd) } })}`);
  if (failed > 0) exitCode = 1;
} catch (err) {
  console.error(`bench failed: ${(err as Error).stack ?? (err as Error).message}`);
  console.log(`BENCH_JSON ${JSON.stringify({ bench: 'pools', failed: 1, error: (err as Error).message })}`);
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(exitCode);
