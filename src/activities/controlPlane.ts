/**
 * Control-plane activities: the only workflow steps that touch Postgres or start other
 * workflows. Run by the control-plane worker (reads of fleet state as local activities).
 */
import type { PrefixPolicy, RequestPrefix } from '../domain/prefixRouting.js';
import type { DemotionPolicy } from '../domain/replicas.js';
import { Context } from '@temporalio/activity';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Kysely } from 'kysely';
import type { AwaitColdLoadInput, ColdLoadResult } from '../common/coldLoad.js';
import type { PoolReassignInput, PoolReassignResult } from '../common/pools.js';
import { readCatalogViews, readFleetHosts } from '../db/fleetStateRepo.js';
import { markHostMoving, setHostDraining, setHostPool, type SetHostPoolInput } from '../db/poolsRepo.js';
import type { PlannerState } from '../domain/warmPools.js';
import { startPoolReassign } from '../temporal/poolStarters.js';
import { FailureType } from '../common/failures.js';
import { readFleetState } from '../db/fleetStateRepo.js';
import { deleteStaleWindowBuckets, releaseExpiredReservations } from '../db/budgetRepo.js';
import { claimModelLoad, setPlacementState } from '../db/placementsRepo.js';
import type { Database, PlacementState } from '../db/schema.js';
import type { FleetView } from '../domain/fleetView.js';
import { isHostHealthy } from '../domain/health.js';
import { attestableHosts } from '../domain/attestable.js';
import type { Logger } from '../logger.js';
import { startColdLoad } from '../temporal/coldLoadStarter.js';
import type { ServingHosts } from '../common/discovery.js';
import { reconcileAttestedSchedules } from '../temporal/attestedDiscovery.js';
import { countDiscoveryCycles, readPinRecord, readPinSet, recordDiscoveryCycle, type CycleRecord, type PinRecord } from '../db/pinSetsRepo.js';
import { recordReplicaOutcomes, type ReplicaOutcome } from '../db/replicaHealthRepo.js';
import { readRoutingSnapshot, routeViewFor } from '../db/routingSnapshot.js';
import { planRequest, type RouteOutcome } from '../domain/requestPlan.js';
import { listProviders, mergeRefresh } from '../db/providersRepo.js';
import type { Listing } from '../domain/providerCatalog.js';
import { markHostSuspect } from '../db/hostsRepo.js';
import { quarantineBuild } from '../db/modelsRepo.js';
import type { PinSet } from '../domain/pinSet.js';

export interface ControlPlaneDeps {
  db: Kysely<Database>;
  /** Needed to start and await shared `coldLoad` and `poolReassign` workflows. */
  client: Client;
  heartbeatIntervalMs: number;
  /** Pool enforcement (the kill switch) and the planner's cool-down, from config. */
  pools: { enabled: boolean; cooldownMs: number };
  /** When a failing replica is demoted (FLEET_DEMOTE_AFTER, FLEET_DEMOTE_RETRY_S). */
  demotion: DemotionPolicy;
  /** Provider API keys by variable name (whether one is set decides if a provider can be used). */
  secrets: { get(name: string): string | undefined };
  /** How hosts weigh prefix reuse against load (FLEET_PREFIX_*; absent: the defaults). */
  prefixRouting?: PrefixPolicy;
  log: Logger;
}

export interface RouteInput {
  alias: string;
  requestId: string;
  stream: boolean;
  /** Replica keys this request already tried. */
  exclude: string[];
  joinLoads: boolean;
  /** The request's conversation as block hashes, and its session key (absent: load only). */
  prefix?: RequestPrefix;
}

/** Failure types an awaited workflow's caller decides on: passed through as they are. */
const KEPT_TYPES: ReadonlySet<string> = new Set([FailureType.ReassignRefused, FailureType.ModelQuarantined, FailureType.LoadFailed, FailureType.Unavailable]);

/** A workflow awaited by an activity failed: its typed cause, re-thrown as this activity's failure. */
function rethrowWorkflowFailure(err: unknown, fallbackType: string): never {
  if (err instanceof WorkflowFailedError) {
    const cause = err.cause;
    const app = cause instanceof ApplicationFailure ? cause : undefined;
    // Passed through as received: its details are already the contract's (they came from typedFailure).
    throw ApplicationFailure.create({
      message: cause?.message ?? 'workflow failed',
      type: app?.type && KEPT_TYPES.has(app.type) ? app.type : fallbackType,
      nonRetryable: true,
      details: app?.details ? [...app.details] : undefined,
    });
  }
  throw err;
}

/** Waits for a started workflow while heartbeating; cancelling the wait never cancels it. */
async function awaitWithHeartbeats<T>(result: Promise<T>): Promise<T> {
  const ctx = Context.current();
  const beat = setInterval(() => ctx.heartbeat(), 5_000);
  try {
    // ctx.cancelled only ever rejects: a cancelled wait ends here, the workflow goes on.
    return await Promise.race([result, ctx.cancelled]);
  } finally {
    clearInterval(beat);
  }
}

export function createControlPlaneActivities(deps: ControlPlaneDeps) {
  const { db } = deps;
  return {
    /** The fleet as one alias (requests, reassignments) or one build (cold loads) sees it. */
    async readFleetState(id: string, by: 'alias' | 'build' = 'build'): Promise<FleetView> {
      const state = await readFleetState(db, id, by);
      return { ...state, pools: { ...state.pools, ...deps.pools }, heartbeatIntervalMs: deps.heartbeatIntervalMs };
    },

    /**
     * The route step: reads the alias's own fleet, its provider offers and replica health, and
     * returns the decision only (ranked attempts and why others were left out) — that is what
     * the workflow's history records, not the fleet.
     */
    async route(input: RouteInput): Promise<RouteOutcome> {
      let { view, consistent } = routeViewFor(await readRoutingSnapshot(db), input.alias, deps);
      // The alias changed between the parallel reads (a rollout began): read again, once.
      if (!consistent) ({ view } = routeViewFor(await readRoutingSnapshot(db), input.alias, deps));
      return planRequest(view, { now: Date.now(), requestId: input.requestId, stream: input.stream, exclude: input.exclude, joinLoads: input.joinLoads, ...(input.prefix ? { prefix: input.prefix } : {}) });
    },

    /** The providers a refresh asks: every enabled one. */
    async listRefreshTargets(): Promise<{ enabled: string[] }> {
      return { enabled: (await listProviders(db)).filter((p) => p.enabled).map((p) => p.id) };
    },

    /** Applies a refresh's answers: merge, or prune too when `complete` (see providerCatalog.ts). */
    async applyProviderListings(input: { listings: Listing[]; complete: boolean }) {
      const plan = await db.transaction().execute((tx) => mergeRefresh(tx, input.listings, input.complete));
      if (plan.remove.length || plan.aliases.remove.length) {
        deps.log.info({ removed: plan.remove, aliasesRemoved: plan.aliases.remove }, 'provider refresh pruned models');
      }
      // Attested builds that came or went get (or lose) their discovery Schedule now; a failure
      // here is retried by the next refresh and by every control-plane start.
      await reconcileAttestedSchedules(deps.client, db, deps.log).catch((err: Error) => deps.log.warn({ err: err.message }, 'could not reconcile attested discovery schedules'));
      return { added: plan.upsert.map((b) => b.id), removed: plan.remove, aliasesRemoved: plan.aliases.remove };
    },

    /** A request's attempts that changed a replica's failure count (the usual request has none). */
    async recordReplicaOutcomes(outcomes: ReplicaOutcome[]): Promise<void> {
      await recordReplicaOutcomes(db, outcomes);
    },

    /** Everything the warm-pool planner decides from: hosts, pools and every build. */
    async readPlannerState(): Promise<PlannerState> {
      const [{ hosts, pools }, builds] = await Promise.all([readFleetHosts(db), readCatalogViews(db)]);
      return { hosts, pools: { ...pools, ...deps.pools }, builds, heartbeatIntervalMs: deps.heartbeatIntervalMs };
    },

    /** Takes the host out of every pool for a move; false when a move is already under way. */
    async markHostMoving(hostId: string): Promise<boolean> {
      return markHostMoving(db, hostId);
    },

    async setHostPool(input: SetHostPoolInput): Promise<void> {
      await setHostPool(db, input);
    },

    /** Drains a host for a rollout step, or clears its drain (every drain: no hostId). */
    async setHostDraining(input: { hostId?: string; draining: boolean }): Promise<void> {
      await setHostDraining(db, input);
    },

    /**
     * Starts `poolReassign` for the host or joins the one running, and waits for it (the
     * on-demand path: a request whose pool is exhausted borrows an idle host).
     */
    async awaitPoolReassign(input: PoolReassignInput): Promise<PoolReassignResult> {
      const handle = await startPoolReassign(deps.client, input, true);
      try {
        return await awaitWithHeartbeats(handle.result());
      } catch (err) {
        rethrowWorkflowFailure(err, FailureType.LoadFailed);
      }
    },

    /**
     * The healthy hosts that serve the build or could (loaded, or its file present in their
     * pool; sorted), the catalog's sha256 and path of the build, and the cycle's index.
     */
    async countServingHosts(modelId: string): Promise<ServingHosts> {
      const view = await readFleetState(db, modelId);
      const model = view.model;
      const fleet: FleetView = { ...view, pools: { ...view.pools, ...deps.pools }, heartbeatIntervalMs: deps.heartbeatIntervalMs };
      const hostIds = model ? attestableHosts(fleet, { buildId: modelId, path: model.path, now: Date.now() }) : [];
      return { hostIds, sha256: model?.sha256 ?? null, ...(model ? { path: model.path } : {}), cycle: await countDiscoveryCycles(db, modelId) };
    },

    async readPinSet(modelId: string): Promise<PinSet> {
      return readPinSet(db, modelId);
    },

    /** An attested provider build's pin set, keys, last count and cycle number. */
    async readPinRecord(buildId: string): Promise<PinRecord> {
      return readPinRecord(db, buildId);
    },

    /** Stores a cycle's new pin set and its outcome (idempotent per workflow id). */
    async recordDiscoveryCycle(record: CycleRecord): Promise<void> {
      await recordDiscoveryCycle(db, record);
    },

    /**
     * The sweep: releases held budget reservations past their expiry and returns how many;
     * also drops rolling-window buckets that no window can see any more.
     */
    async releaseExpiredReservations(): Promise<number> {
      const released = await releaseExpiredReservations(db);
      if (released > 0) deps.log.warn({ released }, 'released expired budget reservations (an API process died mid-request?)');
      const buckets = await deleteStaleWindowBuckets(db);
      deps.log.debug({ buckets }, 'deleted stale window buckets');
      return released;
    },

    /** A request found the host gone (never picked up, or went silent): routing avoids it until it heartbeats. */
    async markHostSuspect(hostId: string): Promise<void> {
      await markHostSuspect(db, hostId);
    },

    /** A load failed for the build's own sake: no host is sent to load it again until released. */
    async quarantineBuild(input: { modelId: string; reason: string; hostId: string }): Promise<void> {
      await quarantineBuild(db, { id: input.modelId, reason: input.reason, hostId: input.hostId });
      deps.log.error({ model: input.modelId, host: input.hostId, reason: input.reason }, 'build quarantined: no host will load it until it is released');
    },

    /** Records a placement's state (and load progress or the failure reason). */
    async setPlacement(input: { hostId: string; modelId: string; state: PlacementState; progress?: number; error?: string }): Promise<void> {
      await setPlacementState(db, input);
    },

    /**
     * Starts `coldLoad` for (host, model) or attaches to the one already running, and waits
     * for it. If another request already claimed a load of this model on some host, it waits
     * for that one instead: a burst for a model nobody holds ends in a single load.
     * Cancelling this activity stops the wait, never the shared load.
     */
    async awaitColdLoad(requested: AwaitColdLoadInput): Promise<ColdLoadResult> {
      const allowed = requested.hosts ? new Set(requested.hosts) : undefined;
      const claim = await claimModelLoad(
        db,
        requested.hostId,
        requested.modelId,
        (h) =>
          (!allowed || allowed.has(h.id)) &&
          isHostHealthy(
            { status: h.status === 'up' ? 'up' : 'down', lastHeartbeatAt: h.lastHeartbeatAt, ...(h.suspect ? { suspect: true } : {}) },
            Date.now(),
            deps.heartbeatIntervalMs,
          ),
      );
      const input = { hostId: claim.hostId, modelId: requested.modelId };
      if (claim.kind === 'loaded') return { ...input, evicted: [] };
      let handle;
      try {
        handle = await startColdLoad(deps.client, input);
      } catch (err) {
        // Nothing will run the load we claimed: release the claim so the model is not stuck "loading".
        if (claim.kind === 'claimed') await setPlacementState(db, { ...input, state: 'unloaded', error: 'load could not be started' });
        throw err;
      }
      try {
        return await awaitWithHeartbeats(handle.result());
      } catch (err) {
        rethrowWorkflowFailure(err, FailureType.LoadFailed);
      }
    },
  };
}

export type ControlPlaneActivities = ReturnType<typeof createControlPlaneActivities>;
