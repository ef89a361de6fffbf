/**
 * The attested-provider half of bench/discovery.ts: `attestedDiscoveryCycle` (count over
 * HTTPS, one fresh TLS connection per rotation index, a software-TEE report per backend,
 * report_data binding and SPKI check, pin-update policy, record) against the in-repo
 * model-proxy (tests/support/modelProxy.ts: real TLS, one certificate per backend). One
 * provider whose proxy grows through the sizes asked for (e.g. 1 → 16 → 256 backends); at each
 * size, warm-up cycles until one pins every backend, then N timed cycles. Then, with the
 * provider's Schedule at its shortest interval (10 s), the time from a backend's certificate
 * rotation to the eviction of its old fingerprint: what an operator waits for, Schedule phase
 * included (Temporal fires interval Schedules on multiples of the interval).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { AttestedDiscoveryOutcome } from '../src/common/discovery.js';
import { readPinRecord } from '../src/db/pinSetsRepo.js';
import type { Stack } from '../src/stack.js';
import { startAttestedDiscovery } from '../src/temporal/attestedDiscovery.js';
import { startModelProxy, type ModelProxy } from '../tests/support/modelProxy.js';
import { summarize, type Summary } from './stats.js';

const PROVIDER = 'bench-tee';
const SLUG = 'tiny-remote';
const BUILD = `${PROVIDER}/${SLUG}`;
/** The provider's Schedule interval while rotations are timed (the minimum a provider takes). */
export const ROTATION_INTERVAL_S = 10;

export interface AttestedRow { backends: number; summary: Summary; incomplete: number; warmups: number }
export interface AttestedResult { rows: AttestedRow[]; rotation: { backends: number; intervalS: number; summary: Summary | null; missed: number } | null }

export interface AttestedBenchOptions {
  stack: Stack;
  log: Logger;
  tmpDir: string;
  /** The software TEE's secret key (the stack was configured with its public key). */
  teeSecretKey: Uint8Array;
  sizes: number[];
  cycles: number;
  rotations: number;
}

async function admin(s: Stack, method: string, route: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${s.api!.url}${route}`, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${route}: HTTP ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (performance.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function benchAttested(o: AttestedBenchOptions): Promise<AttestedResult> {
  const s = o.stack;
  let proxy: ModelProxy | undefined;
  try {
    proxy = await startModelProxy({ backends: o.sizes[0]!, models: [SLUG], teeSecretKey: o.teeSecretKey });
    const p = proxy;
    const ca = path.join(o.tmpDir, 'proxy-ca.pem');
    await writeFile(ca, p.caPem);
    await admin(s, 'POST', '/admin/providers', {
      id: PROVIDER,
      base_url: p.inferenceUrl,
      tier: 'attested',
      models: `secure=${SLUG}`,
      discovery_interval_s: 3600, // timed cycles only, until the rotation part
      timeouts: { connect_ms: 5000, first_byte_ms: 10000, idle_ms: 10000 },
      transport: { resolve: { [`*.${p.base}`]: p.resolveTo, [p.base]: p.resolveTo }, ca_file: ca },
    });

    const cycle = async (backends: number) => {
      const t0 = performance.now();
      const handle = await startAttestedDiscovery(s.temporal.client, { providerId: PROVIDER, slug: SLUG });
      const out: AttestedDiscoveryOutcome = await handle.result();
      const complete = out.mode === 'replaced' && out.backendCount === backends && out.pinSet.fingerprints.length === backends;
      if (!complete) o.log.warn({ workflowId: handle.workflowId, mode: out.mode, reasons: out.reasons.slice(0, 3) }, 'incomplete attested cycle');
      return { ms: performance.now() - t0, complete };
    };

    const rows: AttestedRow[] = [];
    for (const n of o.sizes) {
      while (p.backends.length < n) await p.addBackend();
      let warmups = 0;
      while (warmups < 3) {
        warmups++;
        if ((await cycle(n)).complete) break;
      }
      const samples: number[] = [];
      let incomplete = 0;
      for (let i = 0; i < o.cycles; i++) {
        const c = await cycle(n);
        samples.push(c.ms);
        if (!c.complete) incomplete++;
      }
      rows.push({ backends: n, summary: summarize(samples), incomplete, warmups });
    }

    if (o.rotations === 0) return { rows, rotation: null };
    // Rotation → eviction, driven by the provider's own Schedule (the PATCH refreshes the
    // provider, whose reconcile updates the Schedule's interval).
    await admin(s, 'PATCH', `/admin/providers/${PROVIDER}`, { discovery_interval_s: ROTATION_INTERVAL_S });
    const samples: number[] = [];
    let missed = 0;
    for (let r = 0; r < o.rotations; r++) {
      const backend = r % p.backends.length;
      const old = p.fingerprintOf(backend);
      await waitFor('the backend pinned', async () => ((await readPinRecord(s.db.db, BUILD)).pinSet.fingerprints.includes(old) ? true : undefined), 120_000);
      const t0 = performance.now();
      await p.rotateCertificate(backend);
      const fresh = p.fingerprintOf(backend);
      try {
        await waitFor(
          'the old fingerprint evicted',
          async () => {
            const fps = (await readPinRecord(s.db.db, BUILD)).pinSet.fingerprints;
            return !fps.includes(old) && fps.includes(fresh) ? true : undefined;
          },
          6 * ROTATION_INTERVAL_S * 1000,
        );
        samples.push(performance.now() - t0);
      } catch (err) {
        o.log.warn({ backend, err: (err as Error).message }, 'rotation not evicted in time');
        missed++;
      }
    }
    return { rows, rotation: { backends: p.backends.length, intervalS: ROTATION_INTERVAL_S, summary: samples.length ? summarize(samples) : null, missed } };
  } finally {
    await admin(s, 'DELETE', `/admin/providers/${PROVIDER}`).catch(() => undefined);
    await proxy?.close();
  }
}
