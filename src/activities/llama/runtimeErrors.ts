/**
 * What the host runtime (runtime.ts) throws that its callers tell apart: the request does not fit
 * the context, was cancelled (with what it used), cannot be served as asked, or names a model that
 * is busy or not loaded. Plain errors: the host activities map them to typed failures.
 */
import type { Usage } from '../../common/inference.js';

export class ContextOverflowError extends Error {
  override name = 'ContextOverflowError';
  constructor(
    readonly promptTokens: number,
    readonly requested: number | null,
    readonly contextLength: number,
  ) {
    super(
      requested === null
        ? `This model's maximum context length is ${contextLength} tokens. However, your prompt has ${promptTokens} tokens.`
        : `This model's maximum context length is ${contextLength} tokens. However, you requested ${promptTokens + requested} tokens (${promptTokens} in the prompt, ${requested} in the completion).`,
    );
  }
}

/** The caller's signal aborted the generation; `usage` is what had been used by then. */
export class GenerationAbortedError extends Error {
  override name = 'GenerationAbortedError';
  constructor(
    readonly usage: Usage,
    cause: unknown,
  ) {
    super('generation aborted', { cause });
  }
}

/** The request cannot be served as asked on this model (a client error, not the host's). */
export class InvalidGenerationError extends Error {
  override name = 'InvalidGenerationError';
  constructor(
    message: string,
    readonly param: string,
  ) {
    super(message);
  }
}

export class ModelBusyError extends Error {
  override name = 'ModelBusyError';
  constructor(
    readonly modelId: string,
    readonly inFlight: number,
  ) {
    super(`model ${modelId} has ${inFlight} request(s) in flight`);
  }
}

export class ModelNotLoadedError extends Error {
  override name = 'ModelNotLoadedError';
  constructor(readonly modelId: string) {
    super(`model ${modelId} is not loaded on this host`);
  }
}
