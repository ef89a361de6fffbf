/**
 * Probe loads: before a GPU host loads a build it has not loaded before, a child process loads
 * it first (probeChild.mjs). An abort inside llama.cpp (a GGML_ASSERT on a malformed file that
 * passed the header checks) then kills the child and is reported as a crash, instead of taking
 * the worker — and every request on it — down. A build that probed fine is remembered per
 * sha256 in the host's state folder, so the probe's cost (a second load, measured by
 * bench/fleet) is paid once per build and host, not on every cold load.
 */
import { spawn } from 'node:child_process';
import { access, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('./probeChild.mjs', import.meta.url));

export type ProbeOutcome =
  | { kind: 'ok'; ms: number }
  /** llama.cpp refused the file cleanly (an exception in the child). */
  | { kind: 'failed'; message: string }
  /** The child died (an abort, a segfault): this file would have killed the worker. */
  | { kind: 'crashed'; message: string }
  /** The child neither finished nor died in time (a stuck disk, a swamped host): killed. */
  | { kind: 'timedOut'; message: string };

export interface ProbeOptions {
  file: string;
  signal?: AbortSignal;
  /** How long the child may take (default 10 minutes: the load activity's own bound). */
  timeoutMs?: number;
}

const DEFAULT_PROBE_TIMEOUT_MS = 10 * 60_000;

/** Runs one probe; never throws for the model's sake (only for a child that cannot start). */
export function probeModelLoad(o: ProbeOptions): Promise<ProbeOutcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, o.file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    // Only the tail matters: llama.cpp prints the failed assertion last.
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    const onAbort = () => child.kill('SIGKILL');
    o.signal?.addEventListener('abort', onAbort, { once: true });
    let timedOut = false;
    const timeoutMs = o.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
    const timer = setTimeout(() => ((timedOut = true), child.kill('SIGKILL')), timeoutMs);
    child.on('error', (e) => (clearTimeout(timer), reject(e)));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      if (o.signal?.aborted) return reject(new Error('probe cancelled'));
      if (timedOut) return resolve({ kind: 'timedOut', message: `the probe load did not finish within ${timeoutMs >= 1000 ? `${Math.round(timeoutMs / 1000)} s` : `${timeoutMs} ms`}` });
      const line = out.trim().split('\n').pop() ?? '';
      let report: { ok?: boolean; ms?: number; message?: string } | undefined;
      try {
        report = JSON.parse(line) as typeof report;
      } catch {
        report = undefined;
      }
      if (code === 0 && report?.ok) return resolve({ kind: 'ok', ms: report.ms ?? 0 });
      if (code === 1 && report?.ok === false) return resolve({ kind: 'failed', message: report.message ?? 'load failed' });
      const assertion = /GGML_ASSERT\([^)]*\)[^\n]*/.exec(err)?.[0];
      resolve({ kind: 'crashed', message: `llama.cpp ${signal ? `died (${signal})` : `exited ${code}`}${assertion ? `: ${assertion}` : ''}` });
    });
  });
}

/** Which builds (by sha256) already probed fine on this host: files in its state folder. */
export function probeRegistry(stateDir: string) {
  const dir = path.join(stateDir, 'probed');
  const file = (sha256: string) => path.join(dir, /^[0-9a-f]{64}$/.test(sha256) ? sha256 : 'invalid');
  return {
    has: (sha256: string) => access(file(sha256)).then(() => true, () => false),
    async add(sha256: string): Promise<void> {
      await mkdir(dir, { recursive: true });
      await writeFile(file(sha256), '');
    },
  };
}
