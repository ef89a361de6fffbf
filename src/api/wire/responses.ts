/**
 * The OpenAI Responses wire format: a parsed body turned into an `InferenceCall` (through the
 * same chat features as the chat route), and a `CallSink` that answers as the Responses API
 * does — a `response` object whose output holds a `message` item (an `output_text` part) or
 * `function_call` items, or its event stream: `response.created`, `response.in_progress`,
 * `response.output_item.added`, `response.content_part.added`, `response.output_text.delta`,
 * `…done` events and `response.completed` (function calls stream as
 * `response.function_call_arguments.delta` / `.done`). An answer cut by max_output_tokens is
 * `status: "incomplete"`; a failure mid-stream is an `error` event. Errors before any output
 * are plain HTTP errors in the OpenAI envelope.
 */
import { randomBytes } from 'node:crypto';
import type { Response } from 'express';
import type { Principal } from '../auth.js';
import type { AliasEntry } from '../catalog.js';
import type { Answer, CallSink, InferenceCall } from '../callExecutor.js';
import { invalidRequest, toErrorResponse, type ApiError } from '../errors.js';
import { sendNamedEvent, startSse } from '../sse.js';
import { boundCall } from './callBounds.js';
import { chatFeatures, samplingOf, type ToolMode } from './chatFeatures.js';
import { sendOpenAiError } from './openai.js';
import { responseSink, toolCallsOf, toolTextGate } from './sinkSupport.js';
import { toChatBody, type ResponsesBody } from './responsesRequest.js';

const newId = (prefix: string) => `${prefix}_${randomBytes(12).toString('hex')}`;

export function toResponsesCall(body: ResponsesBody, model: AliasEntry, principal: Principal | null): { call: InferenceCall; toolMode: ToolMode } {
  const maxTokens = body.max_output_tokens ?? null;
  const chat = toChatBody(body);
  const f = chatFeatures(chat, model.kind === 'remote');
  const input = { kind: 'chat' as const, messages: f.messages };
  const call: InferenceCall = {
    requestId: newId('resp'),
    kind: 'chat',
    modelId: model.id,
    input,
    ...boundCall({ input, params: samplingOf(chat, maxTokens, f.constraint), contextLength: model.contextLength, maxTokensParam: 'max_output_tokens', promptParam: 'input' }),
    stream: body.stream === true,
    principal,
  };
  return { call, toolMode: f.toolMode };
}

/** The response object around `output` (what `response.created` and `response.completed` carry). */
function envelope(call: InferenceCall, body: ResponsesBody, createdAt: number, o: { status: string; output: unknown[]; answer?: Answer }) {
  const a = o.answer;
  return {
    id: call.requestId,
    object: 'response',
    created_at: createdAt,
    status: o.status,
    model: call.modelId,
    output: o.output,
    error: null,
    incomplete_details: o.status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    temperature: body.temperature ?? 1,
    top_p: body.top_p ?? 1,
    tool_choice: body.tool_choice ?? 'auto',
    tools: body.tools ?? [],
    text: { format: body.text?.format ?? { type: 'text' } },
    truncation: 'disabled',
    metadata: body.metadata ?? {},
    store: false,
    usage: a
      ? {
          input_tokens: a.usage.promptTokens,
          input_tokens_details: { cached_tokens: a.usage.cachedTokens ?? 0 },
          output_tokens: a.usage.completionTokens,
          output_tokens_details: { reasoning_tokens: 0 },
          total_tokens: a.usage.promptTokens + a.usage.completionTokens,
        }
      : null,
  };
}

/** Renders an executed call as the Responses API does, JSON or its event stream. */
export function responsesSink(res: Response, call: InferenceCall, body: ResponsesBody, toolMode: ToolMode): CallSink {
  res.setHeader('x-request-id', call.requestId);
  const createdAt = Math.floor(Date.now() / 1000);
  const messageId = newId('msg');
  let seq = 0;
  const emit = (type: string, data: Record<string, unknown>) => sendNamedEvent(res, type, { type, sequence_number: seq++, ...data });
  let started = false;
  let textOpen = false;
  let text = '';
  const part = (t: string) => ({ type: 'output_text', text: t, annotations: [] });
  const message = (status: string, t: string) => ({ type: 'message', id: messageId, status, role: 'assistant', content: status === 'in_progress' ? [] : [part(t)] });
  // The message item's status is the response's: an answer cut by max_output_tokens is incomplete.
  const ensureStarted = () => {
    if (started) return;
    started = true;
    startSse(res);
    const r = envelope(call, body, createdAt, { status: 'in_progress', output: [] });
    emit('response.created', { response: r });
    emit('response.in_progress', { response: r });
  };
  const sendText = (delta: string) => {
    ensureStarted();
    if (!textOpen) {
      textOpen = true;
      emit('response.output_item.added', { output_index: 0, item: message('in_progress', '') });
      emit('response.content_part.added', { item_id: messageId, output_index: 0, content_index: 0, part: part('') });
    }
    text += delta;
    emit('response.output_text.delta', { item_id: messageId, output_index: 0, content_index: 0, delta, logprobs: [] });
  };
  const gate = toolTextGate(toolMode, { send: sendText, held: ensureStarted });
  return responseSink(res, {
    text: (delta) => gate.push(delta),
    done(a: Answer) {
      const calls = toolCallsOf(a.text, toolMode);
      const status = !calls && a.finishReason === 'length' ? 'incomplete' : 'completed';
      const callItems = (calls ?? []).map((c) => ({ type: 'function_call', id: newId('fc'), call_id: c.id, name: c.name, arguments: c.arguments, status: 'completed' }));
      const output = calls ? callItems : [message(status, a.text)];
      if (!call.stream) {
        res.json(envelope(call, body, createdAt, { status, output, answer: a }));
        return;
      }
      ensureStarted();
      if (calls) {
        callItems.forEach((item, output_index) => {
          emit('response.output_item.added', { output_index, item: { ...item, arguments: '', status: 'in_progress' } });
          emit('response.function_call_arguments.delta', { item_id: item.id, output_index, delta: item.arguments });
          emit('response.function_call_arguments.done', { item_id: item.id, output_index, arguments: item.arguments });
          emit('response.output_item.done', { output_index, item });
        });
      } else {
        const rest = gate.rest();
        if (rest || !textOpen) sendText(rest);
        emit('response.output_text.done', { item_id: messageId, output_index: 0, content_index: 0, text, logprobs: [] });
        emit('response.content_part.done', { item_id: messageId, output_index: 0, content_index: 0, part: part(text) });
        emit('response.output_item.done', { output_index: 0, item: message(status, text) });
      }
      emit(status === 'completed' ? 'response.completed' : 'response.incomplete', { response: envelope(call, body, createdAt, { status, output, answer: a }) });
      res.end();
    },
    fail(error: ApiError) {
      if (!started) return sendOpenAiError(res, error);
      const e = toErrorResponse(error).body.error;
      emit('error', { code: e.code, message: e.message, param: e.param });
      res.end();
    },
  });
}
