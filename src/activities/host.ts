/**
 * Activities of a GPU-host worker, run only on that host's own task queue (`host.<id>`):
 * load and unload models, generate (streaming through the chunk publisher), describe the
 * host. Built by a factory so tests and production pass their own runtime and channel.
 * Runtime errors become `ApplicationFailure`s with the stable types the workflow matches on.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import os from 'node:os';
import { FailureType } from '../common/failures.js';
import type { GenerateInput, GenerateResult } from '../common/inference.js';
import type { Logger } from '../logger.js';
import { createChunkPublisher } from '../stream/chunkPublisher.js';
import type { StreamChannel } from '../stream/channel.js';
import { sha256File } from './fileHash.js';
import { ContextOverflowError, ModelNotLoadedError, type LlamaRuntime, type LoadedModelInfo } from './llama/runtime.js';
import { QueueFullError } from './llama/sequencePool.js';

export interface HostActivityDeps {
  hostId: string;
  runtime: LlamaRuntime;
  channel: StreamChannel;
  log: Logger;
  softwareVersion: string;
}

export interface LoadModelInput {
  modelId: string;
  path: string;
  sha256: string;
  contextLength: number;
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

  return {
    /** Verifies the file against the catalog's sha256, then loads it; progress in heartbeats. */
    async loadModel(input: LoadModelInput): Promise<LoadedModelInfo> {
      const ctx = Context.current();
      const log = deps.log.child({ modelId: input.modelId, workflowId: ctx.info.workflowExecution?.workflowId });
      const started = Date.now();
      let actual: string;
      try {
        actual = (await sha256File(input.path, (f) => ctx.heartbeat({ phase: 'verify', progress: f }))).sha256;
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
        const info = await runtime.load(input.modelId, input.path, input.contextLength, (f) =>
          ctx.heartbeat({ phase: 'load', progress: f }),
        );
        log.info({ ms: Date.now() - started }, 'loadModel done');
        return info;
      } catch (err) {
        throw ApplicationFailure.nonRetryable(
          `loading ${input.modelId} failed on host ${hostId}: ${(err as Error).message}`,
          FailureType.LoadFailed,
        );
      }
    },

    async unloadModel(input: { modelId: string }): Promise<{ unloaded: boolean }> {
      return { unloaded: await runtime.unload(input.modelId) };
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
      const publisher = input.stream ? createChunkPublisher(deps.channel, input.requestId, deps.log) : undefined;
      let generated = 0;
      try {
        const out = await runtime.generate(input.modelId, {
          input: input.input,
          params: input.params,
          signal,
          onText: (text) => {
            generated += text.length;
            publisher?.push(text);
            // Heartbeats carry progress and are how a cancellation reaches this activity.
            ctx.heartbeat({ chars: generated });
          },
        });
        await publisher?.flush();
        return { ...out, hostId };
      } catch (err) {
        await publisher?.flush();
        throw toFailure(err, signal, hostId, input.modelId);
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
  if (err instanceof QueueFullError) {
    return ApplicationFailure.create({
      message: `host ${hostId} is at capacity for ${modelId}`,
      type: FailureType.HostBusy,
      nonRetryable: true,
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
