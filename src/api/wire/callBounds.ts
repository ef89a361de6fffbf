/**
 * The edge's context check and reservation, shared by every wire format: a `max_tokens` no
 * context could hold, or a prompt past the context even at 6 characters per token (the
 * message gives the ≈ 4-characters-per-token estimate), is a 400 `context_length_exceeded`
 * before anything is routed — an impossible request never
 * cold-loads a model or moves a pool. The host's exact tokenizer check stays behind it.
 */
import type { InferenceInput, SamplingParams } from '../../common/inference.js';
import { judgeContextFit, outputLimitOf, promptUpperBound, reservationUpperBound } from '../../domain/budget.js';
import { invalidRequest } from '../errors.js';

export interface BoundedCall {
  params: SamplingParams;
  reserveTokens: number;
}

export function boundCall(o: {
  input: InferenceInput;
  params: SamplingParams;
  contextLength: number;
  /** How the client named the output bound (max_tokens, max_completion_tokens, max_output_tokens). */
  maxTokensParam: string;
  /** Where the prompt is in the request (messages, prompt, input). */
  promptParam: string;
}): BoundedCall {
  const { contextLength } = o;
  const maxTokens = o.params.maxTokens;
  const misfit = judgeContextFit({ input: o.input, contextLength, maxTokens });
  if (misfit?.kind === 'max_tokens') {
    throw invalidRequest(
      `${o.maxTokensParam} is too large: ${misfit.maxTokens}. This model's maximum context length is ${contextLength} tokens.`,
      o.maxTokensParam,
      'context_length_exceeded',
    );
  }
  if (misfit?.kind === 'prompt') {
    const asked = misfit.maxTokens !== null ? ` plus ${misfit.maxTokens} in ${o.maxTokensParam}` : '';
    throw invalidRequest(
      `This model's maximum context length is ${contextLength} tokens. Your prompt (${o.promptParam}) is estimated at about ${misfit.estimate} tokens (≈4 characters per token)${asked}. Shorten the prompt${misfit.maxTokens !== null ? ` or lower ${o.maxTokensParam}` : ''}.`,
      o.promptParam,
      'context_length_exceeded',
    );
  }
  const params = maxTokens === null ? { ...o.params, outputLimit: outputLimitOf(contextLength) } : o.params;
  return { params, reserveTokens: reservationUpperBound({ contextLength, promptBound: promptUpperBound(o.input), maxTokens }) };
}
