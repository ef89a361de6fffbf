/**
 * Control-plane activities: the only workflow steps that touch Postgres or start other
 * workflows. Run by the control-plane worker (reads of fleet state as local activities).
 */
import { Context } from '@temporalio/activity';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Kysely } from 'kysely';
import type { ColdLoadInput, ColdLoadResult } from '../common/coldLoad.js';
import { FailureType } from '../common/failures.js';
import { readFleetState } from '../db/fleetStateRepo.js';
import { deleteStaleWindowBuckets, releaseExpiredReservations } from '../db/budgetRepo.js';
import { claimModelLoad, setPlacementState } from '../db/placementsRepo.js';
import type { Database, PlacementState } from '../db/schema.js';
import type { FleetView } from '../domain/fleetView.js';
import { isHostHealthy } from '../domain/health.js';
import type { Logger } from '../logger.js';
import { startColdLoad } from '../temporal/coldLoadStarter.js';
import type { ServingHosts } from '../common/discovery.js';
import { readPinSet, recordDiscoveryCycle, type CycleRecord } from '../db/pinSetsRepo.js';
import type { PinSet } from '../domain/pinSet.js';

export interface ControlPlaneDeps {
  db: Kysely<Database>;
  /** Needed to start and await shared `coldLoad` workflows. */
  client: Client;
  heartbeatIntervalMs: number;
  log: Logger;
}

export function createControlPlaneActivities(deps: ControlPlaneDeps) {
  const { db } = deps;
  return {
    async readFleetState(modelId: string): Promise<FleetView> {
      return { ...(await readFleetState(db, modelId)), heartbeatIntervalMs: deps.heartbeatIntervalMs };
    },

    /** The healthy hosts with the model loaded (sorted), and the catalog's sha256 of its build. */
    async countServingHosts(modelId: string): Promise<ServingHosts> {
      const view = await readFleetState(db, modelId);
      const now = Date.now();
      const hostIds = view.hosts
        .filter((h) => isHostHealthy({ status: h.status, lastHeartbeatAt: h.lastHeartbeatAt }, now, deps.heartbeatIntervalMs))
        .filter((h) => h.placements.some((p) => p.modelId === modelId && p.state === 'loaded'))
        .map((h) => h.id)
        .sort();
      return { hostIds, sha256: view.model?.sha256 ?? null };
    },

    async readPinSet(modelId: string): Promise<PinSet> {
      return readPinSet(db, modelId);
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
    async awaitColdLoad(requested: ColdLoadInput): Promise<ColdLoadResult> {
      const ctx = Context.current();
      const claim = await claimModelLoad(db, requested.hostId, requested.modelId, (h) =>
        isHostHealthy({ status: h.status === 'up' ? 'up' : 'down', lastHeartbeatAt: h.lastHeartbeatAt }, Date.now(), deps.heartbeatIntervalMs),
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
      const beat = setInterval(() => ctx.heartbeat(), 5_000);
      try {
        // ctx.cancelled only ever rejects: a cancelled wait ends here, the load goes on.
        return await Promise.race([handle.result(), ctx.cancelled]);
      } catch (err) {
        if (err instanceof WorkflowFailedError) {
          const cause = err.cause as { message?: string; type?: string } | undefined;
          throw ApplicationFailure.create({
            message: cause?.message ?? 'cold load failed',
            type: FailureType.LoadFailed,
            nonRetryable: true,
          });
        }
        throw err;
      } finally {
        clearInterval(beat);
      }
    },
  };
}

export type ControlPlaneActivities = ReturnType<typeof createControlPlaneActivities>;
