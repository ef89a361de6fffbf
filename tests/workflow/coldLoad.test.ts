/**
 * coldLoad on the real Temporal server with fake activities: it records the placement, and
 * concurrent starters attach to one execution (workflow-id conflict policy USE_EXISTING).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Client, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { ControlPlaneActivities } from '../../src/activities/controlPlane.js';
import type { HostActivities } from '../../src/activities/host.js';
import { coldLoadWorkflowId, type ColdLoadInput } from '../../src/common/coldLoad.js';
import { FailureType } from '../../src/common/failures.js';
import { hostQueue } from '../../src/common/taskQueues.js';
import { log } from '../../src/logger.js';
import { installTemporalLogging } from '../../src/temporal/runtimeLogging.js';
import { WORKFLOWS_PATH } from '../../src/workers/controlPlane.js';
import { testEnv } from '../support/env.js';

const suffix = randomBytes(3).toString('hex');
const QUEUE = `wf-cold-${suffix}`;
const GOOD = `good-${suffix}`;
const BAD = `bad-${suffix}`;
const placements: Array<[string, string, boolean, string?]> = [];
let loads = 0;
let release: () => void = () => undefined;
const gate = new Promise<void>((r) => (release = r));

const controlPlane: Partial<ControlPlaneActivities> = {
  async beginColdLoad(input: ColdLoadInput) {
    placements.push([input.hostId, 'loading', true]);
    return { id: input.modelId, path: '/m.gguf', sha256: 'abc', contextLength: 512 };
  },
  async finishColdLoad(input) {
    placements.push([input.hostId, input.ok ? 'loaded' : 'failed', input.ok, input.error]);
  },
};
const good: Partial<HostActivities> = {
  async loadModel(input) {
    loads++;
    await gate; // hold the load open so concurrent starters find it running
    return { modelId: input.modelId, path: input.path, contextLength: 512, running: 0, queued: 0, capacity: 4 };
  },
};
const bad: Partial<HostActivities> = {
  async loadModel() {
    throw ApplicationFailure.create({ type: FailureType.LoadFailed, message: 'file is corrupt', nonRetryable: true });
  },
};

let connection: NativeConnection;
let client: Client;
const workers: Worker[] = [];
const runs: Promise<void>[] = [];
before(async () => {
  installTemporalLogging(log);
  connection = await NativeConnection.connect({ address: testEnv.temporalAddress });
  client = new Client({ connection });
  workers.push(await Worker.create({ connection, taskQueue: QUEUE, workflowsPath: WORKFLOWS_PATH, activities: controlPlane }));
  workers.push(await Worker.create({ connection, taskQueue: hostQueue(GOOD), activities: good }));
  workers.push(await Worker.create({ connection, taskQueue: hostQueue(BAD), activities: bad }));
  for (const w of workers) runs.push(w.run());
});
after(async () => {
  for (const w of workers) w.shutdown();
  await Promise.all(runs);
  await connection.close();
});

const start = (hostId: string) =>
  client.workflow.start('coldLoad', {
    taskQueue: QUEUE,
    workflowId: coldLoadWorkflowId(hostId, 'm'),
    workflowIdConflictPolicy: 'USE_EXISTING',
    args: [{ hostId, modelId: 'm' }],
  });

test('concurrent starters attach to one load, which marks the placement loaded', async () => {
  const handles = await Promise.all(Array.from({ length: 5 }, () => start(GOOD)));
  assert.equal(new Set(handles.map((h) => h.firstExecutionRunId)).size, 1, 'one execution');
  release();
  const results = await Promise.all(handles.map((h) => h.result()));
  assert.deepEqual(results[0], { hostId: GOOD, modelId: 'm' });
  assert.equal(loads, 1);
  assert.deepEqual(
    placements.filter((p) => p[0] === GOOD),
    [
      [GOOD, 'loading', true],
      [GOOD, 'loaded', true, undefined],
    ],
  );
});

test('a failed load marks the placement failed and the workflow says why', async () => {
  const h = await start(BAD);
  await assert.rejects(h.result(), (err: unknown) => {
    assert.ok(err instanceof WorkflowFailedError);
    const cause = err.cause as ApplicationFailure;
    assert.equal(cause.type, FailureType.LoadFailed);
    assert.match(cause.message, /file is corrupt/);
    return true;
  });
  const failed = placements.find((p) => p[0] === BAD && p[1] === 'failed');
  assert.ok(failed);
  assert.match(failed[3] ?? '', /file is corrupt/);
});
