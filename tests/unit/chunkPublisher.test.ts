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
