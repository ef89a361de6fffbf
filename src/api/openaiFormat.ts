/**
 * Builds OpenAI wire objects (chat.completion, text_completion and their stream chunks) from
 * an inference result, so routes stay thin and both endpoints share one set of builders.
 */
import type { FinishReason, Usage } from '../common/inference.js';

export type Endpoint = 'chat' | 'completion';

export interface ResponseMeta {
  id: string;
  created: number;
  /** The model id the client asked for. */
  model: string;
  endpoint: Endpoint;
}

export const usageBody = (u: Usage) => ({
  prompt_tokens: u.promptTokens,
  completion_tokens: u.completionTokens,
  total_tokens: u.promptTokens + u.completionTokens,
});

export function fullResponse(m: ResponseMeta, text: string, finish: FinishReason, usage: Usage) {
  const head = { id: m.id, created: m.created, model: m.model, system_fingerprint: null };
  if (m.endpoint === 'chat') {
    return {
      ...head,
      object: 'chat.completion',
      choices: [
        { index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: finish },
      ],
      usage: usageBody(usage),
    };
  }
  return {
    ...head,
    object: 'text_completion',
    choices: [{ index: 0, text, logprobs: null, finish_reason: finish }],
    usage: usageBody(usage),
  };
}

/** One stream chunk. `usage` is null on every chunk but the optional last one. */
export function streamChunk(
  m: ResponseMeta,
  part: { role?: 'assistant'; text?: string; finish?: FinishReason },
  includeUsage: boolean,
) {
  const head = {
    id: m.id,
    created: m.created,
    model: m.model,
    system_fingerprint: null,
    ...(includeUsage ? { usage: null } : {}),
  };
  const finish_reason = part.finish ?? null;
  if (m.endpoint === 'chat') {
    const delta: Record<string, string> = {};
    if (part.role) delta.role = part.role;
    if (part.text !== undefined) delta.content = part.text;
    return { ...head, object: 'chat.completion.chunk', choices: [{ index: 0, delta, logprobs: null, finish_reason }] };
  }
  return { ...head, object: 'text_completion', choices: [{ index: 0, text: part.text ?? '', logprobs: null, finish_reason }] };
}

export function usageChunk(m: ResponseMeta, usage: Usage) {
  return {
    id: m.id,
    created: m.created,
    model: m.model,
    system_fingerprint: null,
    object: m.endpoint === 'chat' ? 'chat.completion.chunk' : 'text_completion',
    choices: [],
    usage: usageBody(usage),
  };
}
