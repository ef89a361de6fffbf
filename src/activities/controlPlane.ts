/**
 * Control-plane activities: the only workflow steps that touch Postgres or start other
 * workflows. Run by the control-plane worker (reads of fleet state as local activities).
 */
import { Context } from '@temporalio/activity';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Kysely } from 'kysely';
import { coldLoadWorkflowId, type ColdLoadInput, type ColdLoadResult } from '../common/coldLoad.js';
import { FailureType } from '../common/failures.js';
import { FleetHost, FleetModel, FleetRequestKind } from '../common/searchAttributes.js';
import { CONTROL_PLANE_QUEUE } from '../common/taskQueues.js';
import { readFleetState } from '../db/fleetStateRepo.js';
import { setPlacementState } from '../db/placementsRepo.js';
import type { Database, PlacementState } from '../db/schema.js';
import type { FleetView } from '../domain/fleetView.js';
import type { Logger } from '../logger.js';

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

    /** Records a placement's state (and load progress or the failure reason). */
    async setPlacement(input: { hostId: string; modelId: string; state: PlacementState; progress?: number; error?: string }): Promise<void> {
      await setPlacementState(db, input);
    },

    /**
     * Starts `coldLoad` for (host, model) or attaches to the one already running, and waits
     * for it. Cancelling this activity stops the wait, never the shared load.
     */
    async awaitColdLoad(input: ColdLoadInput): Promise<ColdLoadResult> {
      const ctx = Context.current();
      const handle = await deps.client.workflow.start('coldLoad', {
        taskQueue: CONTROL_PLANE_QUEUE,
        workflowId: coldLoadWorkflowId(input.hostId, input.modelId),
        workflowIdConflictPolicy: 'USE_EXISTING',
        args: [input],
        typedSearchAttributes: [
          { key: FleetModel, value: input.modelId },
          { key: FleetHost, value: input.hostId },
          { key: FleetRequestKind, value: 'coldLoad' },
        ],
      });
      const beat = setInterval(() => ctx.heartbeat(), 5_000);
      try {
        // ctx.cancelled only ever rejects: a cancelled wait ends here, the load goes on.
        return await Promise.race([handle.result() as Promise<ColdLoadResult>, ctx.cancelled]);
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
