/**
 * Token budgets of API keys: how much a request reserves before dispatch, whether a key can
 * afford it, and when a rolling window has room again. Pure and deterministic (time comes in
 * as `now`, in epoch milliseconds), so every rule is table-tested without a database; the
 * repository applies the decision inside the transaction that holds the key's row lock.
 *
 * Why an upper bound and not an estimate: a reservation that can be exceeded lets concurrent
 * requests overshoot a cap. The host refuses any request whose prompt + output does not fit
 * the model's context, so the context length bounds everything; below it, tokenizers emit at
 * most about one token per byte of text, plus what the chat template and BOS add.
 */
import type { InferenceInput } from '../common/inference.js';

/** Tokens a prompt may cost beyond its text: BOS, a leading-space piece, a default system prompt. */
export const PROMPT_OVERHEAD_TOKENS = 64;
/** Tokens a chat template may add around each message (role markers, separators). */
export const PER_MESSAGE_OVERHEAD_TOKENS = 16;
/**
 * Retry-After when in-flight requests (not settled spend) hold the window: they settle to
 * their actual use, usually far below what they reserved, within seconds.
 */
export const RETRY_AFTER_HELD_S = 1;

/** UTF-8 length of a string without Node's Buffer (this module is sandbox-safe). */
export function utf8ByteLength(s: string): number {
  let bytes = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4; // a surrogate pair is one 4-byte code point
      i++;
    } else bytes += 3; // includes a lone surrogate, which encodes as U+FFFD (3 bytes)
  }
  return bytes;
}

/** Most tokens the prompt can tokenize to, on any model. */
export function promptUpperBound(input: InferenceInput): number {
  if (input.kind === 'completion') return PROMPT_OVERHEAD_TOKENS + utf8ByteLength(input.prompt);
  // An embedding has no template around it: a token per byte (or the ids given), no overhead.
  if (input.kind === 'embedding') return input.inputs.reduce((n, x) => n + (typeof x === 'string' ? utf8ByteLength(x) + 2 : x.length), 0);
  let bound = PROMPT_OVERHEAD_TOKENS;
  for (const m of input.messages) bound += PER_MESSAGE_OVERHEAD_TOKENS + utf8ByteLength(m.content);
  return bound;
}

/**
 * The output a request without `max_tokens` may produce: the model's advertised output limit
 * (OpenAI's models have one too), so such a request reserves this much rather than the whole
 * context. Hosts stop there (`finish_reason: "length"`).
 */
export const DEFAULT_OUTPUT_LIMIT = 4096;

/** The model's output limit: the default, capped by its context. */
export function outputLimitOf(contextLength: number): number {
  return Math.max(1, Math.min(DEFAULT_OUTPUT_LIMIT, contextLength - 1));
}

/**
 * What a request reserves: min(context length, prompt bound + (max_tokens ?? the model's
 * output limit)). `maxTokens` null means "as many as the output limit allows".
 */
export function reservationUpperBound(o: { contextLength: number; promptBound: number; maxTokens: number | null }): number {
  if (!(o.contextLength >= 1)) throw new RangeError(`contextLength must be ≥ 1, got ${o.contextLength}`);
  return Math.min(o.contextLength, o.promptBound + (o.maxTokens ?? outputLimitOf(o.contextLength)));
}

/** Characters per token of the edge estimate (the usual rule of thumb for English text). */
export const CHARS_PER_TOKEN_ESTIMATE = 4;

/**
 * A rough count of the prompt's tokens from its text alone (≈ 4 characters per token): cheap
 * enough for the edge, so a prompt that cannot fit never routes, cold-loads or moves a pool.
 * Not a bound: the host's exact tokenizer check still decides what fits.
 */
export function estimatePromptTokens(input: InferenceInput): number {
  if (input.kind === 'embedding') return 0;
  return Math.ceil(promptChars(input) / CHARS_PER_TOKEN_ESTIMATE);
}

/** Characters of a request's text: the edge's estimate, and a provider's usage when it reports none. */
export const promptChars = (i: InferenceInput): number =>
  i.kind === 'completion' ? i.prompt.length : i.kind === 'embedding' ? i.inputs.reduce((n, x) => n + x.length, 0) : i.messages.reduce((n, m) => n + m.content.length, 0);

/** Why a request cannot fit the model's context, judged at the edge; null: it may fit. */
export type ContextMisfit =
  | { kind: 'max_tokens'; contextLength: number; maxTokens: number }
  | { kind: 'prompt'; contextLength: number; estimate: number; maxTokens: number | null };

/**
 * Characters per token the edge refuses at: text rarely averages more, so a prompt refused at
 * this rate is impossible, not merely borderline (English under a large vocabulary runs ~4–5;
 * the host's tokenizer decides anything closer).
 */
export const REFUSAL_CHARS_PER_TOKEN = 6;

export function judgeContextFit(o: { input: InferenceInput; contextLength: number; maxTokens: number | null }): ContextMisfit | null {
  if (o.maxTokens !== null && o.maxTokens >= o.contextLength) return { kind: 'max_tokens', contextLength: o.contextLength, maxTokens: o.maxTokens };
  const estimate = estimatePromptTokens(o.input);
  const atLeast = Math.ceil((estimate * CHARS_PER_TOKEN_ESTIMATE) / REFUSAL_CHARS_PER_TOKEN);
  // At least one token of output must fit after the prompt (what the host checks exactly).
  if (atLeast + (o.maxTokens ?? 1) > o.contextLength) return { kind: 'prompt', contextLength: o.contextLength, estimate, maxTokens: o.maxTokens };
  return null;
}

export interface BudgetLimits {
  /** Lifetime tokens the key may spend; null: no hard balance. */
  balance: number | null;
  /** At most `limit` tokens in any `seconds`-long window; null: no rolling window. */
  window: { limit: number; seconds: number } | null;
}

export interface BudgetState {
  /** Settled tokens over the key's lifetime. */
  spent: number;
  /** Tokens held by reservations not settled or released yet. */
  reserved: number;
  /** Settled tokens whose ledger entries are inside the current window. */
  windowSpent: number;
}

export type BudgetCheck =
  | { kind: 'ok' }
  /** The hard balance cannot cover it (waiting does not help unless in-flight requests settle low). */
  | { kind: 'balance'; remaining: number }
  /** The window is full for now: Retry-After comes from `windowRetryAfterSeconds`. */
  | { kind: 'window' }
  /** The request alone is larger than the window's limit: it can never be served as asked. */
  | { kind: 'exceedsWindow'; limit: number; seconds: number };

/**
 * Can the key afford `amount` more tokens? Balance first: when it is exhausted, waiting for
 * the window would not help, so the client must hear `insufficient_quota`.
 */
export function checkReservation(amount: number, limits: BudgetLimits, state: BudgetState): BudgetCheck {
  if (limits.balance !== null) {
    const remaining = Math.max(0, limits.balance - state.spent - state.reserved);
    if (amount > remaining) return { kind: 'balance', remaining };
  }
  if (limits.window !== null) {
    if (amount > limits.window.limit) return { kind: 'exceedsWindow', limit: limits.window.limit, seconds: limits.window.seconds };
    if (state.windowSpent + state.reserved + amount > limits.window.limit) return { kind: 'window' };
  }
  return { kind: 'ok' };
}

/** Why a reservation was refused, with what the client needs to hear (see src/api/errors.ts). */
export type BudgetRefusal =
  | { kind: 'balance'; amount: number; remaining: number; reserved: number }
  | { kind: 'window'; amount: number; limit: number; seconds: number; retryAfterSeconds: number }
  | { kind: 'exceedsWindow'; amount: number; limit: number; seconds: number };

/**
 * A rolling window is kept as this many time buckets of settled spend, so checking it costs
 * the same at any traffic. Rounding is conservative both ways: a bucket counts while any of
 * it is inside the window, and its tokens age out when its END leaves the window — a key may
 * wait up to 1/WINDOW_BUCKETS of its window longer than exact bookkeeping, never shorter.
 */
export const WINDOW_BUCKETS = 100;

/** Length of one window bucket, in whole seconds (≥ 1). */
export function windowBucketSeconds(windowSeconds: number): number {
  return Math.max(1, Math.ceil(windowSeconds / WINDOW_BUCKETS));
}

/** One settled ledger entry (or bucket of them, dated by its end): when (epoch ms) and how many tokens. */
export interface LedgerEntry {
  at: number;
  tokens: number;
}

/**
 * Seconds until enough of the window's spend ages out for `amount` to fit, given the entries
 * inside the window (any order) and the tokens held by in-flight reservations. Entries leave
 * the window `seconds` after they were written, oldest first. When even an empty ledger would
 * not make room, in-flight reservations are in the way: they settle (usually low) or are
 * released within seconds, so the answer is the time the ledger needs, at least
 * RETRY_AFTER_HELD_S. Always ≥ 1 (a Retry-After of 0 invites a hot loop).
 */
export function windowRetryAfterSeconds(o: {
  entries: readonly LedgerEntry[];
  limit: number;
  seconds: number;
  reserved: number;
  amount: number;
  now: number;
}): number {
  const windowStart = o.now - o.seconds * 1000;
  const inside = o.entries.filter((e) => e.at > windowStart).sort((a, b) => a.at - b.at);
  const spent = inside.reduce((s, e) => s + e.tokens, 0);
  const needed = spent + o.reserved + o.amount - o.limit;
  if (needed <= 0) return 1;
  let freed = 0;
  let lastAgeOut = o.now;
  for (const e of inside) {
    freed += e.tokens;
    lastAgeOut = e.at + o.seconds * 1000;
    if (freed >= needed) return Math.max(1, Math.ceil((lastAgeOut - o.now) / 1000));
  }
  return Math.max(RETRY_AFTER_HELD_S, Math.ceil((lastAgeOut - o.now) / 1000));
}

/**
 * When the window is back to its full limit: the newest entry inside it ages out (epoch ms),
 * or null when nothing in the window was spent.
 */
export function windowResetAt(entries: readonly LedgerEntry[], seconds: number, now: number): number | null {
  const windowStart = now - seconds * 1000;
  let newest: number | null = null;
  for (const e of entries) if (e.at > windowStart && (newest === null || e.at > newest)) newest = e.at;
  return newest === null ? null : newest + seconds * 1000;
}
