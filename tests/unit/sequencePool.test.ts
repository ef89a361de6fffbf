/** The slot pool behind per-model concurrency: FIFO hand-off, bounded queue, abort. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QueueFullError, SequencePool } from '../../src/activities/llama/sequencePool.js';

test('hands out free items, then queues FIFO, then refuses when the queue is full', async () => {
  const pool = new SequencePool(['s1', 's2'], 2);
  const a = await pool.acquire();
  const b = await pool.acquire();
  assert.deepEqual([a, b], ['s1', 's2']);
  const order: string[] = [];
  const w1 = pool.acquire().then((s) => order.push(`w1:${s}`));
  const w2 = pool.acquire().then((s) => order.push(`w2:${s}`));
  assert.deepEqual(pool.stats, { running: 2, queued: 2, capacity: 2 });
  await assert.rejects(pool.acquire(), QueueFullError);
  pool.release(b);
  pool.release(a);
  await Promise.all([w1, w2]);
  assert.deepEqual(order, ['w1:s2', 'w2:s1']);
  assert.deepEqual(pool.stats, { running: 2, queued: 0, capacity: 2 });
});

test('an aborted waiter leaves the queue at once and never receives a slot', async () => {
  const pool = new SequencePool(['s1'], 4);
  const held = await pool.acquire();
  const ac = new AbortController();
  const waiting = pool.acquire(ac.signal);
  ac.abort(new Error('client gone'));
  await assert.rejects(waiting, /client gone/);
  assert.equal(pool.stats.queued, 0);
  pool.release(held);
  assert.deepEqual(pool.stats, { running: 0, queued: 0, capacity: 1 });
  await assert.rejects(pool.acquire(AbortSignal.abort()), { name: 'AbortError' });
});

test('rejectAll fails every waiter (model unloaded)', async () => {
  const pool = new SequencePool(['s1'], 4);
  await pool.acquire();
  const w = pool.acquire();
  pool.rejectAll(new Error('unloaded'));
  await assert.rejects(w, /unloaded/);
});
