/**
 * The fleet-state gauges: running/queued requests and KV cache usage per host and model, host
 * health, per-pool figures, replica failures. Nobody pushes them: they are read from the
 * database when scraped (`watchFleetHosts`), so every API replica reports the same fleet-wide
 * picture and a host that went away simply vanishes. On the registry of metrics.ts.
 */
import type { Kysely } from 'kysely';
import { Gauge } from 'prom-client';
import { readFleetHosts } from './db/fleetStateRepo.js';
import { listHosts } from './db/hostsRepo.js';
import { readReplicaFailures } from './db/replicaHealthRepo.js';
import type { Database } from './db/schema.js';
import { isHostHealthy } from './domain/health.js';
import { summarizePools, type PoolSummary } from './domain/poolSummary.js';
import { isDemoted, type DemotionPolicy } from './domain/replicas.js';
import type { Logger } from './logger.js';
import { registers } from './metrics.js';

interface HostSnapshot {
  host: string;
  healthy: boolean;
  models: Record<string, { running: number; queued: number }>;
  /** KV cache tokens used / capacity per model, as the host's last heartbeat reported them. */
  kv: Record<string, { used: number; capacity: number }>;
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
function hostModelGauge(name: string, help: string, valuesOf: (h: HostSnapshot) => Record<string, number>): void {
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
        for (const [model, v] of Object.entries(valuesOf(h))) this.set({ host: h.host, model }, v);
      }
    },
  });
}
const perModel = <T>(m: Record<string, T>, pick: (x: T) => number) => Object.fromEntries(Object.entries(m).map(([model, x]) => [model, pick(x)]));
hostModelGauge('fleet_running_requests', 'Requests generating on a healthy GPU host, per model (from its last heartbeat).', (h) => perModel(h.models, (l) => l.running));
hostModelGauge('fleet_queued_requests', 'Requests waiting for a slot on a healthy GPU host, per model (from its last heartbeat).', (h) => perModel(h.models, (l) => l.queued));
hostModelGauge(
  'fleet_kv_cache_usage_ratio',
  "KV cache usage of a model on a healthy GPU host: tokens its context sequences hold (each keeps its last prompt and answer) over what they can hold, from the host's last heartbeat.",
  (h) => perModel(h.kv, (kv) => kv.used / kv.capacity),
);

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
      const [{ hosts, pools }, failures, rows] = await Promise.all([readFleetHosts(o.db), readReplicaFailures(o.db), listHosts(o.db)]);
      const now = Date.now();
      const kvOf = (id: string) => {
        const models = rows.find((r) => r.id === id)?.stats.models ?? {};
        return Object.fromEntries(
          Object.entries(models).flatMap(([m, l]) => (l.kvTokensUsed !== undefined && l.kvTokensCapacity ? [[m, { used: l.kvTokensUsed, capacity: l.kvTokensCapacity }]] : [])),
        );
      };
      return {
        hosts: hosts.map((h) => ({ host: h.id, healthy: isHostHealthy(h, now, o.heartbeatIntervalMs), models: h.load, kv: kvOf(h.id) })),
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
