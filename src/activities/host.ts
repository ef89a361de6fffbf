/**
 * Activities of a GPU-host worker, run only on that host's own task queue (`host.<id>`):
 * load and unload models, generate (streaming through the chunk publisher), describe the
 * host, and attest (a report signed with the host's identity key). Built by a factory so tests and production pass their own runtime and channel.
 * Runtime errors become `ApplicationFailure`s with the stable types the workflow matches on.
 * Host-side metrics (load counts and times, tokens/s, admission refusals) are recorded here,
 * where the facts are.
 *
 * A keyed generation cancelled by its workflow (the client went away) settles its budget
 * reservation to the tokens it actually used before it reports the cancellation: only the
 * host knows that count, and the workflow waits for this activity's cancellation to complete
 * before it closes, so the API finds the reservation settled when it cleans up.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import os from 'node:os';
import { FailureType } from '../common/failures.js';
import type { GenerateInput, GenerateResult, Usage } from '../common/inference.js';
import type { Logger } from '../logger.js';
import { recordAdmissionRejection, recordColdLoad, recordGeneration, recordKeyTokens } from '../metrics.js';
import { createChunkPublisher } from '../stream/chunkPublisher.js';
import type { StreamChannel } from '../stream/channel.js';
import { signReport, signResponse, type AttestationReport } from '../domain/attestation.js';
import { sha256File } from './fileHash.js';
import { loadOrCreateIdentityKey } from './hostIdentity.js';
import { AdmissionRejected } from './llama/admissionQueue.js';
import {
  ContextOverflowError,
  GenerationAbortedError,
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
  /**
   * Settles a keyed request's budget reservation to `usage` (idempotent); returns the key when
   * this call settled it. Used for generations cancelled by their workflow. Unset: no budgets.
   */
  settleReservation?: (requestId: string, usage: Usage) => Promise<{ keyId: string; accountId: string } | null>;
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
  /** The model the cycle is about; refused (ModelNotLoaded) when it is not loaded. Every loaded model is reported. */
  modelId: string;
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

export function createHostActivities(deps: HostActivityDeps) {
  const { hostId, runtime } = deps;

  /** Verifies the file against the catalog's sha256, then loads it; progress in heartbeats. */
  async function loadVerified(input: LoadModelInput, started: number): Promise<LoadedModelInfo> {
    const ctx = Context.current();
    const log = deps.log.child({ modelId: input.modelId, workflowId: ctx.info.workflowExecution?.workflowId });
    let actual: string;
    try {
      // Hashing a multi-gigabyte file takes a while: it is the first half of the progress bar.
      actual = (
        await sha256File(input.path, (f) => {
          ctx.heartbeat({ phase: 'verify', progress: f });
          deps.onLoadProgress?.(input.modelId, f / 2);
        })
      ).sha256;
    } catch (err) {
      throw ApplicationFailure.nonRetryable(
        `model file for ${input.modelId} is unreadable on host ${hostId}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
        FailureType.LoadFailed,
      );
    }
    if (actual !== input.sha256) {
      throw ApplicationFailure.nonRetryable(
        `model file for ${input.modelId} on host ${hostId} does not match the catalog's sha256`,
        FailureType.LoadFailed,
      );
    }
    try {
      const info = await runtime.load(input.modelId, input.path, input.contextLength, (f) => {
        ctx.heartbeat({ phase: 'load', progress: f });
        deps.onLoadProgress?.(input.modelId, 0.5 + f / 2);
      });
      deps.onModelsChanged?.();
      log.info({ ms: Date.now() - started }, 'loadModel done');
      return info;
    } catch (err) {
      throw ApplicationFailure.nonRetryable(
        `loading ${input.modelId} failed on host ${hostId}: ${(err as Error).message}`,
        FailureType.LoadFailed,
      );
    }
  }

  /** Never throws: a failed settle leaves the hold for the API's release or the sweep. */
  async function settleCancelled(requestId: string, usage: Usage): Promise<void> {
    if (!deps.settleReservation) return;
    try {
      const settled = await deps.settleReservation(requestId, usage);
      if (settled) recordKeyTokens({ ...settled, ...usage });
    } catch (err) {
      deps.log.warn({ requestId, err: (err as Error).message }, 'settling a cancelled generation failed');
    }
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

    /** Refuses (ModelBusy) while the model has requests running or queued. */
    async unloadModel(input: { modelId: string }): Promise<{ unloaded: boolean }> {
      try {
        const unloaded = await runtime.unload(input.modelId);
        deps.onModelsChanged?.();
        return { unloaded };
      } catch (err) {
        if (err instanceof ModelBusyError) {
          throw ApplicationFailure.create({ message: err.message, type: FailureType.ModelBusy, nonRetryable: true });
        }
        throw err;
      }
    },

    /** A signed report of this host's key, loaded model builds (sha256) and version, with the nonce. */
    async attest(input: AttestInput): Promise<AttestationReport> {
      // Unloaded since the cycle counted it (e.g. evicted): a call failure, not a lie about the build.
      if (!runtime.isLoaded(input.modelId)) {
        throw ApplicationFailure.create({ message: `${input.modelId} is not loaded on host ${hostId}`, type: FailureType.ModelNotLoaded, nonRetryable: true });
      }
      const key = await loadOrCreateIdentityKey(deps.identityKeyFile);
      deps.onIdentityRead?.();
      const models = [];
      for (const m of runtime.loadedModels()) {
        models.push({ modelId: m.modelId, sha256: (await sha256File(m.path)).sha256 });
      }
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
      const ctx = Context.current();
      const signal = ctx.cancellationSignal;
      const publisher = input.stream ? createChunkPublisher(deps.channel, input.requestId, hostId, deps.log) : undefined;
      let generated = 0;
      // Heartbeats prove liveness while queued or generating, carry how much was streamed
      // (the workflow only moves a stream to another host if nothing was sent), and are how
      // a cancellation reaches this activity. The SDK throttles what reaches the server.
      const beat = () => ctx.heartbeat({ chars: publisher ? publisher.published : generated });
      const beats = setInterval(beat, 1000);
      const started = performance.now();
      try {
        const out = await runtime.generate(input.modelId, {
          input: input.input,
          params: input.params,
          principal: input.principal,
          signal,
          onText: (text) => {
            // The first text is recorded at once ("something was streamed"); after that the
            // interval keeps beating — a heartbeat per token costs ~0.3 ms each.
            const first = generated === 0;
            generated += text.length;
            publisher?.push(text);
            if (first) beat();
          },
        });
        // Wall time of runtime.generate: the slot's start is not visible here, so a request
        // that queued for admission reads slower than its decode speed.
        recordGeneration(input.modelId, out.usage.completionTokens, (performance.now() - started) / 1000);
        await publisher?.flush();
        if (input.sign) {
          const key = await loadOrCreateIdentityKey(deps.identityKeyFile);
          const signature = signResponse({ requestId: input.requestId, modelSha256: input.sign.modelSha256, text: out.text }, key);
          return { ...out, hostId, signature };
        }
        return { ...out, hostId };
      } catch (err) {
        await publisher?.flush();
        // Only a cancellation the workflow asked for: after a timeout the workflow may have
        // moved the request to another host, whose result the API settles.
        if (signal.aborted && input.principal !== null && ctx.cancellationDetails?.cancelRequested) {
          await settleCancelled(input.requestId, err instanceof GenerationAbortedError ? err.usage : { promptTokens: 0, completionTokens: 0 });
        }
        throw toFailure(err, signal, hostId, input.modelId);
      } finally {
        clearInterval(beats);
      }
    },
  };
}

export type HostActivities = ReturnType<typeof createHostActivities>;

function toFailure(err: unknown, signal: AbortSignal, hostId: string, modelId: string): Error {
  if (signal.aborted) return new CancelledFailure('generation cancelled');
  if (err instanceof ContextOverflowError) {
    return ApplicationFailure.create({
      message: err.message,
      type: FailureType.ContextLengthExceeded,
      nonRetryable: true,
    });
  }
  if (err instanceof AdmissionRejected) {
    recordAdmissionRejection(err.reason);
    const limited = err.reason === 'principal_cap';
    return ApplicationFailure.create({
      message: limited
        ? `Too many concurrent requests for ${modelId} from this API key. Retry after ${err.retryAfterSeconds}s.`
        : `host ${hostId} is at capacity for ${modelId} (${err.reason})`,
      type: limited ? FailureType.PrincipalLimited : FailureType.HostBusy,
      nonRetryable: true,
      details: [{ retryAfterSeconds: err.retryAfterSeconds, reason: err.reason }],
    });
  }
  if (err instanceof ModelNotLoadedError) {
    return ApplicationFailure.create({ message: err.message, type: FailureType.ModelNotLoaded, nonRetryable: true });
  }
  return ApplicationFailure.create({
    message: `generation failed on host ${hostId}: ${(err as Error).message}`,
    type: FailureType.GenerationFailed,
    nonRetryable: true,
  });
}
