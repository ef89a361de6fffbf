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
import { ChunkOrder } from '../../src/api/callExecutor.js';
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

test('publishFinal: a stream gets a marker at its length; an unstreamed answer goes whole when it fits, else not at all', async () => {
  const { channel, published } = recordingChannel(0);
  const p = createChunkPublisher(channel, 'r', 'h', log);
  p.push('hello');
  await p.flush();
  await publishFinal(channel, { requestId: 'r', source: 'h', log, text: 'hello', streamed: p, final: FINAL });
  assert.deepEqual(published.at(-1), { requestId: 'r', source: 'h', offset: 5, text: '', final: FINAL });
  await publishFinal(channel, { requestId: 'r', source: 'h', log, text: 'whole', streamed: undefined, final: FINAL });
  assert.deepEqual(published.at(-1), { requestId: 'r', source: 'h', offset: 0, text: 'whole', final: FINAL });
  const n = published.length;
  await publishFinal(channel, { requestId: 'r', source: 'h', log, text: 'é'.repeat(MAX_CHUNK_BYTES), streamed: undefined, final: FINAL });
  assert.equal(published.length, n, 'too long for one notification: answered from the workflow result');
  const failing = recordingChannel(0, 1);
  await publishFinal(failing.channel, { requestId: 'r', source: 'h', log, text: 'x', streamed: undefined, final: FINAL }); // logged, not thrown
});
