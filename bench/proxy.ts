/**
 * bench/proxy.ts — what each gateway adds in front of the same model, measured side by side in
 * one run. Targets (each its own process, as users run them):
 *   - `upstream`: the model server alone (bench/modelServer.ts: node-llama-cpp on the tiny
 *     generated model, OpenAI-compatible HTTP) — the baseline;
 *   - `fleet`: this gateway (`fleet dev`: PGlite, its Temporal dev server) serving the same file
 *     from its own GPU-host worker;
 *   - `fleet-provider`: the same `fleet dev` in front of the model server as a remote provider;
 *   - with `--peers`: `litellm` (LiteLLM proxy, 1 worker) and `portkey` (the Portkey gateway) in
 *     front of the model server, installed once into `.tools/peers/` (pip / npm).
 * Each is also measured in front of an upstream that answers at once (`--mode instant`): pure
 * proxy cost. Figures: added latency (target − upstream, medians and p99) for JSON answers at
 * c=1, added time to the first streamed content delta at c=1 (requests interleaved across the
 * targets, so background load hits them alike), requests per second at c=`--clients` (closed
 * loop, `--seconds` per target), and CPU-ms per request of every process during that phase.
 * The design floor (bench/floor.ts) is measured on the fleet's own Temporal server in the same
 * run: a bare workflow, and one running a single activity on another worker's queue — what any
 * workflow-per-request design pays before the gateway adds anything. The last line is
 * `BENCH_JSON {"targets": {...}}`.
 *
 *   npx tsx bench/proxy.ts [--peers] [--requests 100] [--warmup 10] [--max-tokens 16] [--clients 32] [--seconds 10]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { stringify } from 'yaml';
import { makeTinyModel } from '../src/model/tinyModel.js';
import { findTemporalBinary } from '../src/temporal/binary.js';
import { freePort } from '../src/temporal/devServer.js';
import { startDevFleet, type DevFleet } from '../tests/support/devFleet.js';
import { cpuMsOfTree, type CpuSample } from './procCpu.js';
import { installPeers, startLiteLlm, startPortkey, type Peer } from './peers.js';
import { startBench } from './setup.js';
import { percentile, round } from './stats.js';
import { p50p99, startFloor, type Floor } from './floor.js';

const USAGE = 'usage: npx tsx bench/proxy.ts [--peers] [--requests N=100] [--warmup N=10] [--max-tokens N=16] [--clients N=32] [--seconds S=10]';
const root = path.resolve(import.meta.dirname, '..');

function options(argv: string[]) {
  const { values: v } = parseArgs({
    args: argv,
    strict: true,
    options: {
      peers: { type: 'boolean', default: false },
      requests: { type: 'string', default: '100' },
      warmup: { type: 'string', default: '10' },
      'max-tokens': { type: 'string', default: '16' },
      clients: { type: 'string', default: '32' },
      seconds: { type: 'string', default: '10' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const int = (name: string, raw: string, min: number, max: number) => {
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new Error(`--${name} must be an integer from ${min} to ${max}, got '${raw}'`);
    return Number(raw);
  };
  return {
    help: v.help,
    peers: v.peers,
    requests: int('requests', v.requests, 1, 100_000),
    warmup: int('warmup', v.warmup, 0, 1000),
    maxTokens: int('max-tokens', v['max-tokens'], 1, 256),
    clients: int('clients', v.clients, 1, 1024),
    seconds: int('seconds', v.seconds, 1, 3600),
  };
}

interface Target {
  name: string;
  /** The OpenAI base URL (…/v1). */
  base: string;
  model: string;
  headers?: Record<string, string>;
  /** Process trees whose CPU counts for this target (name → root pid). */
  processes: Record<string, number>;
}

const { opts, log, config: config_ } = startBench(options, USAGE);
const agent = new Agent({ connections: 256, keepAliveTimeout: 30_000 });
const children: ChildProcess[] = [];
let fleet: DevFleet | undefined;
let floor: Floor | undefined;
const peers: Peer[] = [];
let tmp: string | undefined;
const cleanup = async () => {
  await floor?.stop().catch(() => undefined);
  await fleet?.stop().catch(() => undefined);
  for (const p of peers) await p.stop().catch(() => undefined);
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await agent.close().catch(() => undefined);
  if (tmp) await rm(tmp, { recursive: true, force: true });
};
process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));

/** Starts bench/modelServer.ts and waits for its URL. */
async function modelServer(mode: 'model' | 'instant', file: string): Promise<{ url: string; pid: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'bench/modelServer.ts'), '--mode', mode, '--model', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      const m = /listening (\S+)/.exec(d.toString());
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`model server (${mode}) exited ${code}: ${out.slice(-500)}`)));
  });
  return { url, pid: child.pid! };
}

const body = (t: Target, stream: boolean) =>
  JSON.stringify({ model: t.model, messages: [{ role: 'user', content: 'Tell the fleet something about the sea and the wind.' }], max_tokens: opts.maxTokens, temperature: 0, stream });

/** One JSON answer: ms to the whole body. */
async function jsonOnce(t: Target): Promise<number> {
  const t0 = performance.now();
  const res = await request(`${t.base}/chat/completions`, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json', authorization: 'Bearer sk-bench', ...t.headers }, body: body(t, false) });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${t.name}: HTTP ${res.statusCode}: ${text.slice(0, 300)}`);
  return performance.now() - t0;
}

/** One stream: ms to the first non-empty content delta (the rest is read and dropped). */
async function streamOnce(t: Target): Promise<number> {
  const t0 = performance.now();
  const res = await request(`${t.base}/chat/completions`, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json', authorization: 'Bearer sk-bench', ...t.headers }, body: body(t, true) });
  if (res.statusCode !== 200) throw new Error(`${t.name}: stream HTTP ${res.statusCode}: ${(await res.body.text()).slice(0, 300)}`);
  let first: number | undefined;
  let buf = '';
  for await (const part of res.body) {
    if (first !== undefined) continue;
    buf += (part as Buffer).toString();
    if (/"content":"[^"]/.test(buf)) first = performance.now() - t0;
  }
  if (first === undefined) throw new Error(`${t.name}: the stream carried no content`);
  return first;
}

/** Closed loop of `clients` for `seconds`: requests per second and CPU-ms per request per process. */
async function throughput(t: Target): Promise<{ reqPerS: number; cpuMsPerRequest: Record<string, number>; errors: number }> {
  const before: Record<string, CpuSample> = {};
  for (const [name, pid] of Object.entries(t.processes)) before[name] = await cpuMsOfTree(pid);
  let done = 0;
  let errors = 0;
  const stopAt = performance.now() + opts.seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: opts.clients }, async () => {
      while (performance.now() < stopAt) {
        await jsonOnce(t).then(() => done++, () => errors++);
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const cpu: Record<string, number> = {};
  for (const [name, pid] of Object.entries(t.processes)) {
    const after = await cpuMsOfTree(pid);
    for (const [proc, ms] of Object.entries(after)) cpu[`${name}:${proc}`] = round((ms - (before[name]?.[proc] ?? 0)) / Math.max(1, done));
  }
  return { reqPerS: round(done / wall), cpuMsPerRequest: cpu, errors };
}

let exitCode = 0;
try {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'fleet-proxy-bench-'));
  const modelFile = path.join(tmp, 'tiny-llama.gguf');
  await makeTinyModel({ file: modelFile, seed: 1, size: 'tiny' }); // the file `fleet dev` makes
  log.info('starting the model servers');
  const model = await modelServer('model', modelFile);
  const instant = await modelServer('instant', modelFile);
  const fleetDir = path.join(tmp, 'fleet');
  await mkdir(fleetDir, { recursive: true });
  const config = path.join(fleetDir, 'providers.yaml');
  await writeFile(
    config,
    stringify({
      providers: [
        { id: 'model-server', base_url: `${model.url}/v1`, models: 'up-tiny=tiny' },
        { id: 'instant-server', base_url: `${instant.url}/v1`, models: 'up-instant=tiny' },
      ],
    }),
  );
  log.info('starting fleet dev');
  const temporalCli = await findTemporalBinary({ cliPath: config_.temporal.cliPath, toolsDir: config_.toolsDir, log });
  fleet = await startDevFleet(fleetDir, { ui: false, temporalCli, env: { FLEET_CONFIG: config, FLEET_LOG_LEVEL: 'error' } });
  const fleetPid = fleet.child.pid!;
  const targets: Target[] = [
    { name: 'upstream', base: `${model.url}/v1`, model: 'tiny', processes: { upstream: model.pid } },
    { name: 'fleet', base: `${fleet.apiUrl}/v1`, model: 'tiny', processes: { fleet: fleetPid } },
    { name: 'fleet-provider', base: `${fleet.apiUrl}/v1`, model: 'up-tiny', processes: { fleet: fleetPid, upstream: model.pid } },
    { name: 'upstream-instant', base: `${instant.url}/v1`, model: 'tiny', processes: { upstream: instant.pid } },
    { name: 'fleet-provider-instant', base: `${fleet.apiUrl}/v1`, model: 'up-instant', processes: { fleet: fleetPid, upstream: instant.pid } },
  ];
  if (opts.peers) {
    log.info('installing and starting the peers (LiteLLM proxy, Portkey gateway)');
    const tools = await installPeers(path.join(root, '.tools', 'peers'), log);
    const litellm = await startLiteLlm(tools, { port: await freePort(), dir: tmp, upstreams: { tiny: `${model.url}/v1`, instant: `${instant.url}/v1` } });
    const portkey = await startPortkey(tools, { port: await freePort() });
    peers.push(litellm, portkey);
    const viaPortkey = (u: string) => ({ 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `${u}/v1` });
    targets.push(
      { name: 'litellm', base: `${litellm.url}/v1`, model: 'tiny', processes: { litellm: litellm.pid, upstream: model.pid } },
      { name: 'portkey', base: `${portkey.url}/v1`, model: 'tiny', headers: viaPortkey(model.url), processes: { portkey: portkey.pid, upstream: model.pid } },
      { name: 'litellm-instant', base: `${litellm.url}/v1`, model: 'instant', processes: { litellm: litellm.pid, upstream: instant.pid } },
      { name: 'portkey-instant', base: `${portkey.url}/v1`, model: 'tiny', headers: viaPortkey(instant.url), processes: { portkey: portkey.pid, upstream: instant.pid } },
    );
  }
  // The first answer through a provider refreshes its catalog entry; warm every path.
  await waitForModels(fleet.apiUrl, ['tiny', 'up-tiny', 'up-instant']);
  floor = await startFloor(fleet.temporalAddress);
  const floorSamples = { bare: [] as number[], oneActivity: [] as number[] };
  const load0 = os.loadavg()[0]!;
  const json: Record<string, number[]> = Object.fromEntries(targets.map((t) => [t.name, []]));
  const first: Record<string, number[]> = Object.fromEntries(targets.map((t) => [t.name, []]));
  log.info({ targets: targets.map((t) => t.name) }, 'c=1 latency, interleaved');
  for (let i = 0; i < opts.warmup + opts.requests; i++) {
    for (let k = 0; k < targets.length; k++) {
      const t = targets[(i + k) % targets.length]!; // rotating order: no target always goes first
      const [j, s] = [await jsonOnce(t), await streamOnce(t)];
      if (i >= opts.warmup) (json[t.name]!.push(j), first[t.name]!.push(s));
    }
    const f = await floor.sample();
    if (i >= opts.warmup) (floorSamples.bare.push(f.bare), floorSamples.oneActivity.push(f.oneActivity));
  }
  const load1 = os.loadavg()[0]!;
  log.info(`c=${opts.clients} throughput, ${opts.seconds} s per target`);
  const tp: Record<string, Awaited<ReturnType<typeof throughput>>> = {};
  for (const t of targets) tp[t.name] = await throughput(t);
  const floorTp = await floor.throughput({ clients: opts.clients, seconds: opts.seconds, serverPid: fleetPid });
  const load2 = os.loadavg()[0]!;
  const floorRows = [
    { name: 'floor-activity', ...p50p99(floorSamples.oneActivity), ...floorTp['floor-activity'] },
    { name: 'floor-bare', ...p50p99(floorSamples.bare), ...floorTp['floor-bare'] },
  ];

  const baseOf = (name: string) => (name.endsWith('-instant') ? 'upstream-instant' : 'upstream');
  const p = (xs: number[], q: number) => percentile(xs, q);
  const rows = targets.map((t) => {
    const b = baseOf(t.name);
    const isBase = t.name === b;
    return {
      name: t.name,
      jsonP50Ms: round(p(json[t.name]!, 50)),
      jsonP99Ms: round(p(json[t.name]!, 99)),
      jsonAddedP50Ms: isBase ? 0 : round(p(json[t.name]!, 50) - p(json[b]!, 50)),
      jsonAddedP99Ms: isBase ? 0 : round(p(json[t.name]!, 99) - p(json[b]!, 99)),
      firstContentP50Ms: round(p(first[t.name]!, 50)),
      firstContentAddedP50Ms: isBase ? 0 : round(p(first[t.name]!, 50) - p(first[b]!, 50)),
      reqPerSC32: tp[t.name]!.reqPerS,
      errorsC32: tp[t.name]!.errors,
      cpuMsPerRequest: tp[t.name]!.cpuMsPerRequest,
    };
  });
  const c = (x: unknown, w = 10) => String(x).padStart(w);
  const lines = [
    `proxy bench: tiny model (seed 1), max_tokens ${opts.maxTokens}, temperature 0; c=1: ${opts.requests} JSON + ${opts.requests} streamed requests per target after ${opts.warmup} warm-up rounds, interleaved; c=${opts.clients}: ${opts.seconds} s closed loop per target`,
    `machine: ${os.availableParallelism()} cores, 1-min load ${load0.toFixed(2)} before, ${load1.toFixed(2)} after the c=1 phase, ${load2.toFixed(2)} after the c=${opts.clients} phase`,
    '',
    `${'target'.padEnd(24)}${c('JSON p50')}${c('p99')}${c('added p50')}${c('added p99')}${c('1st p50')}${c('1st added')}${c(`req/s c=${opts.clients}`, 14)}  CPU-ms per request (c=${opts.clients})`,
    ...rows.map(
      (r) =>
        `${r.name.padEnd(24)}${c(r.jsonP50Ms)}${c(r.jsonP99Ms)}${c(r.jsonAddedP50Ms)}${c(r.jsonAddedP99Ms)}${c(r.firstContentP50Ms)}${c(r.firstContentAddedP50Ms)}${c(r.reqPerSC32, 14)}  ` +
        Object.entries(r.cpuMsPerRequest).map(([k, v]) => `${k} ${v}`).join(', ') +
        (r.errorsC32 ? `  (${r.errorsC32} errors)` : ''),
    ),
    '',
    `design floor on the fleet's Temporal server (eager start, c=1 latency / c=${opts.clients} workflows per second; CPU-ms per workflow of the bench process (client + both workers) and of the temporal server):`,
    ...floorRows.map((r) => `${r.name.padEnd(24)}${c(r.p50Ms)}${c(r.p99Ms)}${c('')}${c('')}${c('')}${c('')}${c(r.perS, 14)}  ` + Object.entries(r.cpuMsPerWorkflow).map(([k, v]) => `${k} ${v}`).join(', ')),
    `fleet c=${opts.clients} / floor-activity: ${(tp.fleet!.reqPerS / Math.max(0.01, floorTp['floor-activity'].perS)).toFixed(2)}×`,
    '',
    'added = target − the upstream it fronts (the model server, or the instant server for *-instant), same run',
  ];
  console.log(lines.join('\n'));
  const pick = (r: (typeof rows)[number]) => ({ jsonAddedP50Ms: r.jsonAddedP50Ms, jsonAddedP99Ms: r.jsonAddedP99Ms, firstContentAddedP50Ms: r.firstContentAddedP50Ms, reqPerSC32: r.reqPerSC32 });
  console.log(
    `BENCH_JSON ${JSON.stringify({
      bench: 'proxy',
      maxTokens: opts.maxTokens,
      clients: opts.clients,
      loadAvg1m: { start: round(load0), afterLatency: round(load1), end: round(load2) },
      targets: Object.fromEntries(rows.filter((r) => !r.name.endsWith('-instant')).map((r) => [r.name, pick(r)])),
      instant: Object.fromEntries(rows.filter((r) => r.name.endsWith('-instant')).map((r) => [r.name.replace(/-instant$/, ''), pick(r)])),
      detail: rows,
      floor: floorRows,
    })}`,
  );
} catch (err) {
  console.error(`bench failed: ${(err as Error).stack ?? (err as Error).message}`);
  console.log(`BENCH_JSON ${JSON.stringify({ bench: 'proxy', failed: 1, error: (err as Error).message })}`);
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(exitCode);

/** Waits until the gateway lists the models (its provider refresh ran) and each answers once. */
async function waitForModels(api: string, ids: string[]): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const res = await request(`${api}/v1/models`, { dispatcher: agent }).catch(() => undefined);
    const listed = res ? ((await res.body.json()) as { data: Array<{ id: string }> }).data.map((m) => m.id) : [];
    if (ids.every((id) => listed.includes(id))) return;
    if (Date.now() > deadline) throw new Error(`the gateway never listed ${ids.join(', ')} (has ${listed.join(', ')})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
