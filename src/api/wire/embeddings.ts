/**
 * The OpenAI embeddings wire format (`POST /v1/embeddings`): strings or token arrays (one or a
 * batch) turned into an `InferenceCall` whose input is embedded on a host, like a generation
 * (same workflow, routing and budget), and the `list` of vectors as floats or base64 (the
 * little-endian float32 bytes the `openai` clients decode). `dimensions` is refused unless it
 * is the model's own size (the host checks); `user` is accepted and unused.
 */
import { randomBytes } from 'node:crypto';
import type { Response } from 'express';
import { z } from 'zod';
import type { Principal } from '../auth.js';
import type { AliasEntry } from '../catalog.js';
import type { Answer, CallSink, InferenceCall } from '../callExecutor.js';
import { ApiError, invalidRequest } from '../errors.js';
import { promptUpperBound } from '../../domain/budget.js';
import { sendOpenAiError } from './openai.js';
import { responseSink } from './sinkSupport.js';

const tokens = z.array(z.number().int().min(0).max(2 ** 31 - 1)).min(1, 'a token array must not be empty');
export const embeddingsBody = z.object({
  model: z.string({ error: 'you must provide a model parameter' }).min(1, 'you must provide a model parameter'),
  input: z.union(
    [
      z.string().min(1, 'input must not be empty'),
      z.array(z.string().min(1, 'inputs must not be empty strings')).min(1).max(2048, 'at most 2048 inputs'),
      tokens,
      z.array(tokens).min(1).max(2048, 'at most 2048 inputs'),
    ],
    { error: 'input must be a string, an array of strings, an array of token ids, or an array of those' },
  ),
  encoding_format: z.enum(['float', 'base64']).optional(),
  dimensions: z.number().int().min(1).max(65_536).optional(),
  user: z.string().optional(),
});
export type EmbeddingsBody = z.infer<typeof embeddingsBody>;

export function toEmbeddingCall(body: EmbeddingsBody, model: AliasEntry, principal: Principal | null): InferenceCall {
  if (model.kind === 'remote') throw invalidRequest('Embeddings are not supported for models served by a remote provider yet.', 'model');
  const i = body.input;
  // One token array is one input; an array of numbers is never a batch of strings.
  const inputs = typeof i === 'string' ? [i] : i.every((x) => typeof x === 'number') ? [i as number[]] : (i as (string | number[])[]);
  const input = { kind: 'embedding' as const, inputs, ...(body.dimensions !== undefined ? { dimensions: body.dimensions } : {}) };
  return {
    requestId: `emb-${randomBytes(12).toString('base64url')}`,
    kind: 'embedding',
    modelId: model.id,
    input,
    params: { maxTokens: null, temperature: 1, topP: 1, stop: [] },
    stream: false,
    principal,
    // Each input fits one context at most; nothing is generated.
    reserveTokens: Math.min(promptUpperBound(input), inputs.length * model.contextLength),
  };
}

/** A vector of the host's result (base64 float32) as the client asked for it. */
function encode(b64: string, format: 'float' | 'base64'): string | number[] {
  if (format === 'base64') return b64;
  const bytes = Buffer.from(b64, 'base64');
  return Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
}

export function embeddingsSink(res: Response, call: InferenceCall, format: 'float' | 'base64'): CallSink {
  res.setHeader('x-request-id', call.requestId);
  return responseSink(res, {
    text: () => undefined,
    done(a: Answer) {
      if (!a.embeddings) return sendOpenAiError(res, new ApiError(502, 'The replica returned no embeddings.', 'api_error', 'upstream_error'));
      res.json({
        object: 'list',
        data: a.embeddings.map((v, index) => ({ object: 'embedding', index, embedding: encode(v, format) })),
        model: call.modelId,
        usage: { prompt_tokens: a.usage.promptTokens, total_tokens: a.usage.promptTokens },
      });
    },
    fail: (error) => sendOpenAiError(res, error),
  });
}
