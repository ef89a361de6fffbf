/**
 * OpenAI Responses request bodies (`POST /v1/responses`): the zod schema, and the body in the
 * gateway's chat terms — the same chat body the chat route parses, so tools, schemas and
 * sampling go through one path (src/api/wire/chatFeatures.ts).
 *
 * Nothing is stored: every response behaves as `store: false` (so `previous_response_id` and
 * `store: true` are refused, not pretended). `instructions` → a system turn; `function_call` /
 * `function_call_output` items → the assistant's tool calls and `tool` turns; `text.format` →
 * `response_format`; `max_output_tokens` → max_tokens; `prompt_cache_key` (else `user`) is the
 * routing session key. `metadata`, `service_tier` and `truncation: "disabled"` are accepted and
 * unused; everything else is refused by name.
 */
import { z } from 'zod';
import { FUNCTION_NAME, refused, type ChatCompletionBody } from '../schemas.js';
import { invalidRequest } from '../errors.js';

const inputText = z.object({ type: z.enum(['input_text', 'output_text']), text: z.string() }).passthrough();
const KNOWN_PARTS = new Set(['input_text', 'output_text']);
const otherPart = z.object({ type: z.string().refine((t) => !KNOWN_PARTS.has(t)) }).passthrough();

const messageItem = z.object({
  type: z.literal('message').optional(),
  role: z.enum(['user', 'system', 'developer', 'assistant']),
  content: z.union([z.string(), z.array(z.union([inputText, otherPart]))]),
  id: z.string().optional(),
  status: z.string().optional(),
});
const functionCallItem = z.object({
  type: z.literal('function_call'),
  call_id: z.string().min(1).max(256),
  name: z.string(),
  arguments: z.string(),
  id: z.string().optional(),
  status: z.string().optional(),
});
const functionOutputItem = z.object({
  type: z.literal('function_call_output'),
  call_id: z.string().min(1).max(256),
  output: z.union([z.string(), z.array(inputText)]),
  id: z.string().optional(),
  status: z.string().optional(),
});
const KNOWN_ITEMS = new Set(['message', 'function_call', 'function_call_output']);
const otherItem = z.object({ type: z.string().refine((t) => !KNOWN_ITEMS.has(t)) }).passthrough();
const item = z.union([messageItem, functionCallItem, functionOutputItem, otherItem]);

const functionTool = z.object({
  type: z.literal('function', "only tools of type 'function' are supported"),
  name: z.string().regex(FUNCTION_NAME, 'function names are letters, digits, _ and - (max 64)'),
  description: z.string().max(8192).nullable().optional(),
  parameters: z.record(z.string(), z.unknown()).nullable().optional(),
  strict: z.boolean().nullable().optional(),
});

const format = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }),
  z.object({ type: z.literal('json_object') }),
  z.object({
    type: z.literal('json_schema'),
    name: z.string().regex(FUNCTION_NAME, 'names are letters, digits, _ and - (max 64)'),
    schema: z.record(z.string(), z.unknown()),
    description: z.string().optional(),
    strict: z.boolean().nullable().optional(),
  }),
]);

export const responsesBody = z.object({
  model: z.string({ error: 'you must provide a model parameter' }).min(1, 'you must provide a model parameter'),
  input: z.union([z.string(), z.array(item).min(1, 'input must not be empty')], { error: 'input must be a string or an array of items' }),
  instructions: z.string().nullable().optional(),
  max_output_tokens: z.number().int().min(1).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().min(0).max(1).nullable().optional(),
  stream: z.boolean().nullable().optional(),
  tools: z.array(functionTool).max(128).optional(),
  tool_choice: z
    .union([z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), name: z.string() })])
    .optional(),
  parallel_tool_calls: z.boolean().nullable().optional(),
  text: z.object({ format: format.optional(), verbosity: refused('verbosity is not supported by these models') }).nullable().optional(),
  max_tool_calls: refused('max_tool_calls is not supported (parallel_tool_calls: false allows one call)'),
  store: z.literal(false, "'store: true' is not supported: responses are not retained (send store: false)").nullable().optional(),
  previous_response_id: refused('previous_response_id is not supported: responses are not retained; send the conversation in input'),
  conversation: refused('conversations are not supported: responses are not retained'),
  reasoning: refused('reasoning is not supported by these models'),
  include: z.array(z.string()).max(0, 'include is not supported').nullable().optional(),
  background: z.literal(false, 'background responses are not supported').nullable().optional(),
  prompt: refused('prompt templates are not supported'),
  top_logprobs: refused('logprobs are not supported by this server'),
  truncation: z.literal('disabled', "only truncation 'disabled' is supported").nullable().optional(),
  metadata: z.record(z.string(), z.string()).nullable().optional(),
  /** With `prompt_cache_key` (first): the session key routing keeps a conversation's requests together by. */
  user: z.string().max(256).optional(),
  prompt_cache_key: z.string().max(256).nullable().optional(),
  service_tier: z.enum(['auto', 'default']).nullable().optional(),
});
export type ResponsesBody = z.infer<typeof responsesBody>;

type ChatMessageIn = ChatCompletionBody['messages'][number];

const partsText = (c: string | { type: string; text?: unknown }[], where: string) => {
  if (typeof c === 'string') return c;
  return c
    .map((p, j) => {
      if (p.type === 'input_text' || p.type === 'output_text') return String(p.text);
      throw invalidRequest(`Content of type '${p.type}' is not supported (input_text is).`, `${where}.content.${j}`);
    })
    .join('\n');
};

/** The input items as chat turns: consecutive function calls join one assistant turn. */
function turnsOf(input: ResponsesBody['input']): ChatMessageIn[] {
  if (typeof input === 'string') return [{ role: 'user', content: input }];
  const turns: ChatMessageIn[] = [];
  input.forEach((it, i) => {
    const where = `input.${i}`;
    if (it.type === 'function_call') {
      const c = it as z.infer<typeof functionCallItem>;
      const call = { id: c.call_id, type: 'function' as const, function: { name: c.name, arguments: c.arguments } };
      const last = turns.at(-1);
      if (last?.role === 'assistant' && last.tool_calls) last.tool_calls.push(call);
      else turns.push({ role: 'assistant', content: null, tool_calls: [call] });
    } else if (it.type === 'function_call_output') {
      const o = it as z.infer<typeof functionOutputItem>;
      turns.push({ role: 'tool', tool_call_id: o.call_id, content: partsText(o.output, where) });
    } else if (it.type === undefined || it.type === 'message') {
      const m = it as z.infer<typeof messageItem>;
      turns.push({ role: m.role, content: partsText(m.content, where) });
    } else throw invalidRequest(`Input items of type '${it.type}' are not supported (message, function_call and function_call_output are).`, `${where}.type`);
  });
  return turns;
}

/** The body in the gateway's chat terms (src/api/wire/chatFeatures.ts reads it). */
export function toChatBody(b: ResponsesBody): ChatCompletionBody {
  const f = b.text?.format;
  const c = b.tool_choice;
  return {
    model: b.model,
    messages: [...(b.instructions ? [{ role: 'system' as const, content: b.instructions }] : []), ...turnsOf(b.input)],
    max_tokens: b.max_output_tokens ?? null,
    temperature: b.temperature ?? null,
    top_p: b.top_p ?? null,
    ...(b.tools?.length
      ? { tools: b.tools.map((t) => ({ type: 'function' as const, function: { name: t.name, ...(t.description ? { description: t.description } : {}), ...(t.parameters ? { parameters: t.parameters } : {}) } })) }
      : {}),
    ...(c ? { tool_choice: typeof c === 'string' ? c : { type: 'function' as const, function: { name: c.name } } } : {}),
    ...(b.parallel_tool_calls != null ? { parallel_tool_calls: b.parallel_tool_calls } : {}),
    ...(f && f.type !== 'text'
      ? { response_format: f.type === 'json_object' ? { type: 'json_object' as const } : { type: 'json_schema' as const, json_schema: { name: f.name, schema: f.schema, strict: f.strict ?? null } } }
      : {}),
  };
}
