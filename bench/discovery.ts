/**
 * bench/discovery.ts — how long a discovery cycle (`discoveryCycle`: count, fan out one
 * `attest` per host, verify every report, apply the pin-update policy, record) takes as the
 * number of backends grows. Two setups, one in-process stack (Temporal, database, control
 * plane, API):
 *   - real: 3 GPU-host workers (node-llama-cpp) with the tiny model loaded on all three; their
 *     `attest` hashes the model file and signs with the host's identity key;
 *   - simulated: 16, 64 and 256 backends of a second model id, each an activity-only Temporal
 *     worker on its own `host.<id>` queue that answers `attest` with a correctly signed report
 *     (own Ed25519 key, the catalog's hash, no model). The count step sees them as healthy
 *     serving hosts: host rows + loaded placements inserted in the database for their ids, kept
 *     alive by a heartbeat every interval/2 while the bench runs.
 * Each size: warm-up cycles until one pins every backend, then N sequential cycles, timed from
 * the client's start to the workflow's result; a timed cycle that did not replace the pin set
 * with exactly `count` fingerprints is counted in the `incomplete` column.
 * Then attested providers (bench/attestedDiscovery.ts): `attestedDiscoveryCycle` over 1, 16 and
 * 256 backends of the in-repo model-proxy (real TLS, software-TEE reports), and the time from a
 * backend's certificate rotation to its eviction.
 */
import { randomBytes } from 'node:crypto';
import { startBench } from './setup.js';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { NativeConnection, Worker } from '@temporalio/worker';
import { sha256File } from '../src/activities/fileHash.js';
import type { DiscoveryOutcome } from '../src/common/discovery.js';
import { hostQueue } from '../src/common/taskQueues.js';
import { recordHeartbeat, upsertHost } from '../src/db/hostsRepo.js';
import { registerModel } from '../src/db/modelsRepo.js';
import { setPlacementState } from '../src/db/placementsRepo.js';
import { PlacementState } from '../src/db/schema.js';
import { signReport } from '../src/domain/attestation.js';
import { makeTinyModel } from '../src/model/tinyModel.js';
import { startStack, type Stack } from '../src/stack.js';
import { startDiscoveryCycle } from '../src/temporal/discovery.js';
import { round, summarize, type Summary } from './stats.js';
import { benchAttested, type AttestedResult } from './attestedDiscovery.js';
import { softwareTeePublicKey } from '../src/attestation/quoteVerifier.js';

const USAGE = 'usage: npx tsx bench/discovery.ts [--cycles N=10] [--sizes 16,64,256] [--attested 1,16,256] [--rotations N=5] [--only own|attested]';
// Suffixed: task queues are per host id, and the Temporal server may be shared.
const RUN = randomBytes(3).toString('hex');
const REAL_HOSTS = [0, 1, 2].map((i) => `real${i}-${RUN}`);

function options(argv: string[]) {
  const { values: v } = parseArgs({ args: argv, strict: true, options: {
    cycles: { type: 'string', default: '10' }, sizes: { type: 'string', default: '16,64,256' },
    attested: { type: 'string', default: '1,16,256' }, rotations: { type: 'string', default: '5' }, only: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  } });
  if (!/^\d+$/.test(v.cycles) || Number(v.cycles) < 1 || Number(v.cycles) > 1000) throw new Error(`--cycles must be 1..1000, got '${v.cycles}'`);
  const sizes = v.sizes.split(',').map(Number);
  if (sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 256)) throw new Error(`--sizes: integers 1..256, got '${v.sizes}'`);
  const attested = v.attested.split(',').map(Number);
  if (attested.some((n) => !Number.isInteger(n) || n < 1 || n > 256)) throw new Error(`--attested: integers 1..256, got '${v.attested}'`);
  if (!/^\d+$/.test(v.rotations) || Number(v.rotations) > 100) throw new Error(`--rotations must be 0..100, got '${v.rotations}'`);
  if (v.only !== undefined && v.only !== 'own' && v.only !== 'attested') throw new Error(`--only: own or attested, got '${v.only}'`);
  return {
    help: v.help,
    cycles: Number(v.cycles),
    sizes: [...new Set(sizes)].sort((a, b) => a - b),
    attested: [...new Set(attested)].sort((a, b) => a - b),
    rotations: Number(v.rotations),
    own: v.only !== 'attested',
    attestedOn: v.only !== 'own',
  };
}

// The model-proxy's reports come from a software TEE; the stack must accept its key (the env is
// read once, by startBench).
const teeSecretKey = new Uint8Array(randomBytes(32));
process.env.FLEET_ALLOW_SOFTWARE_TEE = 'true';
process.env.FLEET_SOFTWARE_TEE_PUBLIC_KEY = softwareTeePublicKey(teeSecretKey);
const { opts, config, log } = startBench(options, USAGE);
const tmpDir = await mkdtemp(path.join(os.tmpdir(), 'fleet-bench-discovery-'));
let stack: Stack | undefined;
const simWorkers: Array<{ worker: Worker; done: Promise<void> }> = [];
// One long poll per worker; an HTTP/2 connection carries only ~100 concurrent streams, so the
// simulated workers share a connection per SIM_PER_CONNECTION of them.
const SIM_PER_CONNECTION = 32;
const simConnections: NativeConnection[] = [];
let beats: NodeJS.Timeout | undefined;

async function cleanup(): Promise<void> {
  clearInterval(beats);
  for (const w of simWorkers) if (w.worker.getState() === 'RUNNING') w.worker.shutdown();
  await Promise.allSettled(simWorkers.map((w) => w.done));
  await Promise.allSettled(simConnections.map((c) => c.close()));
  await stack?.stop();
  await rm(tmpDir, { recursive: true, force: true });
}

interface Row { setup: string; backends: number; summary: Summary; incomplete: number; warmups: number }

/**
 * Warm-up cycles until one pins every backend (new workers' pollers take a moment to reach
 * the server; at most 3 tries, then timed anyway), then `opts.cycles` timed ones. A timed cycle that did not pin
 * every backend is still timed, and counted as incomplete.
 */
async function timeCycles(s: Stack, modelId: string, backends: number): Promise<Omit<Row, 'setup' | 'backends'>> {
  const cycle = async () => {
    const t0 = performance.now();
    const handle = await startDiscoveryCycle(s.temporal.client, { modelId });
    const out = (await handle.result()) as DiscoveryOutcome;
    const complete = out.mode === 'replaced' && out.backendCount === backends && out.pinSet.fingerprints.length === backends;
    if (!complete) log.warn({ workflowId: handle.workflowId, mode: out.mode, reasons: out.reasons.slice(0, 3) }, 'incomplete cycle');
    return { ms: performance.now() - t0, complete };
  };
  let warmups = 0;
  for (;;) {
    warmups++;
    if ((await cycle()).complete) break;
    if (warmups >= 3) {
      log.warn({ backends }, 'no complete cycle in 3 warm-ups: timing anyway');
      break;
    }
  }
  const samples: number[] = [];
  let incomplete = 0;
  for (let i = 0; i < opts.cycles; i++) {
    const c = await cycle();
    samples.push(c.ms);
    if (!c.complete) incomplete++;
  }
  return { summary: summarize(samples), incomplete, warmups };
}

/** Our own hosts: 3 real ones, then the simulated sizes. */
async function benchOwn(s: Stack): Promise<Row[]> {
  const file = path.join(tmpDir, 'tiny.gguf');
  const tiny = await makeTinyModel({ file, seed: 1 });
  const { sha256, sizeBytes } = await sha256File(file);
  await registerModel(s.db.db, { id: 'tiny', path: file, sha256, sizeBytes, contextLength: tiny.contextLength });
  await registerModel(s.db.db, { id: 'sim', path: file, sha256, sizeBytes, contextLength: tiny.contextLength });
  for (const h of REAL_HOSTS) {
    const res = await fetch(`${s.api!.url}/admin/hosts/${h}/models/tiny/load`, { method: 'POST' });
    if (res.status !== 200) throw new Error(`loading tiny on ${h}: HTTP ${res.status} ${await res.text()}`);
  }
  const rows: Row[] = [{ setup: 'real hosts', backends: 3, ...(await timeCycles(s, 'tiny', 3)) }];

  // Simulated backends: rows, loaded placements, heartbeats, and an attest-only worker each.
  const simIds: string[] = [];
  const beat = () => Promise.all(simIds.map((id) => recordHeartbeat(s.db.db, id, { models: {} }))).catch(() => undefined);
  beats = setInterval(() => void beat(), Math.max(250, config.heartbeatIntervalMs / 2));
  beats.unref();
  for (const n of opts.sizes) {
    const t0 = performance.now();
    while (simIds.length < n) {
      const id = `sim${String(simIds.length).padStart(3, '0')}-${RUN}`;
      const key = new Uint8Array(randomBytes(32));
      await upsertHost(s.db.db, { id, taskQueue: hostQueue(id), info: { maxModelSlots: 1 } });
      await setPlacementState(s.db.db, { hostId: id, modelId: 'sim', state: PlacementState.Loaded });
      const slot = Math.floor(simIds.length / SIM_PER_CONNECTION);
      const connection = (simConnections[slot] ??= await NativeConnection.connect({ address: config.temporal.address ?? s.devServer!.address }));
      const worker = await Worker.create({
        connection,
        namespace: s.temporal.namespace,
        taskQueue: hostQueue(id),
        maxConcurrentActivityTaskPolls: 1,
        activities: {
          attest: async (input: { nonce: string; modelId: string }) =>
            signReport({ hostId: id, models: [{ modelId: input.modelId, sha256 }], softwareVersion: 'bench-sim', nonce: input.nonce }, key),
        },
      });
      simWorkers.push({ worker, done: worker.run() });
      simIds.push(id);
    }
    await beat();
    log.info({ backends: n, setupMs: Math.round(performance.now() - t0) }, 'simulated backends ready');
    await new Promise((r) => setTimeout(r, 2000)); // let the new workers' pollers reach the server
    rows.push({ setup: 'simulated', backends: n, ...(await timeCycles(s, 'sim', n)) });
  }
  return rows;
}

const cell = (x: number | string, w = 10) => (typeof x === 'number' ? x.toFixed(1) : x).padStart(w);
const header = () => `${'setup'.padEnd(12)}${cell('backends')}${cell('median')}${cell('p95')}${cell('min')}${cell('max')}${cell('ms/backend', 12)}${cell('incomplete', 12)}`;
const line = (r: Row) => {
  const m = r.summary;
  return `${r.setup.padEnd(12)}${cell(String(r.backends))}${cell(m.median)}${cell(m.p95)}${cell(m.min)}${cell(m.max)}${cell(m.median / r.backends, 12)}${cell(String(r.incomplete), 12)}`;
};
const jsonRow = (r: Row) => ({ setup: r.setup, backends: r.backends, medianMs: round(r.summary.median), p95Ms: round(r.summary.p95), minMs: round(r.summary.min), maxMs: round(r.summary.max), incomplete: r.incomplete, warmups: r.warmups });

let exitCode = 0;
try {
  const devServer = { uiPort: null, port: 0, persist: false };
  stack = await startStack({ config, log, hostIds: opts.own ? REAL_HOSTS : [], devServer, api: { host: '127.0.0.1', port: 0 } });
  const s = stack;
  const rows = opts.own ? await benchOwn(s) : [];
  const attested: AttestedResult | null = opts.attestedOn
    ? await benchAttested({ stack: s, log, tmpDir, teeSecretKey, sizes: opts.attested, cycles: opts.cycles, rotations: opts.rotations })
    : null;
  const attestedRows: Row[] = (attested?.rows ?? []).map((r) => ({ setup: 'attested', ...r }));

  console.log(`discovery cycle duration, ms (${opts.cycles} cycles per size after warm-up; db ${s.db.kind}; ${os.availableParallelism()} CPUs; load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')})`);
  console.log(header());
  for (const r of [...rows, ...attestedRows]) console.log(line(r));
  const rot = attested?.rotation;
  if (rot) {
    const m = rot.summary;
    console.log(
      `certificate rotation → eviction (attested, ${rot.backends} backends, Schedule every ${rot.intervalS} s): ` +
        (m ? `median ${m.median.toFixed(0)} ms, min ${m.min.toFixed(0)}, max ${m.max.toFixed(0)} over ${m.n}` : 'no rotation evicted') +
        `${rot.missed ? `; ${rot.missed} not evicted within ${6 * rot.intervalS} s` : ''}`,
    );
  }
  console.log(
    `BENCH_JSON ${JSON.stringify({
      bench: 'discovery',
      cycles: opts.cycles,
      db: s.db.kind,
      loadAvg: os.loadavg(),
      rows: [...rows, ...attestedRows].map(jsonRow),
      rotation: rot ? { backends: rot.backends, intervalS: rot.intervalS, medianMs: rot.summary ? round(rot.summary.median) : null, maxMs: rot.summary ? round(rot.summary.max) : null, n: rot.summary?.n ?? 0, missed: rot.missed } : null,
    })}`,
  );
} catch (err) {
  console.error(`bench failed: ${(err as Error).stack ?? err}`);
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(exitCode);
