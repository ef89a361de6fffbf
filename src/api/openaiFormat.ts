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
  // OpenAI's own field: the prompt's tokens served from cache (a host's held prefix).
  prompt_tokens_details: { cached_tokens: u.cachedTokens ?? 0 },
});

/** What an answer's finish_reason can be on the wire. */
export type WireFinishReason = FinishReason | 'tool_calls';

/** A function call as OpenAI returns it (`arguments` is a JSON text). */
export interface WireToolCall {
  id: string;
  name: string;
  arguments: string;
}

const toolCallBody = (c: WireToolCall) => ({ id: c.id, type: 'function' as const, function: { name: c.name, arguments: c.arguments } });

export function fullResponse(m: ResponseMeta, text: string, finish: WireFinishReason, usage: Usage, toolCalls?: WireToolCall[]) {
  const head = { id: m.id, created: m.created, model: m.model, system_fingerprint: null };
  if (m.endpoint === 'chat') {
    const message = toolCalls?.length
      ? { role: 'assistant', content: null, tool_calls: toolCalls.map(toolCallBody), refusal: null }
      : { role: 'assistant', content: text, refusal: null };
    return {
      ...head,
      object: 'chat.completion',
      choices: [{ index: 0, message, logprobs: null, finish_reason: finish }],
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
  part: { role?: 'assistant'; text?: string; finish?: WireFinishReason; toolCall?: { index: number; call?: WireToolCall; arguments?: string } },
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
    const delta: Record<string, unknown> = {};
    if (part.role) delta.role = part.role;
    if (part.text !== undefined) delta.content = part.text;
    if (part.toolCall) {
      // As OpenAI streams a call: its id, type and name with empty arguments, then the arguments in pieces.
      const { index, call, arguments: args } = part.toolCall;
      delta.tool_calls = [call ? { index, ...toolCallBody({ ...call, arguments: '' }) } : { index, function: { arguments: args ?? '' } }];
    }
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
