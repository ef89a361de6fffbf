/**
 * The gateway through the official `openai` client against the real stack (Temporal dev
 * server, PostgreSQL or PGlite, node-llama-cpp on a generated GGUF), once per database kind.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Worker } from '@temporalio/worker';
import { listPlacements } from '../../src/db/placementsRepo.js';
import { getRequestLog } from '../../src/db/requestLogRepo.js';
import { WORKFLOWS_PATH } from '../../src/workers/controlPlane.js';
import { startTestFleet, type DbKind, type TestFleet } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

const user = (content: string) => [{ role: 'user' as const, content }];

for (const db of ['pglite', 'postgres'] as DbKind[]) {
  describe(`API on ${db}`, () => {
    let f: TestFleet;
    before(async () => {
      f = await startTestFleet({ db });
    });
    after(async () => {
      await f?.stop();
    });

    test('GET /v1/models lists the registered model', async () => {
      const page = await f.openai.models.list();
      assert.deepEqual(
        page.data.map((m) => m.id),
        ['tiny'],
      );
      assert.equal(page.data[0]!.object, 'model');
      const one = await f.openai.models.retrieve('tiny');
      assert.equal(one.id, 'tiny');
    });

    test('the first request cold-loads the model and answers', async () => {
      const before = await listPlacements(f.stack.db.db, { modelId: f.modelId });
      assert.equal(before.filter((p) => p.state === 'loaded').length, 0);
      const r = await f.openai.chat.completions.create({ model: 'tiny', messages: user('hello fleet'), max_tokens: 12 });
      assert.match(r.id, /^chatcmpl-/);
      assert.equal(r.object, 'chat.completion');
      assert.equal(r.model, 'tiny');
      assert.equal(r.choices[0]!.message.role, 'assistant');
      assert.ok((r.choices[0]!.message.content ?? '').length > 0);
      assert.ok(['stop', 'length'].includes(r.choices[0]!.finish_reason));
      assert.ok(r.usage!.prompt_tokens > 0);
      assert.ok(r.usage!.completion_tokens > 0 && r.usage!.completion_tokens <= 12);
      assert.equal(r.usage!.total_tokens, r.usage!.prompt_tokens + r.usage!.completion_tokens);
      const after = await listPlacements(f.stack.db.db, { modelId: f.modelId });
      assert.deepEqual(
        after.map((p) => [p.host_id, p.state]),
        [[f.hostIds[0], 'loaded']],
      );
      // The cold load ran as its own workflow, filterable by the search attributes.
      const client = f.stack.temporal.client;
      const loadId = `coldload:${f.hostIds[0]}:tiny`;
      const desc = await client.workflow.getHandle(loadId).describe();
      assert.equal(desc.status.name, 'COMPLETED');
      const found = await waitFor(async () => {
        const ids: string[] = [];
        for await (const w of client.workflow.list({
          query: `FleetRequestKind = "coldLoad" AND FleetHost = "${f.hostIds[0]}" AND FleetModel = "tiny"`,
        })) ids.push(w.workflowId);
        return ids.includes(loadId) ? ids : undefined;
      });
      assert.ok(found);
      const req = await client.workflow.getHandle(r.id).describe();
      assert.equal(req.typedSearchAttributes.get({ name: 'FleetHost', type: 'KEYWORD' } as never), f.hostIds[0]);
      // Once the API's fleet snapshot has read the loaded placement, the API routes the first
      // round: generate is scheduled in the first workflow task (no route marker), and the host
      // is a search attribute from the start (no upsert).
      const preRouted = await waitFor(async () => {
        const again = await f.openai.chat.completions.create({ model: 'tiny', messages: user('hello again'), max_tokens: 4 });
        const events = (await client.workflow.getHandle(again.id).fetchHistory()).events ?? [];
        return events.some((e) => e.markerRecordedEventAttributes) ? undefined : { id: again.id, events };
      });
      assert.ok(preRouted, 'no request was routed by the API snapshot');
      assert.ok(!preRouted.events.some((e) => e.upsertWorkflowSearchAttributesEventAttributes));
      const again = await client.workflow.getHandle(preRouted.id).describe();
      assert.equal(again.typedSearchAttributes.get({ name: 'FleetHost', type: 'KEYWORD' } as never), f.hostIds[0]);
      // The request log is written after the response.
      const logged = await waitFor(() => getRequestLog(f.stack.db.db, r.id));
      assert.equal(logged!.status, 'ok');
      assert.equal(logged!.host_id, f.hostIds[0]);
    });

    test('a streamed answer equals the non-streamed one (greedy) and ends with usage', async () => {
      const params = { model: 'tiny', messages: user('tell me about the fleet'), max_tokens: 24, temperature: 0 };
      const whole = await f.openai.chat.completions.create(params);
      const stream = await f.openai.chat.completions.create({
        ...params,
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = '';
      let role: string | undefined;
      let finish: string | null = null;
      let usage: { completion_tokens: number } | undefined;
      let chunks = 0;
      const ids = new Set<string>();
      for await (const chunk of stream) {
        chunks++;
        ids.add(chunk.id);
        assert.equal(chunk.object, 'chat.completion.chunk');
        const c = chunk.choices[0];
        if (c) {
          role ??= c.delta.role;
          text += c.delta.content ?? '';
          finish = c.finish_reason ?? finish;
        }
        if (chunk.usage) usage = chunk.usage;
      }
      assert.equal(role, 'assistant');
      assert.equal(ids.size, 1);
      assert.ok(chunks >= 3);
      assert.equal(text, whole.choices[0]!.message.content);
      assert.equal(finish, whole.choices[0]!.finish_reason);
      assert.equal(usage?.completion_tokens, whole.usage!.completion_tokens);
    });

    test('POST /v1/completions answers in the text_completion format', async () => {
      const r = await f.openai.completions.create({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 10 });
      assert.match(r.id, /^cmpl-/);
      assert.equal(r.object, 'text_completion');
      assert.ok(r.choices[0]!.text.length > 0);
      assert.ok(r.usage!.completion_tokens <= 10);
      const s = await f.openai.completions.create({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 10, stream: true });
      let streamed = '';
      for await (const c of s) streamed += c.choices[0]?.text ?? '';
      assert.ok(streamed.length > 0);
    });

    test('stop, max_tokens, max_completion_tokens and seed are honoured', async () => {
      const base = { model: 'tiny', messages: user('stop test'), temperature: 0 };
      const full = (await f.openai.chat.completions.create({ ...base, max_tokens: 30 })).choices[0]!;
      assert.equal(full.finish_reason, 'length');
      const words = full.message.content!.split(' ').filter((w) => w.length > 2);
      const stopWord = words[Math.min(2, words.length - 1)]!;
      const stopped = (await f.openai.chat.completions.create({ ...base, max_tokens: 30, stop: [stopWord] })).choices[0]!;
      assert.equal(stopped.finish_reason, 'stop');
      assert.ok(full.message.content!.startsWith(stopped.message.content!));
      assert.ok(!stopped.message.content!.includes(stopWord));
      const capped = await f.openai.chat.completions.create({ ...base, max_completion_tokens: 5 });
      assert.equal(capped.usage!.completion_tokens, 5);
      const seeded = { model: 'tiny', messages: user('seeded'), temperature: 1, seed: 42, max_tokens: 16 };
      const a = await f.openai.chat.completions.create(seeded);
      const b = await f.openai.chat.completions.create(seeded);
      assert.equal(a.choices[0]!.message.content, b.choices[0]!.message.content);
    });

    test('8 concurrent requests are all answered', async () => {
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          f.openai.chat.completions.create({ model: 'tiny', messages: user(`request ${i}`), max_tokens: 16 }),
        ),
      );
      assert.equal(new Set(results.map((r) => r.id)).size, 8);
      for (const r of results) assert.ok(r.usage!.completion_tokens > 0);
    });

    test('a recorded inferenceRequest history replays against the current code', async () => {
      const r = await f.openai.chat.completions.create({ model: 'tiny', messages: user('replay me'), max_tokens: 4 });
      const handle = f.stack.temporal.client.workflow.getHandle(r.id);
      await handle.result(); // the answer may go out before the workflow closes
      const history = await handle.fetchHistory();
      await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH, dataConverter: f.stack.temporal.dataConverter }, history, r.id);
    });

    test('GET /admin/hosts shows the host healthy with its placement', async () => {
      const res = await fetch(`${f.stack.api!.url}/admin/hosts`);
      assert.equal(res.status, 200);
      const body = (await res.json()) as { data: Array<{ id: string; healthy: boolean; placements: Array<{ model: string; state: string }> }> };
      assert.equal(body.data.length, 1);
      assert.equal(body.data[0]!.id, f.hostIds[0]);
      assert.equal(body.data[0]!.healthy, true);
      assert.deepEqual(body.data[0]!.placements.map((p) => [p.model, p.state]), [['tiny', 'loaded']]);
    });
  });
}
