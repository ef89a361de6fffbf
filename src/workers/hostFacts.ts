/**
 * What a GPU host tells the fleet about itself, gathered off the request path: static facts
 * for the hosts row (GPUs, memory, slots) and the dynamic part the heartbeat carries (free
 * memory, the GGUF files it has). Refreshed in the background; the heartbeat only reads the
 * cached values, so it never waits on llama.cpp or the disk.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { LlamaRuntime } from '../activities/llama/runtime.js';
import type { HostInfo } from '../db/hostsRepo.js';
import { keyFingerprint, publicKeyOf } from '../domain/attestation.js';
import { SOFTWARE_VERSION } from '../version.js';

export interface DynamicFacts {
  freeMemoryBytes: number;
  files: string[];
  /** Fingerprint of the current identity key (re-read when the file's mtime changes). */
  keyFingerprint?: string;
}

/** Reads the identity key's fingerprint, cached by the file's mtime (a rotation renames a new file in). */
export function identityFingerprintReader(file: string) {
  let cached: { mtimeMs: number; ino: number; fingerprint: string } | undefined;
  return async (): Promise<string | undefined> => {
    try {
      const st = await stat(file);
      if (cached && cached.mtimeMs === st.mtimeMs && cached.ino === st.ino) return cached.fingerprint;
      const fingerprint = keyFingerprint(publicKeyOf(new Uint8Array(await readFile(file))));
      cached = { mtimeMs: st.mtimeMs, ino: st.ino, fingerprint };
      return fingerprint;
    } catch {
      return undefined;
    }
  };
}

/** Calls `onChange` when `file` is replaced or written (watching its folder: a rename replaces the inode). */
export function watchKeyFile(file: string, onChange: () => void, log: { warn: (o: object, m: string) => void }): { close(): void } {
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(path.dirname(file), (_event, name) => {
      if (name === path.basename(file)) onChange();
    });
    watcher.on('error', () => watcher?.close());
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'cannot watch the identity key; a rotation shows with the next facts refresh');
  }
  return { close: () => watcher?.close() };
}

async function ggufFiles(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    return entries
      .filter((e) => e.isFile() && e.name.endsWith('.gguf'))
      .map((e) => path.join(e.parentPath ?? dir, e.name))
      .sort();
  } catch {
    return [];
  }
}

export async function staticHostFacts(
  runtime: LlamaRuntime,
  o: { threads: number; maxModelSlots: number; maxInFlight: number; maxQueue: number },
): Promise<HostInfo> {
  const r = await runtime.resources();
  return {
    cpuCount: os.availableParallelism(),
    threads: o.threads,
    gpu: r.gpu,
    gpuCount: r.gpuCount,
    memoryBytes: os.totalmem(),
    totalMemoryBytes: r.totalMemoryBytes,
    maxModelSlots: o.maxModelSlots,
    maxInFlight: o.maxInFlight,
    maxQueue: o.maxQueue,
    version: SOFTWARE_VERSION,
  };
}

/** Keeps a cached copy of the dynamic facts, refreshed every `everyMs` in the background. */
export function watchHostFacts(runtime: LlamaRuntime, modelsDir: string, everyMs: number, identityKeyFile?: string) {
  let current: DynamicFacts = { freeMemoryBytes: os.freemem(), files: [] };
  let timer: NodeJS.Timeout | undefined;
  const fingerprint = identityKeyFile ? identityFingerprintReader(identityKeyFile) : async () => undefined;
  const refresh = async () => {
    const [r, files, fp] = await Promise.all([runtime.resources(), ggufFiles(modelsDir), fingerprint()]);
    current = { freeMemoryBytes: r.freeMemoryBytes, files, ...(fp !== undefined ? { keyFingerprint: fp } : {}) };
  };
  const loop = () => {
    timer = setTimeout(() => void refresh().catch(() => undefined).finally(loop), everyMs);
    timer.unref();
  };
  return {
    /** First refresh, awaited once at start so the first heartbeat carries real values. */
    start: async () => {
      await refresh().catch(() => undefined);
      loop();
    },
    get: () => current,
    refresh,
    stop: () => clearTimeout(timer),
  };
}
