/**
 * Prometheus metrics for every fleet process, on one process-wide registry, so `fleet dev`
 * (API, control plane and GPU host in one process) exposes everything through the API's
 * `/metrics`, and a split worker exposes its own part through `serveMetrics`.
 *
 * Label values are kept small and bounded: endpoints, HTTP statuses, model ids from the
 * catalog, host ids, fixed reason/outcome sets — never request ids. API key ids and accounts
 * label only the per-key token counter: keys are created by operators (bounded), and a key
 * id is public (the secret is not). Callers
 * record through the typed helpers below rather than touching metric objects, so a label
 * set cannot drift between call sites.
 *
 * The fleet-state gauges (running/queued, KV usage, host health, pools) are in fleetMetrics.ts.
 */
import http from 'node:http';
import { listen } from './httpListen.js';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import { tokensEqual } from './api/apiKey.js';
import type { RejectReason } from './domain/admission.js';
import type { Logger } from './logger.js';

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'fleet_' });
// prom-client's totals of handles, requests and resources are gauges named `*_total`, which
// the exposition rules reserve for counters (`promtool check metrics` fails them): dropped.
// The same numbers are `sum(fleet_nodejs_active_handles)` etc. over the per-type gauges.
for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total']) registry.removeSingleMetric(`fleet_nodejs_${name}`);

/** The registry list every metric registers on (fleetMetrics.ts too). */
export const registers = [registry];

// Buckets: an inference request spans milliseconds (a refusal) to minutes (a cold load
// followed by a long answer); load times span a tiny test model to tens of GB.
const requestDuration = new Histogram({
  name: 'fleet_request_duration_seconds',
  help: 'Inference requests through the API, from arrival to the last byte, by endpoint, model (the alias asked for), streaming and HTTP status.',
  labelNames: ['endpoint', 'model', 'stream', 'status'] as const,
  buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
  registers,
});

const timeToFirstToken = new Histogram({
  name: 'fleet_time_to_first_token_seconds',
  help: 'Streaming requests: time from arrival at the API to the first text written to the client, by endpoint and model.',
  labelNames: ['endpoint', 'model'] as const,
  buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  registers,
});

const tokensPerSecond = new Histogram({
  name: 'fleet_tokens_per_second',
  help: 'Decode speed of one generation: on a GPU host, tokens after the first over the decode window (first token to last); through a provider, completion tokens over the whole call.',
  labelNames: ['model'] as const,
  buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2500],
  registers,
});

// The phases vLLM and llama-server report, per model, measured on the GPU host.
const PHASE_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const queueTime = new Histogram({
  name: 'fleet_queue_time_seconds',
  help: 'Time a generation waited on its GPU host for an admission slot.',
  labelNames: ['model'] as const,
  buckets: PHASE_BUCKETS,
  registers,
});
const prefillTime = new Histogram({
  name: 'fleet_prefill_time_seconds',
  help: 'Time from a generation taking its slot to its first token (prompt evaluation).',
  labelNames: ['model'] as const,
  buckets: PHASE_BUCKETS,
  registers,
});
const timePerOutputToken = new Histogram({
  name: 'fleet_time_per_output_token_seconds',
  help: 'Inter-token latency: the decode window over the tokens after the first, one observation per generation of two tokens or more.',
  labelNames: ['model'] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5],
  registers,
});
const TOKEN_COUNT_BUCKETS = [1, 4, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768];
const promptLength = new Histogram({
  name: 'fleet_request_prompt_tokens',
  help: 'Prompt length of a generation on a GPU host, in tokens.',
  labelNames: ['model'] as const,
  buckets: TOKEN_COUNT_BUCKETS,
  registers,
});
const completionLength = new Histogram({
  name: 'fleet_request_completion_tokens',
  help: 'Completion length of a generation on a GPU host, in tokens.',
  labelNames: ['model'] as const,
  buckets: TOKEN_COUNT_BUCKETS,
  registers,
});

const cachedPromptTokens = new Counter({
  name: 'fleet_prompt_cached_tokens_total',
  help: 'Prompt tokens a GPU host did not evaluate because a context sequence already held them (prefix reuse), by model.',
  labelNames: ['model'] as const,
  registers,
});

const requestErrors = new Counter({
  name: 'fleet_request_errors_total',
  help: 'Inference API requests answered with an error envelope — refused before dispatch (400, 401, 404, 413, 429) or failed after — by endpoint, status and code.',
  labelNames: ['endpoint', 'status', 'code'] as const,
  registers,
});

const admissionRejections = new Counter({
  name: 'fleet_admission_rejections_total',
  help: 'Requests a GPU host refused at admission, by reason.',
  labelNames: ['reason'] as const,
  registers,
});

const coldLoads = new Counter({
  name: 'fleet_cold_loads_total',
  help: 'Model loads on a GPU host (a model already resident is not counted), by outcome.',
  labelNames: ['model', 'outcome'] as const,
  registers,
});

const coldLoadDuration = new Histogram({
  name: 'fleet_cold_load_duration_seconds',
  help: 'Successful model loads on a GPU host: file verification plus loading.',
  labelNames: ['model'] as const,
  buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
  registers,
});

const failovers = new Counter({
  name: 'fleet_failovers_total',
  help: 'Attempts of successful inference requests that moved on to another replica.',
  labelNames: ['model'] as const,
  registers,
});

const tokens = new Counter({
  name: 'fleet_tokens_total',
  help: 'Tokens of successful inference requests, by model and kind (prompt or completion).',
  labelNames: ['model', 'kind'] as const,
  registers,
});

const keyTokens = new Counter({
  name: 'fleet_key_tokens_total',
  help: 'Settled tokens per API key (and its account), by kind (prompt or completion); counted by the process that settled.',
  labelNames: ['account', 'key', 'kind'] as const,
  registers,
});

const budgetRefusals = new Counter({
  name: 'fleet_budget_refusals_total',
  help: 'Requests refused before dispatch by their key\'s budget, by reason (balance, window, exceeds_window).',
  labelNames: ['reason'] as const,
  registers,
});

export type EndpointLabel = 'chat' | 'completion' | 'embedding' | 'count_tokens';

/** One inference request answered by the API (any outcome). */
export function recordRequest(o: { endpoint: EndpointLabel; model: string; stream: boolean; status: number; seconds: number }): void {
  requestDuration.observe({ endpoint: o.endpoint, model: o.model, stream: String(o.stream), status: String(o.status) }, o.seconds);
}

/** The first text of a streamed answer reached the client. */
export function recordFirstText(o: { endpoint: EndpointLabel; model: string; seconds: number }): void {
  timeToFirstToken.observe({ endpoint: o.endpoint, model: o.model }, o.seconds);
}

/** An inference API request answered with an error envelope (`endpoint`: its route, or `other`). */
export function recordRequestError(o: { endpoint: string; status: number; code: string | null }): void {
  requestErrors.inc({ endpoint: o.endpoint, status: String(o.status), code: o.code ?? 'none' });
}

/** Usage and failovers of a successful inference request. */
export function recordInferenceResult(o: { model: string; promptTokens: number; completionTokens: number; failovers: number }): void {
  if (o.promptTokens > 0) tokens.inc({ model: o.model, kind: 'prompt' }, o.promptTokens);
  if (o.completionTokens > 0) tokens.inc({ model: o.model, kind: 'completion' }, o.completionTokens);
  if (o.failovers > 0) failovers.inc({ model: o.model }, o.failovers);
}

/** A keyed request's usage was settled (by the API, or by the host for a cancelled generation). */
export function recordKeyTokens(o: { accountId: string; keyId: string; promptTokens: number; completionTokens: number }): void {
  const labels = { account: o.accountId, key: o.keyId };
  // inc(0) still creates the series, so a key shows up from its first settled request.
  keyTokens.inc({ ...labels, kind: 'prompt' }, o.promptTokens);
  keyTokens.inc({ ...labels, kind: 'completion' }, o.completionTokens);
}

export function recordBudgetRefusal(reason: 'balance' | 'window' | 'exceeds_window'): void {
  budgetRefusals.inc({ reason });
}

/** One generation through a provider (whole call); nothing is recorded for an empty or instantaneous one. */
export function recordGeneration(model: string, completionTokens: number, seconds: number): void {
  if (completionTokens > 0 && seconds > 0) tokensPerSecond.observe({ model }, completionTokens / seconds);
}

/** One generation on a GPU host, by phase (see GenerationTimings). */
export function recordHostGeneration(model: string, t: { queueSeconds: number; prefillSeconds: number; decodeSeconds: number; promptTokens: number; completionTokens: number; cachedTokens: number }): void {
  const labels = { model };
  cachedPromptTokens.inc(labels, t.cachedTokens);
  queueTime.observe(labels, t.queueSeconds);
  prefillTime.observe(labels, t.prefillSeconds);
  promptLength.observe(labels, t.promptTokens);
  completionLength.observe(labels, t.completionTokens);
  if (t.completionTokens >= 2 && t.decodeSeconds > 0) {
    timePerOutputToken.observe(labels, t.decodeSeconds / (t.completionTokens - 1));
    tokensPerSecond.observe(labels, (t.completionTokens - 1) / t.decodeSeconds);
  }
}

export function recordAdmissionRejection(reason: RejectReason): void {
  admissionRejections.inc({ reason });
}

/** A model load on a GPU host; the duration is observed for successful loads only. */
export function recordColdLoad(model: string, outcome: 'ok' | 'failed', seconds: number): void {
  coldLoads.inc({ model, outcome });
  if (outcome === 'ok') coldLoadDuration.observe({ model }, seconds);
}

// ---- exposition ----

export async function renderMetrics(): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}

/**
 * Whether a scrape may read the metrics: always without FLEET_METRICS_TOKEN, else only with
 * `Authorization: Bearer <token>` (host ids, pools and models are topology an operator may
 * keep from whoever can reach the port; Prometheus sends it with `authorization.credentials`).
 */
export function metricsAllowed(authorization: string | undefined, token: string | undefined): boolean {
  if (token === undefined) return true;
  const presented = authorization?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
  return presented !== undefined && tokensEqual(presented, token);
}

export const METRICS_UNAUTHORIZED = 'metrics need the metrics token: send "Authorization: Bearer <FLEET_METRICS_TOKEN>"\n';

export interface MetricsServer {
  /** Base URL; the metrics are at `${url}/metrics`. */
  url: string;
  close(): Promise<void>;
}

/**
 * A bare `GET /metrics` server for processes without the API (split GPU-host and
 * control-plane workers), so Prometheus can scrape every process of a deployment.
 */
export async function serveMetrics(o: { port: number; host: string; token?: string; log?: Logger }): Promise<MetricsServer> {
  const { log } = o;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found: try GET /metrics\n');
      return;
    }
    if (!metricsAllowed(req.headers.authorization, o.token)) {
      res.writeHead(401, { 'Content-Type': 'text/plain; charset=utf-8', 'WWW-Authenticate': 'Bearer' }).end(METRICS_UNAUTHORIZED);
      return;
    }
    renderMetrics().then(
      ({ contentType, body }) => res.writeHead(200, { 'Content-Type': contentType }).end(req.method === 'HEAD' ? undefined : body),
      (err: Error) => {
        log?.warn({ err: err.message }, 'metrics: rendering failed');
        res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('metrics unavailable\n');
      },
    );
  });
  const listening = await listen(server, o.host, o.port);
  log?.info({ url: `${listening.url}/metrics` }, 'metrics listening');
  return listening;
}
