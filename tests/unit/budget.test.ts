/** Table tests of the budget rules (src/domain/budget.ts): pure, no database, `now` given. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { InferenceInput } from '../../src/common/inference.js';
import {
  checkReservation,
  PER_MESSAGE_OVERHEAD_TOKENS,
  PROMPT_OVERHEAD_TOKENS,
  promptUpperBound,
  reservationUpperBound,
  estimatePromptTokens,
  judgeContextFit,
  outputLimitOf,
  type ContextMisfit,
  RETRY_AFTER_HELD_S,
  utf8ByteLength,
  WINDOW_BUCKETS,
  windowBucketSeconds,
  windowResetAt,
  windowRetryAfterSeconds,
  type BudgetCheck,
  type BudgetLimits,
  type BudgetState,
  type LedgerEntry,
} from '../../src/domain/budget.js';

const NOW = Date.parse('2026-11-24T12:00:00Z');
const ago = (s: number) => NOW - s * 1000;

test('utf8ByteLength matches Buffer.byteLength, surrogates and lone surrogates included', () => {
  for (const s of ['', 'a', 'héllo', '☃', '🎉', 'a🎉b☃c', '\ud800', 'x\udc00y', '🎉'.repeat(100), 'ü'.repeat(3)]) {
    assert.equal(utf8ByteLength(s), Buffer.byteLength(s, 'utf8'), JSON.stringify(s));
  }
});

const promptCases: Array<[string, InferenceInput, number]> = [
  ['empty completion', { kind: 'completion', prompt: '' }, PROMPT_OVERHEAD_TOKENS],
  ['ascii completion', { kind: 'completion', prompt: 'Once upon a time' }, PROMPT_OVERHEAD_TOKENS + 16],
  ['multi-byte completion', { kind: 'completion', prompt: '🎉☃' }, PROMPT_OVERHEAD_TOKENS + 7],
  ['one message', { kind: 'chat', messages: [{ role: 'user', content: 'hi' }] }, PROMPT_OVERHEAD_TOKENS + PER_MESSAGE_OVERHEAD_TOKENS + 2],
  [
    'overhead per message, even empty ones',
    { kind: 'chat', messages: [{ role: 'system', content: 'x' }, { role: 'user', content: '' }, { role: 'assistant', content: 'ok' }] },
    PROMPT_OVERHEAD_TOKENS + 3 * PER_MESSAGE_OVERHEAD_TOKENS + 3,
  ],
];
for (const [name, input, expected] of promptCases) {
  test(`prompt upper bound: ${name}`, () => assert.equal(promptUpperBound(input), expected));
}

test('the prompt bound covers what the tiny model really tokenizes (measured: 21, 46, 41, 12, 20 tokens)', () => {
  // Prompts and token counts measured on the generated tiny model (llama tokenizer, chat template).
  const measured: Array<[InferenceInput, number]> = [
    [{ kind: 'chat', messages: [{ role: 'user', content: 'hi' }] }, 21],
    [{ kind: 'chat', messages: [{ role: 'system', content: 'x' }, { role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }, { role: 'user', content: '' }] }, 46],
    [{ kind: 'chat', messages: [{ role: 'user', content: 'héllo wörld ☃ 🎉 ' }] }, 41],
    [{ kind: 'completion', prompt: 'Once upon a time' }, 12],
    [{ kind: 'completion', prompt: '🎉🎉🎉 ☃☃' }, 20],
  ];
  for (const [input, tokens] of measured) assert.ok(promptUpperBound(input) >= tokens, JSON.stringify(input));
});

const boundCases: Array<[string, { contextLength: number; promptBound: number; maxTokens: number | null }, number]> = [
  ['prompt + max_tokens below the context', { contextLength: 512, promptBound: 80, maxTokens: 16 }, 96],
  ['capped by the context length', { contextLength: 512, promptBound: 500, maxTokens: 100 }, 512],
  ['no max_tokens: capped by the context', { contextLength: 512, promptBound: 80, maxTokens: null }, 512],
  ['no max_tokens: the output limit (4096), not the whole context', { contextLength: 32768, promptBound: 80, maxTokens: null }, 80 + 4096],
  ['exactly the context', { contextLength: 100, promptBound: 60, maxTokens: 40 }, 100],
];
for (const [name, o, expected] of boundCases) {
  test(`reservation upper bound: ${name}`, () => assert.equal(reservationUpperBound(o), expected));
}

const limitCases: Array<[number, number]> = [[512, 511], [4097, 4096], [100_000, 4096], [1, 1], [2, 1]];
for (const [ctx, expected] of limitCases) test(`output limit of a ${ctx}-token context is ${expected}`, () => assert.equal(outputLimitOf(ctx), expected));

const user = (content: string): InferenceInput => ({ kind: 'chat', messages: [{ role: 'user', content }] });
const estimateCases: Array<[string, InferenceInput, number]> = [
  ['4 characters a token, rounded up', user('abcde'), 2],
  ['over every message', { kind: 'chat', messages: [{ role: 'system', content: 'abcd' }, { role: 'user', content: 'abcd' }] }, 2],
  ['a completion prompt', { kind: 'completion', prompt: 'x'.repeat(40) }, 10],
  ['empty', user(''), 0],
];
for (const [name, input, expected] of estimateCases) test(`prompt estimate: ${name}`, () => assert.equal(estimatePromptTokens(input), expected));

const fitCases: Array<[string, { input: InferenceInput; contextLength: number; maxTokens: number | null }, ContextMisfit | null]> = [
  ['a short prompt fits', { input: user('hi'), contextLength: 512, maxTokens: 16 }, null],
  ['max_tokens equal to the context cannot fit', { input: user('hi'), contextLength: 512, maxTokens: 512 }, { kind: 'max_tokens', contextLength: 512, maxTokens: 512 }],
  ['estimate + max_tokens over the context', { input: user('x'.repeat(400)), contextLength: 512, maxTokens: 500 }, { kind: 'prompt', contextLength: 512, estimate: 100, maxTokens: 500 }],
  ['estimate + max_tokens exactly the context fits', { input: user('x'.repeat(400)), contextLength: 512, maxTokens: 412 }, null],
  ['no max_tokens: one output token must fit, even at 6 characters a token', { input: user('x'.repeat(3072)), contextLength: 512, maxTokens: null }, { kind: 'prompt', contextLength: 512, estimate: 768, maxTokens: null }],
  ['over the context at 4 characters a token but not at 6: left to the host', { input: user('x'.repeat(2100)), contextLength: 512, maxTokens: null }, null],
  ['no max_tokens: the prompt alone fits', { input: user('x'.repeat(2044)), contextLength: 512, maxTokens: null }, null],
];
for (const [name, o, expected] of fitCases) test(`context fit: ${name}`, () => assert.deepEqual(judgeContextFit(o), expected));

test('reservation upper bound refuses a nonsensical context length', () => {
  assert.throws(() => reservationUpperBound({ contextLength: 0, promptBound: 1, maxTokens: 1 }), RangeError);
});

const unlimited: BudgetLimits = { balance: null, window: null };
const state = (spent: number, reserved = 0, windowSpent = 0): BudgetState => ({ spent, reserved, windowSpent });

const checks: Array<[string, number, BudgetLimits, BudgetState, BudgetCheck]> = [
  ['no budget: always ok', 1e9, unlimited, state(1e12, 1e12, 1e12), { kind: 'ok' }],
  ['balance: fits exactly', 100, { balance: 1000, window: null }, state(600, 300), { kind: 'ok' }],
  ['balance: one token over', 101, { balance: 1000, window: null }, state(600, 300), { kind: 'balance', remaining: 100 }],
  ['balance: held reservations count', 50, { balance: 1000, window: null }, state(0, 980), { kind: 'balance', remaining: 20 }],
  ['balance: overspent (crash path) → remaining 0, never negative', 1, { balance: 100, window: null }, state(150), { kind: 'balance', remaining: 0 }],
  ['balance: a zero balance refuses everything', 1, { balance: 0, window: null }, state(0), { kind: 'balance', remaining: 0 }],
  ['window: fits', 100, { balance: null, window: { limit: 1000, seconds: 60 } }, state(5000, 100, 800), { kind: 'ok' }],
  ['window: settled spend + holds + request over the limit', 101, { balance: null, window: { limit: 1000, seconds: 60 } }, state(0, 100, 800), { kind: 'window' }],
  ['window: larger than the whole window', 1001, { balance: null, window: { limit: 1000, seconds: 60 } }, state(0), { kind: 'exceedsWindow', limit: 1000, seconds: 60 }],
  [
    'both exceeded: balance wins (waiting would not help)',
    500,
    { balance: 1000, window: { limit: 600, seconds: 60 } },
    state(900, 0, 500),
    { kind: 'balance', remaining: 100 },
  ],
  ['both caps, both fine', 100, { balance: 1000, window: { limit: 600, seconds: 60 } }, state(500, 100, 300), { kind: 'ok' }],
];
for (const [name, amount, limits, s, expected] of checks) {
  test(`check: ${name}`, () => assert.deepEqual(checkReservation(amount, limits, s), expected));
}

const entries = (...xs: Array<[number, number]>): LedgerEntry[] => xs.map(([secondsAgo, tokens]) => ({ at: ago(secondsAgo), tokens }));

const retryCases: Array<[string, Parameters<typeof windowRetryAfterSeconds>[0], number]> = [
  [
    'the oldest entry ageing out is enough',
    { entries: entries([50, 400], [10, 500]), limit: 1000, seconds: 60, reserved: 0, amount: 200, now: NOW },
    10, // 50 s ago + 60 s window → 10 s from now
  ],
  [
    'two entries must age out',
    { entries: entries([50, 100], [30, 400], [5, 450]), limit: 1000, seconds: 60, reserved: 0, amount: 300, now: NOW },
    30, // need 250: 100 (in 10 s) is not enough, + 400 (in 30 s) is
  ],
  [
    'entries in any order',
    { entries: entries([5, 450], [50, 100], [30, 400]), limit: 1000, seconds: 60, reserved: 0, amount: 300, now: NOW },
    30,
  ],
  [
    'entries older than the window are ignored',
    { entries: entries([120, 10_000], [20, 900]), limit: 1000, seconds: 60, reserved: 0, amount: 200, now: NOW },
    40,
  ],
  [
    'rounded up, at least 1 s',
    { entries: entries([59.9, 900]), limit: 1000, seconds: 60, reserved: 0, amount: 200, now: NOW },
    1,
  ],
  [
    'holds block and the ledger is empty: a short retry',
    { entries: [], limit: 1000, seconds: 60, reserved: 950, amount: 100, now: NOW },
    RETRY_AFTER_HELD_S,
  ],
  [
    'holds block after every entry aged out: when the last one does',
    { entries: entries([40, 100]), limit: 1000, seconds: 60, reserved: 950, amount: 100, now: NOW },
    20,
  ],
  [
    'already fits (a stale caller): 1',
    { entries: entries([10, 100]), limit: 1000, seconds: 60, reserved: 0, amount: 100, now: NOW },
    1,
  ],
];
for (const [name, o, expected] of retryCases) {
  test(`window Retry-After: ${name}`, () => assert.equal(windowRetryAfterSeconds(o), expected));
}

test('window reset: when the newest entry inside the window ages out, or null', () => {
  assert.equal(windowResetAt(entries([50, 1], [10, 1]), 60, NOW), ago(10) + 60_000);
  assert.equal(windowResetAt(entries([70, 1]), 60, NOW), null);
  assert.equal(windowResetAt([], 60, NOW), null);
});

test('window buckets: 1/100 of the window, whole seconds, at least 1 s', () => {
  assert.equal(WINDOW_BUCKETS, 100);
  for (const [seconds, bucket] of [[1, 1], [60, 1], [100, 1], [101, 2], [3600, 36], [86_400, 864]] as const) {
    assert.equal(windowBucketSeconds(seconds), bucket, String(seconds));
  }
});

test('bucketed entries (dated by their end) give a Retry-After no shorter than exact entries would', () => {
  const seconds = 600;
  const size = windowBucketSeconds(seconds) * 1000;
  const exact = entries([590, 100], [400, 300], [100, 500]);
  // The same spend, summed into buckets and dated by each bucket's end.
  const bucketed = exact.map((e) => ({ at: Math.floor(e.at / size) * size + size, tokens: e.tokens }));
  for (const amount of [50, 150, 450, 900]) {
    const o = { limit: 1000, seconds, reserved: 0, amount, now: NOW };
    assert.ok(windowRetryAfterSeconds({ ...o, entries: bucketed }) >= windowRetryAfterSeconds({ ...o, entries: exact }), String(amount));
  }
});
