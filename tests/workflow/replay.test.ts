/**
 * Determinism: every history recorded from a real run (tests/fixtures/histories, made by
 * scripts/record-histories.ts) must replay against the current workflow code. A change that
 * would break running workflows fails here until it is guarded with `patched()`.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Worker } from '@temporalio/worker';
import { REQUEST_WORKFLOWS_PATH, WORKFLOWS_PATH, workflowBundleOf } from '../../src/workers/controlPlane.js';

const dir = path.resolve(import.meta.dirname, '../fixtures/histories');
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

test('there are recorded histories to replay', () => {
  assert.ok(files.length >= 3, `found ${files.length} in ${dir}`);
});

// Each bundle is built once for the whole file (webpack per replay would dominate its time).
const bundles = { full: workflowBundleOf(WORKFLOWS_PATH), requests: workflowBundleOf(REQUEST_WORKFLOWS_PATH) };

for (const file of files) {
  test(`replays ${file}`, async () => {
    const { workflowId, history } = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as { workflowId: string; history: unknown };
    await Worker.runReplayHistory({ workflowBundle: await bundles.full }, history as never, workflowId);
    // Request histories also replay against the request queue's lean bundle (fleet.requests).
    if (file.startsWith('inferenceRequest')) await Worker.runReplayHistory({ workflowBundle: await bundles.requests }, history as never, workflowId);
  });
}
