/**
 * Prompts at rest are encrypted (the suite's stacks all run with a payload key, as a deployment
 * does): a request's history read with a raw Temporal client — no codec, what anyone with Web
 * UI or database access gets — holds no prompt or completion text; through the codec it reads
 * as it was sent. The codec endpoint decodes for the admin token only, answers CORS preflights
 * for the Web UI's origin only, and histories recorded before the codec still replay with it.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { WORKFLOWS_PATH } from '../../src/workers/controlPlane.js';
import { startTestFleet, type TestFleet } from '../support/stack.js';

const ADMIN = 'codec-admin-token-0123456789';
const SECRET = 'my-very-private-question-about-xylophones';

describe('payload encryption', () => {
  let f: TestFleet;
  let requestId: string;
  before(async () => {
    f = await startTestFleet({ db: 'pglite', env: { FLEET_ADMIN_TOKEN: ADMIN, FLEET_CODEC_CORS_ORIGINS: 'http://ui.example:8233' } });
    const r = await f.openai.chat.completions.create({ model: f.modelId, messages: [{ role: 'user', content: SECRET }], max_tokens: 8 });
    requestId = r.id;
  });
  after(async () => {
    await f?.stop();
  });

  test('the suite runs encrypted (every stack gets the run\'s key)', () => {
    assert.ok(f.stack.temporal.codec, 'a codec is configured');
  });

  test('a raw client sees only ciphertext; the codec reads the prompt back', async () => {
    const raw = new Client({ connection: f.stack.temporal.client.connection, namespace: 'default' });
    const history = await raw.workflow.getHandle(requestId).fetchHistory();
    const text = JSON.stringify(history, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v));
    assert.ok(!text.includes(SECRET), 'the prompt is not in the stored history');
    assert.ok(!text.includes('xylophone'));
    const input = history.events![0]!.workflowExecutionStartedEventAttributes!.input!.payloads![0]!;
    assert.equal(Buffer.from(input.metadata!.encoding!).toString(), 'binary/encrypted');
    const [decoded] = await f.stack.temporal.codec!.decode([input]);
    const request = defaultPayloadConverter.fromPayload<{ input: { messages: Array<{ content: string }> } }>(decoded!);
    assert.equal(request.input.messages[0]!.content, SECRET);
  });

  test('the codec endpoint decodes for the admin token only', async () => {
    const raw = new Client({ connection: f.stack.temporal.client.connection, namespace: 'default' });
    const p = (await raw.workflow.getHandle(requestId).fetchHistory()).events![0]!.workflowExecutionStartedEventAttributes!.input!.payloads![0]!;
    const wire = {
      payloads: [
        {
          metadata: Object.fromEntries(Object.entries(p.metadata!).map(([k, v]) => [k, Buffer.from(v!).toString('base64')])),
          data: Buffer.from(p.data!).toString('base64'),
        },
      ],
    };
    const call = (headers: Record<string, string>) =>
      fetch(`${f.stack.api!.url}/codec/decode`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(wire) });
    const refused = await call({});
    assert.equal(refused.status, 401);
    assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'invalid_api_key');
    assert.equal((await call({ authorization: 'Bearer wrong-token-wrong-token' })).status, 401);
    const ok = await call({ authorization: `Bearer ${ADMIN}`, 'x-namespace': 'default' });
    assert.equal(ok.status, 200);
    const out = (await ok.json()) as { payloads: Array<{ metadata: Record<string, string>; data: string }> };
    assert.equal(Buffer.from(out.payloads[0]!.metadata.encoding!, 'base64').toString(), 'json/plain');
    assert.match(Buffer.from(out.payloads[0]!.data, 'base64').toString(), new RegExp(SECRET));
  });

  test('CORS: the Web UI origin gets its preflight answered before auth; another origin does not', async () => {
    const preflight = (origin: string) =>
      fetch(`${f.stack.api!.url}/codec/decode`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type,x-namespace' },
      });
    const ui = await preflight('http://ui.example:8233');
    assert.equal(ui.status, 204);
    assert.equal(ui.headers.get('access-control-allow-origin'), 'http://ui.example:8233');
    assert.match(ui.headers.get('access-control-allow-headers') ?? '', /Authorization/);
    const other = await preflight('http://evil.example');
    assert.equal(other.headers.get('access-control-allow-origin'), null);
  });

  test('histories recorded before the codec replay with it (payloads without encryption pass through)', async () => {
    const dir = path.resolve(import.meta.dirname, '../fixtures/histories');
    for (const file of readdirSync(dir).filter((x) => x.endsWith('.json'))) {
      const { workflowId, history } = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as { workflowId: string; history: unknown };
      await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH, dataConverter: f.stack.temporal.dataConverter }, history as never, workflowId);
    }
  });

  test('an encrypted history of this run replays with the codec', async () => {
    const handle = f.stack.temporal.client.workflow.getHandle(requestId);
    await handle.result(); // the answer may go out before the workflow closes
    const history = await handle.fetchHistory();
    await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH, dataConverter: f.stack.temporal.dataConverter }, history, requestId);
  });
});
