/**
 * Prefix-cache-aware routing against least-busy routing, in one run: a multi-turn chat workload
 * (several concurrent conversations, one long shared system prompt, a history that grows every
 * turn) on the generated `small` model across 3 host processes, once with FLEET_PREFIX_ROUTING
 * off (least busy) and once on (prefix-aware), each on a fresh fleet. Per mode: time to first
 * content on turn 1 and on turns ≥ 2 (p50/p99), prompt tokens evaluated per turn (prompt minus
 * cached), prompt tokens reused, requests per second. Last line: BENCH_JSON.
 *
 *   npx tsx bench/prefix.ts [--conversations N=12] [--turns N=4] [--system-chars N=1500] [--user-chars N=150] [--max-tokens N=24] [--model small|medium] [--sequences N=4] [--think-ms N=3000] [--own-system] [--trace] [--max-load-gap N]
 *
 * The defaults hold the fleet's sequences under pressure: 12 conversations for 3 hosts × 4
 * sequences, so a host given more than its share evicts live conversations, and think time of up
 * to 3 s (a person or an agent's tool between turns), so a turn's time to first token is mostly
 * its prompt's evaluation rather than a wait for the other conversations' decoding (on 2 cores,
 * three hosts decoding at once is what a turn would otherwise measure).
 *
 * `--own-system` gives every conversation its own system prompt, so nothing is shared across
 * conversations and only routing decides whether a turn finds its history. `--trace` prints
 * every turn's host (from the request log), evaluated and cached tokens and time to first token.
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type OpenAI from 'openai';
import { startProcessFleet, type ProcessFleet } from '../tests/support/processFleet.js';
import { startBench, startBenchBackends, type BenchBackends } from './setup.js';
import { median, percentile, round } from './stats.js';

const USAGE = 'usage: npx tsx bench/prefix.ts [--conversations N=12] [--turns N=4] [--system-chars N=1500] [--user-chars N=150] [--max-tokens N=24] [--model small|medium] [--sequences N=4] [--think-ms N=3000] [--own-system] [--trace] [--max-load-gap N]';
const HOSTS = ['h0', 'h1', 'h2'];
type Msg = OpenAI.Chat.Completions.ChatCompletionMessageParam;

function options(argv: string[]) {
  const { values: v } = parseArgs({
    args: argv,
    strict: true,
    options: {
      conversations: { type: 'string', default: '12' },
      turns: { type: 'string', default: '4' },
      'system-chars': { type: 'string', default: '1500' },
      'user-chars': { type: 'string', default: '150' },
      'max-tokens': { type: 'string', default: '24' },
      model: { type: 'string', default: 'small' },
      sequences: { type: 'string', default: '4' },
      'think-ms': { type: 'string', default: '3000' },
      'own-system': { type: 'boolean', default: false },
      trace: { type: 'boolean', default: false },
      'max-load-gap': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const int = (name: keyof typeof v, min: number, max: number) => {
    const raw = String(v[name]);
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new Error(`--${name} must be an integer from ${min} to ${max}, got '${raw}'`);
    return Number(raw);
  };
  if (v.model !== 'small' && v.model !== 'medium') throw new Error(`--model must be small or medium, got '${v.model}'`);
  return {
    help: v.help,
    conversations: int('conversations', 1, 64),
    turns: int('turns', 2, 20),
    systemChars: int('system-chars', 0, 20_000),
    userChars: int('user-chars', 1, 20_000),
    maxTokens: int('max-tokens', 1, 256),
    model: v.model as 'small' | 'medium',
    sequences: int('sequences', 1, 16),
    thinkMs: int('think-ms', 0, 60_000),
    /** Each conversation its own system prompt (nothing shared across conversations). */
    ownSystem: v['own-system'],
    /** Print each turn's host, evaluated and cached tokens and TTFT (from the request log) after each mode. */
    trace: v.trace,
    /** FLEET_PREFIX_MAX_LOAD_GAP for the prefix-aware mode (default: the fleet's own default). */
    maxLoadGap: v['max-load-gap'] === undefined ? undefined : int('max-load-gap', 0, 64),
  };
}

const { opts, config, log } = startBench(options, USAGE);
const WORDS = 'fleet host model route cache prefix token queue slot pool worker request answer stream turn agent tool result history system'.split(' ');
/** Deterministic filler text of about `n` characters (seeded, so both modes see the same prompts). */
function text(n: number, seed: number): string {
  let s = '';
  for (let i = 0; s.length < n; i++) s += `${WORDS[(seed * 7 + i * 13 + ((i * i) % 5)) % WORDS.length]} `;
  return s.slice(0, n);
}

interface Turn {
  turn: number;
  ttftMs: number;
  promptTokens: number;
  cachedTokens: number;
  conversation: number;
  requestId: string | null;
  startedMs: number;
}

/** A seeded think time before each turn (0..thinkMs), the same in both modes: turns do not march in step. */
const thinkMs = (c: number, t: number) => (((c * 7919 + t * 104729) % 1000) / 1000) * opts.thinkMs;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function conversation(f: ProcessFleet, c: number): Promise<Turn[]> {
  const messages: Msg[] = [{ role: 'system', content: `You are the fleet's assistant${opts.ownSystem ? ` for conversation ${c}` : ''}. ${text(opts.systemChars, opts.ownSystem ? 1000 + c : 1)}` }];
  const out: Turn[] = [];
  for (let t = 1; t <= opts.turns; t++) {
    await sleep(thinkMs(c, t));
    messages.push({ role: 'user', content: `Conversation ${c}, turn ${t}: ${text(opts.userChars, c * 100 + t)}` });
    const t0 = performance.now();
    const { data: stream, response } = await f.openai.chat.completions
      .create({ model: 'chat', messages, max_tokens: opts.maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } })
      .withResponse();
    let first: number | undefined;
    let answer = '';
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      const d = chunk.choices[0]?.delta?.content;
      if (d) {
        first ??= performance.now() - t0;
        answer += d;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    if (!usage) throw new Error('a stream ended without usage');
    out.push({ turn: t, ttftMs: first ?? performance.now() - t0, promptTokens: usage.prompt_tokens, cachedTokens: usage.prompt_tokens_details?.cached_tokens ?? 0, conversation: c, requestId: response.headers.get('x-request-id'), startedMs: t0 });
    messages.push({ role: 'assistant', content: answer });
  }
  return out;
}

/** Each turn in start order: conversation, turn, the host that served it (request log), evaluated / cached tokens, TTFT. */
async function printTrace(f: ProcessFleet, mode: string, turns: Turn[], t0: number) {
  const ids = turns.map((t) => t.requestId).filter((id): id is string => id !== null);
  const rows = await f.stack.db.db.selectFrom('request_log').select(['id', 'host_id']).where('id', 'in', ids).execute();
  const host = new Map(rows.map((r) => [r.id, r.host_id]));
  process.stdout.write(`trace ${mode}: start ms, conversation.turn, host, evaluated, cached, TTFT ms\n`);
  for (const t of [...turns].sort((a, b) => a.startedMs - b.startedMs)) {
    process.stdout.write(`  ${String(Math.round(t.startedMs - t0)).padStart(6)}  c${t.conversation}.${t.turn}  ${host.get(t.requestId ?? '') ?? '?'}  ${String(t.promptTokens - t.cachedTokens).padStart(5)} ${String(t.cachedTokens).padStart(5)}  ${Math.round(t.ttftMs)}\n`);
  }
}

async function runMode(name: 'leastBusy' | 'prefix', backends: BenchBackends) {
  const fleet = await startProcessFleet({
    hosts: HOSTS.length,
    hostEnv: { FLEET_MAX_IN_FLIGHT: String(opts.sequences), FLEET_MAX_QUEUE: '64', FLEET_ADMISSION_MAX_WAIT_MS: '600000' },
    stackEnv: { FLEET_PREFIX_ROUTING: name === 'prefix' ? 'true' : 'false', ...(opts.maxLoadGap !== undefined ? { FLEET_PREFIX_MAX_LOAD_GAP: String(opts.maxLoadGap) } : {}) },
    temporalAddress: backends.temporalAddress,
    databaseUrl: backends.databaseUrl,
    log,
  });
  try {
    await fleet.addModel('chat', opts.model, 21);
    await fleet.reset({ models: { chat: HOSTS } });
    const load = os.loadavg()[0]!;
    const t0 = performance.now();
    const turns = (await Promise.all(Array.from({ length: opts.conversations }, (_, c) => conversation(fleet, c)))).flat();
    const seconds = (performance.now() - t0) / 1000;
    if (opts.trace) await printTrace(fleet, name, turns, t0);
    const later = turns.filter((t) => t.turn >= 2);
    const evaluated = later.map((t) => t.promptTokens - t.cachedTokens);
    return {
      loadAvg1m: round(load),
      ttftTurn1P50Ms: round(median(turns.filter((t) => t.turn === 1).map((t) => t.ttftMs))),
      ttftTurn2P50Ms: round(median(later.map((t) => t.ttftMs))),
      ttftTurn2P99Ms: round(percentile(later.map((t) => t.ttftMs), 99)),
      evaluatedPerTurn2P50: round(median(evaluated)),
      promptPerTurn2P50: round(median(later.map((t) => t.promptTokens))),
      reusedShare: round(later.reduce((n, t) => n + t.cachedTokens, 0) / Math.max(1, later.reduce((n, t) => n + t.promptTokens, 0)), 3),
      reqPerS: round(turns.length / seconds),
      turns: turns.length,
    };
  } finally {
    await fleet.stop().catch((err: Error) => log.warn({ err: err.message }, 'fleet stop failed'));
  }
}

const backends = await startBenchBackends(config, log);
try {
  const leastBusy = await runMode('leastBusy', backends);
  const prefix = await runMode('prefix', backends);
  const rows = [
    ['least busy', leastBusy],
    ['prefix-aware', prefix],
  ] as const;
  process.stdout.write(
    `prefix bench: ${opts.conversations} conversations × ${opts.turns} turns, ${opts.model} model, ${opts.ownSystem ? 'own' : 'shared'} system prompt ${opts.systemChars} chars, user turns ${opts.userChars} chars, max_tokens ${opts.maxTokens}, think time 0–${opts.thinkMs} ms, 3 hosts × ${opts.sequences} sequences${opts.maxLoadGap !== undefined ? `, FLEET_PREFIX_MAX_LOAD_GAP=${opts.maxLoadGap}` : ''}; ${os.availableParallelism()} cores\n\n`,
  );
  process.stdout.write('mode            1-min load  TTFT turn 1 p50  TTFT turn≥2 p50      p99  evaluated/turn≥2 p50  prompt/turn≥2 p50  reused share  req/s\n');
  for (const [label, r] of rows) {
    process.stdout.write(
      `${label.padEnd(16)}${String(r.loadAvg1m).padStart(10)}${String(r.ttftTurn1P50Ms).padStart(17)}${String(r.ttftTurn2P50Ms).padStart(17)}${String(r.ttftTurn2P99Ms).padStart(9)}${String(r.evaluatedPerTurn2P50).padStart(22)}${String(r.promptPerTurn2P50).padStart(19)}${String(r.reusedShare).padStart(14)}${String(r.reqPerS).padStart(7)}\n`,
    );
  }
  const ratio = round(prefix.ttftTurn2P50Ms / leastBusy.ttftTurn2P50Ms, 3);
  process.stdout.write(`\nturn≥2 TTFT p50, prefix-aware / least busy: ${ratio} (goal ≤ 0.333)\n`);
  process.stdout.write(`BENCH_JSON ${JSON.stringify({ bench: 'prefix', model: opts.model, sharedSystem: !opts.ownSystem, conversations: opts.conversations, turnsPerConversation: opts.turns, leastBusy, prefix, ratioTurn2P50: ratio })}\n`);
} catch (err) {
  log.error({ err: (err as Error).message }, 'prefix bench failed');
  process.stdout.write(`BENCH_JSON ${JSON.stringify({ bench: 'prefix', failed: 1, error: (err as Error).message })}\n`);
  process.exitCode = 1;
} finally {
  await backends.stop();
}
