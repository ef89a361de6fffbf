/**
 * bench/fleet.ts — how the fleet behaves with GPU hosts as separate processes
 * (`fleet worker gpu-host`, as tests/support/processFleet.ts runs them), the `small` generated
 * model (seed 5), one fixed prompt, one max_tokens, temperature 0:
 *   1. throughput and latency of N closed-loop clients over 1 host, then over 3 hosts;
 *   2. a burst of 4 × (hosts × (max in flight + max queue)) requests at once against 3 hosts
 *      with small admission limits: shares answered 200 / 503 / 429 / other, and how fast the
 *      refusals come compared with the answers;
 *   3. a steady trickle across the SIGKILL of the host that served most of it: time from the
 *      kill to the first success from another host, and the requests that failed meanwhile;
 *   4. failover to an idle host: the pool's only loaded host SIGKILLed beside an idle one, under
 *      a 5 req/s trickle, heartbeats at the 2 s default — time to the first success elsewhere
 *      (the idle host cold-loads the model) and failures (none expected);
 *   5. the probe load's cost: cold loads of fresh builds on a host with probes on versus off.
 * `--only 1,4` runs a subset.
 * Temporal: `TEMPORAL_ADDRESS`, else a dev server of its own. PostgreSQL (host processes need a
 * real server): `DATABASE_URL`, else a private cluster in `<FLEET_TOOLS_DIR>/pg-bench`. Each
 * fleet gets a fresh database. Figures on stdout, logs on stderr.
 */
import os from 'node:os';
import { startBench, startBenchBackends, type BenchBackends } from './setup.js';
import { parseArgs } from 'node:util';
import { startProcessFleet, type ProcessFleet } from '../tests/support/processFleet.js';
import { closedLoop, killover, overload, probeCost, type ChatBody } from './fleetScenarios.js';
import { round } from './stats.js';

const USAGE =
  'usage: npx tsx bench/fleet.ts [--requests N=320 | --seconds S] [--clients N=32] [--max-tokens N=32] [--warmup N=32]\n' +
  '         [--overload-rounds N=2] [--overload-max-tokens N=512] [--overload-in-flight N=2] [--overload-queue N=2] [--overload-wait-ms N=2000]\n' +
  '         [--trickle-ms N=100] [--trickle-max-tokens N=32] [--pre-kill-s S=4] [--post-kill-s S=8] [--kill-rounds N=3] [--heartbeat-ms N=500]\n' +
  '         [--failover-rounds N=3] [--probe-builds N=3] [--only 1,2,3,4,5]';
const PROMPT = 'Tell the fleet something about the sea and the wind.';

function options(argv: string[]) {
  const str = (d?: string) => ({ type: 'string', ...(d === undefined ? {} : { default: d }) }) as const;
  const { values: v } = parseArgs({ args: argv, strict: true, options: {
    requests: str(), seconds: str(), clients: str('32'), 'max-tokens': str('32'), warmup: str('32'),
    'overload-rounds': str('2'), 'overload-max-tokens': str('512'), 'overload-in-flight': str('2'), 'overload-queue': str('2'), 'overload-wait-ms': str('2000'),
    'trickle-ms': str('100'), 'trickle-max-tokens': str('32'), 'pre-kill-s': str('4'), 'post-kill-s': str('8'), 'kill-rounds': str('3'), 'heartbeat-ms': str('500'),
    'failover-rounds': str('3'), 'probe-builds': str('3'), only: str('1,2,3,4,5'),
    help: { type: 'boolean', short: 'h', default: false },
  } });
  const int = (name: keyof typeof v, min: number, max: number, raw = v[name] as string) => {
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new Error(`--${name} must be an integer from ${min} to ${max}, got '${raw}'`);
    return Number(raw);
  };
  if (v.requests !== undefined && v.seconds !== undefined) throw new Error('give --requests or --seconds, not both');
  return {
    help: v.help,
    requests: v.seconds === undefined ? int('requests', 1, 100_000, v.requests ?? '320') : undefined,
    seconds: v.seconds === undefined ? undefined : int('seconds', 1, 3600),
    clients: int('clients', 1, 1000),
    maxTokens: int('max-tokens', 1, 1024), // the small model's context is 2048
    warmup: int('warmup', 0, 100_000),
    overloadRounds: int('overload-rounds', 1, 100),
    overloadMaxTokens: int('overload-max-tokens', 1, 1024),
    overloadInFlight: int('overload-in-flight', 1, 64),
    overloadQueue: int('overload-queue', 0, 10_000),
    overloadWaitMs: int('overload-wait-ms', 1, 600_000),
    trickleMs: int('trickle-ms', 10, 60_000),
    trickleMaxTokens: int('trickle-max-tokens', 1, 1024),
    preKillS: int('pre-kill-s', 1, 600),
    postKillS: int('post-kill-s', 1, 600),
    killRounds: int('kill-rounds', 1, 20),
    heartbeatMs: int('heartbeat-ms', 100, 60_000),
    failoverRounds: int('failover-rounds', 1, 20),
    probeBuilds: int('probe-builds', 1, 20),
    only: new Set((v.only as string).split(',').map((x) => {
      if (!/^[1-5]$/.test(x.trim())) throw new Error(`--only takes scenario numbers 1..5, got '${x}'`);
      return Number(x);
    })),
  };
}

const { opts, config, log } = startBench(options, USAGE);
const body: ChatBody = { model: 'small', messages: [{ role: 'user', content: PROMPT }], max_tokens: opts.maxTokens, temperature: 0 };
const loadAtStart = os.loadavg()[0]!;

let backends: BenchBackends | undefined;
let fleet: ProcessFleet | undefined;
let cleaning: Promise<void> | undefined;
const cleanup = () =>
  (cleaning ??= (async () => {
    await fleet?.stop().catch((err: Error) => log.warn({ err: err.message }, 'fleet stop failed'));
    await backends?.stop();
  })());
process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));

async function newFleet(hosts: number, hostEnv: Record<string, string>, temporalAddress: string, databaseUrl: string) {
  const env = { FLEET_HEARTBEAT_INTERVAL_MS: String(opts.heartbeatMs), FLEET_LLAMA_THREADS: String(config.llama.threads), ...hostEnv };
  return newFleetWith(hosts, env, temporalAddress, databaseUrl);
}
async function newFleetWith(hosts: number, env: Record<string, string>, temporalAddress: string, databaseUrl: string) {
  fleet = await startProcessFleet({ hosts, hostEnv: env, temporalAddress, databaseUrl, log });
  await fleet.addModel('small', 'small', 5);
  return fleet;
}
async function loadAndWarm(f: ProcessFleet, hostIds: string[], warmup: number) {
  for (const h of hostIds) await f.load(h, 'small');
  if (warmup > 0) await closedLoop(f, body, Math.min(opts.clients, warmup), { requests: warmup });
}

let exitCode = 0;
try {
  backends = await startBenchBackends(config, log);
  const { temporalAddress, databaseUrl } = backends;
  const limit = { requests: opts.requests, seconds: opts.seconds };
  const run = (n: number) => opts.only.has(n);
  type Closed = Awaited<ReturnType<typeof closedLoop>>;
  let one: Closed | undefined;
  let three: Closed | undefined;
  const kills: Array<Awaited<ReturnType<typeof killover>>> = [];
  if (run(1) || run(3)) {
    // Throughput fleet: admission as configured for slots, a queue and wait that never refuse here.
    const roomy = { FLEET_MAX_IN_FLIGHT: String(config.admission.maxInFlight), FLEET_MAX_QUEUE: '10000', FLEET_ADMISSION_MAX_WAIT_MS: '600000' };
    log.info('throughput over 1 host');
    const f = await newFleet(1, roomy, temporalAddress, databaseUrl);
    await loadAndWarm(f, ['h0'], run(1) ? opts.warmup : 0);
    if (run(1)) one = await closedLoop(f, body, opts.clients, limit);
    log.info('throughput over 3 hosts');
    for (const h of ['h1', 'h2']) await f.startHost(h);
    await loadAndWarm(f, ['h1', 'h2'], run(1) ? opts.warmup : 0);
    if (run(1)) three = await closedLoop(f, body, opts.clients, limit);
    for (let r = 0; run(3) && r < opts.killRounds; r++) {
      log.info({ round: r + 1 }, 'host kill');
      const k = await killover(f, { ...body, max_tokens: opts.trickleMaxTokens }, opts.trickleMs, opts.preKillS, opts.postKillS);
      kills.push(k);
      if (r + 1 < opts.killRounds) (await f.startHost(k.killed), await f.load(k.killed, 'small')); // back to 3 hosts
    }
    await f.stop();
    fleet = undefined;
  }

  let over: Awaited<ReturnType<typeof overload>> | undefined;
  const burst = 4 * 3 * (opts.overloadInFlight + opts.overloadQueue);
  if (run(2)) {
    log.info('overload');
    const small = { FLEET_MAX_IN_FLIGHT: String(opts.overloadInFlight), FLEET_MAX_QUEUE: String(opts.overloadQueue), FLEET_ADMISSION_MAX_WAIT_MS: String(opts.overloadWaitMs) };
    const f = await newFleet(3, small, temporalAddress, databaseUrl);
    await loadAndWarm(f, ['h0', 'h1', 'h2'], Math.min(opts.warmup, 3 * opts.overloadInFlight));
    over = await overload(f, { ...body, max_tokens: opts.overloadMaxTokens }, burst, opts.overloadRounds);
    await f.stop();
    fleet = undefined;
  }

  // 4: the pool's only loaded host dies beside an idle one (heartbeats at the 2 s default).
  const failovers: Array<Awaited<ReturnType<typeof killover>>> = [];
  const FAILOVER_TRICKLE_MS = 200;
  if (run(4)) {
    log.info('failover to an idle pool host');
    const f = await newFleetWith(2, { FLEET_LLAMA_THREADS: String(config.llama.threads) }, temporalAddress, databaseUrl);
    await f.load('h0', 'small');
    for (let r = 0; r < opts.failoverRounds; r++) {
      log.info({ round: r + 1 }, 'failover');
      const k = await killover(f, { ...body, max_tokens: 16 }, FAILOVER_TRICKLE_MS, opts.preKillS, opts.postKillS + 4);
      failovers.push(k);
      await f.startHost(k.killed); // back, idle: the next round kills the host that took over
    }
    await f.stop();
    fleet = undefined;
  }

  // 5: what a probe load adds to a cold load (per size, fresh builds so nothing is cached).
  let probe: Awaited<ReturnType<typeof probeCost>> | undefined;
  if (run(5)) {
    log.info('probe cost');
    const f = await newFleetWith(0, { FLEET_LLAMA_THREADS: String(config.llama.threads) }, temporalAddress, databaseUrl);
    await f.startHost('probed');
    await f.startHost('unprobed', { FLEET_LOAD_PROBE: 'false' });
    probe = await probeCost(f, { withProbe: 'probed', withoutProbe: 'unprobed', sizes: ['small', 'medium'], builds: opts.probeBuilds });
    await f.stop();
    fleet = undefined;
  }

  const notOk = (s: Record<string, number> | undefined) => Object.entries(s ?? {}).reduce((a, [k, n]) => a + (k === '200' ? 0 : n), 0);
  const failed = notOk(one?.statuses) + notOk(three?.statuses) + (over?.other ?? 0) + failovers.reduce((a, k) => a + k.failed, 0);
  const loadAtEnd = os.loadavg()[0]!;
  const machine = `${os.availableParallelism()} cores shared with other jobs (1-min load ${loadAtStart.toFixed(2)} at start, ${loadAtEnd.toFixed(2)} at end): figures are indicative`;
  const c = (x: unknown, w = 9) => String(x ?? '-').padStart(w);
  const st = (s: Record<string, number>) => Object.entries(s).map(([k, n]) => `${k}×${n}`).join(' ');
  const pctS = (x: number) => `${(x * 100).toFixed(1)}%`;
  const killRow = (k: (typeof kills)[number], i: number) =>
    `${String(i + 1).padEnd(6)}${k.killed.padEnd(8)}${st(k.preKillServedBy).padEnd(16)}${c(k.firstRoutedAfterKillOkMs, 19)}${c(`+${k.firstRoutedAfterKillSentMs ?? '-'}`, 9)}` +
    `${c(k.firstAnyOkElsewhereMs, 18)}${c(`${k.failed}/${k.openAtKill}+${k.sentAfterKill}`, 18)}${c(k.okWithFailover, 13)}${c(k.sentAfterKillSlowOver4s, 6)}` +
    `${c(`${k.routedToVictimAfterKill} (+${k.lastRoutedToVictimSentMs ?? '-'})`, 28)}  ${st(k.victimAttemptOutcomes)}${k.failed ? `; failed: ${st(k.failedStatuses)}` : ''}`;
  const killHead = `round killed  served before   first ok elsewhere  (sent)  any ok elsewhere  failed/open+sent  failed over  >4 s  routed to dead (last sent)  attempts on dead`;
  const lines = [
    `fleet bench: small model (seed 5), max_tokens ${opts.maxTokens}, temperature 0, ${config.llama.threads} llama thread(s) per host process, ` +
      `heartbeat ${opts.heartbeatMs} ms; temporal ${config.temporal.address ?? 'dev server started by the bench'}; postgres ${config.databaseUrl ? 'DATABASE_URL' : 'private cluster'}`,
    `machine: ${machine}`,
    ...(one && three
      ? [
          '',
          `1. throughput: ${opts.clients} closed-loop clients, ${opts.requests ? `${opts.requests} requests` : `${opts.seconds} s`} per run ` +
            `(host admission: ${config.admission.maxInFlight} in flight, queue/wait unbounded for this run)`,
          `${'hosts'.padEnd(6)}${c('requests')}${c('wall s')}${c('req/s')}${c('tok/s', 10)}${c('tok/ans')}${c('p50 ms')}${c('p99 ms')}  statuses  served by`,
          ...([[1, one], [3, three]] as const).map(
            ([n, x]) =>
              `${String(n).padEnd(6)}${c(x.requests)}${c(x.wallS)}${c(x.reqPerS)}${c(x.completionTokPerS, 10)}${c(x.tokensPerAnswer)}${c(x.p50Ms)}${c(x.p99Ms)}  ${st(x.statuses)}  ${st(x.servedBy)}`,
          ),
          `   3 hosts / 1 host: ${(three.reqPerS / one.reqPerS).toFixed(2)}x req/s (all host processes share the machine's ${os.availableParallelism()} cores)`,
        ]
      : []),
    ...(over
      ? [
          '',
          `2. overload: ${burst} requests at once × ${opts.overloadRounds} round(s) against 3 hosts, max_tokens ${opts.overloadMaxTokens} ` +
            `(in flight ${opts.overloadInFlight}, queue ${opts.overloadQueue}, max wait ${opts.overloadWaitMs} ms per host)`,
          `   200 ${pctS(over.share200)}   503 ${pctS(over.share503)} (${st(over.codes503)})   429 ${pctS(over.share429)}   other ${over.other}`,
          `   time to 503: p50 ${over.p50Ms503 ?? '-'} ms, p99 ${over.p99Ms503 ?? '-'} ms, max ${over.maxMs503 ?? '-'} ms;  time to 200: p50 ${over.p50Ms200 ?? '-'} ms`,
          `   first attempt went to: ${st(over.firstAttemptHost)};  host attempts per refused request: ${st(over.attemptsPerRefused)}`,
          `   attempt outcomes (all requests): ${st(over.attemptOutcomes)}`,
        ]
      : []),
    ...(kills.length
      ? [
          '',
          `3. host kill: open-loop trickle of 1 request / ${opts.trickleMs} ms (max_tokens ${opts.trickleMaxTokens}) over 3 hosts; after ${opts.preKillS} s SIGKILL of the host that served most ` +
            `of it; trickle goes on ${opts.postKillS} s; ${opts.killRounds} round(s), the killed host restarted in between`,
          `   first ok elsewhere = first success from another host among requests sent after the kill (ms after the kill; sent at +ms)`,
          killHead,
          ...kills.map(killRow),
        ]
      : []),
    ...(failovers.length
      ? [
          '',
          `4. failover to an idle host: 2 hosts in one pool, only one loaded, heartbeats 2000 ms; open-loop trickle of 1 request / ${FAILOVER_TRICKLE_MS} ms (max_tokens 16);` +
            ` SIGKILL of the loaded host after ${opts.preKillS} s, trickle on ${opts.postKillS + 4} s; the idle host cold-loads the model`,
          killHead,
          ...failovers.map(killRow),
        ]
      : []),
    ...(probe
      ? [
          '',
          `5. probe load cost: cold loads of ${opts.probeBuilds} fresh build(s) per size on a host with probes on vs off (median ms)`,
          `${'size'.padEnd(8)}${c('probe on', 10)}${c('probe off', 10)}${c('added', 9)}${c('ratio', 7)}`,
          ...probe.map((p) => `${p.size.padEnd(8)}${c(p.withProbeP50Ms, 10)}${c(p.withoutProbeP50Ms, 10)}${c(p.addedP50Ms, 9)}${c(`${p.ratio}x`, 7)}`),
        ]
      : []),
  ];
  console.log(lines.join('\n'));
  const json = {
    bench: 'fleet', model: 'small-seed5', maxTokens: opts.maxTokens, clients: opts.clients, requests: opts.requests ?? null,
    seconds: opts.seconds ?? null, threadsPerHost: config.llama.threads, heartbeatMs: opts.heartbeatMs, cores: os.availableParallelism(),
    sharedMachine: true, loadAvg1m: { start: round(loadAtStart), end: round(loadAtEnd) },
    temporal: config.temporal.address ? 'address' : 'dev-server', db: config.databaseUrl ? 'DATABASE_URL' : 'private-cluster',
    throughput: one && three ? { hosts1: one, hosts3: three, speedup: round(three.reqPerS / one.reqPerS) } : null,
    overload: over ? { ...over, hosts: 3, maxTokens: opts.overloadMaxTokens, inFlight: opts.overloadInFlight, queue: opts.overloadQueue, maxWaitMs: opts.overloadWaitMs } : null,
    hostKill: { trickleMaxTokens: opts.trickleMaxTokens, rounds: kills },
    failoverToIdle: { trickleMs: FAILOVER_TRICKLE_MS, rounds: failovers },
    probeCost: probe ?? null,
    failed,
  };
  console.log(`BENCH_JSON ${JSON.stringify(json)}`);
  if (failed > 0) {
    console.error(`${failed} request(s) answered other than 200 in the throughput runs or other than 200/429/503 under overload`);
    exitCode = 1;
  }
} catch (err) {
  console.error(`bench failed: ${(err as Error).stack ?? (err as Error).message}`);
  console.log(`BENCH_JSON ${JSON.stringify({ bench: 'fleet', failed: 1, error: (err as Error).message })}`);
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(exitCode);
