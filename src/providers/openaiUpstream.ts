/**
 * One call to an OpenAI-compatible upstream (`/chat/completions` or `/completions`), JSON or SSE,
 * over undici with the provider's timeouts: connect, time to the response headers, and the
 * longest silence between two body chunks. It knows nothing of Temporal; the provider activity
 * wraps it. Every failure is an `UpstreamError` with a category a retry policy can read
 * (src/domain/upstreamRetry.ts) and a message that never holds the URL or the key.
 */
import { promptChars } from '../domain/budget.js';
import { Agent, errors as undiciErrors, request } from 'undici';
import { z } from 'zod';
import type { UpstreamCategory, UpstreamRejectedDetails } from '../common/failures.js';
import type { FinishReason, InferenceInput, SamplingParams, Usage } from '../common/inference.js';
import { providerConnector, UnpinnedError } from './attestedTransport.js';
import type { ProviderTransport } from './providerSpec.js';
import { parseRetryAfter, saysModelNotFound, type UpstreamFailure } from '../domain/upstreamRetry.js';

export interface UpstreamTarget {
  baseUrl: string;
  apiKey: string | undefined;
  timeouts: { connect_ms: number; first_byte_ms: number; idle_ms: number };
  /** A connection pool of this provider's (connect timeout, later its TLS pins). */
  dispatcher: Agent;
}

export interface UpstreamCall {
  model: string;
  input: InferenceInput;
  params: SamplingParams;
  stream: boolean;
  signal: AbortSignal;
  /** Streamed text as it arrives (stream calls only). */
  onText?: (text: string) => void;
}

export interface UpstreamAnswer {
  text: string;
  finishReason: FinishReason;
  usage: Usage;
  /** The upstream sent no usage: the figures are estimates (≈ 4 characters per token). */
  usageEstimated: boolean;
  /** The upstream's completion id (what its signature endpoint knows the exchange by). */
  id: string | undefined;
  /** The exact bodies sent and received (for SSE, the whole event stream): a signature covers them. */
  exchange: { requestBody: string; responseBody: Uint8Array };
}

export class UpstreamError extends Error {
  override name = 'UpstreamError';
  constructor(
    readonly failure: UpstreamFailure,
    message: string,
    /** The upstream's own refusal (a 4xx body), for the client. */
    readonly rejected?: UpstreamRejectedDetails,
  ) {
    super(message);
  }
}

/** A connection pool for one provider (its connect timeout, `resolve` overrides and CA file). */
export function upstreamAgent(o: { timeouts: { connect_ms: number }; transport: ProviderTransport }): Agent {
  return new Agent({ connect: providerConnector({ transport: o.transport, connectMs: o.timeouts.connect_ms }), keepAliveTimeout: 30_000, connections: 64 });
}

const usageSchema = z
  .object({
    prompt_tokens: z.number().int().nonnegative(),
    completion_tokens: z.number().int().nonnegative(),
    // What the upstream served from its own prompt cache (OpenAI's field; vLLM and others send it too).
    prompt_tokens_details: z.object({ cached_tokens: z.number().int().nonnegative().nullable().optional() }).nullable().optional(),
  })
  .partial();
const choiceSchema = z.object({
  message: z.object({ content: z.string().nullable().optional() }).optional(),
  delta: z.object({ content: z.string().nullable().optional() }).optional(),
  text: z.string().nullable().optional(),
  finish_reason: z.string().nullable().optional(),
});
const answerSchema = z.object({ id: z.string().max(256).optional(), choices: z.array(choiceSchema).default([]), usage: usageSchema.nullable().optional() });
const errorBodySchema = z.object({
  error: z.union([
    z.object({ message: z.string().optional(), type: z.string().nullable().optional(), param: z.string().nullable().optional(), code: z.union([z.string(), z.number()]).nullable().optional() }),
    z.string(),
  ]),
});

const finishOf = (r: string | null | undefined): FinishReason => (r === 'length' ? 'length' : 'stop');
const estimate = (chars: number) => Math.max(1, Math.ceil(chars / 4));

/** Anything in an upstream's words that looks like a URL (it may hold a host, a path, a token) is cut out. */
export function scrub(text: string, secrets: ReadonlyArray<string | undefined> = []): string {
  let out = text.replace(/\b[a-z][a-z0-9+.-]*:\/\/\S+/gi, '[url]');
  for (const s of secrets) if (s && s.length >= 4) out = out.split(s).join('[redacted]');
  return out.slice(0, 500);
}

function bodyFor(c: UpstreamCall): Record<string, unknown> {
  const p = c.params;
  const maxTokens = p.maxTokens ?? p.outputLimit;
  return {
    model: c.model,
    ...(c.input.kind === 'chat' ? { messages: c.input.messages.map((m) => ({ role: m.role, content: m.content })) } : c.input.kind === 'completion' ? { prompt: c.input.prompt } : {}),
    // Without the client's max_tokens, the model's output limit the reservation was sized by:
    // a provider's own default could run past it and overshoot the key's budget.
    ...(maxTokens !== undefined ? { max_tokens: maxTokens } : {}),
    temperature: p.temperature,
    top_p: p.topP,
    ...(p.seed !== undefined ? { seed: p.seed } : {}),
    ...(p.stop.length ? { stop: p.stop } : {}),
    // Passed on under the names the client used, only when the client set them.
    ...(p.presencePenalty !== undefined ? { presence_penalty: p.presencePenalty } : {}),
    ...(p.frequencyPenalty !== undefined ? { frequency_penalty: p.frequencyPenalty } : {}),
    ...(p.logitBias ? { logit_bias: p.logitBias } : {}),
    ...(p.topK !== undefined ? { top_k: p.topK } : {}),
    ...(p.minP !== undefined ? { min_p: p.minP } : {}),
    ...(p.repeatPenalty !== undefined ? { repeat_penalty: p.repeatPenalty } : {}),
    ...responseFormatOf(p.constraint),
    stream: c.stream,
    ...(c.stream ? { stream_options: { include_usage: true } } : {}),
  };
}

/** A JSON constraint as the upstream's `response_format` (tool calls never reach a provider: the API refuses them). */
function responseFormatOf(c: SamplingParams['constraint']): Record<string, unknown> {
  if (!c) return {};
  if (c.kind === 'json') return { response_format: { type: 'json_object' } };
  if (c.kind === 'jsonSchema') {
    const { name, description, schema, strict } = c;
    return { response_format: { type: 'json_schema', json_schema: { name, ...(description ? { description } : {}), schema, ...(strict !== null ? { strict } : {}) } } };
  }
  return {};
}

/** The socket-level error code of an undici or Node error, or ''. */
const errorCode = (err: unknown): string => {
  const e = err as { code?: string; cause?: { code?: string } } | null;
  return e?.code ?? e?.cause?.code ?? '';
};

/**
 * What kind of transport failure an undici or socket error is — the one classification every
 * provider call uses (completions, listings, attestation, signatures). `other`: none of these.
 */
export function transportCategory(err: unknown): 'unpinned' | 'timeout' | 'dropped' | 'tls' | 'connect' | 'other' {
  const code = errorCode(err);
  if (err instanceof UnpinnedError || code === 'UND_FLEET_UNPINNED') return 'unpinned';
  if (err instanceof undiciErrors.ConnectTimeoutError || err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError || code === 'ETIMEDOUT') return 'timeout';
  if (err instanceof undiciErrors.SocketError || code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET') return 'dropped';
  if (/^(ERR_TLS|CERT_|UNABLE_TO|DEPTH_ZERO|SELF_SIGNED|ERR_SSL|HOSTNAME_MISMATCH)/.test(code)) return 'tls';
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EHOSTUNREACH' || code === 'UND_ERR_CONNECT_TIMEOUT') return 'connect';
  return 'other';
}

/** Maps undici's and the socket's errors to a category; never repeats the address. */
function transportFailure(err: unknown): UpstreamError {
  const code = errorCode(err);
  const c = transportCategory(err);
  const category: Exclude<UpstreamCategory, 'status'> = c === 'other' ? 'connect' : c;
  return new UpstreamError({ kind: 'transport', category }, `upstream ${category} failure${code ? ` (${code})` : ''}`);
}

export async function callUpstream(t: UpstreamTarget, c: UpstreamCall): Promise<UpstreamAnswer> {
  const path = c.input.kind === 'chat' ? '/chat/completions' : '/completions';
  const requestBody = JSON.stringify(bodyFor(c));
  let res;
  try {
    res = await request(`${t.baseUrl}${path}`, {
      method: 'POST',
      dispatcher: t.dispatcher,
      signal: c.signal,
      headers: {
        'content-type': 'application/json',
        accept: c.stream ? 'text/event-stream' : 'application/json',
        ...(t.apiKey ? { authorization: `Bearer ${t.apiKey}` } : {}),
      },
      body: requestBody,
      headersTimeout: t.timeouts.first_byte_ms,
      bodyTimeout: t.timeouts.idle_ms,
    });
  } catch (err) {
    if (c.signal.aborted) throw err;
    throw transportFailure(err);
  }
  if (res.statusCode >= 300) {
    const raw = await res.body.text().catch(() => '');
    throw httpFailure(res.statusCode, res.headers['retry-after'], raw, t.apiKey);
  }
  try {
    return c.stream ? await readStream(res.body, c, requestBody) : readJson(await res.body.text(), c, requestBody);
  } catch (err) {
    if (err instanceof UpstreamError || c.signal.aborted) throw err;
    throw transportFailure(err);
  }
}

function httpFailure(status: number, retryAfterHeader: string | string[] | undefined, raw: string, apiKey: string | undefined): UpstreamError {
  let parsed: z.infer<typeof errorBodySchema> | undefined;
  try {
    const r = errorBodySchema.safeParse(JSON.parse(raw));
    parsed = r.success ? r.data : undefined;
  } catch {
    parsed = undefined;
  }
  const err = typeof parsed?.error === 'string' ? { message: parsed.error } : parsed?.error;
  const message = scrub(err?.message ?? (raw.trim() || `HTTP ${status}`), [apiKey]);
  const code = err?.code === undefined || err.code === null ? null : String(err.code);
  const retryAfterSeconds = parseRetryAfter(Array.isArray(retryAfterHeader) ? retryAfterHeader[0] : retryAfterHeader, Date.now());
  const failure: UpstreamFailure = {
    kind: 'http',
    status,
    ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
    ...(saysModelNotFound(status, code, err?.message) ? { modelNotFound: true } : {}),
  };
  return new UpstreamError(failure, `upstream answered ${status}`, { status, message, param: err?.param ?? null, code });
}

function readJson(text: string, c: UpstreamCall, requestBody: string): UpstreamAnswer {
  let body;
  try {
    body = answerSchema.parse(JSON.parse(text));
  } catch {
    throw new UpstreamError({ kind: 'transport', category: 'decode' }, 'upstream answer is not a completion');
  }
  const choice = body.choices[0];
  if (!choice) throw new UpstreamError({ kind: 'transport', category: 'decode' }, 'upstream answer has no choice');
  const answer = choice.message?.content ?? choice.text ?? '';
  return withUsage(answer, finishOf(choice.finish_reason), body.usage ?? undefined, c, { id: body.id, exchange: { requestBody, responseBody: Buffer.from(text, 'utf8') } });
}

function withUsage(
  text: string,
  finishReason: FinishReason,
  u: z.infer<typeof usageSchema> | undefined,
  c: UpstreamCall,
  raw: Pick<UpstreamAnswer, 'id' | 'exchange'>,
): UpstreamAnswer {
  const known = u?.prompt_tokens !== undefined && u?.completion_tokens !== undefined;
  return {
    ...raw,
    text,
    finishReason,
    usage: known ? { promptTokens: u!.prompt_tokens!, completionTokens: u!.completion_tokens!, ...cachedOf(u!) } : { promptTokens: estimate(promptChars(c.input)), completionTokens: estimate(text.length) },
    usageEstimated: !known,
  };
}

/** Reads `data:` lines until `[DONE]`; a stream that ends without it (or a finish) was dropped. */
async function readStream(body: AsyncIterable<Buffer>, c: UpstreamCall, requestBody: string): Promise<UpstreamAnswer> {
  const raw: Buffer[] = [];
  // One decoder for the whole body: a character split across two chunks stays one character.
  const decoder = new TextDecoder('utf-8');
  let id: string | undefined;
  let buffered = '';
  let text = '';
  let finish: FinishReason | undefined;
  let usage: z.infer<typeof usageSchema> | undefined;
  let done = false;
  const dropped = () => new UpstreamError({ kind: 'transport', category: 'dropped' }, 'upstream stream ended early', undefined);
  const onLine = (line: string) => {
    if (!line.startsWith('data:')) return;
    const data = line.slice(5).trim();
    if (data === '[DONE]') return void (done = true);
    let chunk;
    try {
      chunk = answerSchema.parse(JSON.parse(data));
    } catch {
      throw new UpstreamError({ kind: 'transport', category: 'decode' }, 'upstream sent an unreadable stream chunk');
    }
    if (chunk.usage) usage = chunk.usage;
    id ??= chunk.id;
    const choice = chunk.choices[0];
    if (!choice) return;
    const piece = choice.delta?.content ?? choice.text ?? '';
    if (piece) {
      text += piece;
      c.onText?.(piece);
    }
    if (choice.finish_reason) finish = finishOf(choice.finish_reason);
  };
  try {
    for await (const part of body) {
      raw.push(part);
      buffered += decoder.decode(part, { stream: true });
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        onLine(buffered.slice(0, nl).replace(/\r$/, ''));
        buffered = buffered.slice(nl + 1);
        if (done) break;
      }
      if (done) break;
    }
  } catch (err) {
    if (err instanceof UpstreamError || c.signal.aborted) throw err;
    throw Object.assign(dropped(), { cause: err });
  }
  if (buffered.trim()) onLine(buffered.trim());
  if (!done && finish === undefined) throw dropped();
  return withUsage(text, finish ?? 'stop', usage, c, { id, exchange: { requestBody, responseBody: Buffer.concat(raw) } });
}

const modelListSchema = z.object({
  data: z.array(
    z.object({
      id: z.string().min(1).max(512),
      context_length: z.number().int().positive().optional(),
      max_model_len: z.number().int().positive().optional(),
    }).passthrough(),
  ),
});

/** `GET /models`: the upstream's model ids (and context lengths where it says them). */
export async function listUpstreamModels(t: UpstreamTarget, signal: AbortSignal): Promise<Array<{ slug: string; contextLength?: number }>> {
  let res;
  try {
    res = await request(`${t.baseUrl}/models`, {
      method: 'GET',
      dispatcher: t.dispatcher,
      signal,
      headers: { accept: 'application/json', ...(t.apiKey ? { authorization: `Bearer ${t.apiKey}` } : {}) },
      headersTimeout: t.timeouts.first_byte_ms,
      bodyTimeout: t.timeouts.idle_ms,
    });
  } catch (err) {
    if (signal.aborted) throw err;
    throw transportFailure(err);
  }
  const raw = await res.body.text().catch(() => '');
  if (res.statusCode >= 300) throw httpFailure(res.statusCode, res.headers['retry-after'], raw, t.apiKey);
  let parsed;
  try {
    parsed = modelListSchema.parse(JSON.parse(raw));
  } catch {
    throw new UpstreamError({ kind: 'transport', category: 'decode' }, 'upstream model list is not an OpenAI model list');
  }
  return parsed.data.map((m) => {
    const ctx = m.context_length ?? m.max_model_len;
    return ctx !== undefined ? { slug: m.id, contextLength: ctx } : { slug: m.id };
  });
}

/** The upstream's cached prompt tokens, when it says (never more than the prompt). */
function cachedOf(u: z.infer<typeof usageSchema>): { cachedTokens?: number } {
  const n = u.prompt_tokens_details?.cached_tokens;
  return n ? { cachedTokens: Math.min(n, u.prompt_tokens ?? 0) } : {};
}
