/**
 * bench/budgets.ts — what API keys and budgets cost.
 *   1. Through the real stack (as bench/overhead.ts: official `openai` client → API → workflow →
 *      GPU-host worker → node-llama-cpp, tiny model seed 1, temperature 0): the same chat
 *      completion with an API key (auth + reserve before dispatch, settle after the response)
 *      and anonymously, interleaved in rotating order in one run. The added median is what a
 *      keyed client waits for; the settle runs after the response and shows up in part 2.
 *   2. Reservations per second sustained on ONE key: `reserveTokens` + `settleReservation`
 *      called directly, `--concurrency` loops for `--seconds`, on an in-memory PGlite and, when
 *      DATABASE_URL is set, on that PostgreSQL — once on a key with a hard balance only, once
 *      with a rolling window as well (whose check sums the window's ledger entries).
 * Why: every keyed request pays for these on the hot path, and all requests of one key are
 * serialized by its row lock, so one key's ceiling is a number worth knowing.
 * Figures on stdout (last line BENCH_JSON), logs on stderr.
 */
import { randomBytes } from 'node:crypto';
import { startBench } from './setup.js';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { Kysely } from 'kysely';
import OpenAI from 'openai';
import { sha256File } from '../src/activities/fileHash.js';
import { generateApiKey } from '../src/api/apiKey.js';
import { releaseReservationIfHeld, reserveTokens, settleReservation } from '../src/db/budgetRepo.js';
import { openDatabase, type DbHandle } from '../src/db/connect.js';
import { createKey } from '../src/db/keysRepo.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { registerModel } from '../src/db/modelsRepo.js';
import type { Database } from '../src/db/schema.js';
import { makeTinyModel } from '../src/model/tinyModel.js';
import { startStack, type Stack } from '../src/stack.js';
import { round, summarize, type Summary } from './stats.js';

const USAGE =
  'usage: npx tsx bench/budgets.ts [--requests N=40] [--warmup N=5] [--max-tokens N=16] [--seconds S=10] [--concurrency N=8] [--skip-stack]';
const MODEL = 'tiny';
const MESSAGES = [{ role: 'user' as const, content: 'Tell the fleet something about the sea and the wind.' }];
/** Generous caps: the checks run in full, nothing is ever refused. */
const BIG = 1e15;

function options(argv: string[]) {
  const str = (d: string) => ({ type: 'string', default: d }) as const;
  const { values: v } = parseArgs({ args: argv, strict: true, options: {
    requests: str('40'), warmup: str('5'), 'max-tokens': str('16'), seconds: str('10'), concurrency: str('8'),
    'skip-stack': { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false },
  } });
  const int = (name: string, raw: string, min: number, max: number) => {
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new Error(`--${name} must be an integer from ${min} to ${max}, got '${raw}'`);
    return Number(raw);
  };
  return {
    help: v.help,
    requests: int('requests', v.requests, 1, 100_000),
    warmup: int('warmup', v.warmup, 1, 1000),
    maxTokens: int('max-tokens', v['max-tokens'], 1, 256),
    seconds: int('seconds', v.seconds, 1, 3600),
    concurrency: int('concurrency', v.concurrency, 1, 256),
    skipStack: v['skip-stack'],
  };
}

const { opts, config, log } = startBench(options, USAGE);

const cell = (x: number | string, w = 10) => (typeof x === 'number' ? x.toFixed(2) : x).padStart(w);
const r2 = (s: Summary) => ({ n: s.n, median: round(s.median), p95: round(s.p95), min: round(s.min), max: round(s.max) });

/** Part 1: keyed versus anonymous chat completions through the whole stack, interleaved. */
async function throughStack(tmpDir: string, onStack: (s: Stack) => void) {
  const devServer = { uiPort: null, port: 0, persist: false };
  const stack = await startStack({ config, log, hostIds: ['bench'], devServer, api: { host: '127.0.0.1', port: 0 } });
  onStack(stack);
  const file = path.join(tmpDir, 'tiny.gguf');
  const tiny = await makeTinyModel({ file, seed: 1 });
  const { sha256, sizeBytes } = await sha256File(file);
  await registerModel(stack.db.db, { id: MODEL, path: file, sha256, sizeBytes, contextLength: tiny.contextLength });
  const key = generateApiKey();
  await createKey(stack.db.db, {
    id: key.keyId, accountId: 'bench', name: 'bench', secretHash: key.secretHash, balanceLimit: BIG, window: { limit: BIG, seconds: 3600 },
  });
  const baseURL = `${stack.api!.url}/v1`;
  const clients = {
    keyed: new OpenAI({ baseURL, apiKey: key.plaintext, maxRetries: 0, timeout: 120_000 }),
    anonymous: new OpenAI({ baseURL, apiKey: 'sk-no-key', maxRetries: 0, timeout: 120_000 }),
  };
  const body = { model: MODEL, messages: MESSAGES, max_tokens: opts.maxTokens, temperature: 0 };
  const kinds = ['keyed', 'anonymous'] as const;
  const samples: Record<(typeof kinds)[number], number[]> = { keyed: [], anonymous: [] };
  const texts = new Set<string>();
  for (let i = 0; i < opts.warmup + opts.requests; i++) {
    for (let k = 0; k < kinds.length; k++) {
      const kind = kinds[(i + k) % kinds.length]!; // rotating order: neither side always goes first
      const t0 = performance.now();
      const r = await clients[kind].chat.completions.create(body).catch((err: Error) => {
        throw new Error(`${kind} request in round ${i + 1} failed: ${err.message}`, { cause: err });
      });
      if (i >= opts.warmup) samples[kind].push(performance.now() - t0);
      texts.add(r.choices[0]?.message.content ?? '');
    }
  }
  // Every keyed request settled (after its response): nothing held, spend = the ledger.
  const held = await stack.db.db.selectFrom('reservations').select('request_id').where('state', '=', 'held').execute();
  return {
    db: stack.db.kind,
    keyed: summarize(samples.keyed),
    anonymous: summarize(samples.anonymous),
    identical: texts.size === 1,
    heldAfter: held.length,
  };
}

interface Throughput {
  db: string;
  window: boolean;
  ops: number;
  perSecond: number;
  reserveMs: Summary;
  settleMs: Summary;
  refused: number;
}

/** Part 2: reserve + settle on one key, `concurrency` loops for `seconds`. */
async function sustained(db: Kysely<Database>, kind: string, withWindow: boolean): Promise<Throughput> {
  const keyId = randomBytes(8).toString('hex');
  await createKey(db, {
    id: keyId, accountId: 'bench', name: 'sustained', secretHash: 'x'.repeat(64), balanceLimit: BIG,
    window: withWindow ? { limit: BIG, seconds: 3600 } : null,
  });
  const reserveMs: number[] = [];
  const settleMs: number[] = [];
  let refused = 0;
  let seq = 0;
  const deadline = performance.now() + opts.seconds * 1000;
  const started = performance.now();
  const loop = async () => {
    while (performance.now() < deadline) {
      const requestId = `bench-${keyId}-${seq++}`;
      const t0 = performance.now();
      const r = await reserveTokens(db, { requestId, keyId, amount: 120, ttlSeconds: 900 });
      const t1 = performance.now();
      if (r.kind !== 'reserved') {
        refused++;
        continue;
      }
      await settleReservation(db, requestId, { promptTokens: 30, completionTokens: 16 });
      reserveMs.push(t1 - t0);
      settleMs.push(performance.now() - t1);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, loop));
  const elapsed = (performance.now() - started) / 1000;
  // Nothing may be left held: every reservation was settled.
  const held = await db.selectFrom('reservations').select('request_id').where('key_id', '=', keyId).where('state', '=', 'held').execute();
  for (const h of held) await releaseReservationIfHeld(db, h.request_id);
  if (held.length > 0) throw new Error(`${held.length} reservations left held`);
  return { db: kind, window: withWindow, ops: reserveMs.length, perSecond: reserveMs.length / elapsed, reserveMs: summarize(reserveMs), settleMs: summarize(settleMs), refused };
}

const tmpDir = await mkdtemp(path.join(os.tmpdir(), 'fleet-bench-budgets-'));
let stack: Stack | undefined;
const handles: DbHandle[] = [];
let cleaning: Promise<void> | undefined;
const cleanup = () =>
  (cleaning ??= (async () => {
    await stack?.stop();
    for (const h of handles) await h.close();
    await rm(tmpDir, { recursive: true, force: true });
  })());
process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));

let exitCode = 0;
try {
  const out: string[] = [];
  const json: Record<string, unknown> = { bench: 'budgets', maxTokens: opts.maxTokens, requests: opts.requests, warmup: opts.warmup, seconds: opts.seconds, concurrency: opts.concurrency };

  if (!opts.skipStack) {
    const s = await throughStack(tmpDir, (st) => (stack = st));
    await stack?.stop();
    stack = undefined;
    const added = s.keyed.median - s.anonymous.median;
    out.push(
      `budgets bench, part 1: chat completion through the stack, keyed vs anonymous (tiny model, max_tokens ${opts.maxTokens}, temperature 0); ` +
        `db ${s.db}; temporal ${config.temporal.address ?? 'dev server started by the stack'}`,
      `${opts.requests} measured + ${opts.warmup} warm-up rounds; a round = 1 keyed + 1 anonymous, rotating order`,
      '',
      `${'latency (ms)'.padEnd(40)}${cell('n', 5)}${cell('median')}${cell('p95')}${cell('min')}${cell('max')}`,
      ...([['keyed (auth + reserve; settle after)', s.keyed], ['anonymous', s.anonymous]] as const).map(
        ([label, x]) => `${label.padEnd(40)}${cell(String(x.n), 5)}${[x.median, x.p95, x.min, x.max].map((v) => cell(v)).join('')}`,
      ),
      '',
      `added median latency of a keyed request: ${added.toFixed(2)} ms`,
      `outputs: ${s.identical ? 'identical' : 'DIFFERENT'}; reservations left held: ${s.heldAfter}`,
      '',
    );
    Object.assign(json, { stack: { db: s.db, keyedMs: r2(s.keyed), anonymousMs: r2(s.anonymous), addedMedianMs: round(added), identicalOutputs: s.identical, heldAfter: s.heldAfter } });
  }

  const dbs: Array<{ kind: string; open: () => Promise<DbHandle> }> = [{ kind: 'pglite', open: () => openDatabase({ log }) }];
  if (config.databaseUrl) dbs.push({ kind: 'postgres', open: () => openDatabase({ databaseUrl: config.databaseUrl, log }) });
  const rows: Throughput[] = [];
  for (const d of dbs) {
    const h = await d.open();
    handles.push(h);
    await migrateToLatest(h.db, log);
    for (const withWindow of [false, true]) rows.push(await sustained(h.db, d.kind, withWindow));
  }
  out.push(
    `part 2: reserve + settle on ONE key, direct calls, concurrency ${opts.concurrency}, ${opts.seconds} s each`,
    '',
    `${'db / key budget'.padEnd(28)}${cell('ops', 8)}${cell('ops/s')}${cell('reserve p50', 12)}${cell('p95', 8)}${cell('settle p50', 11)}${cell('p95', 8)}`,
    ...rows.map(
      (r) =>
        `${`${r.db} / ${r.window ? 'balance + 1h window' : 'balance'}`.padEnd(28)}${cell(String(r.ops), 8)}${cell(r.perSecond)}` +
        `${cell(r.reserveMs.median, 12)}${cell(r.reserveMs.p95, 8)}${cell(r.settleMs.median, 11)}${cell(r.settleMs.p95, 8)}`,
    ),
  );
  json.sustained = rows.map((r) => ({ db: r.db, window: r.window, ops: r.ops, perSecond: round(r.perSecond), reserveMs: r2(r.reserveMs), settleMs: r2(r.settleMs), refused: r.refused }));
  json.failed = 0;
  console.log(out.join('\n'));
  console.log(`BENCH_JSON ${JSON.stringify(json)}`);
} catch (err) {
  console.error(`bench failed: ${(err as Error).message}`);
  console.log(`BENCH_JSON ${JSON.stringify({ bench: 'budgets', failed: 1, error: (err as Error).message })}`);
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(exitCode);
