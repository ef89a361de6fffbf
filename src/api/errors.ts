/**
 * The one error envelope. Every failure a client sees — bad JSON, validation, unknown model,
 * a workflow's typed failure, an unexpected bug — leaves through `toErrorResponse` as
 * `{"error":{"message","type","param","code"}}` with its status (and Retry-After where a retry
 * makes sense). No stack trace, internal URL or nonce ever reaches a client. The Anthropic
 * routes get the same errors in Anthropic's envelope (`anthropicErrorResponse`).
 */
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure, TemporalFailure, TimeoutFailure } from '@temporalio/common';
import { asFailureType, FAILURES, FailureType } from '../common/failures.js';
import { detailsOf } from '../common/typedFailure.js';
import { isDependencyOutage } from '../common/outage.js';
import type { BudgetRefusal } from '../domain/budget.js';

export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'rate_limit_error'
  | 'insufficient_quota'
  | 'server_error'
  | 'api_error';

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly type: ErrorType,
    readonly code: string | null = null,
    readonly param: string | null = null,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export const invalidRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new ApiError(400, message, 'invalid_request_error', code, param);

export const modelNotFound = (model: string) =>
  new ApiError(404, `The model '${model}' does not exist or you do not have access to it.`, 'invalid_request_error', 'model_not_found', 'model');

export const hostNotFound = (host: string) =>
  new ApiError(404, `The host '${host}' is not registered.`, 'invalid_request_error', 'host_not_found', 'host');

/**
 * A key's budget refused the request before dispatch. Always 429 — never 402: clients and
 * SDKs know 429. A full rolling window says when to retry; a hard balance does not (waiting
 * will not help); a request larger than the whole window cannot be fixed by waiting either.
 */
export function budgetRefused(r: BudgetRefusal): ApiError {
  switch (r.kind) {
    case 'window':
      return new ApiError(
        429,
        `Rate limit reached: this key may use ${r.limit} tokens per ${r.seconds}s and this request may use up to ${r.amount}. Retry after ${r.retryAfterSeconds}s.`,
        'rate_limit_error',
        'rate_limit_exceeded',
        null,
        r.retryAfterSeconds,
      );
    case 'exceedsWindow':
      return new ApiError(
        429,
        `This request may use up to ${r.amount} tokens, more than this key's limit of ${r.limit} tokens per ${r.seconds}s. Lower max_tokens (or shorten the prompt).`,
        'rate_limit_error',
        'rate_limit_exceeded',
        'max_tokens',
      );
    case 'balance':
      return new ApiError(
        429,
        `You exceeded your current quota: this request may use up to ${r.amount} tokens and this key has ${r.remaining} left` +
          (r.reserved > 0 ? ` (${r.reserved} more are held by requests in flight).` : '.'),
        'insufficient_quota',
        'insufficient_quota',
      );
  }
}

export const keyRevoked = () => new ApiError(401, 'This API key has been revoked.', 'invalid_request_error', 'invalid_api_key');

export interface ErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: { error: { message: string; type: ErrorType; param: string | null; code: string | null } };
}

function envelope(e: ApiError): ErrorResponse {
  const headers: Record<string, string> = {};
  if (e.retryAfterSeconds !== undefined) headers['Retry-After'] = String(Math.max(1, Math.ceil(e.retryAfterSeconds)));
  return { status: e.status, headers, body: { error: { message: e.message, type: e.type, param: e.param, code: e.code } } };
}

/** body-parser / raw-body errors carry a `type` and a `status`. */
function fromBodyParser(err: { type?: string; status?: number }): ApiError | undefined {
  if (err.type === 'entity.parse.failed') {
    return invalidRequest('We could not parse the JSON body of your request. The body must be valid JSON.', null, 'invalid_json');
  }
  if (err.type === 'entity.too.large') {
    return new ApiError(413, 'The request body is too large.', 'invalid_request_error', 'request_too_large');
  }
  if (err.type === 'encoding.unsupported' || err.type === 'charset.unsupported') {
    return new ApiError(415, 'Unsupported content encoding or charset.', 'invalid_request_error', 'unsupported_encoding');
  }
  if (typeof err.status === 'number' && err.status >= 400 && err.status < 500 && err.type) {
    return invalidRequest('The request body could not be read.');
  }
  return undefined;
}

/**
 * Any other client error the HTTP stack raised with a 4xx status (http-errors style): a
 * malformed percent-encoding in the path (Express), a body whose content encoding does not
 * decode (zlib inside body-parser). The client's fault, so a 4xx in our envelope — never a
 * 500, never a stack trace in the log.
 */
function fromClientError(err: { status?: unknown; statusCode?: unknown }): ApiError | undefined {
  const status = typeof err.status === 'number' ? err.status : typeof err.statusCode === 'number' ? err.statusCode : undefined;
  if (status === undefined || status < 400 || status > 499) return undefined;
  if (err instanceof URIError || /decode param/i.test(String((err as { message?: unknown }).message))) {
    return invalidRequest('The request URL is malformed (bad percent-encoding).', null, 'invalid_url');
  }
  if (status === 400) return invalidRequest('The request body could not be read (is its Content-Encoding right?).', null, 'invalid_body');
  return new ApiError(status, 'The request could not be processed.', 'invalid_request_error', 'invalid_request');
}

/** The OpenAI envelope as raw HTTP/1.1 bytes: for the parser's own errors, before Express sees a request. */
export function rawErrorResponse(status: 400 | 408 | 413 | 431, message: string, code: string): string {
  const body = JSON.stringify({ error: { message, type: 'invalid_request_error', param: null, code } });
  const reason = { 400: 'Bad Request', 408: 'Request Timeout', 413: 'Payload Too Large', 431: 'Request Header Fields Too Large' }[status];
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

/** The typed failure (of the contract) a workflow or activity failure carries, if any. */
export function failureTypeOf(err: unknown): FailureType | undefined {
  return asFailureType(findApplicationFailure(err)?.type);
}

function findApplicationFailure(err: unknown): ApplicationFailure | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 8; depth++) {
    if (e instanceof ApplicationFailure) return e;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function retryAfterOf(f: ApplicationFailure): number | undefined {
  const d = f.details?.[0] as { retryAfterSeconds?: unknown } | undefined;
  return typeof d?.retryAfterSeconds === 'number' ? d.retryAfterSeconds : undefined;
}

/** The 503 a client gets when a dependency is down: retry shortly. */
export function dependencyOutage(err: unknown): ApiError | undefined {
  if (!isDependencyOutage(err)) return undefined;
  return new ApiError(503, 'Service unavailable: a backing service (database or workflow engine) is not reachable right now. Retry shortly.', 'server_error', 'service_unavailable', null, 2);
}

/** Maps a workflow's typed failure to the client's error; the mapping table lives here only. */
export function fromWorkflowFailure(err: unknown, model: string): ApiError {
  const app = findApplicationFailure(err);
  const type = asFailureType(app?.type);
  if (app && type) return fromTypedFailure(app, type, model);
  const cause = err instanceof WorkflowFailedError ? err.cause : err;
  const outage = dependencyOutage(err);
  if (outage) return outage;
  if (cause instanceof TimeoutFailure || hasCause(cause, TimeoutFailure)) {
    return new ApiError(504, 'The request timed out upstream.', 'server_error', 'timeout', null, 1);
  }
  if (cause instanceof CancelledFailure) {
    return new ApiError(499, 'The request was cancelled.', 'invalid_request_error', 'cancelled');
  }
  if (cause instanceof TemporalFailure) {
    return new ApiError(502, 'The inference replica failed.', 'api_error', 'upstream_error');
  }
  return new ApiError(500, 'The server had an error while processing your request.', 'server_error', 'internal_error');
}

/** One case per failure type of the contract: the compiler refuses a type left out. */
function fromTypedFailure(app: ApplicationFailure, type: FailureType, model: string): ApiError {
  const retryAfter = retryAfterOf(app);
  const status = FAILURES[type].status;
  switch (type) {
    case FailureType.ModelNotFound:
      return modelNotFound(model);
    case FailureType.ContextLengthExceeded:
      return invalidRequest(app.message, 'messages', 'context_length_exceeded');
    case FailureType.InvalidRequest:
      return invalidRequest(app.message, detailsOf(app, type)?.param ?? null);
    case FailureType.Unavailable: {
      const reason = detailsOf(app, type)?.reason;
      if (reason === 'pool_exhausted' || reason === 'pool_cooling') return new ApiError(429, `Rate limited: ${app.message}.`, 'rate_limit_error', 'pool_exhausted', null, retryAfter ?? 1);
      // Load shedding (every replica busy, no free slot) is a rate limit in all but status:
      // clients back off on `rate_limit_error`. Anything else says what is unavailable.
      if (reason === 'all_tried' || reason === 'no_free_slot') {
        return new ApiError(status, `Overloaded: ${app.message}. Retry after ${retryAfter ?? 1}s.`, 'rate_limit_error', 'rate_limit_exceeded', null, retryAfter ?? 1);
      }
      return new ApiError(status, `Model unavailable: ${app.message}. Retry after ${retryAfter ?? 1}s.`, 'server_error', 'service_unavailable', null, retryAfter ?? 1);
    }
    case FailureType.PrincipalLimited:
      return new ApiError(status, app.message, 'rate_limit_error', 'rate_limit_exceeded', null, retryAfter ?? 1);
    case FailureType.ModelBusy:
      return new ApiError(status, "Model unavailable: no host slot could be freed for it (the models holding them are busy). Retry shortly.", 'server_error', 'service_unavailable', null, retryAfter ?? 1);
    case FailureType.StreamBroken:
      return new ApiError(status, 'The inference replica failed mid-stream; the answer is incomplete.', 'api_error', 'upstream_error');
    case FailureType.HostBusy:
      return new ApiError(status, `Overloaded: the model's replica has no free slot. Retry after ${retryAfter ?? 1}s.`, 'rate_limit_error', 'rate_limit_exceeded', null, retryAfter ?? 1);
    case FailureType.ModelNotLoaded:
      return new ApiError(status, 'The model is not loaded where the request went. Retry shortly.', 'server_error', 'service_unavailable', null, 1);
    case FailureType.LoadFailed:
      return new ApiError(status, `The model could not be loaded: ${app.message}`, 'server_error', 'service_unavailable', null, 5);
    case FailureType.ModelQuarantined: {
      // Not transient: nothing changes until an operator releases (or replaces) the build.
      const d = detailsOf(app, type);
      return new ApiError(
        status,
        `The model '${model}' cannot be served: its build ${d?.build ?? ''} is quarantined because a load of it failed (${d?.reason ?? 'unknown reason'}). An operator can release it with \`fleet models release ${d?.build ?? model}\`.`,
        'server_error',
        'model_quarantined',
      );
    }
    case FailureType.ReassignRefused:
      return new ApiError(status, app.message, 'invalid_request_error', `host_${detailsOf(app, type)?.reason ?? 'refused'}`, 'host', retryAfter);
    case FailureType.GenerationFailed:
      return new ApiError(status, 'The inference replica failed while generating.', 'api_error', 'upstream_error');
    case FailureType.Unpinned:
      return new ApiError(status, 'No replica with a pinned (attested) key could serve this verifiable model right now.', 'server_error', 'service_unavailable', null, 5);
    case FailureType.UpstreamUnavailable: {
      const d = detailsOf(app, type);
      // An attested provider with no pinned backend left fails closed, like an unpinned own fleet.
      if (d?.category === 'unpinned') {
        return new ApiError(503, 'No replica with a pinned (attested) key could serve this verifiable model right now.', 'server_error', 'service_unavailable', null, 5);
      }
      return new ApiError(
        status,
        `The model's providers could not answer (${d?.category ?? 'failure'}${d?.status ? ` ${d.status}` : ''}). Retry shortly.`,
        'api_error',
        'upstream_error',
        null,
        d?.retryAfterSeconds ?? 1,
      );
    }
    case FailureType.UpstreamRejected: {
      // The provider's own refusal of this request, in our envelope (its words, no URL, no key).
      const d = detailsOf(app, type);
      const s = d && d.status >= 400 && d.status < 500 ? d.status : 400;
      return new ApiError(s, d?.message ?? app.message, 'invalid_request_error', d?.code ?? 'upstream_rejected', d?.param ?? null);
    }
    default: {
      const never: never = type;
      return never;
    }
  }
}

function hasCause(err: unknown, type: new (...args: never[]) => Error): boolean {
  for (let e = (err as { cause?: unknown })?.cause, d = 0; e && d < 8; d++, e = (e as { cause?: unknown }).cause) {
    if (e instanceof type) return true;
  }
  return false;
}

/** Any thrown value → the envelope. Unknown errors become a bare 500 (details go to the log). */
export function toErrorResponse(err: unknown): ErrorResponse {
  if (err instanceof ApiError) return envelope(err);
  const parsed = fromBodyParser(err as { type?: string; status?: number }) ?? fromClientError(err as { status?: unknown });
  if (parsed) return envelope(parsed);
  const outage = dependencyOutage(err);
  if (outage) return envelope(outage);
  return envelope(new ApiError(500, 'The server had an error while processing your request.', 'server_error', 'internal_error'));
}

export interface AnthropicErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: { type: 'error'; error: { type: string; message: string } };
}

/** Anthropic's error types, by status (its documented table). */
function anthropicType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 413) return 'request_too_large';
  if (status === 429) return 'rate_limit_error';
  if (status === 503 || status === 529) return 'overloaded_error';
  if (status >= 500) return 'api_error';
  return 'invalid_request_error';
}

/** The same error as `toErrorResponse`, in Anthropic's envelope: `{"type":"error","error":{"type","message"}}`. */
export function anthropicErrorResponse(err: unknown): AnthropicErrorResponse {
  const e = toErrorResponse(err);
  const { message, param } = e.body.error;
  const named = param && !message.includes(`'${param}'`) ? `${param}: ${message}` : message;
  return { status: e.status, headers: e.headers, body: { type: 'error', error: { type: anthropicType(e.status), message: named } } };
}
