/**
 * Starting attested-provider discovery cycles: one now (operator, CLI), or on a Schedule per
 * remote build of an attested provider (`discovery:<provider>:<slug>`, overlap SKIP). The
 * Schedules are reconciled with the database — at control-plane start and after every provider
 * refresh — and a new one triggers its first cycle at once, so a provider or model that was just
 * added is attested by the same code path as every later cycle.
 */
import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, type Client, type WorkflowHandle } from '@temporalio/client';
import type { Kysely } from 'kysely';
import { attestedScheduleId, attestedWorkflowId, type AttestedDiscoveryInput } from '../common/discovery.js';
import { FleetProvider, FleetRequestKind } from '../common/searchAttributes.js';
import { CONTROL_PLANE_QUEUE } from '../common/taskQueues.js';
import { listProviders, listRemoteBuilds } from '../db/providersRepo.js';
import type { Database } from '../db/schema.js';
import type { Logger } from '../logger.js';
import type { attestedDiscoveryCycle } from '../workflows/attestedDiscoveryCycle.js';

export type AttestedDiscoveryHandle = WorkflowHandle<typeof attestedDiscoveryCycle>;

const WORKFLOW_TYPE = 'attestedDiscoveryCycle';
const CYCLE_TIMEOUT = '10 minutes';

const searchAttributes = (i: AttestedDiscoveryInput) => [
  { key: FleetProvider, value: i.providerId },
  { key: FleetRequestKind, value: 'attestedDiscoveryCycle' },
];

export function startAttestedDiscovery(client: Client, input: AttestedDiscoveryInput, now: Date = new Date()): Promise<AttestedDiscoveryHandle> {
  return client.workflow.start<typeof attestedDiscoveryCycle>(WORKFLOW_TYPE, {
    taskQueue: CONTROL_PLANE_QUEUE,
    workflowId: attestedWorkflowId(input, now),
    args: [{ providerId: input.providerId, slug: input.slug }],
    workflowExecutionTimeout: CYCLE_TIMEOUT,
    typedSearchAttributes: searchAttributes(input),
  });
}

/** The builds that should have a Schedule: active models of enabled attested providers. */
export async function attestedTargets(db: Kysely<Database>): Promise<Array<AttestedDiscoveryInput & { intervalS: number }>> {
  const providers = new Map((await listProviders(db)).filter((p) => p.tier === 'attested' && p.enabled).map((p) => [p.id, p]));
  return (await listRemoteBuilds(db))
    .filter((b) => b.active && providers.has(b.providerId))
    .map((b) => ({ providerId: b.providerId, slug: b.upstreamModel, intervalS: providers.get(b.providerId)!.discovery_interval_s }));
}

const intervalMs = (every: unknown): number | undefined => (typeof every === 'number' ? every : undefined);

/** Creates missing Schedules (first cycle at once), updates intervals, deletes those of builds gone. */
export function reconcileAttestedSchedules(client: Client, db: Kysely<Database>, log: Logger): Promise<{ created: string[]; deleted: string[] }> {
  // One at a time in this process: two interleaved passes could each act on a stale view.
  const run = reconciling.then(() => reconcileOnce(client, db, log));
  reconciling = run.catch(() => undefined);
  return run;
}
let reconciling: Promise<unknown> = Promise.resolve();

async function reconcileOnce(client: Client, db: Kysely<Database>, log: Logger): Promise<{ created: string[]; deleted: string[] }> {
  /** scheduleId → its interval in ms (what the listing says), to update only what changed. */
  const have = new Map<string, number | undefined>();
  for await (const s of client.schedule.list()) {
    if (s.action?.type === 'startWorkflow' && s.action.workflowType === WORKFLOW_TYPE) have.set(s.scheduleId, intervalMs(s.spec?.intervals?.[0]?.every));
  }
  // Read after listing: a Schedule is only ever created after its build was committed, so every
  // Schedule listed has its build in this read unless the build is really gone — a slow listing
  // (another process, or this one, creating a Schedule meanwhile) never deletes a new one.
  const want = new Map((await attestedTargets(db)).map((t) => [attestedScheduleId(t), t]));
  const created: string[] = [];
  const deleted: string[] = [];
  for (const [scheduleId, t] of want) {
    const spec = { intervals: [{ every: `${t.intervalS} seconds` }] };
    const action = {
      type: 'startWorkflow' as const,
      workflowType: WORKFLOW_TYPE,
      args: [{ providerId: t.providerId, slug: t.slug }],
      taskQueue: CONTROL_PLANE_QUEUE,
      workflowId: scheduleId,
      workflowExecutionTimeout: CYCLE_TIMEOUT,
      typedSearchAttributes: searchAttributes(t),
    };
    if (!have.has(scheduleId)) {
      try {
        await client.schedule.create({ scheduleId, spec, action, policies: { overlap: ScheduleOverlapPolicy.SKIP }, state: { triggerImmediately: true } });
        created.push(scheduleId);
        continue;
      } catch (err) {
        if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      }
    }
    if (have.get(scheduleId) === t.intervalS * 1000) continue; // unchanged: no call on every refresh
    await client.schedule.getHandle(scheduleId).update((prev) => ({ ...prev, spec, action }));
  }
  for (const scheduleId of have.keys()) {
    if (want.has(scheduleId)) continue;
    try {
      await client.schedule.getHandle(scheduleId).delete();
      deleted.push(scheduleId);
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
  }
  if (created.length || deleted.length) log.info({ created, deleted }, 'attested discovery schedules reconciled');
  return { created, deleted };
}
