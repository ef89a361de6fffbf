/**
 * Anthropic Messages request bodies (`POST /v1/messages`, `/v1/messages/count_tokens`): the zod
 * schema, and the body in the gateway's chat terms — the same chat body the OpenAI route
 * parses, so tools, schemas and sampling go through one path (src/api/wire/chatFeatures.ts).
 * Every parameter is mapped, refused, or documented as accepted and unused (`metadata`,
 * `service_tier`); none is dropped silently.
 *
 * Mapping: `system` → a system turn; `tool_use` blocks → the assistant's tool calls;
 * `tool_result` blocks → `tool` turns (an error result is marked as one); `stop_sequences` →
 * stop; `tool_choice` auto/any/tool/none → auto/required/named/none, with
 * `disable_parallel_tool_use` → one call at most.
 */
import { z } from 'zod';
import type { ChatCompletionBody } from '../schemas.js';
import { FUNCTION_NAME, refused } from '../schemas.js';
import { invalidRequest } from '../errors.js';

const text = z.object({ type: z.literal('text'), text: z.string(), cache_control: z.unknown().optional(), citations: z.unknown().optional() });
const toolUse = z.object({ type: z.literal('tool_use'), id: z.string().min(1).max(256), name: z.string(), input: z.record(z.string(), z.unknown()), cache_control: z.unknown().optional() });
const toolResult = z.object({
  type: z.literal('tool_result'),
  tool_use_id: z.string().min(1).max(256),
  content: z.union([z.string(), z.array(text)]).optional(),
  is_error: z.boolean().optional(),
  cache_control: z.unknown().optional(),
});
/** Blocks we cannot read are named in the 400 (images, documents, thinking, server tools). */
const KNOWN = new Set(['text', 'tool_use', 'tool_result']);
const other = z.object({ type: z.string().refine((t) => !KNOWN.has(t)) }).passthrough();
const block = z.union([text, toolUse, toolResult, other]);

const message = z.object({
  role: z.enum(['user', 'assistant']),
  content: z.union([z.string(), z.array(block).min(1, 'content must not be empty')]),
});

const tool = z.object({
  type: z.literal('custom', "only client tools (type 'custom' or none) are supported").optional(),
  name: z.string().regex(FUNCTION_NAME, 'tool names are letters, digits, _ and - (max 64)'),
  description: z.string().max(8192).optional(),
  input_schema: z.record(z.string(), z.unknown()),
  cache_control: z.unknown().optional(),
});

const toolChoice = z.discriminatedUnion('type', [
  z.object({ type: z.literal('auto'), disable_parallel_tool_use: z.boolean().optional() }),
  z.object({ type: z.literal('any'), disable_parallel_tool_use: z.boolean().optional() }),
  z.object({ type: z.literal('tool'), name: z.string(), disable_parallel_tool_use: z.boolean().optional() }),
  z.object({ type: z.literal('none') }),
]);

const common = {
  model: z.string({ error: 'model: Field required' }).min(1, 'model: Field required'),
  messages: z.array(message, { error: 'messages: Field required' }).min(1, 'messages: at least one message is required'),
  system: z.union([z.string(), z.array(text)]).optional(),
  tools: z.array(tool).max(128).optional(),
  tool_choice: toolChoice.optional(),
  thinking: z
    .object({ type: z.string() })
    .passthrough()
    .refine((t) => t.type === 'disabled', 'extended thinking is not supported by these models')
    .optional(),
  /** Structured output: `format` is a JSON schema the answer is held to (as OpenAI's json_schema). */
  output_config: z
    .object({
      format: z.object({ type: z.literal('json_schema', "output_config.format.type must be 'json_schema'"), schema: z.record(z.string(), z.unknown()) }).optional(),
      effort: refused('effort is not supported by these models'),
    })
    .optional(),
  mcp_servers: refused('MCP servers are not supported'),
  container: refused('containers are not supported'),
};

export const messagesBody = z.object({
  ...common,
  max_tokens: z.number({ error: 'max_tokens: Field required' }).int().min(1),
  stop_sequences: z.array(z.string()).max(16, 'at most 16 stop sequences').optional(),
  temperature: z.number().min(0).max(1).optional(),
  top_p: z.number().min(0).max(1).optional(),
  top_k: z.number().int().min(0).optional(),
  stream: z.boolean().optional(),
  /** `user_id` (Anthropic's end-user id): without `x-session-id`, the session key routing keeps a conversation's turns together by. */
  metadata: z.object({ user_id: z.string().max(256).nullable().optional() }).optional(),
  service_tier: z.enum(['auto', 'standard_only']).optional(),
});
export type MessagesBody = z.infer<typeof messagesBody>;

export const countTokensBody = z.object(common);
export type CountTokensBody = z.infer<typeof countTokensBody>;

type Block = z.infer<typeof block>;
type ChatMessageIn = ChatCompletionBody['messages'][number];

const blockText = (b: { content?: string | { text: string }[] }) => (typeof b.content === 'string' ? b.content : (b.content ?? []).map((t) => t.text).join('\n'));

function unsupported(b: Block, where: string): never {
  throw invalidRequest(`${where}: content blocks of type '${b.type}' are not supported (text, tool_use and tool_result are).`, where);
}

/** One Anthropic turn as chat turns: tool results become `tool` turns, ahead of the user's text. */
function turnsOf(m: z.infer<typeof message>, i: number): ChatMessageIn[] {
  if (typeof m.content === 'string') return [{ role: m.role, content: m.content }];
  const texts: string[] = [];
  const results: ChatMessageIn[] = [];
  const calls: NonNullable<ChatMessageIn['tool_calls']> = [];
  m.content.forEach((b, j) => {
    const where = `messages.${i}.content.${j}`;
    if (b.type === 'text') texts.push((b as z.infer<typeof text>).text);
    else if (b.type === 'tool_use') {
      if (m.role !== 'assistant') throw invalidRequest(`${where}: tool_use blocks belong to assistant turns.`, where);
      const u = b as z.infer<typeof toolUse>;
      calls.push({ id: u.id, type: 'function', function: { name: u.name, arguments: JSON.stringify(u.input) } });
    } else if (b.type === 'tool_result') {
      if (m.role !== 'user') throw invalidRequest(`${where}: tool_result blocks belong to user turns.`, where);
      const r = b as z.infer<typeof toolResult>;
      results.push({ role: 'tool', tool_call_id: r.tool_use_id, content: r.is_error ? `Error: ${blockText(r)}` : blockText(r) });
    } else unsupported(b, where);
  });
  if (m.role === 'assistant') return [{ role: 'assistant', content: texts.join('\n') || null, ...(calls.length ? { tool_calls: calls } : {}) }];
  return [...results, ...(texts.length ? [{ role: 'user' as const, content: texts.join('\n') }] : [])];
}

/** The body in the gateway's chat terms (src/api/wire/chatFeatures.ts reads it). */
export function toChatBody(b: MessagesBody | CountTokensBody, maxTokens: number | null): ChatCompletionBody {
  const system = b.system === undefined ? [] : [{ role: 'system' as const, content: typeof b.system === 'string' ? b.system : b.system.map((t) => t.text).join('\n') }];
  const c = b.tool_choice;
  const choice = !c ? undefined : c.type === 'auto' ? 'auto' : c.type === 'any' ? 'required' : c.type === 'none' ? 'none' : { type: 'function' as const, function: { name: c.name } };
  const sampling = 'max_tokens' in b ? b : undefined;
  return {
    model: b.model,
    messages: [...system, ...b.messages.flatMap(turnsOf)],
    max_tokens: maxTokens,
    ...(sampling?.temperature !== undefined ? { temperature: sampling.temperature } : {}),
    ...(sampling?.top_p !== undefined ? { top_p: sampling.top_p } : {}),
    ...(sampling?.top_k !== undefined ? { top_k: sampling.top_k } : {}),
    ...(sampling?.stop_sequences ? { stop: sampling.stop_sequences } : {}),
    ...(b.tools ? { tools: b.tools.map((t) => ({ type: 'function' as const, function: { name: t.name, ...(t.description ? { description: t.description } : {}), parameters: t.input_schema } })) } : {}),
    ...(choice ? { tool_choice: choice } : {}),
    ...(c && c.type !== 'none' && c.disable_parallel_tool_use ? { parallel_tool_calls: false } : {}),
    ...(b.output_config?.format ? { response_format: { type: 'json_schema' as const, json_schema: { name: 'output', schema: b.output_config.format.schema, strict: true } } } : {}),
  };
}
