/**
 * Operator endpoints: register a GGUF file in the catalog (its sha256 is recorded, so hosts
 * can refuse a file that differs), list the hosts with their health, slots and placements
 * (what `fleet status` shows), and load a model onto a chosen host ahead of traffic — the
 * same `coldLoad` workflow a request would start, so an operator's load and a request's
 * load for the same (host, model) are one load. A model marked verifiable gets a pin-set
 * refresh Schedule; a discovery cycle can also be run at once and its outcome returned.
 */
import { Router } from 'express';
import { z } from 'zod';
import path from 'node:path';
import { inspectModelFile } from '../../model/ggufInspect.js';
import { sha256File } from '../../activities/fileHash.js';
import { HOST_ID_PATTERN, HOST_ID_RULE } from '../../config.js';
import { getHost, listHosts } from '../../db/hostsRepo.js';
import { listPlacements } from '../../db/placementsRepo.js';
import { listQuarantined, registerModel, releaseBuild, type QuarantinedBuild } from '../../db/modelsRepo.js';
import { setRemoteBuildActive } from '../../db/providersRepo.js';
import { readReplicaFailures } from '../../db/replicaHealthRepo.js';
import { isDemoted, type DemotionPolicy } from '../../domain/replicas.js';
import { PlacementState } from '../../db/schema.js';
import { isHostHealthy, missedHeartbeats } from '../../domain/health.js';
import { startColdLoad } from '../../temporal/coldLoadStarter.js';
import { ApiError, fromWorkflowFailure, hostNotFound, invalidRequest, modelNotFound } from '../errors.js';
import type { ApiDeps } from '../callExecutor.js';
import { parseOr400, patchModelBody, registerModelBody, type PatchModelBody } from '../schemas.js';
import { setAlias } from '../../db/aliasesRepo.js';
import { readFleetHosts } from '../../db/fleetStateRepo.js';
import { poolForLoad, seedPool, servableBuilds } from '../../domain/pools.js';
import { setHostPool } from '../../db/poolsRepo.js';
import { startPoolReassign, startWarmPoolsNow } from '../../temporal/poolStarters.js';
import { setModelVerifiable } from '../../db/pinSetsRepo.js';
import { deleteDiscoverySchedule, startDiscoveryCycle, upsertDiscoverySchedule } from '../../temporal/discovery.js';

export interface AdminDeps extends ApiDeps {
  modelsDir: string;
  /** Failures in a row before a replica is demoted (what the lists call demoted). */
  demotion: DemotionPolicy;
  heartbeatIntervalMs: number;
  /** Pool enforcement (the kill switch) and the planner's cool-down. */
  pools: { enabled: boolean; cooldownMs: number };
}

/** Sets an alias's builds or min_warm, then runs the planner at once (a rollout starts now). */
async function patchAlias(deps: AdminDeps, id: string, body: PatchModelBody): Promise<Record<string, unknown>> {
  const result = await setAlias(deps.db, { id, desired: body.desired, previous: body.previous, minWarm: body.min_warm });
  if (result.kind === 'desired_required') {
    throw invalidRequest(`There is no alias '${id}' yet: give its desired build.`, 'desired');
  }
  if (result.kind === 'unknown_build') {
    throw new ApiError(404, `The build '${result.build}' is not in the catalog.`, 'invalid_request_error', 'model_not_found', result.param);
  }
  deps.catalog.invalidate();
  const a = result.alias;
  deps.log.info({ alias: a.id, desired: a.desired_build, previous: a.previous_build, minWarm: a.min_warm }, 'alias set');
  await startWarmPoolsNow(deps.client).catch((err: Error) => deps.log.warn({ err: err.message }, 'could not start the planner'));
  return { desired: a.desired_build, previous: a.previous_build, min_warm: a.min_warm, created: result.created };
}

/** An operator's load onto a host of another pool: the host moves into the build's pool. */
async function moveForLoad(deps: AdminDeps, o: { host: string; alias: string; build: string }): Promise<Record<string, unknown>> {
  let result;
  try {
    // Attaches to a move of this host already running (same id), as a load attaches to a load.
    result = await (await startPoolReassign(deps.client, { hostId: o.host, toAlias: o.alias, reason: 'operator' }, true)).result();
  } catch (err) {
    throw fromWorkflowFailure(err, o.build);
  }
  deps.log.info({ host: o.host, model: o.build, from: result.fromAlias, alias: result.toAlias }, 'operator load moved the host');
  return { host: result.hostId, model: result.build, evicted: result.unloaded, moved_from: result.fromAlias, pool: result.toAlias };
}

/** Path parameters of the load endpoint, with the same rules as registration and config. */
const loadParams = z.object({
  host: z.string().regex(HOST_ID_PATTERN, HOST_ID_RULE),
  model: registerModelBody.shape.id,
});

/** Placements that hold (or are taking) one of the host's model slots. */
const OCCUPIES_SLOT: ReadonlySet<string> = new Set([PlacementState.Loaded, PlacementState.Loading]);

/** A quarantined build as the admin endpoints show it. */
export const snakeQuarantine = (q: QuarantinedBuild) => ({ build: q.id, reason: q.reason, host: q.hostId, since: q.since });

export function adminRoutes(deps: AdminDeps): Router {
  const r = Router();

  r.post('/admin/models', async (req, res) => {
    const body = parseOr400(registerModelBody, req.body ?? {});
    const file = path.resolve(deps.modelsDir, body.path);
    // Header and tensor index checked before anything is recorded: a file that would abort
    // llama.cpp on every host is refused here, by name (src/domain/ggufCheck.ts).
    const inspected = await inspectModelFile(file);
    if (!inspected.ok) throw invalidRequest(`The model file cannot be served: ${inspected.problem}.`, 'path', 'invalid_model_file');
    const trained = inspected.facts.trainedContextLength;
    const contextLength = body.context_length ?? trained;
    if (!contextLength) throw invalidRequest('context_length is required: the file does not declare one.', 'context_length');
    if (trained && contextLength > trained) {
      throw invalidRequest(`context_length ${contextLength} exceeds the model's trained context (${trained}).`, 'context_length');
    }
    const { sha256, sizeBytes } = await sha256File(file);
    const row = await registerModel(deps.db, { id: body.id, path: file, sha256, sizeBytes, contextLength, alias: body.alias });
    deps.catalog.invalidate();
    deps.log.info({ model: row.id, sizeBytes }, 'model registered');
    res.status(201).json({
      id: row.id,
      object: 'model',
      path: row.path,
      sha256: row.sha256,
      size_bytes: Number(row.size_bytes),
      context_length: row.context_length,
      alias: body.alias === false ? null : (body.alias ?? row.id),
    });
  });

  // Every build, of both kinds (a GGUF file, or a provider's model), with its aliases.
  r.get('/admin/models', async (_req, res) => {
    const aliases = [...(await deps.catalog.all()).values()];
    const builds = await deps.catalog.builds();
    res.json({
      object: 'list',
      data: [...builds.values()].map((b) => ({
        id: b.id,
        object: 'model',
        kind: b.kind,
        context_length: b.contextLength,
        aliases: aliases.filter((a) => a.build === b.id || a.previous === b.id).map((a) => a.id),
        ...(b.kind === 'gguf'
          ? { path: b.path, sha256: b.sha256, size_bytes: b.sizeBytes }
          : { provider: b.providerId, upstream_model: b.upstreamModel, canonical_id: b.canonicalId, active: b.active }),
      })),
    });
  });

  r.get('/admin/hosts', async (_req, res) => {
    const now = Date.now();
    const [hosts, placements, quarantined, failing] = await Promise.all([listHosts(deps.db), listPlacements(deps.db, {}), listQuarantined(deps.db), readReplicaFailures(deps.db)]);
    res.json({
      object: 'list',
      quarantined: quarantined.map(snakeQuarantine),
      // Replicas (hosts and providers) failing in a row, and whether that demoted them.
      replicas: Object.entries(failing).map(([replica, h]) => ({
        replica,
        consecutive_failures: h.consecutiveFailures,
        last_failure_at: h.lastFailureAt !== undefined ? new Date(h.lastFailureAt).toISOString() : null,
        demoted: isDemoted(h, deps.demotion, now),
      })),
      data: hosts.map((h) => {
        const last = new Date(h.last_heartbeat_at).toISOString();
        const mine = placements.filter((p) => p.host_id === h.id);
        return {
          id: h.id,
          task_queue: h.task_queue,
          status: h.status,
          healthy: isHostHealthy({ status: h.status, lastHeartbeatAt: last, ...(h.suspect_since ? { suspect: true } : {}) }, now, deps.heartbeatIntervalMs),
          suspect: h.suspect_since !== null,
          missed_heartbeats: missedHeartbeats(last, now, deps.heartbeatIntervalMs),
          last_heartbeat_at: last,
          info: h.info,
          stats: h.stats,
          slots: { used: mine.filter((p) => OCCUPIES_SLOT.has(p.state)).length, total: h.info.maxModelSlots ?? null },
          placements: mine.map((p) => ({
            model: p.model_id,
            state: p.state,
            progress: p.progress,
            error: p.error,
            // From the host's last heartbeat; 0 for a model it does not report.
            running: h.stats.models[p.model_id]?.running ?? 0,
            queued: h.stats.models[p.model_id]?.queued ?? 0,
          })),
        };
      }),
    });
  });

  r.post('/admin/hosts/:hostId/models/:modelId/load', async (req, res) => {
    const { host, model: modelId } = parseOr400(loadParams, { host: req.params.hostId, model: req.params.modelId });
    // A build by its id, or an alias's desired build.
    const entry = await deps.catalog.resolveBuild(modelId);
    if (!entry) throw modelNotFound(modelId);
    const build = entry.id;
    if (entry.kind !== 'gguf') {
      throw invalidRequest(`'${modelId}' is served by a remote provider: there is nothing to load on a host.`, 'model');
    }
    if (!(await getHost(deps.db, host))) throw hostNotFound(host);
    if (deps.pools.enabled) {
      const pools = { ...(await readFleetHosts(deps.db)).pools, ...deps.pools };
      let served = pools.aliases.filter((a) => servableBuilds(pools, host, a).includes(build));
      if (!pools.hostPools[host]) {
        // A host not seeded yet (no heartbeat since the build was registered): loading a
        // build puts it in that build's pool, as running it would have.
        const seed = seedPool({ hostId: host, running: [build], advertised: [], aliases: pools.aliases, poolSizes: {} });
        if (seed) {
          await setHostPool(deps.db, { hostId: host, alias: seed.alias, state: 'serving', source: 'running', onlyIfAbsent: true });
          served = pools.aliases.filter((a) => a.id === seed.alias);
        }
      }
      if (served.length === 0) {
        // Loading a build onto a host of another pool is asking for the move: the same
        // poolReassign as `fleet pools move` (refused, with the reason, if the host is busy).
        const into = poolForLoad(pools.aliases, { requested: modelId, build });
        if (!into) {
          const pool = pools.hostPools[host]?.alias ?? 'none';
          throw new ApiError(
            409,
            `Host '${host}' serves the pool '${pool}', and no alias serves '${build}' as its desired build: point one at it first (fleet models alias <alias> --desired ${build}).`,
            'invalid_request_error',
            'host_not_in_pool',
            'host',
          );
        }
        res.json(await moveForLoad(deps, { host, alias: into, build }));
        return;
      }
    }
    let result;
    try {
      // Waits for the load however long it takes; a client that leaves does not cancel it
      // (requests may be attached to the same load).
      result = await (await startColdLoad(deps.client, { hostId: host, modelId: build })).result();
    } catch (err) {
      throw fromWorkflowFailure(err, build);
    }
    deps.log.info({ host, model: build, evicted: result.evicted }, 'operator load done');
    res.json({ host: result.hostId, model: result.modelId, evicted: result.evicted });
  });

  r.patch('/admin/models/:modelId', async (req, res) => {
    const id = registerModelBody.shape.id.safeParse(req.params.modelId);
    if (!id.success) throw invalidRequest('The model id is malformed.', 'id');
    const body = parseOr400(patchModelBody, req.body ?? {});
    const out: Record<string, unknown> = { id: id.data, object: 'model' };
    if (body.desired !== undefined || body.previous !== undefined || body.min_warm !== undefined) {
      Object.assign(out, await patchAlias(deps, id.data, body));
    }
    if (body.active !== undefined) {
      if (!(await setRemoteBuildActive(deps.db, id.data, body.active))) {
        throw invalidRequest(`'${id.data}' is not a remote build: only a provider's models are activated.`, 'active');
      }
      deps.catalog.invalidate();
      deps.log.info({ build: id.data, active: body.active }, 'remote build activation set');
      Object.assign(out, { active: body.active });
    }
    if (body.verifiable !== undefined) {
      const intervalS = body.discovery_interval_s ?? 300;
      if (!(await setModelVerifiable(deps.db, id.data, body.verifiable, intervalS))) throw modelNotFound(id.data);
      deps.catalog.invalidate();
      const schedule = body.verifiable
        ? await upsertDiscoverySchedule(deps.client, id.data, intervalS, { runNow: true })
        : (await deleteDiscoverySchedule(deps.client, id.data))
          ? 'deleted'
          : 'none';
      deps.log.info({ model: id.data, verifiable: body.verifiable, intervalS, schedule }, 'model verifiability set');
      Object.assign(out, { verifiable: body.verifiable, discovery_interval_s: intervalS, schedule });
    }
    res.json(out);
  });

  // Lifts a build's quarantine (after the operator fixed or replaced its file).
  r.post('/admin/models/:modelId/release', async (req, res) => {
    const id = registerModelBody.shape.id.safeParse(req.params.modelId);
    if (!id.success) throw invalidRequest('The model id is malformed.', 'id');
    const released = await releaseBuild(deps.db, id.data);
    if (!released.found) throw modelNotFound(id.data);
    deps.catalog.invalidate();
    deps.log.warn({ model: id.data, wasQuarantined: released.wasQuarantined }, 'build released from quarantine');
    res.json({ id: id.data, object: 'model', quarantined: false, was_quarantined: released.wasQuarantined });
  });

  r.post('/admin/models/:modelId/discovery', async (req, res) => {
    const model = await deps.catalog.getBuild(String(req.params.modelId));
    if (!model || model.kind !== 'gguf') throw modelNotFound(String(req.params.modelId));
    const handle = await startDiscoveryCycle(deps.client, { modelId: model.id });
    let outcome;
    try {
      outcome = await handle.result();
    } catch (err) {
      throw fromWorkflowFailure(err, model.id);
    }
    res.json(outcome);
  });
  return r;
}
