/**
 * Records workflow histories from a real run (real Temporal, PGlite, node-llama-cpp) into
 * tests/fixtures/histories/, for the replay test that catches determinism breaks. Rerun it
 * (with the env `npm test` sets: FLEET_TEST_TEMPORAL_ADDRESS, FLEET_TEST_TEMPORAL_CLI) after an intended workflow
 * change guarded by `patched()`, keeping the old files too.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { coldLoadWorkflowId } from '../src/common/coldLoad.js';
import { testEnv } from '../tests/support/env.js';
import { startTestFleet } from '../tests/support/stack.js';

const out = path.resolve(import.meta.dirname, '../tests/fixtures/histories');
const f = await startTestFleet({ db: 'pglite' });
try {
  const client = f.stack.temporal.client;
  const save = async (name: string, workflowId: string) => {
    await client.workflow.getHandle(workflowId).result().catch(() => undefined);
    // The canonical JSON history, exactly as operators export it from the CLI.
    const json = execFileSync(
      testEnv.temporalCli,
      ['workflow', 'show', '--address', testEnv.temporalAddress, '--workflow-id', workflowId, '--output', 'json'],
      { encoding: 'utf8' },
    );
    const history = JSON.parse(json) as { events: unknown[] };
    await writeFile(path.join(out, `${name}.json`), JSON.stringify({ workflowId, history }, null, 1) + '\n');
    process.stdout.write(`recorded ${name} (${history.events.length} events)\n`);
  };
  const first = await f.openai.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'hello' }], max_tokens: 8 });
  await save('inferenceRequest-coldload', first.id);
  await save('coldLoad', coldLoadWorkflowId(f.hostIds[0]!, 'tiny'));
  const stream = await f.openai.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'stream' }], max_tokens: 8, stream: true });
  let id = '';
  for await (const c of stream) id = c.id;
  await save('inferenceRequest-stream', id);
  const bad = await fetch(`${f.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'word '.repeat(3000) }] }),
  });
  const requests = await f.stack.db.db.selectFrom('request_log').select(['id', 'error_code']).execute();
  const failed = requests.find((r) => r.error_code === 'context_length_exceeded');
  if (bad.status !== 400 || !failed) throw new Error('expected a context_length_exceeded failure to record');
  await save('inferenceRequest-context-exceeded', failed.id);
} catch (err) {
  process.stderr.write(`recording failed: ${(err as Error).stack}\n`);
  process.exitCode = 1;
} finally {
  await f.stop();
}
process.exit();
