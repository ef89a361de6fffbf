/**
 * What a chat body asks beyond plain text, in the gateway's terms: the history with function
 * calls and their results rendered as the model reads them, the tools and `response_format`
 * as an output constraint (our hosts enforce it by grammar), and every sampling parameter as
 * `SamplingParams`. A schema our hosts cannot enforce is a 400 naming the keyword; a remote
 * build gets the client's schema as given (the provider enforces it). Shared by the wire
 * formats that carry chats (OpenAI chat; Anthropic messages and Responses map onto the same).
 */
import type { ChatMessage, SamplingParams } from '../../common/inference.js';
import { toGrammarSchema, type GrammarSchema } from '../../domain/jsonSchemaSubset.js';
import { planTools, renderToolCalls, renderToolResult, type OutputConstraint, type ToolChoice, type ToolFunction } from '../../domain/toolCalls.js';
import { invalidRequest } from '../errors.js';
import type { ChatCompletionBody, CompletionBody } from '../schemas.js';

/** How the answer's text is read back: plain, or maybe tool calls (`auto`), or surely (`forced`). */
export type ToolMode = 'none' | 'auto' | 'forced';

export interface ChatFeatures {
  messages: ChatMessage[];
  constraint: OutputConstraint | undefined;
  toolMode: ToolMode;
}

/** A client schema in the grammar subset, or the 400 that names what is not supported. */
export function grammarSchemaOr400(schema: unknown, param: string): GrammarSchema {
  const r = toGrammarSchema(schema);
  if (r.ok) return r.schema;
  throw invalidRequest(`Invalid schema for '${param}': ${r.message}${r.path ? ` (at '${r.path}')` : ''}.`, param, 'unsupported_schema_keyword');
}

function toolChoiceOf(body: ChatCompletionBody): ToolChoice {
  const c = body.tool_choice;
  if (c == null) return { kind: body.tools?.length ? 'auto' : 'none' };
  if (typeof c === 'string') return { kind: c };
  return { kind: 'function', name: c.function.name };
}

/**
 * Function calling on our own hosts: the functions' schemas checked and the plan made
 * (src/domain/toolCalls.ts). Remote builds are refused for now: their upstreams' tool-call
 * streams are not mapped back yet.
 */
function toolPlan(body: ChatCompletionBody, remote: boolean): { prompt: string | null; constraint: OutputConstraint | null; mode: ToolMode } {
  const tools = body.tools ?? [];
  const choice = toolChoiceOf(body);
  if (!tools.length) {
    if (body.tool_choice != null && choice.kind !== 'none') throw invalidRequest("'tool_choice' is only allowed when 'tools' are specified.", 'tool_choice');
    return { prompt: null, constraint: null, mode: 'none' };
  }
  if (remote) throw invalidRequest('Tools are not supported for models served by a remote provider yet.', 'tools');
  // (A remote build with tool turns in its history is refused in chatFeatures: they are rendered as text.)
  const names = new Set<string>();
  const fns: ToolFunction[] = tools.map((t, i) => {
    if (names.has(t.function.name)) throw invalidRequest(`Duplicate function name '${t.function.name}'.`, `tools.${i}.function.name`);
    names.add(t.function.name);
    const params = t.function.parameters ?? { type: 'object', properties: {} };
    const param = `tools.${i}.function.parameters`;
    if (params.type !== 'object') throw invalidRequest(`Invalid schema for '${param}': a function's parameters must be of type 'object'.`, param);
    return { name: t.function.name, ...(t.function.description ? { description: t.function.description } : {}), parameters: grammarSchemaOr400(params, param) };
  });
  if (choice.kind === 'function' && !names.has(choice.name)) throw invalidRequest(`tool_choice names '${choice.name}', which is not in 'tools'.`, 'tool_choice');
  const plan = planTools(fns, choice, body.parallel_tool_calls !== false);
  return { ...plan, mode: choice.kind === 'none' ? 'none' : choice.kind === 'auto' ? 'auto' : 'forced' };
}

function formatConstraint(body: ChatCompletionBody, remote: boolean): OutputConstraint | null {
  const f = body.response_format;
  if (!f || f.type === 'text') return null;
  if (f.type === 'json_object') return { kind: 'json' };
  const param = 'response_format.json_schema.schema';
  const schema = f.json_schema.schema ?? {};
  return {
    kind: 'jsonSchema',
    name: f.json_schema.name,
    ...(f.json_schema.description ? { description: f.json_schema.description } : {}),
    // A provider gets what the client wrote; our hosts the subset they enforce exactly.
    schema: remote ? (schema as GrammarSchema) : grammarSchemaOr400(schema, param),
    // Our hosts always enforce the schema exactly; a provider gets what the client set (null: unset).
    strict: f.json_schema.strict ?? null,
  };
}

/** The history as the model reads it: content parts joined, calls and results rendered. */
function historyOf(body: ChatCompletionBody): ChatMessage[] {
  const callNames = new Map<string, string>();
  return body.messages.map((m, i) => {
    let text: string;
    if (typeof m.content === 'string' || m.content == null) text = m.content ?? '';
    else {
      const parts: string[] = [];
      for (const part of m.content) {
        if (part.type === 'text') parts.push(part.text);
        else if (part.type === 'refusal') parts.push(part.refusal);
        else throw invalidRequest(`Only text content is supported; got '${part.type}'.`, `messages.${i}.content`);
      }
      text = parts.join('\n');
    }
    if (m.tool_calls?.length) {
      if (m.role !== 'assistant') throw invalidRequest("Only assistant messages may carry 'tool_calls'.", `messages.${i}.tool_calls`);
      for (const c of m.tool_calls) callNames.set(c.id, c.function.name);
      const calls = renderToolCalls(m.tool_calls.map((c) => c.function));
      return { role: 'assistant', content: text ? `${text}\n${calls}` : calls };
    }
    if (m.role === 'tool') {
      if (!m.tool_call_id) throw invalidRequest("A 'tool' message needs 'tool_call_id'.", `messages.${i}.tool_call_id`);
      const name = callNames.get(m.tool_call_id);
      if (!name) throw invalidRequest(`'tool_call_id' ${JSON.stringify(m.tool_call_id)} answers no earlier assistant tool call.`, `messages.${i}.tool_call_id`);
      return { role: 'tool', content: renderToolResult({ name, content: text }) };
    }
    return { role: m.role, content: text };
  });
}

export function chatFeatures(body: ChatCompletionBody, remote: boolean): ChatFeatures {
  if (remote) {
    // Our hosts read calls and results as rendered text; an upstream wants them structured.
    const i = body.messages.findIndex((m) => m.role === 'tool' || m.tool_calls?.length);
    if (i >= 0) throw invalidRequest('Tool calls and results in the history are not supported for models served by a remote provider yet.', `messages.${i}`);
  }
  const tools = toolPlan(body, remote);
  const format = formatConstraint(body, remote);
  if (tools.constraint && format) throw invalidRequest("'response_format' cannot be combined with 'tools' (unless tool_choice is 'none').", 'response_format');
  const history = historyOf(body);
  // The functions go first, as a system turn of their own (a chat template renders it like any system text).
  const messages: ChatMessage[] = tools.prompt ? [{ role: 'system', content: tools.prompt }, ...history] : history;
  return { messages, constraint: tools.constraint ?? format ?? undefined, toolMode: tools.mode };
}

/** Every sampling parameter of a body, in the gateway's terms (absent: the model's default). */
export function samplingOf(body: ChatCompletionBody | CompletionBody, maxTokens: number | null, constraint: OutputConstraint | undefined): SamplingParams {
  const stop = body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  return {
    maxTokens,
    temperature: body.temperature ?? 1,
    topP: body.top_p ?? 1,
    seed: body.seed ?? undefined,
    stop: stop.filter((s) => s.length > 0),
    ...(body.top_k != null && body.top_k > 0 ? { topK: body.top_k } : {}),
    ...(body.min_p != null ? { minP: body.min_p } : {}),
    ...(body.repeat_penalty != null ? { repeatPenalty: body.repeat_penalty } : {}),
    ...(body.presence_penalty != null ? { presencePenalty: body.presence_penalty } : {}),
    ...(body.frequency_penalty != null ? { frequencyPenalty: body.frequency_penalty } : {}),
    ...(body.logit_bias && Object.keys(body.logit_bias).length ? { logitBias: body.logit_bias } : {}),
    ...(constraint ? { constraint } : {}),
  };
}
