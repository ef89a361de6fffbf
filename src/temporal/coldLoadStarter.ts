/**
 * Starts the `coldLoad` workflow for (host, model), or attaches to the one already running.
 * Two callers need exactly the same start — the control-plane activity a request's workflow
 * uses (`awaitColdLoad`) and the operator's `POST /admin/hosts/:host/models/:model/load` —
 * and any difference between them (id, conflict policy, search attributes) would split one
 * load into two or hide one from the Web UI filters, so the start lives here only.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import { coldLoadWorkflowId, type ColdLoadInput } from '../common/coldLoad.js';
import { FleetHost, FleetModel, FleetRequestKind } from '../common/searchAttributes.js';
import { CONTROL_PLANE_QUEUE } from '../common/taskQueues.js';
// Type only: nothing of the workflow module is loaded outside the workflow bundle.
import type { coldLoad } from '../workflows/coldLoad.js';

export type ColdLoadHandle = WorkflowHandle<typeof coldLoad>;

export function startColdLoad(client: Client, input: ColdLoadInput): Promise<ColdLoadHandle> {
  return client.workflow.start<typeof coldLoad>('coldLoad', {
    taskQueue: CONTROL_PLANE_QUEUE,
    // One id per (host, model) and USE_EXISTING: concurrent callers share a single load.
    workflowId: coldLoadWorkflowId(input.hostId, input.modelId),
    workflowIdConflictPolicy: 'USE_EXISTING',
    args: [input],
    typedSearchAttributes: [
      { key: FleetModel, value: input.modelId },
      { key: FleetHost, value: input.hostId },
      { key: FleetRequestKind, value: 'coldLoad' },
    ],
  });
}
