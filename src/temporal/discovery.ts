/**
 * Starting discovery cycles: one now (operator, CLI), or every interval through a Temporal
 * Schedule per model (id `discovery:<model>`, overlap SKIP — a cycle still running is never
 * stacked on). Temporal suffixes a scheduled run's workflow id with its time
 * (`discovery:<model>-<ISO time>`); a cycle started now gets `discovery:<model>:<ISO time>`.
 */
import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, type Client, type WorkflowHandle } from '@temporalio/client';
import { discoveryScheduleId, discoveryWorkflowId, type DiscoveryInput } from '../common/discovery.js';
import { FleetModel, FleetRequestKind } from '../common/searchAttributes.js';
import { CONTROL_PLANE_QUEUE } from '../common/taskQueues.js';
import type { discoveryCycle } from '../workflows/discoveryCycle.js';

export type DiscoveryHandle = WorkflowHandle<typeof discoveryCycle>;

/** A cycle gives up after this long (every step has a short timeout of its own). */
const CYCLE_TIMEOUT = '5 minutes';

const searchAttributes = (modelId: string) => [
  { key: FleetModel, value: modelId },
  { key: FleetRequestKind, value: 'discoveryCycle' },
];

export function startDiscoveryCycle(client: Client, input: DiscoveryInput, now: Date = new Date()): Promise<DiscoveryHandle> {
  return client.workflow.start<typeof discoveryCycle>('discoveryCycle', {
    taskQueue: CONTROL_PLANE_QUEUE,
    workflowId: discoveryWorkflowId(input.modelId, now),
    args: [{ modelId: input.modelId }],
    workflowExecutionTimeout: CYCLE_TIMEOUT,
    typedSearchAttributes: searchAttributes(input.modelId),
  });
}

/** Creates the model's refresh Schedule, or updates its interval when it exists. */
export async function upsertDiscoverySchedule(client: Client, modelId: string, intervalS: number): Promise<'created' | 'updated'> {
  const scheduleId = discoveryScheduleId(modelId);
  const spec = { intervals: [{ every: `${intervalS} seconds` }] };
  const action = {
    type: 'startWorkflow' as const,
    workflowType: 'discoveryCycle',
    args: [{ modelId }],
    taskQueue: CONTROL_PLANE_QUEUE,
    workflowId: scheduleId,
    workflowExecutionTimeout: CYCLE_TIMEOUT,
    typedSearchAttributes: searchAttributes(modelId),
  };
  try {
    await client.schedule.create({ scheduleId, spec, action, policies: { overlap: ScheduleOverlapPolicy.SKIP } });
    return 'created';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  await client.schedule.getHandle(scheduleId).update((prev) => ({ ...prev, spec, action, policies: { ...prev.policies, overlap: ScheduleOverlapPolicy.SKIP } }));
  return 'updated';
}

/** Deletes the model's refresh Schedule; false when there was none. */
export async function deleteDiscoverySchedule(client: Client, modelId: string): Promise<boolean> {
  try {
    await client.schedule.getHandle(discoveryScheduleId(modelId)).delete();
    return true;
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return false;
    throw err;
  }
}
