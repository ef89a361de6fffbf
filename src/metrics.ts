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
 * The fleet-state gauges (running/queued per host and model, host health, per-pool figures)
 * are not pushed by anyone: they are read from the database when scraped (`watchFleetHosts`),
 * so every API replica reports the same fleet-wide picture and a host that went away simply
 * vanishes.
 */
import http from 'node:http';
import { listen } from './httpListen.js';
import type { Kysely } from 'kysely';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { tokensEqual } from './api/apiKey.js';
import { readFleetHosts } from './db/fleetStateRepo.js';
import { summarizePools, type PoolSummary } from './domain/poolSummary.js';
import type { RejectReason } from './domain/admission.js';
import { isHostHealthy } from './domain/health.js';
import { isDemoted, type DemotionPolicy } from './domain/replicas.js';
import { readReplicaFailures } from './db/replicaHealthRepo.js';
import type { Database } from './db/schema.js';
import type { Logger } from './logger.js';

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'fleet_' });
// prom-client's totals of handles, requests and resources are gauges named `*_total`, which
// the exposition rules reserve for counters (`promtool check metrics` fails them): dropped.
// The same numbers are `sum(fleet_nodejs_active_handles)` etc. over the per-type gauges.
for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total']) registry.removeSingleMetric(`fleet_nodejs_${name}`);

const registers = [registry];

// Buckets: an inference request spans milliseconds (a refusal) to minutes (a cold load
// followed by a long answer); load times span a tiny test model to tens of GB.
const requestDuration = new Histogram({
  name: 'fleet_request_duration_seconds',
  help: 'Inference requests through the API, from arrival to the last byte, by endpoint, streaming and HTTP status.',
  labelNames: ['endpoint', 'stream', 'status'] as const,
  buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
  registers,
});

const timeToFirstToken = new Histogram({
  name: 'fleet_time_to_first_token_seconds',
  help: 'Streaming requests: time from arrival at the API to the first text written to the client.',
  labelNames: ['endpoint'] as const,
  buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  registers,
});

const tokensPerSecond = new Histogram({
  name: 'fleet_tokens_per_second',
  help: 'Completion tokens per second of one generation on a GPU host (wall time of the generation, admission wait included).',
  labelNames: ['model'] as const,
  buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2500],
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
export function recordRequest(o: { endpoint: EndpointLabel; stream: boolean; status: number; seconds: number }): void {
  requestDuration.observe({ endpoint: o.endpoint, stream: String(o.stream), status: String(o.status) }, o.seconds);
}

/** The first text of a streamed answer reached the client. */
export function recordFirstText(endpoint: EndpointLabel, seconds: number): void {
  timeToFirstToken.observe({ endpoint }, seconds);
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

/** One generation on a GPU host; nothing is recorded for an empty or instantaneous one. */
export function recordGeneration(model: string, completionTokens: number, seconds: number): void {
  if (completionTokens > 0 && seconds > 0) tokensPerSecond.observe({ model }, completionTokens / seconds);
}

export function recordAdmissionRejection(reason: RejectReason): void {
  admissionRejections.inc({ reason });
}

/** A model load on a GPU host; the duration is observed for successful loads only. */
export function recordColdLoad(model: string, outcome: 'ok' | 'failed', seconds: number): void {
  coldLoads.inc({ model, outcome });
  if (outcome === 'ok') coldLoadDuration.observe({ model }, seconds);
}

// ---- fleet state, read from the hosts table at scrape time ----

interface HostSnapshot {
  host: string;
  healthy: boolean;
  models: Record<string, { running: number; queued: number }>;
}

/** What one scrape reads: per host (health, load) and per pool, from one fleet read. */
interface FleetSnapshot {
  hosts: HostSnapshot[];
  pools: PoolSummary[];
  /** Replicas with failures in a row (hosts and providers), for demotion. */
  replicas: Array<{ replica: string; failures: number; demoted: boolean }>;
}

type FleetSource = () => Promise<FleetSnapshot>;

const fleetSources = new Set<FleetSource>();
let pendingSnapshot: Promise<FleetSnapshot> | undefined;

/**
 * The registry collects all metrics of a scrape in parallel, so the gauges below start their
 * collect() in the same tick: they share one in-flight read instead of a query each.
 */
function fleetSnapshot(): Promise<FleetSnapshot> {
  pendingSnapshot ??= Promise.all([...fleetSources].map((source) => source()))
    .then((all) => ({ hosts: all.flatMap((s) => s.hosts), pools: all.flatMap((s) => s.pools), replicas: all.flatMap((s) => s.replicas) }))
    .finally(() => {
      pendingSnapshot = undefined;
    });
  return pendingSnapshot;
}

new Gauge({
  name: 'fleet_host_healthy',
  help: 'Whether a registered GPU host is healthy (1) or not (0): down, or 3 heartbeats missed in a row.',
  labelNames: ['host'] as const,
  registers,
  async collect() {
    const { hosts } = await fleetSnapshot();
    // Reset first: a host removed from the table must vanish, not keep its last value.
    this.reset();
    for (const h of hosts) this.set({ host: h.host }, h.healthy ? 1 : 0);
  },
});

/**
 * Only healthy hosts report load: a host that stopped heartbeating left its last figures in
 * the table, and summing those stale numbers would show work nobody is doing.
 */
function loadGauge(name: string, help: string, pick: (l: { running: number; queued: number }) => number): void {
  new Gauge({
    name,
    help,
    labelNames: ['host', 'model'] as const,
    registers,
    async collect() {
      const { hosts } = await fleetSnapshot();
      this.reset();
      for (const h of hosts) {
        if (!h.healthy) continue;
        for (const [model, load] of Object.entries(h.models)) this.set({ host: h.host, model }, pick(load));
      }
    },
  });
}
loadGauge('fleet_running_requests', 'Requests generating on a healthy GPU host, per model (from its last heartbeat).', (l) => l.running);
loadGauge('fleet_queued_requests', 'Requests waiting for a slot on a healthy GPU host, per model (from its last heartbeat).', (l) => l.queued);

/** Per-pool gauges (label `pool` = the alias), from the same summary as `GET /admin/pools`. */
function poolGauge(name: string, help: string, pick: (p: PoolSummary) => number | null): void {
  new Gauge({
    name,
    help,
    labelNames: ['pool'] as const,
    registers,
    async collect() {
      const { pools } = await fleetSnapshot();
      this.reset();
      for (const p of pools) {
        const v = pick(p);
        if (v !== null) this.set({ pool: p.alias }, v);
      }
    },
  });
}
poolGauge('fleet_pool_hosts', 'Healthy hosts in a model pool.', (p) => p.healthy);
poolGauge('fleet_pool_loaded_hosts', 'Healthy hosts of a pool with one of its builds loaded.', (p) => p.loaded);
poolGauge('fleet_pool_min_warm', "The pool's configured min_warm.", (p) => p.minWarm);
poolGauge('fleet_pool_running_requests', 'Requests generating in a pool.', (p) => p.running);
poolGauge('fleet_pool_queued_requests', 'Requests queued in a pool.', (p) => p.queued);
poolGauge('fleet_pool_capacity_left', 'Free slots and queue places on the loaded hosts of a pool.', (p) => p.capacityLeft);

new Gauge({
  name: 'fleet_replica_consecutive_failures',
  help: 'Failures in a row of a replica (host:<id> or provider:<id>); 0 ones are not listed.',
  labelNames: ['replica'] as const,
  registers,
  async collect() {
    const { replicas } = await fleetSnapshot();
    this.reset();
    for (const r of replicas) this.set({ replica: r.replica }, r.failures);
  },
});
new Gauge({
  name: 'fleet_replica_demoted',
  help: 'A replica demoted behind the next tier after FLEET_DEMOTE_AFTER failures in a row (1), until it succeeds again.',
  labelNames: ['replica'] as const,
  registers,
  async collect() {
    const { replicas } = await fleetSnapshot();
    this.reset();
    for (const r of replicas) this.set({ replica: r.replica }, r.demoted ? 1 : 0);
  },
});

/**
 * Makes the fleet-state gauges read this database's hosts and pools at each scrape; returns
 * the function that stops it (a stopped stack's closed database must not break later scrapes).
 * A failed read is logged and skipped, so one bad source never fails the whole scrape.
 */
export function watchFleetHosts(o: {
  db: Kysely<Database>;
  heartbeatIntervalMs: number;
  pools: { enabled: boolean; cooldownMs: number };
  demotion: DemotionPolicy;
  log: Logger;
}): () => void {
  const source: FleetSource = async () => {
    try {
      const [{ hosts, pools }, failures] = await Promise.all([readFleetHosts(o.db), readReplicaFailures(o.db)]);
      const now = Date.now();
      return {
        hosts: hosts.map((h) => ({ host: h.id, healthy: isHostHealthy(h, now, o.heartbeatIntervalMs), models: h.load })),
        pools: summarizePools(hosts, { ...pools, ...o.pools }, now, o.heartbeatIntervalMs).pools,
        replicas: Object.entries(failures).map(([replica, h]) => ({ replica, failures: h.consecutiveFailures, demoted: isDemoted(h, o.demotion, now) })),
      };
    } catch (err) {
      o.log.warn({ err: (err as Error).message }, 'metrics: reading the fleet failed');
      return { hosts: [], pools: [], replicas: [] };
    }
  };
  fleetSources.add(source);
  return () => {
    fleetSources.delete(source);
  };
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
