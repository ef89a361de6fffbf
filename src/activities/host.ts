/**
 * Activities of a GPU-host worker, run only on that host's own task queue (`host.<id>`):
 * load and unload models, generate (streaming through the chunk publisher), describe the
 * host, and attest (a report signed with the host's identity key). Built by a factory so tests and production pass their own runtime and channel.
 * Runtime errors become `ApplicationFailure`s with the stable types the workflow matches on.
 * Host-side metrics (load counts and times, tokens/s, admission refusals) are recorded here,
 * where the facts are.
 *
 * A generation cancelled by its workflow (the client went away) reports the tokens it used by
 * then in the cancellation's details; the workflow waits for that before it closes, and the
 * API settles the key's budget to them — budgets are settled in one place, the API.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { stat } from 'node:fs/promises';
import os from 'node:os';
import { FailureType, type LoadFailureDetails } from '../common/failures.js';
import { typedFailure } from '../common/typedFailure.js';
import type { GenerateInput, GenerateResult } from '../common/inference.js';
import type { Logger } from '../logger.js';
import { recordAdmissionRejection, recordColdLoad, recordHostGeneration } from '../metrics.js';
import { createChunkPublisher, publishFinal } from '../stream/chunkPublisher.js';
import { chunkSource } from '../common/replicas.js';
import type { StreamChannel } from '../stream/channel.js';
import { keyFingerprint, publicKeyOf, signReport, type AttestationReport } from '../domain/attestation.js';
import { sha256Hex, signHostResponse } from '../domain/teeSignatures.js';
import { inspectModelFile } from '../model/ggufInspect.js';
import { sha256File } from './fileHash.js';
import { probeModelLoad, type probeRegistry } from './llama/probe.js';
import { loadOrCreateIdentityKey } from './hostIdentity.js';
import { AdmissionRejected } from './llama/admissionQueue.js';
import { gateOf, type TestGates } from './llama/testGates.js';
import { embedWith } from './llama/embeddings.js';
import {
  ContextOverflowError,
  GenerationAbortedError,
  InvalidGenerationError,
  ModelBusyError,
  ModelNotLoadedError,
  type LlamaRuntime,
  type LoadedModelInfo,
} from './llama/runtime.js';

export interface HostActivityDeps {
  hostId: string;
  runtime: LlamaRuntime;
  channel: StreamChannel;
  log: Logger;
  softwareVersion: string;
  /** The host's Ed25519 identity key file, read on every attest (so a rotation applies at once). */
  identityKeyFile: string;
  /** Load progress (0..1) for the placement row; called often, the receiver throttles. */
  onLoadProgress?: (modelId: string, progress: number) => void;
  /** An attest read the identity key (it may have been rotated): refresh what the heartbeat reports. */
  onIdentityRead?: () => void;
  /** A model was loaded or unloaded. */
  onModelsChanged?: () => void;
  /** Probe loads in a child process before a build's first load here (FLEET_LOAD_PROBE); unset: none. */
  probe?: { registry: ReturnType<typeof probeRegistry> };
  /** Test gates (FLEET_TEST_GATES_DIR): a gated generation holds its slot until released. */
  gates?: TestGates;
}

export interface LoadModelInput {
  modelId: string;
  path: string;
  sha256: string;
  contextLength: number;
}

export interface AttestInput {
  /** The caller's challenge, echoed in the signed report. */
  nonce: string;
  /** The model the cycle is about; refused (ModelNotLoaded) when it is neither loaded nor its file present. Every loaded model is reported. */
  modelId: string;
  /** The build's file: hashed and reported when the model is not loaded here. */
  path?: string;
}

export interface HostDescription {
  hostId: string;
  cpus: number;
  freeMemoryBytes: number;
  gpu: string | false;
  threads: number;
  softwareVersion: string;
  models: LoadedModelInfo[];
}

/** A failed load, with whose failure it is (see LoadFailureDetails). */
function loadFailed(message: string, scope: LoadFailureDetails['scope'], crashed = false): ApplicationFailure {
  const details: LoadFailureDetails = { scope, ...(crashed ? { crashed } : {}) };
  return typedFailure(FailureType.LoadFailed, message, details);
}

export function createHostActivities(deps: HostActivityDeps) {
  const { hostId, runtime } = deps;

  /**
   * Verifies a build before it is loaded here: the file matches the catalog's sha256, its GGUF
   * header passes the checks, and — the first time this host sees the build — a probe load in
   * a child process survives it. A failure says whose it is: the build's (a malformed file, a
   * probe that failed or died: no host will do better, the workflow quarantines it) or this
   * host's (its copy differs or is missing: another host may do better).
   */
  async function verifyBuild(input: LoadModelInput, progress: (phase: string, f: number) => void): Promise<void> {
    let actual: string;
    try {
      // Hashing a multi-gigabyte file takes a while: it is the first half of the progress bar.
      actual = (await sha256File(input.path, (f) => progress('verify', f))).sha256;
    } catch (err) {
      throw loadFailed(`model file for ${input.modelId} is unreadable on host ${hostId}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, 'host');
    }
    if (actual !== input.sha256) {
      throw loadFailed(`model file for ${input.modelId} on host ${hostId} does not match the catalog's sha256`, 'host');
    }
    const inspected = await inspectModelFile(input.path);
    if (!inspected.ok) throw loadFailed(`${input.modelId} cannot be loaded: ${inspected.problem}`, 'build');
    if (deps.probe && !(await deps.probe.registry.has(input.sha256))) {
      progress('probe', 0);
      const probe = await probeModelLoad({ file: input.path, signal: Context.current().cancellationSignal });
      if (probe.kind !== 'ok') {
        deps.log.warn({ modelId: input.modelId, probe }, 'probe load refused the build');
        // A probe out of time says nothing about the file: another host (or a later try) may do it.
        if (probe.kind === 'timedOut') throw loadFailed(`${input.modelId} could not be probed on host ${hostId}: ${probe.message}`, 'host');
        throw loadFailed(`${input.modelId} cannot be loaded: ${probe.message}`, 'build', probe.kind === 'crashed');
      }
      await deps.probe.registry.add(input.sha256);
      deps.log.info({ modelId: input.modelId, ms: probe.ms }, 'probe load passed');
    }
  }

  /**
   * An embedding request on this host: no stream, no early answer (the vectors come back in the
   * result), heartbeats while it runs so a cancellation reaches it.
   */
  async function embed(input: GenerateInput, e: Extract<GenerateInput['input'], { kind: 'embedding' }>): Promise<GenerateResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    const beats = setInterval(() => ctx.heartbeat({ chars: 0 }), 1000);
    try {
      const signingKey = input.sign ? await pinnedSigningKey(input.sign.pinnedFingerprints) : undefined;
      const out = await embedWith(runtime, input.modelId, { inputs: e.inputs, ...(e.dimensions !== undefined ? { dimensions: e.dimensions } : {}), signal });
      const replica = { kind: 'host' as const, hostId };
      const embeddings = out.vectors.map(encodeVector);
      const result: GenerateResult = { text: '', finishReason: 'stop', usage: { promptTokens: out.promptTokens, completionTokens: 0 }, hostId, replica, embeddings };
      if (!input.sign || !signingKey) return result;
      // A verifiable model signs what it returned: the vectors (base64, one per line) stand for the text.
      const requestSha256 = input.requestSha256 ?? sha256Hex(input.requestId);
      return { ...result, signature: signHostResponse({ modelSha256: input.sign.modelSha256, requestSha256, text: embeddings.join('\n') }, signingKey) };
    } catch (err) {
      if (signal.aborted) throw new CancelledFailure('embedding cancelled', [{ promptTokens: 0, completionTokens: 0 }]);
      throw toFailure(err, hostId, input.modelId);
    } finally {
      clearInterval(beats);
    }
  }

  /**
   * Runs `work` with heartbeats carrying its phase, on a timer too: a long llama load may report
   * no progress for a while, and the workflow reads a silent heartbeat as "the host died".
   */
  async function withLoadHeartbeats<T>(modelId: string, work: (progress: (phase: string, f: number) => void) => Promise<T>): Promise<T> {
    const ctx = Context.current();
    let detail = { phase: 'verify', progress: 0 };
    const beats = setInterval(() => ctx.heartbeat(detail), 1000);
    try {
      return await work((phase, f) => {
        detail = { phase, progress: f };
        ctx.heartbeat(detail);
        // Progress bar: verification (and probe) the first half, the llama load the second.
        deps.onLoadProgress?.(modelId, phase === 'load' ? 0.5 + f / 2 : f / 2);
      });
    } finally {
      clearInterval(beats);
    }
  }

  async function loadVerified(input: LoadModelInput, started: number): Promise<LoadedModelInfo> {
    const log = deps.log.child({ modelId: input.modelId, workflowId: Context.current().info.workflowExecution?.workflowId });
    return withLoadHeartbeats(input.modelId, async (progress) => {
      await verifyBuild(input, progress);
      try {
        const info = await runtime.load(input.modelId, input.path, input.contextLength, (f) => progress('load', f));
        deps.onModelsChanged?.();
        log.info({ ms: Date.now() - started }, 'loadModel done');
        return info;
      } catch (err) {
        throw loadFailed(`loading ${input.modelId} failed on host ${hostId}: ${(err as Error).message}`, 'host');
      }
    });
  }

  /**
   * The identity key, if its fingerprint is pinned (no list: any key, as recorded inputs had).
   * An unpinned key also tells the heartbeat at once, so routing stops offering this host.
   */
  async function pinnedSigningKey(pinned: string[] | undefined): Promise<Uint8Array> {
    const key = await loadOrCreateIdentityKey(deps.identityKeyFile);
    const fingerprint = keyFingerprint(publicKeyOf(key));
    if (pinned && !pinned.includes(fingerprint)) {
      deps.onIdentityRead?.();
      throw typedFailure(FailureType.Unpinned, `host ${hostId} holds a key that is not pinned for this model (${fingerprint.slice(0, 16)}…)`, { fingerprint });
    }
    return key;
  }

  return {
    /** Verifies and loads a model (see loadVerified), counting real loads in the metrics. */
    async loadModel(input: LoadModelInput): Promise<LoadedModelInfo> {
      const started = Date.now();
      // A model already resident returns at once: that is no cold load, so it is not counted.
      const resident = runtime.isLoaded(input.modelId);
      try {
        const info = await loadVerified(input, started);
        if (!resident) recordColdLoad(input.modelId, 'ok', (Date.now() - started) / 1000);
        return info;
      } catch (err) {
        if (!resident) recordColdLoad(input.modelId, 'failed', (Date.now() - started) / 1000);
        throw err;
      }
    },

    /**
     * Verifies a build as a load would (hash, header, probe) without loading it: a pool move
     * or an evicting cold load asks first, so a build that cannot load never costs a host the
     * model it serves.
     */
    async checkModel(input: LoadModelInput): Promise<{ ok: true }> {
      await withLoadHeartbeats(input.modelId, (progress) => verifyBuild(input, progress));
      return { ok: true };
    },

    /** Refuses (ModelBusy) while the model has requests running or queued. */
    async unloadModel(input: { modelId: string }): Promise<{ unloaded: boolean }> {
      try {
        const unloaded = await runtime.unload(input.modelId);
        deps.onModelsChanged?.();
        return { unloaded };
      } catch (err) {
        if (err instanceof ModelBusyError) {
          throw typedFailure(FailureType.ModelBusy, err.message);
        }
        throw err;
      }
    },

    /**
     * A signed report of this host's key, loaded model builds (sha256) and version, with the
     * nonce. A build not loaded here is reported by the hash of its file when the cycle names
     * the file and the host has it (bootstrap: pinned before its first load).
     */
    async attest(input: AttestInput): Promise<AttestationReport> {
      const loaded = runtime.isLoaded(input.modelId);
      const file = !loaded && input.path !== undefined ? await regularFile(input.path) : undefined;
      // Unloaded since the cycle counted it (e.g. evicted), and no file: a call failure, not a lie about the build.
      if (!loaded && !file) {
        throw typedFailure(FailureType.ModelNotLoaded, `${input.modelId} is neither loaded nor present on host ${hostId}`);
      }
      const key = await loadOrCreateIdentityKey(deps.identityKeyFile);
      deps.onIdentityRead?.();
      const models = [];
      for (const m of runtime.loadedModels()) {
        models.push({ modelId: m.modelId, sha256: (await sha256File(m.path)).sha256 });
      }
      if (file) models.push({ modelId: input.modelId, sha256: (await sha256File(file)).sha256 });
      models.sort((a, b) => (a.modelId < b.modelId ? -1 : a.modelId > b.modelId ? 1 : 0));
      return signReport({ hostId, models, softwareVersion: deps.softwareVersion, nonce: input.nonce }, key);
    },

    async describeHost(): Promise<HostDescription> {
      const d = await runtime.describe();
      return {
        hostId,
        cpus: os.availableParallelism(),
        freeMemoryBytes: os.freemem(),
        gpu: d.gpu,
        threads: d.threads,
        softwareVersion: deps.softwareVersion,
        models: runtime.loadedModels(),
      };
    },

    async generate(input: GenerateInput): Promise<GenerateResult> {
      if (input.input.kind === 'embedding') return embed(input, input.input);
      const ctx = Context.current();
      const signal = ctx.cancellationSignal;
      // A verifiable model: the key is read once, checked against the pins before anything is
      // generated, and the same key signs the answer — a rotation mid-request cannot slip in.
      const signingKey = input.sign ? await pinnedSigningKey(input.sign.pinnedFingerprints) : undefined;
      const source = chunkSource(hostId, ctx.info);
      const publisher = input.stream ? createChunkPublisher(deps.channel, input.requestId, source, deps.log) : undefined;
      let generated = 0;
      // Heartbeats prove liveness while queued or generating, carry how much was streamed
      // (the workflow only moves a stream to another host if nothing was sent), and are how
      // a cancellation reaches this activity. The SDK throttles what reaches the server.
      const beat = () => ctx.heartbeat({ chars: publisher ? publisher.published : generated });
      const beats = setInterval(beat, 1000);
      const gate = deps.gates ? gateOf(input.input) : undefined;
      try {
        const out = await runtime.generate(input.modelId, {
          input: input.input,
          params: input.params,
          principal: input.principal,
          signal,
          ...(input.countOnly ? { countOnly: true } : {}),
          ...(gate ? { beforeGenerate: () => deps.gates!.wait(gate, signal) } : {}),
          onTimings: (t) => recordHostGeneration(input.modelId, t),
          onText: (text) => {
            // A stream's first text is recorded at once ("something was streamed": it may no
            // longer move to another host); after that the interval keeps beating — a heartbeat
            // per token costs ~0.3 ms each. An unstreamed answer sends nothing before it ends, so
            // it needs no early beat (one server round trip less per request).
            const first = generated === 0;
            generated += text.length;
            publisher?.push(text);
            if (first && publisher) beat();
          },
        });
        await publisher?.flush();
        if (input.sign && signingKey) {
          // A request recorded before the body hash was passed binds to its id instead.
          const requestSha256 = input.requestSha256 ?? sha256Hex(input.requestId);
          const signature = signHostResponse({ modelSha256: input.sign.modelSha256, requestSha256, text: out.text }, signingKey);
          return { ...out, hostId, replica: { kind: 'host', hostId }, signature };
        }
        const replica = { kind: 'host' as const, hostId };
        // Unsigned: the API may answer from this before the workflow closes (EarlyAnswer). Not
        // awaited: a slow database must not hold the result back (the API then takes that).
        void publishFinal(deps.channel, {
          requestId: input.requestId,
          source,
          log: deps.log,
          text: out.text,
          streamed: publisher,
          final: { finishReason: out.finishReason, usage: out.usage, replica, hostId, failovers: input.failovers ?? 0, ...(out.stopSequence !== undefined ? { stopSequence: out.stopSequence } : {}) },
        });
        return { ...out, hostId, replica };
      } catch (err) {
        await publisher?.flush();
        // A cancellation says what was used by then: the API settles the key's budget to it.
        if (signal.aborted) {
          const used = err instanceof GenerationAbortedError ? err.usage : { promptTokens: 0, completionTokens: 0 };
          throw new CancelledFailure('generation cancelled', [used]);
        }
        throw toFailure(err, hostId, input.modelId);
      } finally {
        clearInterval(beats);
      }
    },
  };
}

export type HostActivities = ReturnType<typeof createHostActivities>;

/** A vector as the result carries it: little-endian float32, base64 (what OpenAI's `base64` encoding is). */
export const encodeVector = (v: Float32Array): string => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');

function toFailure(err: unknown, hostId: string, modelId: string): Error {
  if (err instanceof ContextOverflowError) {
    return typedFailure(FailureType.ContextLengthExceeded, err.message);
  }
  if (err instanceof InvalidGenerationError) {
    return typedFailure(FailureType.InvalidRequest, err.message, { param: err.param });
  }
  if (err instanceof AdmissionRejected) {
    recordAdmissionRejection(err.reason);
    const limited = err.reason === 'principal_cap';
    const details = { retryAfterSeconds: err.retryAfterSeconds, reason: err.reason };
    return limited
      ? typedFailure(FailureType.PrincipalLimited, `Too many concurrent requests for ${modelId} from this API key. Retry after ${err.retryAfterSeconds}s.`, details)
      : typedFailure(FailureType.HostBusy, `host ${hostId} is at capacity for ${modelId} (${err.reason})`, details);
  }
  if (err instanceof ModelNotLoadedError) {
    return typedFailure(FailureType.ModelNotLoaded, err.message);
  }
  return typedFailure(FailureType.GenerationFailed, `generation failed on host ${hostId}: ${(err as Error).message}`);
}

/** The path when it names a regular file (a directory, FIFO or missing file: undefined). */
async function regularFile(p: string): Promise<string | undefined> {
  const st = await stat(p).catch(() => undefined);
  return st?.isFile() ? p : undefined;
}
