/**
 * Function calling on our own hosts, decided here: how the functions are shown to the model,
 * the JSON schema its output is held to by grammar (so even a random-weight model returns calls
 * whose arguments parse and validate), and how the text it produced reads back as OpenAI tool
 * calls. `tool_choice` maps onto the grammar:
 *   - `none`: no grammar, the functions stay out of the prompt;
 *   - `auto`: a call object or free text (text may not start with `{`);
 *   - `required`: one call or more (exactly one when `parallel_tool_calls` is false);
 *   - a named function: exactly that function, once.
 * Pure: no I/O. The wire formats (OpenAI, Anthropic) share it.
 */
import type { GrammarSchema } from './jsonSchemaSubset.js';

export interface ToolFunction {
  name: string;
  description?: string;
  /** Already in the grammar subset (src/domain/jsonSchemaSubset.ts). */
  parameters: GrammarSchema;
}

export type ToolChoice = { kind: 'none' } | { kind: 'auto' } | { kind: 'required' } | { kind: 'function'; name: string };

/** What the host is told to enforce (part of the sampling parameters; a Temporal payload). */
export type OutputConstraint =
  | { kind: 'json' }
  | { kind: 'jsonSchema'; name: string; description?: string; schema: GrammarSchema; strict: boolean | null }
  /** A tool-call object per `schema`; `allowText`: or free text that does not start with `{`. */
  | { kind: 'toolCalls'; schema: GrammarSchema; allowText: boolean };

/** The most calls one answer may hold when parallel calls are allowed (keeps the grammar finite). */
export const MAX_PARALLEL_CALLS = 8;

export interface ParsedToolCall {
  name: string;
  /** The arguments as a JSON text (what OpenAI's `function.arguments` holds). */
  arguments: string;
}

export interface ToolPlan {
  /** A system message that tells the model which functions it may call and how. */
  prompt: string | null;
  constraint: OutputConstraint | null;
}

export function planTools(tools: ToolFunction[], choice: ToolChoice, parallel: boolean): ToolPlan {
  if (tools.length === 0 || choice.kind === 'none') return { prompt: null, constraint: null };
  const usable = choice.kind === 'function' ? tools.filter((t) => t.name === choice.name) : tools;
  const calls = usable.map((t) => ({
    type: 'object',
    properties: { name: { const: t.name }, arguments: t.parameters },
  }));
  const single = !parallel || choice.kind === 'function';
  const schema: GrammarSchema = {
    type: 'object',
    properties: {
      tool_calls: { type: 'array', items: calls.length === 1 ? calls[0] : { oneOf: calls }, minItems: 1, maxItems: single ? 1 : MAX_PARALLEL_CALLS },
    },
  };
  return { prompt: toolsPrompt(usable, choice.kind === 'auto'), constraint: { kind: 'toolCalls', schema, allowText: choice.kind === 'auto' } };
}

function toolsPrompt(tools: ToolFunction[], optional: boolean): string {
  const listing = tools.map((t) => JSON.stringify({ name: t.name, ...(t.description ? { description: t.description } : {}), parameters: t.parameters })).join('\n');
  // Short: on a small model every character of it is a token of the context.
  return `Functions:\n${listing}\nTo call: {"tool_calls":[{"name":…,"arguments":{…}}]}${optional ? ' or answer in text.' : ''}`;
}

/**
 * Reads a constrained answer back: tool calls when it is a call object, else text (only
 * `auto` lets text through). A call object cut short by `max_tokens` is not a call: it is
 * returned as text so the client sees what was produced, with finish_reason `length`.
 */
export function readToolOutput(text: string): { kind: 'calls'; calls: ParsedToolCall[] } | { kind: 'text' } {
  if (!text.trimStart().startsWith('{')) return { kind: 'text' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { kind: 'text' };
  }
  const list = (parsed as { tool_calls?: unknown }).tool_calls;
  if (!Array.isArray(list) || list.length === 0) return { kind: 'text' };
  const calls: ParsedToolCall[] = [];
  for (const c of list) {
    const { name, arguments: args } = (c ?? {}) as { name?: unknown; arguments?: unknown };
    if (typeof name !== 'string') return { kind: 'text' };
    calls.push({ name, arguments: JSON.stringify(args ?? {}) });
  }
  return { kind: 'calls', calls };
}

/** Whether a streamed answer's text so far may still become a call object (so is held back). */
export const mayBeToolCall = (textSoFar: string) => textSoFar.trimStart() === '' || textSoFar.trimStart().startsWith('{');

/** An assistant turn that called functions, as the model itself would have written it. */
export function renderToolCalls(calls: ReadonlyArray<{ name: string; arguments: string }>): string {
  return JSON.stringify({ tool_calls: calls.map((c) => ({ name: c.name, arguments: safeJson(c.arguments) })) });
}

/** A function's result, as the model reads it in the next user turn. */
export function renderToolResult(r: { name?: string; callId?: string; content: string }): string {
  return `Result of function ${r.name ?? r.callId ?? 'call'}: ${r.content}`;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
