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
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { Logger } from '../logger.js';
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

const WORKFLOW_TYPE = 'discoveryCycle';

/**
 * Creates the model's refresh Schedule, or updates its interval when it exists. With
 * `runNow`, its first cycle starts at once, through the Schedule (the same code path as every
 * later one): marking a model verifiable pins the hosts that can serve it without waiting.
 */
export async function upsertDiscoverySchedule(client: Client, modelId: string, intervalS: number, o: { runNow?: boolean } = {}): Promise<'created' | 'updated'> {
  const scheduleId = discoveryScheduleId(modelId);
  const spec = { intervals: [{ every: `${intervalS} seconds` }] };
  const action = {
    type: 'startWorkflow' as const,
    workflowType: WORKFLOW_TYPE,
    args: [{ modelId }],
    taskQueue: CONTROL_PLANE_QUEUE,
    workflowId: scheduleId,
    workflowExecutionTimeout: CYCLE_TIMEOUT,
    typedSearchAttributes: searchAttributes(modelId),
  };
  try {
    await client.schedule.create({ scheduleId, spec, action, policies: { overlap: ScheduleOverlapPolicy.SKIP }, state: { triggerImmediately: o.runNow === true } });
    return 'created';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  const handle = client.schedule.getHandle(scheduleId);
  await handle.update((prev) => ({ ...prev, spec, action, policies: { ...prev.policies, overlap: ScheduleOverlapPolicy.SKIP } }));
  if (o.runNow) await handle.trigger(ScheduleOverlapPolicy.SKIP);
  return 'updated';
}

/**
 * Puts the Schedules in step with the database, at control-plane start: one per verifiable
 * GGUF build (at its interval), none for any other. A Schedule lost with a Temporal cluster,
 * or left behind by a model no longer verifiable, is corrected here.
 */
export async function reconcileDiscoverySchedules(client: Client, db: Kysely<Database>, log: Logger): Promise<{ upserted: string[]; deleted: string[] }> {
  const have = new Set<string>();
  for await (const s of client.schedule.list()) {
    if (s.action?.type === 'startWorkflow' && s.action.workflowType === WORKFLOW_TYPE) have.add(s.scheduleId);
  }
  // Read after listing (as attestedDiscovery.ts does): a Schedule made meanwhile has its model.
  const want = await db.selectFrom('models').select(['id', 'discovery_interval_s']).where('verifiable', '=', true).where('kind', '=', 'gguf').execute();
  const upserted: string[] = [];
  for (const m of want) {
    await upsertDiscoverySchedule(client, m.id, m.discovery_interval_s);
    upserted.push(discoveryScheduleId(m.id));
  }
  const keep = new Set(upserted);
  const deleted: string[] = [];
  for (const scheduleId of have) {
    if (keep.has(scheduleId)) continue;
    try {
      await client.schedule.getHandle(scheduleId).delete();
      deleted.push(scheduleId);
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
  }
  if (upserted.length || deleted.length) log.info({ upserted, deleted }, 'discovery schedules reconciled');
  return { upserted, deleted };
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
