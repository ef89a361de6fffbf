/**
 * Starts the per-(host, model) placement workflows — `coldLoad` and `modelUnload` — or
 * attaches to the one already running. A load has two callers that need exactly the same
 * start — the control-plane activity a request's workflow uses (`awaitColdLoad`) and the
 * operator's `POST /admin/hosts/:host/models/:model/load` — and any difference between them
 * (id, conflict policy, search attributes) would split one load into two or hide one from the
 * Web UI filters, so the starts live here only.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import { coldLoadWorkflowId, modelUnloadWorkflowId, type ColdLoadInput } from '../common/coldLoad.js';
import { FleetHost, FleetModel, FleetRequestKind } from '../common/searchAttributes.js';
import { CONTROL_PLANE_QUEUE } from '../common/taskQueues.js';
// Types only: nothing of the workflow modules is loaded outside the workflow bundle.
import type { coldLoad } from '../workflows/coldLoad.js';
import type { modelUnload } from '../workflows/modelUnload.js';

export type ColdLoadHandle = WorkflowHandle<typeof coldLoad>;

type PlacementWorkflow = typeof coldLoad | typeof modelUnload;

/** One id per (host, model) and USE_EXISTING: concurrent callers share a single run. */
function startPlacementWorkflow<W extends PlacementWorkflow>(client: Client, kind: 'coldLoad' | 'modelUnload', workflowId: string, input: ColdLoadInput): Promise<WorkflowHandle<W>> {
  return client.workflow.start<W>(kind, {
    taskQueue: CONTROL_PLANE_QUEUE,
    workflowId,
    workflowIdConflictPolicy: 'USE_EXISTING',
    args: [input] as Parameters<W>,
    typedSearchAttributes: [
      { key: FleetModel, value: input.modelId },
      { key: FleetHost, value: input.hostId },
      { key: FleetRequestKind, value: kind },
    ],
  });
}

export function startColdLoad(client: Client, input: ColdLoadInput): Promise<ColdLoadHandle> {
  return startPlacementWorkflow<typeof coldLoad>(client, 'coldLoad', coldLoadWorkflowId(input.hostId, input.modelId), input);
}

/** An operator's unload of (host, model); a second caller attaches to the running one. */
export function startModelUnload(client: Client, input: ColdLoadInput): Promise<WorkflowHandle<typeof modelUnload>> {
  return startPlacementWorkflow<typeof modelUnload>(client, 'modelUnload', modelUnloadWorkflowId(input.hostId, input.modelId), input);
}
