/**
 * The Anthropic Messages wire format: a parsed body turned into an `InferenceCall` (through the
 * same chat features as the OpenAI route), and a `CallSink` that answers as Anthropic does — a
 * `message` object, or the event stream `message_start`, `content_block_start`, `ping`,
 * `content_block_delta` (`text_delta` / `input_json_delta`), `content_block_stop`,
 * `message_delta` (stop_reason, usage), `message_stop`; a failure mid-stream is an `error`
 * event. Headers go out with the first text, so a request that fails before producing anything
 * gets a plain HTTP error in Anthropic's envelope.
 */
import { randomBytes } from 'node:crypto';
import type { Response } from 'express';
import type { Principal } from '../auth.js';
import type { AliasEntry } from '../catalog.js';
import type { Answer, CallSink, InferenceCall } from '../callExecutor.js';
import { anthropicErrorResponse, ApiError, invalidRequest } from '../errors.js';
import { startSse, sendNamedEvent } from '../sse.js';
import { boundCall } from './callBounds.js';
import { chatFeatures, samplingOf, type ToolMode } from './chatFeatures.js';
import { toChatBody, type CountTokensBody, type MessagesBody } from './anthropicRequest.js';
import { responseSink, toolCallsOf, toolTextGate } from './sinkSupport.js';

const newMessageId = () => `msg_${randomBytes(12).toString('base64url')}`;

/** OpenAI-style params inside chat-feature errors, named as the Anthropic body names them. */
function anthropicParams(err: unknown): unknown {
  if (!(err instanceof ApiError)) return err;
  const rename = (s: string) => s.replace(/tools\.(\d+)\.function\.parameters/g, 'tools.$1.input_schema').replace(/tools\.(\d+)\.function\.name/g, 'tools.$1.name');
  return new ApiError(err.status, rename(err.message), err.type, err.code, err.param === null ? null : rename(err.param), err.retryAfterSeconds);
}

/** The call for an alias the catalog resolved; `countOnly`: count_tokens (nothing generated or reserved). */
export function toAnthropicCall(body: MessagesBody | CountTokensBody, model: AliasEntry, principal: Principal | null): { call: InferenceCall; toolMode: ToolMode } {
  const countOnly = !('max_tokens' in body);
  if (countOnly && model.kind === 'remote') throw invalidRequest('count_tokens is not supported for models served by a remote provider.', 'model');
  const maxTokens = countOnly ? null : body.max_tokens;
  const chat = toChatBody(body, maxTokens);
  let f;
  try {
    f = chatFeatures(chat, model.kind === 'remote');
  } catch (err) {
    throw anthropicParams(err);
  }
  const input = { kind: 'chat' as const, messages: f.messages };
  const call: InferenceCall = {
    requestId: newMessageId(),
    kind: countOnly ? 'count_tokens' : 'chat',
    modelId: model.id,
    input,
    // count_tokens needs no constraint (the prompt, functions included, is what is counted),
    // spends nothing (no reservation; the key was checked by the auth middleware) and counts
    // a prompt of any length.
    ...(countOnly
      ? { params: samplingOf(chat, null, undefined), reserveTokens: 0 }
      : boundCall({ input, params: samplingOf(chat, maxTokens, f.constraint), contextLength: model.contextLength, maxTokensParam: 'max_tokens', promptParam: 'messages' })),
    stream: !countOnly && (body as MessagesBody).stream === true,
    principal: countOnly ? null : principal,
    ...(countOnly ? { countOnly: true } : {}),
  };
  return { call, toolMode: f.toolMode };
}

export function sendAnthropicError(res: Response, err: unknown): void {
  const e = anthropicErrorResponse(err);
  res.status(e.status).set(e.headers).json(e.body);
}

type StopReason = 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use';

function stopOf(a: Answer, toolUse: boolean): { stop_reason: StopReason; stop_sequence: string | null } {
  if (toolUse) return { stop_reason: 'tool_use', stop_sequence: null };
  if (a.finishReason === 'length') return { stop_reason: 'max_tokens', stop_sequence: null };
  if (a.stopSequence !== undefined) return { stop_reason: 'stop_sequence', stop_sequence: a.stopSequence };
  return { stop_reason: 'end_turn', stop_sequence: null };
}

/** Anthropic's split: input_tokens are those not read from cache (a host's held prefix is). */
const usageOf = (a: Answer) => {
  const cached = a.usage.cachedTokens ?? 0;
  return { input_tokens: a.usage.promptTokens - cached, cache_read_input_tokens: cached, cache_creation_input_tokens: 0, output_tokens: a.usage.completionTokens };
};

/** The content blocks of an answer: its text, or its tool calls as tool_use blocks. */
function contentOf(a: Answer, mode: ToolMode) {
  const calls = toolCallsOf(a.text, mode);
  if (calls) return { toolUse: true, blocks: calls.map((c) => ({ type: 'tool_use' as const, id: c.id.replace(/^call_/, 'toolu_'), name: c.name, input: JSON.parse(c.arguments) as unknown })) };
  return { toolUse: false, blocks: a.text ? [{ type: 'text' as const, text: a.text }] : [] };
}

/** Answers `POST /v1/messages/count_tokens`. */
export function countTokensSink(res: Response): CallSink {
  return responseSink(res, {
    text: () => undefined,
    done: (a) => void res.json({ input_tokens: a.usage.promptTokens }),
    fail: (error) => sendAnthropicError(res, error),
  });
}

/** Renders an executed call as Anthropic does, JSON or its event stream. */
export function anthropicSink(res: Response, call: InferenceCall, toolMode: ToolMode): CallSink {
  res.setHeader('request-id', call.requestId);
  res.setHeader('x-request-id', call.requestId);
  let started = false;
  let textOpen = false;
  let index = 0;
  const ensureStarted = () => {
    if (started) return;
    started = true;
    startSse(res);
    // The prompt's size is known when the answer is (message_delta carries it).
    const message = { id: call.requestId, type: 'message', role: 'assistant', model: call.modelId, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 0, output_tokens: 0 } };
    sendNamedEvent(res, 'message_start', { type: 'message_start', message });
    sendNamedEvent(res, 'ping', { type: 'ping' });
  };
  const sendText = (delta: string) => {
    ensureStarted();
    if (!textOpen) {
      textOpen = true;
      sendNamedEvent(res, 'content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } });
    }
    sendNamedEvent(res, 'content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text: delta } });
  };
  const closeText = () => {
    if (!textOpen) return;
    sendNamedEvent(res, 'content_block_stop', { type: 'content_block_stop', index });
    textOpen = false;
    index++;
  };
  const gate = toolTextGate(toolMode, { send: sendText, held: ensureStarted });
  return responseSink(res, {
    text: (delta) => gate.push(delta),
    done(a: Answer) {
      const { toolUse, blocks } = contentOf(a, toolMode);
      const stop = stopOf(a, toolUse);
      if (!call.stream) {
        res.json({ id: call.requestId, type: 'message', role: 'assistant', model: call.modelId, content: blocks, ...stop, usage: usageOf(a) });
        return;
      }
      ensureStarted();
      if (toolUse) {
        for (const b of blocks) {
          if (b.type !== 'tool_use') continue;
          sendNamedEvent(res, 'content_block_start', { type: 'content_block_start', index, content_block: { ...b, input: {} } });
          sendNamedEvent(res, 'content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: JSON.stringify(b.input) } });
          sendNamedEvent(res, 'content_block_stop', { type: 'content_block_stop', index });
          index++;
        }
      } else {
        const rest = gate.rest();
        if (rest) sendText(rest);
      }
      closeText();
      sendNamedEvent(res, 'message_delta', { type: 'message_delta', delta: stop, usage: usageOf(a) });
      sendNamedEvent(res, 'message_stop', { type: 'message_stop' });
      res.end();
    },
    fail(error: ApiError) {
      if (!started) return sendAnthropicError(res, error);
      // Mid-stream: an error event and no message_stop, never a truncated answer as complete.
      sendNamedEvent(res, 'error', anthropicErrorResponse(error).body);
      res.end();
    },
  });
}
