/**
 * The `fleet status` renderer: progress bars, health labels, slots, per-placement lines, and
 * validation of the `GET /admin/hosts` answer it reads.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { healthLabel, hostsResponseSchema, progressBar, renderStatus, type HostStatusView } from '../../src/statusView.js';

const host = (o: Partial<HostStatusView> = {}): HostStatusView => ({
  id: 'gpu-1',
  status: 'up',
  healthy: true,
  missed_heartbeats: 0,
  slots: { used: 1, total: 2 },
  placements: [],
  ...o,
});

describe('progressBar', () => {
  const cases: Array<[number, string]> = [
    [0, '[--------------] 0%'],
    [0.52, '[#######-------] 52%'],
    [1, '[##############] 100%'],
    [0.29, '[####----------] 29%'],
    [0.999, '[#############-] 99%'],
    [-0.5, '[--------------] 0%'],
    [7, '[##############] 100%'],
    [Number.NaN, '[--------------] 0%'],
  ];
  for (const [fraction, expected] of cases) {
    test(`${fraction} → ${expected}`, () => assert.equal(progressBar(fraction), expected));
  }
  test('width is configurable', () => assert.equal(progressBar(0.5, 4), '[##--] 50%'));
});

describe('healthLabel', () => {
  const cases: Array<[Pick<HostStatusView, 'status' | 'healthy' | 'missed_heartbeats'>, string]> = [
    [{ status: 'up', healthy: true, missed_heartbeats: 0 }, 'healthy'],
    [{ status: 'up', healthy: true, missed_heartbeats: 2 }, 'healthy'],
    [{ status: 'up', healthy: false, missed_heartbeats: 4 }, 'unhealthy (4 missed)'],
    [{ status: 'up', healthy: false, missed_heartbeats: null }, 'unhealthy (? missed)'],
    [{ status: 'down', healthy: false, missed_heartbeats: 9 }, 'down'],
  ];
  for (const [h, expected] of cases) test(expected, () => assert.equal(healthLabel(h), expected));
});

describe('renderStatus', () => {
  test('no hosts', () => assert.equal(renderStatus([]), 'no hosts registered\n'));

  test('a table with one line per shown placement, columns aligned', () => {
    const out = renderStatus([
      host({
        placements: [
          { model: 'tiny', state: 'loaded', progress: 1, error: null, running: 2, queued: 3 },
          { model: 'llama-8b', state: 'loading', progress: 0.52, error: null, running: 0, queued: 0 },
          { model: 'old', state: 'unloaded', progress: 0, error: null },
        ],
      }),
      host({ id: 'gpu-2', healthy: false, missed_heartbeats: 5, slots: { used: 0, total: 1 } }),
      host({ id: 'gpu-3', status: 'down', healthy: false, slots: { used: 0, total: null } }),
    ]);
    const lines = out.trimEnd().split('\n');
    assert.equal(lines.length, 5);
    assert.match(lines[0]!, /^HOST\s+HEALTH\s+SLOTS\s+MODEL\s+STATE\s+RUN\/QUEUED\s+LOAD$/);
    assert.match(lines[1]!, /^gpu-1\s+healthy\s+1\/2\s+tiny\s+loaded\s+2\/3$/);
    assert.match(lines[2]!, /^\s+llama-8b\s+loading\s+-\s+\[#######-------\] 52%$/);
    assert.match(lines[3]!, /^gpu-2\s+unhealthy \(5 missed\)\s+0\/1\s+-$/);
    assert.match(lines[4]!, /^gpu-3\s+down\s+0\/\?\s+-$/);
    assert.ok(!out.includes('old'), 'unloaded placements are history, not shown');
    // Aligned: every column starts at the same offset on every line.
    const modelCol = lines[0]!.indexOf('MODEL');
    assert.equal(lines[1]!.indexOf('tiny'), modelCol);
    assert.equal(lines[2]!.indexOf('llama-8b'), modelCol);
  });

  test('loading at 0 % and 100 %, and a failed load with its reason', () => {
    const out = renderStatus([
      host({
        placements: [
          { model: 'a', state: 'loading', progress: 0, error: null },
          { model: 'b', state: 'loading', progress: 1, error: null },
          { model: 'c', state: 'failed', progress: 0, error: 'out of memory' },
        ],
      }),
    ]);
    assert.match(out, /a\s+loading\s+-\s+\[--------------\] 0%/);
    assert.match(out, /b\s+loading\s+-\s+\[##############\] 100%/);
    assert.match(out, /c\s+failed\s+-\s+out of memory/);
  });

  test('an answer without slots (an older API) still renders', () => {
    const { slots: _omit, ...old } = host();
    assert.match(renderStatus([old]), /gpu-1\s+healthy\s+\?\s+-/);
  });
});

describe('hostsResponseSchema', () => {
  test('accepts the /admin/hosts shape and ignores extra fields', () => {
    const parsed = hostsResponseSchema.parse({
      object: 'list',
      data: [{ ...host(), task_queue: 'host.gpu-1', info: {}, stats: { models: {} } }],
    });
    assert.equal(parsed.data[0]!.id, 'gpu-1');
  });
  test('refuses something else', () => {
    assert.equal(hostsResponseSchema.safeParse({ data: [{ id: 1 }] }).success, false);
    assert.equal(hostsResponseSchema.safeParse('<html>').success, false);
  });
});
