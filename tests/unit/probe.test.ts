/**
 * Probe loads in a child process (src/activities/llama/probe.ts), on real files: a good tiny
 * model probes fine, a truncated one is refused or crashes the child (never this process), and
 * a probe out of time is killed and reported as such — whatever the machine's speed: the
 * timeout is far below what starting a Node process takes.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, truncate, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { probeModelLoad, probeRegistry } from '../../src/activities/llama/probe.js';
import { writeGguf } from '../../src/model/ggufWriter.js';
import { tinyModelSpec } from '../../src/model/tinyModel.js';

describe('probe loads', () => {
  let dir: string;
  let good: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'fleet-probe-'));
    good = path.join(dir, 'good.gguf');
    await writeGguf(good, tinyModelSpec('tiny', 1));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a good file probes fine', async () => {
    const out = await probeModelLoad({ file: good });
    assert.equal(out.kind, 'ok', JSON.stringify(out));
  });

  test('a truncated file is refused or kills the child, never this process', async () => {
    const bad = path.join(dir, 'bad.gguf');
    await writeGguf(bad, tinyModelSpec('tiny', 2));
    await truncate(bad, Math.floor((await stat(bad)).size / 2));
    const out = await probeModelLoad({ file: bad });
    assert.ok(out.kind === 'failed' || out.kind === 'crashed', JSON.stringify(out));
  });

  test('a probe out of time is killed and reported as timed out', async () => {
    const out = await probeModelLoad({ file: good, timeoutMs: 1 });
    assert.deepEqual(out, { kind: 'timedOut', message: 'the probe load did not finish within 1 ms' });
  });

  test('a cancelled probe rejects', async () => {
    const ac = new AbortController();
    const p = probeModelLoad({ file: good, signal: ac.signal });
    ac.abort();
    await assert.rejects(p, /probe cancelled/);
  });

  test('the registry remembers builds by sha256 and ignores anything else', async () => {
    const reg = probeRegistry(dir);
    const sha = 'a'.repeat(64);
    assert.equal(await reg.has(sha), false);
    await reg.add(sha);
    assert.equal(await reg.has(sha), true);
    assert.equal(await reg.has('../../etc/passwd'), false);
  });
});
