/**
 * bench/overhead.ts — what the gateway costs on top of the model itself.
 *
 * Measures, for the tiny generated model (seed 1), one fixed chat prompt and one max_tokens,
 * temperature 0 everywhere:
 *   - gateway: a non-streaming chat completion through the whole stack (official `openai`
 *     client → HTTP API → `inferenceRequest` workflow → `generate` activity on the GPU-host
 *     worker → node-llama-cpp), and a streaming one (time to the first content delta the
 *     `openai` client yields, and to the end of the stream);
 *   - direct: `LlamaRuntime.generate` on a runtime instance of its own in this process (same
 *     threads, GPU setting and sequences as the host's), total and time to the first `onText`.
 * It reports medians, p95, the added overhead (median gateway − median direct) and the ratio.
 * Why: the model on this machine answers in milliseconds, so any latency the gateway adds
 * (HTTP, Temporal round trips, Postgres) is plainly visible and regressions show up here.
 * Both sides run interleaved in one process, in rotating order, after a warm-up that includes
 * the cold load, so background load on the machine hits them equally.
 * `--profile` splits gateway latency into phases from workflow history event times (a sample
 * of the measured requests, fetched after the run so it does not perturb it).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import OpenAI from 'openai';
import { pino } from 'pino';
import { sha256File } from '../src/activities/fileHash.js';
import { LlamaRuntime } from '../src/activities/llama/runtime.js';
import type { SamplingParams } from '../src/common/inference.js';
import { loadConfig } from '../src/config.js';
import { registerModel } from '../src/db/modelsRepo.js';
import { configureLogger } from '../src/logger.js';
import { makeTinyModel } from '../src/model/tinyModel.js';
import { startStack, type Stack } from '../src/stack.js';
import { round, summarize, type Summary } from './stats.js';

const USAGE = 'usage: npx tsx bench/overhead.ts [--requests N] [--max-tokens N] [--warmup N] [--profile] [--profile-sample N]';
const MODEL = 'tiny';
const MESSAGES = [{ role: 'user' as const, content: 'Tell the fleet something about the sea and the wind.' }];
const PHASES = [
  'HTTP + validation + workflow start',
  'first workflow task pickup',
  'route (local activity) + task done',
  'activity schedule-to-start',
  'generation (activity started→done)',
  'result: activity done→wf closed',
  'result: wf closed→HTTP response',
] as const;

class UsageError extends Error {}

function options(argv: string[]) {
  let v;
  try {
    v = parseArgs({
      args: argv,
      strict: true,
      options: {
        requests: { type: 'string', default: '50' },
        'max-tokens': { type: 'string', default: '16' },
        warmup: { type: 'string', default: '5' },
        profile: { type: 'boolean', default: false },
        'profile-sample': { type: 'string', default: '20' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const int = (name: string, raw: string, min: number, max: number) => {
    const n = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got '${raw}'`);
    }
    return n;
  };
  return {
    help: v.help,
    requests: int('requests', v.requests, 1, 100_000),
    maxTokens: int('max-tokens', v['max-tokens'], 1, 256), // the tiny model's context is 512
    warmup: int('warmup', v.warmup, 1, 1000), // ≥ 1: the first round is the cold load
    profile: v.profile,
    profileSample: int('profile-sample', v['profile-sample'], 1, 10_000),
  };
}

type Kind = 'gateway' | 'stream' | 'direct';
interface Sample { ms: number; firstMs?: number; text: string; tokens: number; id?: string; sentAt?: number; doneAt?: number }
const wall = () => performance.timeOrigin + performance.now();
const pad = (s: string | number, n: number) => String(s).padStart(n);

let opts: ReturnType<typeof options>;
try {
  opts = options(process.argv.slice(2));
} catch (err) {
  console.error(`error: ${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (opts.help) {
  console.log(USAGE);
  process.exit(0);
}

const config = loadConfig();
const log = pino({ level: config.logLevel, base: { pid: process.pid } }, pino.destination(2)); // stdout: figures only
configureLogger(config.logLevel);
const params: SamplingParams = { maxTokens: opts.maxTokens, temperature: 0, topP: 1, stop: [] };
const tmpDir = await mkdtemp(path.join(os.tmpdir(), 'fleet-bench-'));
let stack: Stack | undefined;
let direct: LlamaRuntime | undefined;
let exitCode = 0;
try {
  stack = await startStack({
    config, log, hostIds: ['bench'],
    devServer: { uiPort: null, port: 0, persist: false },
    api: { host: '127.0.0.1', port: 0 },
  });
  const file = path.join(tmpDir, 'tiny.gguf');
  const tiny = await makeTinyModel({ file, seed: 1 });
  const { sha256, sizeBytes } = await sha256File(file);
  await registerModel(stack.db.db, { id: MODEL, path: file, sha256, sizeBytes, contextLength: tiny.contextLength });
  const openai = new OpenAI({ baseURL: `${stack.api!.url}/v1`, apiKey: 'sk-no-key', maxRetries: 0, timeout: 120_000 });
  const rt = (direct = new LlamaRuntime({
    threads: config.llama.threads, gpu: config.llama.gpu, maxInFlight: config.llama.maxInFlight,
    maxQueue: config.llama.maxInFlight * 8, log,
  }));
  const body = { model: MODEL, messages: MESSAGES, max_tokens: opts.maxTokens, temperature: 0 };
  let promptTokens = 0;

  const run: Record<Kind, () => Promise<Sample>> = {
    async gateway() {
      const sentAt = wall();
      const t0 = performance.now();
      const r = await openai.chat.completions.create(body);
      const ms = performance.now() - t0;
      promptTokens = r.usage?.prompt_tokens ?? 0;
      const text = r.choices[0]?.message.content ?? '';
      return { ms, text, tokens: r.usage?.completion_tokens ?? 0, id: r.id, sentAt, doneAt: wall() };
    },
    async stream() {
      const t0 = performance.now();
      const s = await openai.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
      let firstMs: number | undefined;
      let text = '';
      let finish: string | null | undefined;
      let tokens = 0;
      for await (const c of s) {
        const d = c.choices[0]?.delta?.content;
        if (d) (firstMs ??= performance.now() - t0), (text += d);
        finish ??= c.choices[0]?.finish_reason;
        if (c.usage) tokens = c.usage.completion_tokens;
      }
      if (!finish) throw new Error('the stream ended without a finish_reason');
      return { ms: performance.now() - t0, firstMs, text, tokens };
    },
    async direct() {
      const t0 = performance.now();
      if (!rt.isLoaded(MODEL)) await rt.load(MODEL, file, tiny.contextLength); // cold round only
      let firstMs: number | undefined;
      const out = await rt.generate(MODEL, {
        input: { kind: 'chat', messages: MESSAGES },
        params,
        onText: () => (firstMs ??= performance.now() - t0),
      });
      return { ms: performance.now() - t0, firstMs, text: out.text, tokens: out.usage.completionTokens };
    },
  };

  const kinds: Kind[] = ['gateway', 'direct', 'stream'];
  const samples: Record<Kind, Sample[]> = { gateway: [], stream: [], direct: [] };
  const cold = {} as Record<Kind, number>;
  const texts = new Set<string>();
  const tokenCounts = new Set<number>();
  for (let i = 0; i < opts.warmup + opts.requests; i++) {
    for (let k = 0; k < kinds.length; k++) {
      const kind = kinds[(i + k) % kinds.length]!; // rotating order: no side always goes first
      let s: Sample;
      try {
        s = await run[kind]();
      } catch (err) {
        throw new Error(`${kind} request #${i + 1} failed: ${(err as Error).message}`, { cause: err });
      }
      if (i === 0) cold[kind] = s.ms;
      if (i >= opts.warmup) samples[kind].push(s);
      texts.add(s.text);
      tokenCounts.add(s.tokens);
    }
  }

  const sum = (k: Kind, f: (s: Sample) => number | undefined = (s) => s.ms) =>
    summarize(samples[k].map((s) => f(s) ?? NaN));
  const figures = {
    gateway: sum('gateway'),
    direct: sum('direct'),
    streamFirstContent: sum('stream', (s) => s.firstMs),
    directFirstText: sum('direct', (s) => s.firstMs),
    streamTotal: sum('stream'),
  };
  const overheadMs = figures.gateway.median - figures.direct.median;
  const ratio = figures.gateway.median / figures.direct.median;
  const ttftOverheadMs = figures.streamFirstContent.median - figures.directFirstText.median;
  const ttftRatio = figures.streamFirstContent.median / figures.directFirstText.median;

  const out: string[] = [];
  out.push(
    `overhead bench: tiny model (seed 1), ${promptTokens} prompt tokens, max_tokens ${opts.maxTokens}, temperature 0, ` +
      `${config.llama.threads} llama thread(s); db ${stack.db.kind}, temporal ${config.temporal.address ?? 'dev server (in-process stack)'}`,
    `${opts.requests} measured + ${opts.warmup} warm-up rounds; each round = 1 gateway JSON + 1 gateway SSE + 1 direct, rotating order`,
    '',
    `${'latency (ms)'.padEnd(44)}${pad('n', 5)}${pad('median', 10)}${pad('p95', 10)}${pad('min', 10)}${pad('max', 10)}`,
  );
  const row = (label: string, s: Summary) =>
    out.push(`${label.padEnd(44)}${pad(s.n, 5)}${[s.median, s.p95, s.min, s.max].map((x) => pad(x.toFixed(2), 10)).join('')}`);
  row('gateway chat completion (JSON, openai client)', figures.gateway);
  row('direct LlamaRuntime.generate', figures.direct);
  row('gateway SSE: first content delta (openai)', figures.streamFirstContent);
  row('direct: first onText', figures.directFirstText);
  row('gateway SSE: whole stream (openai)', figures.streamTotal);
  out.push(
    '',
    `overhead (median gateway − median direct): ${overheadMs.toFixed(2)} ms; ratio ${ratio.toFixed(2)}x`,
    `first-token overhead (SSE first delta − direct first onText): ${ttftOverheadMs.toFixed(2)} ms; ratio ${ttftRatio.toFixed(2)}x`,
    `cold round: gateway JSON ${cold.gateway.toFixed(0)} ms (incl. coldLoad workflow), direct ${cold.direct.toFixed(0)} ms (incl. load)`,
    `outputs: ${texts.size === 1 ? 'identical' : `${texts.size} DIFFERENT texts`} across all requests; completion tokens ${[...tokenCounts].join('/')}`,
  );

  let profile: Record<string, Summary> | undefined;
  if (opts.profile) {
    const measured = samples.gateway;
    const step = Math.max(1, measured.length / Math.min(opts.profileSample, measured.length));
    const picked = Array.from({ length: Math.min(opts.profileSample, measured.length) }, (_, j) => measured[Math.floor(j * step)]!);
    const rows: number[][] = [];
    for (const s of picked) {
      const phases = await phasesOf(stack, s);
      if (phases) rows.push(phases);
    }
    profile = Object.fromEntries(PHASES.map((p, j) => [p, summarize(rows.map((r) => r[j]!))]));
    out.push('', `gateway JSON latency by phase (${rows.length} of ${picked.length} sampled requests; workflow history event times)`);
    out.push(`${'phase (ms)'.padEnd(44)}${pad('median', 10)}${pad('p95', 10)}${pad('share', 8)}`);
    const total = rows.reduce((a, r) => a + r.reduce((x, y) => x + y, 0), 0);
    for (const [p, s] of Object.entries(profile)) {
      const share = rows.reduce((a, r) => a + r[PHASES.indexOf(p as (typeof PHASES)[number])]!, 0) / total;
      out.push(`${p.padEnd(44)}${pad(s.median.toFixed(2), 10)}${pad(s.p95.toFixed(2), 10)}${pad(`${(share * 100).toFixed(0)}%`, 8)}`);
    }
  }
  console.log(out.join('\n'));
  const r2 = (s: Summary) => ({ n: s.n, median: round(s.median), p95: round(s.p95), min: round(s.min), max: round(s.max) });
  const json = {
    bench: 'overhead', model: 'tiny-seed1', promptTokens, maxTokens: opts.maxTokens, requests: opts.requests,
    warmup: opts.warmup, threads: config.llama.threads, db: stack.db.kind,
    temporal: config.temporal.address ? 'address' : 'dev-server',
    gatewayMs: r2(figures.gateway), directMs: r2(figures.direct),
    streamFirstContentMs: r2(figures.streamFirstContent), directFirstTextMs: r2(figures.directFirstText),
    streamTotalMs: r2(figures.streamTotal), overheadMs: round(overheadMs), ratio: round(ratio),
    ttftOverheadMs: round(ttftOverheadMs), ttftRatio: round(ttftRatio),
    coldMs: { gateway: round(cold.gateway), direct: round(cold.direct) },
    identicalOutputs: texts.size === 1, failed: 0,
    ...(profile ? { profileMs: Object.fromEntries(Object.entries(profile).map(([k, s]) => [k, r2(s)])) } : {}),
  };
  console.log(`BENCH_JSON ${JSON.stringify(json)}`);
} catch (err) {
  console.error(`bench failed: ${(err as Error).message}`);
  console.log(`BENCH_JSON ${JSON.stringify({ bench: 'overhead', failed: 1, error: (err as Error).message })}`);
  exitCode = 1;
} finally {
  await direct?.close().catch(() => undefined);
  await stack?.stop();
  await rm(tmpDir, { recursive: true, force: true });
}
process.exit(exitCode);

/** Phase durations of one request from its workflow history, or undefined off the warm path. */
async function phasesOf(s: Stack, sample: Sample): Promise<number[] | undefined> {
  const history = await s.temporal.client.workflow.getHandle(sample.id!).fetchHistory();
  const events = history.events ?? [];
  const at = (e: (typeof events)[number] | undefined) =>
    e?.eventTime ? Number(String(e.eventTime.seconds ?? 0)) * 1000 + (e.eventTime.nanos ?? 0) / 1e6 : NaN;
  const find = (pick: (e: (typeof events)[number]) => unknown) => events.filter((e) => pick(e) != null);
  const scheduled = find((e) => e.activityTaskScheduledEventAttributes);
  if (scheduled.length !== 1 || find((e) => e.markerRecordedEventAttributes).length !== 1) return undefined;
  const marks = [
    sample.sentAt!,
    at(find((e) => e.workflowExecutionStartedEventAttributes)[0]),
    at(find((e) => e.workflowTaskStartedEventAttributes)[0]),
    at(scheduled[0]),
    at(find((e) => e.activityTaskStartedEventAttributes)[0]),
    at(find((e) => e.activityTaskCompletedEventAttributes)[0]),
    at(find((e) => e.workflowExecutionCompletedEventAttributes)[0]),
    sample.doneAt!,
  ];
  const phases = marks.slice(1).map((m, j) => m - marks[j]!);
  return phases.every(Number.isFinite) ? phases : undefined;
}
