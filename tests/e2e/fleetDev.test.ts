/**
 * `fleet dev` as a user runs it: one command brings up Temporal (with its Web UI), PGlite,
 * both workers and the API with the generated model; the `openai` SDK streams an answer; the
 * Web UI answers; SIGINT stops everything and SIGKILL leaves no orphan server either.
 */
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { startDevFleet as startDev } from '../support/devFleet.js';
import { waitFor } from '../support/wait.js';

const root = path.resolve(import.meta.dirname, '../..');

/** Processes whose command line mentions the folder: the dev server's SQLite file lives there. */
function processesUsing(dir: string): string[] {
  const ps = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return ps.split('\n').filter((l) => l.includes(dir) && !l.includes('ps -eo'));
}

const exited = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', (c) => resolve(c))));

describe('fleet dev', () => {
  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'fleet-dev-'));
  });
  after(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  test('comes up, streams an answer to the openai SDK, shows the UI, and SIGINT leaves nothing running', async () => {
    const dev = await startDev(dataDir);
    try {
      assert.match(dev.output(), /API\s+http:\/\/127\.0\.0\.1:\d+\/v1/);
      assert.match(dev.output(), /Temporal UI\s+http:\/\/127\.0\.0\.1:\d+/);
      const openai = new OpenAI({ baseURL: `${dev.apiUrl}/v1`, apiKey: 'sk-no-key', maxRetries: 0 });
      const stream = await openai.chat.completions.create({
        model: 'tiny',
        messages: [{ role: 'user', content: 'hello from the quick start' }],
        max_tokens: 16,
        stream: true,
      });
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
      assert.ok(text.length > 0);
      const ui = await fetch(dev.uiUrl);
      assert.equal(ui.status, 200);
    } finally {
      dev.child.kill('SIGINT');
    }
    assert.equal(await exited(dev.child), 0, dev.output());
    const left = await waitFor(async () => (processesUsing(dataDir).length === 0 ? true : undefined), 10_000);
    assert.ok(left, `still running:\n${processesUsing(dataDir).join('\n')}`);
  });

  test('restarts on the same data folder, and a SIGKILLed fleet takes its Temporal server with it', async () => {
    const dev = await startDev(dataDir);
    const r = await fetch(`${dev.apiUrl}/v1/models`);
    assert.equal(r.status, 200);
    assert.ok(processesUsing(dataDir).length > 0, 'the dev server runs with the data folder');
    dev.child.kill('SIGKILL');
    await exited(dev.child);
    const gone = await waitFor(async () => (processesUsing(dataDir).length === 0 ? true : undefined), 15_000);
    assert.ok(gone, `orphans after SIGKILL:\n${processesUsing(dataDir).join('\n')}`);
  });
});
