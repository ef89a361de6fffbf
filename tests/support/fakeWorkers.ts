/**
 * Workers with fake activities on the suite's Temporal server, for the workflows' own unit
 * tests (the only place fakes are allowed): the real workflow bundle on a private queue, and
 * one worker per fake host on that host's queue.
 */
import assert from 'node:assert/strict';
import { Client, WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { ControlPlaneActivities } from '../../src/activities/controlPlane.js';
import type { HostActivities } from '../../src/activities/host.js';
import { hostQueue, PROVIDER_QUEUE } from '../../src/common/taskQueues.js';
import type { ProviderActivities } from '../../src/activities/provider.js';
import { log } from '../../src/logger.js';
import { installTemporalLogging } from '../../src/temporal/runtimeLogging.js';
import { WORKFLOWS_PATH } from '../../src/workers/controlPlane.js';
import type { HostView, PlacementView } from '../../src/domain/fleetView.js';
import { testEnv } from './env.js';

export interface FakeWorkers {
  client: Client;
  stop(): Promise<void>;
}

export async function startFakeWorkers(o: {
  queue: string;
  controlPlane: Partial<ControlPlaneActivities>;
  hosts: Record<string, Partial<HostActivities>>;
  /** Fake provider activities on the provider queue (the one queue every provider shares). */
  provider?: Partial<ProviderActivities>;
}): Promise<FakeWorkers> {
  installTemporalLogging(log);
  const connection = await NativeConnection.connect({ address: testEnv.temporalAddress });
  const workers = [await Worker.create({ connection, taskQueue: o.queue, workflowsPath: WORKFLOWS_PATH, activities: o.controlPlane })];
  for (const [hostId, activities] of Object.entries(o.hosts)) {
    workers.push(await Worker.create({ connection, taskQueue: hostQueue(hostId), activities }));
  }
  if (o.provider) workers.push(await Worker.create({ connection, taskQueue: PROVIDER_QUEUE, activities: o.provider }));
  const runs = workers.map((w) => w.run());
  return {
    client: new Client({ connection }),
    async stop() {
      for (const w of workers) w.shutdown();
      await Promise.all(runs);
      await connection.close();
    },
  };
}

/** The typed failure a workflow ended with; fails the test when it did not fail. */
export async function workflowFailure(p: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof WorkflowFailedError, `expected a WorkflowFailedError, got ${String(err)}`);
    return err.cause as ApplicationFailure;
  }
  assert.fail('expected the workflow to fail');
}

/** A healthy host as the fake `readFleetState` reports it: one slot, no GPU. */
export function fakeHostView(id: string, placements: PlacementView[], load: HostView['load'] = {}, limits: Partial<HostView['capacity']> = {}): HostView {
  return {
    id,
    status: 'up',
    lastHeartbeatAt: new Date().toISOString(),
    placements,
    load,
    capacity: { maxModelSlots: 1, gpuCount: 0, totalMemoryBytes: 0, freeMemoryBytes: 0, ...limits },
    files: [],
  };
}
