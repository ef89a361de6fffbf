/**
 * bench/overhead.ts — what the gateway costs on top of the model itself. For the tiny generated
 * model (seed 1), one fixed chat prompt, one max_tokens, temperature 0:
 *   - gateway: a non-streaming chat completion through the whole stack (official `openai` client →
 *     HTTP API → `inferenceRequest` workflow → `generate` activity on the GPU-host worker →
 *     node-llama-cpp), and a streaming one (first content delta the client yields; whole stream);
 *   - direct: `LlamaRuntime.generate` on a runtime of its own in this process (same threads, GPU
 *     setting and sequences as the host's): total, and time to the first `onText`.
 * It prints medians, p95, the overhead (median gateway − median direct) and the ratio. Why: the
 * model answers in milliseconds here, so whatever the gateway adds (HTTP, Temporal round trips,
 * Postgres) is plainly visible, and a hot-path regression shows up as a number. Both sides run
 * interleaved in one process, in rotating order, after a warm-up that includes the cold load, so
 * background load hits them equally. `--profile` splits gateway JSON latency into phases from
 * workflow history event times plus two marks around the host runtime's `generate` (a wrapper
 * installed only with --profile); the histories are fetched after the run. The payload codec
 * (AES-256-GCM, on by default as in `fleet dev`; `--codec off` to compare) is timed in place:
 * payloads, bytes and milliseconds it spends per gateway request, against the gateway median.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { startBench } from './setup.js';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import OpenAI from 'openai';
import { sha256File } from '../src/activities/fileHash.js';
import { LlamaRuntime } from '../src/activities/llama/runtime.js';
import { registerModel } from '../src/db/modelsRepo.js';
import { makeTinyModel } from '../src/model/tinyModel.js';
import { startStack, type Stack } from '../src/stack.js';
import { newPayloadKeyEntry, parsePayloadKeys } from '../src/temporal/payloadCodec.js';
import type { FleetConfig } from '../src/config.js';
import { round, summarize, type Summary } from './stats.js';

const USAGE =
  'usage: npx tsx bench/overhead.ts [--requests N=50] [--max-tokens N=16] [--warmup N=5] [--profile] [--profile-sample N=20] [--codec on|off]';
const MODEL = 'tiny';
const MESSAGES = [{ role: 'user' as const, content: 'Tell the fleet something about the sea and the wind.' }];
const PHASES = [
  'HTTP + validation + workflow start', //      client send → WorkflowExecutionStarted
  'first workflow task pickup', //               → WorkflowTaskStarted (0 when eager start works)
  'workflow task: route local activity', //     → ActivityTaskScheduled (activation, LA, upsert)
  'activity schedule-to-start (matching)', //   → ActivityTaskStarted
  'activity dispatch to host code', //           → host runtime.generate called
  'generation (host runtime.generate)', //       → runtime.generate returned
  'activity completion report', //               → ActivityTaskCompleted
  'result: workflow task → closed', //           → WorkflowExecutionCompleted
  'result: closed → HTTP response in client', // → openai client returned
];

function options(argv: string[]) {
  const str = (d: string) => ({ type: 'string', default: d }) as const;
  const { values: v } = parseArgs({ args: argv, strict: true, options: {
    requests: str('50'), 'max-tokens': str('16'), warmup: str('5'), 'profile-sample': str('20'), codec: str('on'),
    profile: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false },
  } });
  const int = (name: string, raw: string, min: number, max: number) => {
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      throw new Error(`--${name} must be an integer from ${min} to ${max}, got '${raw}'`);
    }
    return Number(raw);
  };
  return {
    help: v.help,
    requests: int('requests', v.requests, 1, 100_000),
    maxTokens: int('max-tokens', v['max-tokens'], 1, 256), // the tiny model's context is 512
    warmup: int('warmup', v.warmup, 1, 1000), // ≥ 1: the first round is the cold load
    profile: v.profile,
    profileSample: int('profile-sample', v['profile-sample'], 1, 100_000),
    codec: v.codec === 'on' ? true : v.codec === 'off' ? false : (() => { throw new Error(`--codec must be on or off, got '${v.codec}'`); })(),
  };
}

type Kind = 'gateway' | 'stream' | 'direct';
interface Sample { ms: number; firstMs?: number; text: string; tokens: number; id?: string; marks?: number[] }
const wall = () => performance.timeOrigin + performance.now(); // comparable with history event times
const cell = (x: number | string, w = 10) => (typeof x === 'number' ? x.toFixed(2) : x).padStart(w);

const bench = startBench(options, USAGE);
const { opts, log } = bench;
// The codec as `fleet dev` runs it: a key of this run's own (FLEET_PAYLOAD_KEYS wins when set).
const config: FleetConfig = opts.codec && !bench.config.payloadKeys.keys
  ? { ...bench.config, payloadKeys: { keys: parsePayloadKeys(newPayloadKeyEntry('bench')), file: undefined } }
  : opts.codec ? bench.config : { ...bench.config, payloadKeys: { keys: undefined, file: undefined } };
/** What the payload codec did while the measured rounds ran. */
const codecUse = { calls: 0, payloads: 0, bytes: 0, ms: 0, counting: false };
const tmpDir = await mkdtemp(path.join(os.tmpdir(), 'fleet-bench-'));
let stack: Stack | undefined;
let direct: LlamaRuntime | undefined;
let cleaning: Promise<void> | undefined;
const cleanup = () =>
  (cleaning ??= (async () => {
    await direct?.close().catch(() => undefined);
    await stack?.stop();
    await rm(tmpDir, { recursive: true, force: true });
  })());
let interrupted = false;
process.once('SIGINT', () => ((interrupted = true), void cleanup().finally(() => process.exit(130))));

let exitCode = 0;
try {
  const devServer = { uiPort: null, port: 0, persist: false };
  stack = await startStack({ config, log, hostIds: ['bench'], devServer, api: { host: '127.0.0.1', port: 0 } });
  const codec = stack.temporal.codec;
  if (codec) {
    // The one codec object every client and worker of this stack uses: timed where it runs.
    for (const op of ['encode', 'decode'] as const) {
      const original = codec[op].bind(codec);
      codec[op] = async (payloads) => {
        const t0 = performance.now();
        const out = await original(payloads);
        if (codecUse.counting) {
          codecUse.ms += performance.now() - t0;
          codecUse.calls++;
          codecUse.payloads += payloads.length;
          codecUse.bytes += payloads.reduce((a, p) => a + (p.data?.length ?? 0), 0);
        }
        return out;
      };
    }
  }
  const file = path.join(tmpDir, 'tiny.gguf');
  const tiny = await makeTinyModel({ file, seed: 1 });
  const { sha256, sizeBytes } = await sha256File(file);
  await registerModel(stack.db.db, { id: MODEL, path: file, sha256, sizeBytes, contextLength: tiny.contextLength });
  const openai = new OpenAI({ baseURL: `${stack.api!.url}/v1`, apiKey: 'sk-no-key', maxRetries: 0, timeout: 120_000 });
  const { threads, gpu } = config.llama;
  const rt = (direct = new LlamaRuntime({ threads, gpu, admission: config.admission, log })); // as the host's
  await rt.describe(); // initialises llama.cpp up front, as the GPU-host worker does at start
  const body = { model: MODEL, messages: MESSAGES, max_tokens: opts.maxTokens, temperature: 0 };
  let promptTokens = 0;
  let hostMarks: number[] = []; // [runtime.generate called, returned] of the latest host generation
  if (opts.profile) {
    const hostRt = (stack.hosts.get('bench') as { runtime?: unknown } | undefined)?.runtime;
    if (!(hostRt instanceof LlamaRuntime)) throw new Error('--profile: the GPU-host worker exposes no LlamaRuntime');
    const generate = hostRt.generate.bind(hostRt);
    hostRt.generate = async (...a) => {
      hostMarks = [wall()];
      return generate(...a).finally(() => hostMarks.push(wall()));
    };
  }

  const run: Record<Kind, () => Promise<Sample>> = {
    async gateway() {
      hostMarks = [];
      const sentAt = wall();
      const r = await openai.chat.completions.create(body);
      const doneAt = wall();
      promptTokens = r.usage?.prompt_tokens ?? 0;
      const text = r.choices[0]?.message.content ?? '';
      return { ms: doneAt - sentAt, text, tokens: r.usage?.completion_tokens ?? 0, id: r.id, marks: [sentAt, ...hostMarks, doneAt] };
    },
    async stream() {
      const t0 = performance.now();
      const s = await openai.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
      let firstMs: number | undefined;
      let finish: string | null | undefined;
      let [text, tokens] = ['', 0];
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
        params: { maxTokens: opts.maxTokens, temperature: 0, topP: 1, stop: [] }, // what the API passes
        principal: null, // anonymous, as the gateway requests are
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
      const s = await run[kind]().catch((err: Error) => {
        throw new Error(`${kind} request in round ${i + 1} failed: ${err.message}`, { cause: err });
      });
      if (i === 0) cold[kind] = s.ms;
      codecUse.counting = i >= opts.warmup;
      if (i >= opts.warmup) samples[kind].push(s);
      texts.add(s.text);
      tokenCounts.add(s.tokens);
    }
  }

  const sum = (k: Kind, f: (s: Sample) => number | undefined) => summarize(samples[k].map((s) => f(s) ?? NaN));
  const fig = {
    gateway: sum('gateway', (s) => s.ms), direct: sum('direct', (s) => s.ms),
    streamFirstContent: sum('stream', (s) => s.firstMs), directFirstText: sum('direct', (s) => s.firstMs),
    streamTotal: sum('stream', (s) => s.ms),
  };
  const [overheadMs, ratio] = [fig.gateway.median - fig.direct.median, fig.gateway.median / fig.direct.median];
  const [ttftOverheadMs, ttftRatio] = [fig.streamFirstContent.median - fig.directFirstText.median, fig.streamFirstContent.median / fig.directFirstText.median];

  const out = [
    `overhead bench: tiny model (seed 1), ${promptTokens} prompt tokens, max_tokens ${opts.maxTokens}, temperature 0, ` +
      `${threads} llama thread(s); db ${stack.db.kind}; temporal ${config.temporal.address ?? 'dev server started by the stack'}`,
    `${opts.requests} measured + ${opts.warmup} warm-up rounds; a round = 1 gateway JSON + 1 gateway SSE + 1 direct, rotating order`,
    '',
    `${'latency (ms)'.padEnd(46)}${cell('n', 5)}${cell('median')}${cell('p95')}${cell('min')}${cell('max')}`,
  ];
  for (const [label, s] of [
    ['gateway chat completion, JSON (openai client)', fig.gateway], ['direct LlamaRuntime.generate', fig.direct],
    ['gateway SSE: first content delta (openai)', fig.streamFirstContent], ['direct: first onText', fig.directFirstText],
    ['gateway SSE: whole stream (openai)', fig.streamTotal],
  ] as const) out.push(`${label.padEnd(46)}${cell(String(s.n), 5)}${[s.median, s.p95, s.min, s.max].map((x) => cell(x)).join('')}`);
  out.push(
    '',
    `overhead (median gateway − median direct): ${overheadMs.toFixed(2)} ms; ratio ${ratio.toFixed(2)}x`,
    `first-token overhead (SSE first content delta − direct first onText): ${ttftOverheadMs.toFixed(2)} ms; ratio ${ttftRatio.toFixed(2)}x`,
    `cold round: gateway JSON ${cold.gateway.toFixed(0)} ms (incl. the coldLoad workflow), direct ${cold.direct.toFixed(0)} ms (incl. model load)`,
    `outputs: ${texts.size === 1 ? 'identical' : `${texts.size} DIFFERENT texts`} across all requests; completion tokens ${[...tokenCounts].join('/')}`,
  );
  // Gateway JSON and SSE requests go through the codec; the direct ones do not.
  const viaCodec = 2 * opts.requests;
  const codecFig = codec
    ? { payloadsPerRequest: round(codecUse.payloads / viaCodec), kbPerRequest: round(codecUse.bytes / viaCodec / 1024), msPerRequest: round(codecUse.ms / viaCodec) }
    : undefined;
  out.push(
    codecFig
      ? `payload codec (AES-256-GCM, every payload of client and workers): ${codecFig.payloadsPerRequest} payloads, ${codecFig.kbPerRequest} KB and ` +
          `${codecFig.msPerRequest} ms per gateway request = ${((codecFig.msPerRequest / fig.gateway.median) * 100).toFixed(1)}% of the JSON median`
      : 'payload codec: off (--codec off)',
  );

  let profile: Summary[] | undefined;
  if (opts.profile) {
    const measured = samples.gateway;
    const n = Math.min(opts.profileSample, measured.length);
    const rows: number[][] = [];
    for (let j = 0; j < n; j++) {
      const phases = await phasesOf(stack, measured[Math.floor((j * measured.length) / n)]!);
      if (phases) rows.push(phases);
    }
    if (rows.length === 0) throw new Error('--profile: no sampled request had the expected history shape');
    profile = PHASES.map((_, j) => summarize(rows.map((r) => r[j]!)));
    const total = rows.flat().reduce((a, b) => a + b, 0);
    out.push('', `gateway JSON latency by phase (${rows.length} of ${n} sampled requests; history event times)`,
      `${'phase (ms)'.padEnd(46)}${cell('median')}${cell('p95')}${cell('share', 8)}`);
    PHASES.forEach((p, j) => {
      const share = rows.reduce((a, r) => a + r[j]!, 0) / total;
      out.push(`${p.padEnd(46)}${cell(profile![j]!.median)}${cell(profile![j]!.p95)}${cell(`${(share * 100).toFixed(0)}%`, 8)}`);
    });
  }
  console.log(out.join('\n'));
  const r2 = (s: Summary) => ({ n: s.n, median: round(s.median), p95: round(s.p95), min: round(s.min), max: round(s.max) });
  const json = {
    bench: 'overhead', model: 'tiny-seed1', promptTokens, maxTokens: opts.maxTokens, requests: opts.requests,
    warmup: opts.warmup, threads, db: stack.db.kind, temporal: config.temporal.address ? 'address' : 'dev-server',
    gatewayMs: r2(fig.gateway), directMs: r2(fig.direct),
    streamFirstContentMs: r2(fig.streamFirstContent), directFirstTextMs: r2(fig.directFirstText),
    streamTotalMs: r2(fig.streamTotal), overheadMs: round(overheadMs), ratio: round(ratio),
    ttftOverheadMs: round(ttftOverheadMs), ttftRatio: round(ttftRatio),
    coldMs: { gateway: round(cold.gateway), direct: round(cold.direct) },
    identicalOutputs: texts.size === 1, failed: 0, codec: codecFig ?? null,
    ...(profile ? { profileMs: Object.fromEntries(PHASES.map((p, j) => [p, r2(profile![j]!)])) } : {}),
  };
  console.log(`BENCH_JSON ${JSON.stringify(json)}`);
} catch (err) {
  if (interrupted) (console.error('interrupted; stopping the stack'), await cleanup());
  console.error(`bench failed: ${(err as Error).message}`);
  console.log(`BENCH_JSON ${JSON.stringify({ bench: 'overhead', failed: 1, error: (err as Error).message })}`);
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(exitCode);

/** Phase durations of one warm request (see PHASES), or undefined for any other history shape. */
async function phasesOf(s: Stack, sample: Sample): Promise<number[] | undefined> {
  const events = (await s.temporal.client.workflow.getHandle(sample.id!).fetchHistory()).events ?? [];
  type Ev = (typeof events)[number];
  const all = (attr: (e: Ev) => unknown) => events.filter((e) => attr(e) != null);
  const at = (attr: (e: Ev) => unknown) => {
    const t = all(attr)[0]?.eventTime;
    return t ? Number(String(t.seconds ?? 0)) * 1000 + (t.nanos ?? 0) / 1e6 : NaN;
  };
  if (all((e) => e.activityTaskScheduledEventAttributes).length !== 1 || sample.marks?.length !== 4) return undefined;
  const [sentAt, genStart, genEnd, doneAt] = sample.marks;
  const marks = [
    sentAt!, at((e) => e.workflowExecutionStartedEventAttributes), at((e) => e.workflowTaskStartedEventAttributes),
    at((e) => e.activityTaskScheduledEventAttributes), at((e) => e.activityTaskStartedEventAttributes), genStart!, genEnd!,
    at((e) => e.activityTaskCompletedEventAttributes), at((e) => e.workflowExecutionCompletedEventAttributes), doneAt!,
  ];
  const phases = marks.slice(1).map((m, j) => m - marks[j]!);
  return phases.every(Number.isFinite) ? phases : undefined;
}
