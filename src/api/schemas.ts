/**
 * Request bodies of the OpenAI-compatible endpoints, as zod schemas whose types are inferred.
 * Unknown fields are ignored (clients such as litellm send extras), but every field we read
 * is checked, and parameters we cannot honour are refused rather than silently dropped.
 */
import { z } from 'zod';
import { HOST_ID_PATTERN, HOST_ID_RULE } from '../config.js';
import { invalidRequest } from './errors.js';

const textPart = z.object({ type: z.literal('text'), text: z.string() });
const contentPart = z.discriminatedUnion('type', [
  textPart,
  z.object({ type: z.literal('image_url') }).passthrough(),
  z.object({ type: z.literal('input_audio') }).passthrough(),
  z.object({ type: z.literal('file') }).passthrough(),
  z.object({ type: z.literal('refusal'), refusal: z.string() }),
]);

const toolCall = z.object({
  id: z.string().min(1).max(256),
  type: z.literal('function'),
  function: z.object({ name: z.string(), arguments: z.string() }),
});

const message = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
  name: z.string().optional(),
  /** An assistant turn that called functions. */
  tool_calls: z.array(toolCall).max(128).nullable().optional(),
  /** A `tool` turn: the call it answers. */
  tool_call_id: z.string().max(256).optional(),
  function_call: refused("legacy 'function_call' messages are not supported; use 'tool_calls'"),
});

/** A parameter we neither apply nor pass on: present (and not null) is a 400 naming it. */
export function refused(message: string) {
  return z.unknown().refine((v) => v === undefined || v === null, { message }).optional();
}

/** Functions are named as OpenAI names them. */
export const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;

const tool = z.object({
  type: z.literal('function', "only tools of type 'function' are supported"),
  function: z.object({
    name: z.string().regex(FUNCTION_NAME, 'function names are letters, digits, _ and - (max 64)'),
    description: z.string().max(8192).optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullable().optional(),
  }),
});

const toolChoice = z.union([
  z.enum(['none', 'auto', 'required']),
  z.object({ type: z.literal('function'), function: z.object({ name: z.string() }) }),
]);

const responseFormat = z.discriminatedUnion(
  'type',
  [
    z.object({ type: z.literal('text') }),
    z.object({ type: z.literal('json_object') }),
    z.object({
      type: z.literal('json_schema'),
      json_schema: z.object({
        name: z.string().regex(FUNCTION_NAME, 'names are letters, digits, _ and - (max 64)'),
        description: z.string().optional(),
        schema: z.record(z.string(), z.unknown()).optional(),
        strict: z.boolean().nullable().optional(),
      }),
    }),
  ],
  { error: "response_format type must be 'text', 'json_object' or 'json_schema'" },
);

const stop = z.union([z.string(), z.array(z.string()).max(4, 'at most 4 stop sequences'), z.null()]).optional();
const tokenCount = z.number().int().min(1).nullable().optional();

const sampling = {
  model: z.string({ error: 'you must provide a model parameter' }).min(1, 'you must provide a model parameter'),
  max_tokens: tokenCount,
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().min(0).max(1).nullable().optional(),
  seed: z.number().int().nullable().optional(),
  stop,
  n: z.literal(1, 'only n=1 is supported').nullable().optional(),
  stream: z.boolean().nullable().optional(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
  presence_penalty: z.number().min(-2).max(2).nullable().optional(),
  frequency_penalty: z.number().min(-2).max(2).nullable().optional(),
  /** Token id (as a string) → -100..100 added to its logit. */
  logit_bias: z
    .record(z.string().regex(/^\d{1,9}$/, 'logit_bias keys are token ids'), z.number().min(-100).max(100))
    .refine((b) => Object.keys(b).length <= 1024, 'at most 1024 logit_bias entries')
    .nullable()
    .optional(),
  /** llama.cpp's samplers (as llama-server and vLLM take them); 0 turns top_k off. */
  top_k: z.number().int().min(0).max(1_000_000).nullable().optional(),
  min_p: z.number().min(0).max(1).nullable().optional(),
  // llama.cpp divides logits by it: 0 is no penalty but a division by zero.
  repeat_penalty: z.number().gt(0, 'repeat_penalty must be greater than 0').max(10).nullable().optional(),
  /** OpenAI's end-user id: logged nowhere, passed nowhere; without `x-session-id`, the session key routing keeps a conversation's turns together by. */
  user: z.string().max(256).optional(),
  /** OpenAI's cache-affinity key: the session key routing keeps requests together by (before `user`). */
  prompt_cache_key: z.string().max(256).nullable().optional(),
  top_logprobs: refused('logprobs are not supported by this server'),
  metadata: z.record(z.string(), z.string()).nullable().optional(),
  /** Nothing is stored: `store: true` is refused rather than pretended. */
  store: z.literal(false, "'store' is not supported: completions are not retained").nullable().optional(),
  service_tier: z.enum(['auto', 'default']).nullable().optional(),
};

export const chatCompletionBody = z.object({
  ...sampling,
  messages: z.array(message, { error: 'messages must be an array of messages' }).min(1, 'messages must not be empty'),
  max_completion_tokens: tokenCount,
  logprobs: z.literal(false, 'logprobs are not supported by this server').nullable().optional(),
  tools: z.array(tool).max(128, 'at most 128 tools').nullable().optional(),
  tool_choice: toolChoice.nullable().optional(),
  parallel_tool_calls: z.boolean().nullable().optional(),
  response_format: responseFormat.nullable().optional(),
  functions: refused("legacy 'functions' are not supported; use 'tools'"),
  function_call: refused("legacy 'function_call' is not supported; use 'tool_choice'"),
  audio: refused('audio output is not supported'),
  modalities: z.array(z.literal('text', "only the 'text' modality is supported")).nullable().optional(),
  prediction: refused('predicted outputs are not supported'),
  web_search_options: refused('web search is not supported'),
  reasoning_effort: refused('reasoning_effort is not supported by these models'),
  verbosity: refused('verbosity is not supported by these models'),
});
export type ChatCompletionBody = z.infer<typeof chatCompletionBody>;

export const completionBody = z.object({
  ...sampling,
  prompt: z.union([z.string(), z.array(z.string()).length(1, 'only a single prompt is supported')], {
    error: 'prompt must be a string',
  }),
  echo: z.literal(false, 'echo is not supported').nullable().optional(),
  logprobs: refused('logprobs are not supported by this server'),
  suffix: z.null().optional(),
  best_of: z.literal(1, 'only best_of=1 is supported').nullable().optional(),
  tools: refused('tools are served on /v1/chat/completions'),
  response_format: refused('response_format is served on /v1/chat/completions'),
});
export type CompletionBody = z.infer<typeof completionBody>;

/** A model id (alias or build): safe in URLs, logs and metric labels. */
export const modelIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/, 'letters, digits and . _ : / - (max 128), starting with a letter or digit');

export const registerModelBody = z.object({
  id: modelIdSchema,
  path: z.string().min(1),
  context_length: z.number().int().min(16).max(1_048_576).optional(),
  /** The alias clients reach the build by: default its id (if no alias of that id exists); false: none. */
  alias: z.union([modelIdSchema, z.literal(false)]).optional(),
});
export type RegisterModelBody = z.infer<typeof registerModelBody>;

/**
 * `PATCH /admin/models/:id`: point an alias at a desired build (the old one becomes
 * `previous` unless given), set its `min_warm`; and/or mark the build of that id verifiable
 * (its pin set refreshed on a schedule) or not.
 */
export const patchModelBody = z
  .object({
    desired: modelIdSchema.optional(),
    previous: modelIdSchema.nullable().optional(),
    min_warm: z.number().int().min(0).max(10_000).optional(),
    verifiable: z.boolean().optional(),
    /** Seconds between discovery cycles. @default 300, ≥ 10 */
    discovery_interval_s: z.number().int().min(10).max(86_400).optional(),
    /** A remote build: serve it (a model seen only at a provider starts inactive). */
    active: z.boolean().optional(),
  })
  .strict()
  .refine((b) => Object.keys(b).length > 0, { message: 'nothing to change: give desired, previous, min_warm, verifiable or active' })
  .refine((b) => b.discovery_interval_s === undefined || b.verifiable !== undefined, {
    message: 'discovery_interval_s goes with verifiable',
    path: ['discovery_interval_s'],
  });
export type PatchModelBody = z.infer<typeof patchModelBody>;

/** `POST /admin/pools/:alias/hosts`: move a host into the alias's pool. */
export const poolMoveBody = z
  .object({
    host: z.string().regex(HOST_ID_PATTERN, HOST_ID_RULE),
    /** false: answer 202 with the workflow id at once instead of waiting for the move. */
    wait: z.boolean().default(true),
  })
  .strict();

/** A zod error as the OpenAI `param` (dotted path) and a one-line message. */
export function describeZodError(err: z.ZodError): { message: string; param: string | null } {
  const issue = err.issues[0];
  if (!issue) return { message: 'Invalid request body.', param: null };
  const param = issue.path.length ? issue.path.map(String).join('.') : null;
  const where = param ? `Invalid value for '${param}': ` : 'Invalid request: ';
  return { message: `${where}${issue.message}`, param };
}

/** An account id: it labels metrics and appears in usage, so a safe, short alphabet. */
export const ACCOUNT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const tokenLimit = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

/** POST /admin/keys. A window needs both its token limit and its length. */
export const createKeyBody = z
  .object({
    account: z.string().regex(ACCOUNT_ID_PATTERN, 'letters, digits and _ . - (max 63), starting with a letter or digit'),
    name: z.string().max(200).nullable().optional(),
    /** Lifetime tokens (prompt + completion) the key may spend. */
    balance_tokens: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullable().optional(),
    /** At most this many tokens in any `window_seconds`. */
    window_tokens: tokenLimit.nullable().optional(),
    window_seconds: z.number().int().min(1).max(31 * 24 * 3600).nullable().optional(),
  })
  .refine((b) => (b.window_tokens == null) === (b.window_seconds == null), {
    message: 'window_tokens and window_seconds go together',
    path: ['window_seconds'],
  });
export type CreateKeyBody = z.infer<typeof createKeyBody>;

/** Validates `value` with `schema`, or throws the 400 envelope naming the offending param. */
export function parseOr400<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const r = schema.safeParse(value);
  if (!r.success) {
    const { message, param } = describeZodError(r.error);
    throw invalidRequest(message, param);
  }
  return r.data;
}
