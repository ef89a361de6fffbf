/**
 * Assembles the processes of DESIGN.md from their parts, so `fleet dev`, the split commands,
 * the tests and the benchmarks all start the same real stack: Temporal (an address, or a dev
 * server we own), Postgres or PGlite with migrations, the stream channel, the control-plane
 * worker, GPU-host workers and the API. `stop()` tears down in reverse order, once.
 * Metrics: the API serves `/metrics` (and the fleet-state gauges read this stack's database);
 * a stack without the API serves them on `metricsPort` when one is given.
 */
import { ModelCatalog } from './api/catalog.js';
import { startFleetSnapshot, type FleetSnapshot } from './api/fleetSnapshot.js';
import { KeyResolver } from './api/keyResolver.js';
import { startApiServer, type ApiServer } from './api/server.js';
import type { FleetConfig } from './config.js';
import { openDatabase, type DbHandle } from './db/connect.js';
import { migrateToLatest } from './db/migrate.js';
import type { Logger } from './logger.js';
import { serveMetrics, type MetricsServer } from './metrics.js';
import { watchFleetHosts } from './fleetMetrics.js';
import { createPgStreamChannel, type StreamChannel } from './stream/channel.js';
import { findTemporalBinary } from './temporal/binary.js';
import { connectTemporal, ensureSearchAttributes, type TemporalHandle } from './temporal/connect.js';
import { payloadCodecFor } from './temporal/payloadKeys.js';
import { startDevServer, type DevServer } from './temporal/devServer.js';
import { installTemporalLogging } from './temporal/runtimeLogging.js';
import { startControlPlaneWorker } from './workers/controlPlane.js';
import { startGpuHostWorker, type RunningWorker } from './workers/gpuHost.js';
import { startProviderWorker } from './workers/provider.js';

export interface StackOptions {
  config: FleetConfig;
  log: Logger;
  /** `fleet dev`: generate a payload key into the data folder when none is configured. */
  generatePayloadKey?: boolean;
  /** Start a dev server when `config.temporal.address` is unset. */
  devServer?: { uiPort: number | null; port: number; persist: boolean; uiCodecEndpoint?: string };
  /** Database: `config.databaseUrl`, else PGlite in this folder (undefined: in memory). */
  pgliteDir?: string;
  controlPlane?: boolean;
  /** Run a provider worker in this process. @default controlPlane && FLEET_PROVIDER_WORKER */
  providerWorker?: boolean;
  /** GPU-host workers to run in this process. */
  hostIds?: string[];
  api?: { host: string; port: number } | false;
  /**
   * Port of a bare `/metrics` server (on `config.http.host`; 0 = any free port). Used only
   * when this stack runs no API — the API serves `/metrics` itself. Unset: no server.
   */
  metricsPort?: number;
}

export interface Stack {
  config: FleetConfig;
  temporal: TemporalHandle;
  db: DbHandle;
  channel: StreamChannel;
  devServer?: DevServer;
  api?: ApiServer;
  /** The API's fleet snapshot (absent without an API, or when its LISTEN failed). */
  fleet?: FleetSnapshot;
  /** The bare metrics server, when `metricsPort` was given and there is no API. */
  metrics?: MetricsServer;
  hosts: Map<string, RunningWorker>;
  stop(): Promise<void>;
}

export async function startStack(o: StackOptions): Promise<Stack> {
  const { config, log } = o;
  const cleanups: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const c of cleanups.splice(0).reverse()) {
      await c().catch((err: Error) => log.warn({ err: err.message }, 'shutdown step failed'));
    }
  };
  try {
    installTemporalLogging(log);
    let address = config.temporal.address;
    let devServer: DevServer | undefined;
    if (!address) {
      const binary = await findTemporalBinary({ cliPath: config.temporal.cliPath, toolsDir: config.toolsDir, log });
      const ds = o.devServer ?? { uiPort: config.temporal.uiPort, port: config.temporal.devPort, persist: true };
      devServer = await startDevServer({
        binary,
        port: ds.port,
        uiPort: ds.uiPort,
        namespace: config.temporal.namespace,
        dbFile: ds.persist ? `${config.dataDir}/temporal.db` : undefined,
        ...(ds.uiCodecEndpoint ? { uiCodecEndpoint: ds.uiCodecEndpoint } : {}),
        log,
      });
      cleanups.push(() => devServer!.stop());
      address = devServer.address;
    }
    const codec = await payloadCodecFor(config, { generate: o.generatePayloadKey === true, log });
    const temporal = await connectTemporal(address, config.temporal.namespace, codec);
    cleanups.push(() => temporal.close());
    await ensureSearchAttributes(temporal, log);

    const db = await openDatabase({ databaseUrl: config.databaseUrl, pgliteDir: o.pgliteDir, log });
    cleanups.push(() => db.close());
    await migrateToLatest(db.db, log);
    const channel = createPgStreamChannel(db, log.child({ component: 'stream' }));
    cleanups.push(() => channel.close());

    const hosts = new Map<string, RunningWorker>();
    if (o.controlPlane !== false) {
      const cp = await startControlPlaneWorker({
        temporal,
        db,
        heartbeatIntervalMs: config.heartbeatIntervalMs,
        pools: config.pools,
        demotion: config.providers.demotion,
        secrets: config.secrets,
        prefixRouting: config.prefixRouting,
        providers: { fromConfig: config.file?.providers, refreshIntervalS: config.providers.refreshIntervalS },
        log,
      });
      cleanups.push(() => cp.stop());
    }
    if (o.providerWorker ?? (o.controlPlane !== false && config.providers.workerInControlPlane)) {
      const pw = await startProviderWorker({ temporal, db, channel, secrets: config.secrets, quotes: config.providers.quotes, log });
      cleanups.push(() => pw.stop());
    }
    for (const hostId of o.hostIds ?? []) {
      const h = await startGpuHostWorker({
        hostId,
        temporal,
        db,
        channel,
        threads: config.llama.threads,
        gpu: config.llama.gpu,
        admission: config.admission,
        maxModelSlots: config.maxModelSlots,
        modelsDir: config.modelsDir,
        dataDir: config.dataDir,
        heartbeatIntervalMs: config.heartbeatIntervalMs,
        testGatesDir: config.testGatesDir,
        loadProbe: config.loadProbe,
        log,
      });
      hosts.set(hostId, h);
      cleanups.push(() => h.stop());
    }
    let api: ApiServer | undefined;
    let fleet: FleetSnapshot | undefined;
    if (o.api) {
      const routeConfig = { heartbeatIntervalMs: config.heartbeatIntervalMs, pools: { enabled: config.pools.enabled, cooldownMs: config.pools.cooldownMs }, demotion: config.providers.demotion, secrets: config.secrets, prefixRouting: config.prefixRouting };
      // Without it (its LISTEN failed) every request routes in its workflow, as it always could.
      fleet = await startFleetSnapshot({ db, config: routeConfig, log }).catch((err: Error) => {
        log.warn({ err: err.message }, 'fleet snapshot unavailable: requests route in their workflow');
        return undefined;
      });
      const started = fleet;
      if (started) cleanups.push(() => started.close());
      api = await startApiServer({
        fleet,
        host: o.api.host,
        port: o.api.port,
        client: temporal.client,
        channel,
        db: db.db,
        catalog: new ModelCatalog(db.db),
        log,
        requireAuth: config.requireAuth,
        adminToken: config.adminToken,
        metricsToken: config.metricsToken,
        keys: new KeyResolver(db.db),
        budgets: config.budgets,
        modelsDir: config.modelsDir,
        heartbeatIntervalMs: config.heartbeatIntervalMs,
        pools: config.pools,
        bodyLimitBytes: config.http.bodyLimitBytes,
        codec: temporal.codec,
        codecCorsOrigins: config.codecCorsOrigins,
        corsOrigins: config.corsOrigins,
        secrets: config.secrets,
        demotion: config.providers.demotion,
      });
      cleanups.push(() => api!.close());
      const unwatch = watchFleetHosts({ db: db.db, heartbeatIntervalMs: config.heartbeatIntervalMs, pools: config.pools, demotion: config.providers.demotion, log });
      cleanups.push(async () => unwatch());
    }
    let metrics: MetricsServer | undefined;
    if (!o.api && o.metricsPort !== undefined) {
      metrics = await serveMetrics({ port: o.metricsPort, host: config.http.host, token: config.metricsToken, log });
      cleanups.push(() => metrics!.close());
    }
    return { config, temporal, db, channel, devServer, api, ...(fleet ? { fleet } : {}), metrics, hosts, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
