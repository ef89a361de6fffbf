/** Stream coalescing: no timers, in-order offsets, nothing lost, payloads within the cap. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { StreamChunk } from '../../src/common/inference.js';
import { log } from '../../src/logger.js';
import { MAX_CHUNK_BYTES, type StreamChannel } from '../../src/stream/channel.js';
import { createChunkPublisher } from '../../src/stream/chunkPublisher.js';

function recordingChannel(delayMs: number, failEvery = 0) {
  const published: StreamChunk[] = [];
  let n = 0;
  const channel: StreamChannel = {
    async publish(c) {
      await new Promise((r) => setTimeout(r, delayMs));
      if (failEvery && ++n % failEvery === 0) throw new Error('boom');
      published.push(c);
    },
    async subscribe() {
      return () => undefined;
    },
    async close() {},
  };
  return { channel, published };
}

test('text pushed while a publish is in flight goes out as one coalesced chunk', async () => {
  const { channel, published } = recordingChannel(5);
  const p = createChunkPublisher(channel, 'r1', 'h', log);
  p.push('a');
  for (const t of ['b', 'c', 'd']) p.push(t);
  await p.flush();
  assert.deepEqual(published, [
    { requestId: 'r1', source: 'h', offset: 0, text: 'a' },
    { requestId: 'r1', source: 'h', offset: 1, text: 'bcd' },
  ]);
  assert.equal(p.published, 4);
});

test('large text is split under the NOTIFY cap without breaking characters', async () => {
  const { channel, published } = recordingChannel(0);
  const p = createChunkPublisher(channel, 'r2', 'h', log);
  const text = '€'.repeat(5000) + '😀'.repeat(2000);
  p.push(text);
  await p.flush();
  assert.ok(published.length > 1);
  assert.equal(published.map((c) => c.text).join(''), text);
  let offset = 0;
  for (const c of published) {
    assert.equal(c.offset, offset);
    offset += c.text.length;
    assert.ok(Buffer.byteLength(c.text) <= MAX_CHUNK_BYTES);
    assert.ok(!/[\ud800-\udbff]$/.test(c.text), 'no dangling high surrogate');
  }
});

test('a failed publish is skipped (the API fills gaps from the result), later chunks still flow', async () => {
  const { channel, published } = recordingChannel(1, 2);
  const p = createChunkPublisher(channel, 'r3', 'h', log);
  for (const t of ['x', 'y', 'z']) {
    p.push(t);
    await p.flush();
  }
  assert.deepEqual(
    published.map((c) => [c.offset, c.text]),
    [
      [0, 'x'],
      [2, 'z'],
    ],
  );
});

// ---- the early answer: the end of an answer on the channel, and the API's assembly of it ------
import { ChunkOrder, createAnswerListener } from '../../src/stream/answerListener.js';
import type { EarlyAnswer } from '../../src/common/inference.js';
import { publishFinal } from '../../src/stream/chunkPublisher.js';

const FINAL: EarlyAnswer = { finishReason: 'stop', usage: { promptTokens: 3, completionTokens: 2 }, replica: { kind: 'host', hostId: 'h' }, hostId: 'h', failovers: 0 };
const chunk = (source: string, offset: number, text: string, final?: EarlyAnswer): StreamChunk => ({ requestId: 'r', source, offset, text, ...(final ? { final } : {}) });

test('early answer: complete once every chunk before the final marker is in, whatever the arrival order', () => {
  const orders: Array<[string, StreamChunk[]]> = [
    ['in order', [chunk('h', 0, 'ab'), chunk('h', 2, 'cd'), chunk('h', 4, '', FINAL)]],
    ['the marker overtakes the last chunk', [chunk('h', 0, 'ab'), chunk('h', 4, '', FINAL), chunk('h', 2, 'cd')]],
    ['chunks swapped, duplicates, a marker twice', [chunk('h', 2, 'cd'), chunk('h', 0, 'ab'), chunk('h', 0, 'ab'), chunk('h', 4, '', FINAL), chunk('h', 4, '', FINAL)]],
  ];
  for (const [name, chunks] of orders) {
    const emitted: string[] = [];
    const completed: string[] = [];
    const order = new ChunkOrder((t) => emitted.push(t), (text) => completed.push(text));
    for (const c of chunks) order.push(c);
    assert.equal(emitted.join(''), 'abcd', name);
    assert.deepEqual(completed, ['abcd'], name);
  }
});

test("early answer: another replica's chunks and marker never complete the first one's answer", () => {
  const completed: string[] = [];
  const order = new ChunkOrder(() => undefined, (text) => completed.push(text));
  order.push(chunk('h1', 0, 'ab'));
  order.push(chunk('h2', 0, 'xyz'));
  order.push(chunk('h2', 3, '', FINAL));
  assert.deepEqual(completed, []);
  order.push(chunk('h1', 2, '', FINAL));
  assert.deepEqual(completed, ['ab']);
});

test('publishFinal: a stream gets a marker at its length (only when its chunks add up to the text); an unstreamed answer goes whole', async () => {
  const { channel, published } = recordingChannel(0);
  const p = createChunkPublisher(channel, 'r', 'h', log);
  p.push('hello');
  await p.flush();
  await publishFinal(channel, { requestId: 'r', source: 'h', log, text: 'hello', streamed: p, final: FINAL });
  assert.deepEqual(published.at(-1), { requestId: 'r', source: 'h', offset: 5, text: '', final: FINAL });
  const n = published.length;
  await publishFinal(channel, { requestId: 'r', source: 'h', log, text: 'hello, trimmed differently', streamed: p, final: FINAL });
  assert.equal(published.length, n, 'the streamed text is not the answer: no early answer, the workflow result decides');
  await publishFinal(channel, { requestId: 'r', source: 'h', log, text: 'whole', streamed: undefined, final: FINAL });
  assert.deepEqual(published.at(-1), { requestId: 'r', source: 'h', offset: 0, text: 'whole', final: FINAL });
  const failing = recordingChannel(0, 1);
  await publishFinal(failing.channel, { requestId: 'r', source: 'h', log, text: 'x', streamed: undefined, final: FINAL }); // logged, not thrown
});

test('answer listener: an unstreamed answer completes on the first whole-text final; a stream through its chunk order', async () => {
  const json = createAnswerListener({ stream: false, emit: () => assert.fail('nothing is relayed for an unstreamed answer') });
  json.onChunk(chunk('a#1.1', 3, '', FINAL)); // a stream marker is no whole text
  json.onChunk(chunk('a#1.1', 0, 'first', FINAL));
  json.onChunk(chunk('b#2.1', 0, 'second', FINAL));
  assert.equal((await json.early).text, 'first');
  const relayed: string[] = [];
  const stream = createAnswerListener({ stream: true, emit: (t) => relayed.push(t) });
  stream.onChunk(chunk('a#1.1', 0, 'he'));
  stream.onChunk(chunk('a#1.1', 2, 'llo', FINAL)); // a marker carrying text: the text counts
  assert.deepEqual([relayed.join(''), (await stream.early).text], ['hello', 'hello']);
});

// ---- the channel: in memory when the subscriber is in this process, NOTIFY otherwise ---------
import type { DbHandle } from '../../src/db/connect.js';
import { createPgStreamChannel } from '../../src/stream/channel.js';

test('channel: a chunk for a request this process subscribed to is delivered in memory; any other goes over NOTIFY, final included', async () => {
  const notified: string[] = [];
  let deliver: ((payload: string) => void) | undefined;
  const db = {
    kind: 'postgres',
    listen: async (_channel: string, onPayload: (payload: string) => void) => ((deliver = onPayload), async () => undefined),
    notify: async (_channel: string, payload: string) => void notified.push(payload),
  } as unknown as DbHandle;
  const channel = createPgStreamChannel(db, log);
  const got: StreamChunk[] = [];
  const off = await channel.subscribe('mine', (c) => got.push(c));
  await channel.publish({ requestId: 'mine', source: 'h', offset: 0, text: 'local', final: FINAL });
  assert.equal(notified.length, 0, 'no database round trip for a local subscriber');
  assert.deepEqual(got.map((c) => [c.text, c.final?.hostId]), [['local', 'h']]);
  await channel.publish({ requestId: 'theirs', source: 'h', offset: 0, text: 'remote', final: FINAL });
  assert.equal(notified.length, 1);
  // What another process receives parses back to the same chunk, final included.
  await channel.subscribe('theirs', (c) => got.push(c));
  deliver!(notified[0]!);
  assert.deepEqual(got.at(-1), { requestId: 'theirs', source: 'h', offset: 0, text: 'remote', final: FINAL });
  deliver!('{"r":"theirs","s":"h","o":0,"t":"x","f":{"fr":"maybe"}}'); // malformed: dropped, logged
  assert.equal(got.length, 2);
  await channel.publish({ requestId: 'elsewhere', source: 'h', offset: 0, text: '"'.repeat(5000), final: FINAL });
  assert.equal(notified.length, 1, 'an end marker too big for one notification is not sent');
  off();
  await channel.close();
});
