/**
 * What agents and RAG pipelines use, through the official `openai` client against the real
 * stack (Temporal dev server, PGlite, node-llama-cpp on a generated random-weight GGUF):
 * function calling (forced, named, auto; JSON and stream; a history with calls and results),
 * structured outputs (json_object, json_schema, `.parse()`), the sampling parameters that are
 * applied (logit_bias, top_k, min_p, the penalties), request ids and CORS; and Anthropic
 * Messages through the official `@anthropic-ai/sdk` (messages, its stream helper, count_tokens,
 * tool use, its error classes). Even a random-weight
 * model's calls and JSON parse and validate: the host enforces them by grammar.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Ajv } from 'ajv';
import { readGgufFileInfo } from 'node-llama-cpp';
import Anthropic from '@anthropic-ai/sdk';
import { zodResponseFormat } from 'openai/helpers/zod';
import { z } from 'zod';
import type OpenAI from 'openai';
import { getRequestLog } from '../../src/db/requestLogRepo.js';
import { startTestFleet, type TestFleet } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

const user = (content: string) => [{ role: 'user' as const, content }];

const weatherParams = {
  type: 'object',
  properties: {
    city: { type: 'string', maxLength: 12 },
    unit: { enum: ['celsius', 'fahrenheit'] },
    days: { type: 'integer' },
  },
  required: ['city', 'unit', 'days'],
  additionalProperties: false,
} as const;

const tools: OpenAI.Chat.Completions.ChatCompletionTool[] = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather of a city', parameters: weatherParams } },
  { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { enum: ['utc', 'local'] } }, required: ['zone'] } } },
];

const recipe = {
  type: 'object',
  properties: {
    title: { type: 'string', maxLength: 16 },
    servings: { type: 'integer' },
    vegan: { type: 'boolean' },
    tags: { type: 'array', items: { enum: ['quick', 'cheap', 'spicy'] }, maxItems: 3 },
    rating: { anyOf: [{ type: 'number' }, { type: 'null' }] },
  },
  required: ['title', 'servings', 'vegan', 'tags', 'rating'],
  additionalProperties: false,
};

const ajv = new Ajv({ strict: false });
const validWeather = ajv.compile(weatherParams);
const validRecipe = ajv.compile(recipe);
const validTime = ajv.compile(tools[1]!.type === 'function' ? tools[1]!.function.parameters! : {});

describe('API surface: tools, structured outputs, sampling', () => {
  let f: TestFleet;
  let vocabulary: string[];
  before(async () => {
    f = await startTestFleet({ db: 'pglite', size: 'small', env: { FLEET_CORS_ORIGINS: 'http://app.example' } });
    const file = (await f.stack.db.db.selectFrom('models').select('path').where('id', '=', f.modelId).executeTakeFirstOrThrow()).path!;
    const info = await readGgufFileInfo(file, { readTensorInfo: false });
    vocabulary = (info.metadata as unknown as { tokenizer: { ggml: { tokens: string[] } } }).tokenizer.ggml.tokens;
  });
  after(async () => {
    await f?.stop();
  });

  test('tool_choice required: a call whose arguments validate, finish_reason tool_calls, the request id is the response id', async () => {
    for (const seed of [1, 2, 3]) {
      const r = await f.openai.chat.completions.create({ model: 'tiny', messages: user('weather in Paris?'), tools, tool_choice: 'required', max_tokens: 800, seed });
      const choice = r.choices[0]!;
      assert.equal(choice.finish_reason, 'tool_calls', JSON.stringify(choice));
      assert.equal(choice.message.content, null);
      assert.ok(choice.message.tool_calls!.length >= 1);
      for (const c of choice.message.tool_calls!) {
        assert.equal(c.type, 'function');
        assert.match(c.id, /^call_/);
        if (c.type !== 'function') continue;
        const args = JSON.parse(c.function.arguments);
        const valid = c.function.name === 'get_weather' ? validWeather : validTime;
        assert.ok(['get_weather', 'get_time'].includes(c.function.name));
        assert.ok(valid(args), `${c.function.arguments}: ${JSON.stringify(valid.errors)}`);
      }
      assert.equal(r._request_id, r.id);
    }
  });

  test('a named function with parallel_tool_calls false: exactly that call, once; streamed as OpenAI streams it', async () => {
    const params = {
      model: 'tiny',
      messages: user('weather?'),
      tools,
      tool_choice: { type: 'function' as const, function: { name: 'get_weather' } },
      parallel_tool_calls: false,
      max_tokens: 200,
      temperature: 0,
    };
    const whole = await f.openai.chat.completions.create(params);
    const calls = whole.choices[0]!.message.tool_calls!;
    assert.equal(calls.length, 1);
    assert.equal(calls[0]!.type === 'function' && calls[0]!.function.name, 'get_weather');
    const stream = await f.openai.chat.completions.create({ ...params, stream: true });
    const parts: { id?: string; name?: string; args: string }[] = [];
    let finish: string | null = null;
    let content = '';
    for await (const chunk of stream) {
      const d = chunk.choices[0]?.delta;
      content += d?.content ?? '';
      for (const t of d?.tool_calls ?? []) {
        parts[t.index] ??= { args: '' };
        if (t.id) parts[t.index]!.id = t.id;
        if (t.function?.name) parts[t.index]!.name = t.function.name;
        parts[t.index]!.args += t.function?.arguments ?? '';
      }
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(content, '');
    assert.equal(finish, 'tool_calls');
    assert.equal(parts.length, 1);
    assert.match(parts[0]!.id!, /^call_/);
    assert.equal(parts[0]!.name, 'get_weather');
    // Greedy: the streamed call is the same call.
    assert.equal(parts[0]!.args, calls[0]!.type === 'function' ? calls[0]!.function.arguments : '');
    assert.ok(validWeather(JSON.parse(parts[0]!.args)));
  });

  test('a history with a call and its result is served; tool_choice none answers in text; auto gives text or valid calls', async () => {
    const first = await f.openai.chat.completions.create({ model: 'tiny', messages: user('weather?'), tools, tool_choice: 'required', parallel_tool_calls: false, max_tokens: 200 });
    const call = first.choices[0]!.message.tool_calls![0]!;
    const history: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
      ...user('weather?'),
      { role: 'assistant', content: null, tool_calls: [call] },
      { role: 'tool', tool_call_id: call.id, content: '{"temperature": 21}' },
    ];
    const none = await f.openai.chat.completions.create({ model: 'tiny', messages: history, tools, tool_choice: 'none', max_tokens: 12 });
    assert.ok(['stop', 'length'].includes(none.choices[0]!.finish_reason));
    assert.equal(none.choices[0]!.message.tool_calls, undefined);
    assert.equal(typeof none.choices[0]!.message.content, 'string');
    for (const seed of [1, 2, 3, 4]) {
      const auto = await f.openai.chat.completions.create({ model: 'tiny', messages: history, tools, parallel_tool_calls: false, max_tokens: 200, seed });
      const c = auto.choices[0]!;
      if (c.finish_reason === 'tool_calls') {
        for (const t of c.message.tool_calls!) assert.ok(t.type === 'function' && JSON.parse(t.function.arguments));
      } else assert.ok(!(c.message.content ?? '').trimStart().startsWith('{') || c.finish_reason === 'length', JSON.stringify(c));
    }
  });

  test('json_schema (strict) output parses and validates, JSON and stream; .parse() fills message.parsed', async () => {
    const response_format = { type: 'json_schema' as const, json_schema: { name: 'recipe', schema: recipe, strict: true } };
    for (const seed of [1, 2]) {
      const r = await f.openai.chat.completions.create({ model: 'tiny', messages: user('a recipe'), response_format, max_tokens: 300, seed });
      assert.equal(r.choices[0]!.finish_reason, 'stop');
      const value = JSON.parse(r.choices[0]!.message.content!);
      assert.ok(validRecipe(value), `${r.choices[0]!.message.content}: ${JSON.stringify(validRecipe.errors)}`);
    }
    const stream = await f.openai.chat.completions.create({ model: 'tiny', messages: user('a recipe'), response_format, max_tokens: 300, seed: 3, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    assert.ok(validRecipe(JSON.parse(text)), text);
    const parsed = await f.openai.chat.completions.parse({ model: 'tiny', messages: user('a recipe'), response_format, max_tokens: 300, seed: 4 });
    assert.ok(validRecipe(parsed.choices[0]!.message.parsed));
    // The SDK's zod helper writes integer bounds as wide as JavaScript's safe integers: accepted, and parsed by the SDK.
    const Dish = z.object({ name: z.string().max(10), minutes: z.number().int(), vegan: z.boolean() });
    const viaZod = await f.openai.chat.completions.parse({ model: 'tiny', messages: user('a dish'), response_format: zodResponseFormat(Dish, 'dish'), max_tokens: 200, seed: 5 });
    assert.ok(Dish.safeParse(viaZod.choices[0]!.message.parsed).success, JSON.stringify(viaZod.choices[0]!.message));
  });

  test('json_object output parses', async () => {
    const r = await f.openai.chat.completions.create({ model: 'tiny', messages: user('json please'), response_format: { type: 'json_object' }, max_tokens: 300, seed: 9 });
    if (r.choices[0]!.finish_reason === 'stop') assert.equal(typeof JSON.parse(r.choices[0]!.message.content!), 'object');
    else assert.equal(r.choices[0]!.finish_reason, 'length');
  });

  test('logit_bias -100 bans tokens: no token holding an "e" is generated', async () => {
    const banned: Record<string, number> = {};
    vocabulary.forEach((t, id) => {
      if (t.includes('e')) banned[String(id)] = -100;
    });
    assert.ok(Object.keys(banned).length > 10 && Object.keys(banned).length <= 1024);
    const plain = await f.openai.chat.completions.create({ model: 'tiny', messages: user('tell me more'), max_tokens: 40, temperature: 0 });
    assert.match(plain.choices[0]!.message.content!, /e/, 'the plain answer uses the letter');
    const biased = await f.openai.chat.completions.create({ model: 'tiny', messages: user('tell me more'), max_tokens: 40, temperature: 0, logit_bias: banned });
    assert.doesNotMatch(biased.choices[0]!.message.content!, /e/);
  });

  test('top_k 1 and min_p 1 sample like greedy; the penalties change a greedy answer', async () => {
    const base = { model: 'tiny', messages: user('more more more'), max_tokens: 40 };
    const greedy = (await f.openai.chat.completions.create({ ...base, temperature: 0 })).choices[0]!.message.content;
    const text = async (extra: Record<string, unknown>) => (await f.openai.chat.completions.create({ ...base, ...extra } as never) as OpenAI.Chat.Completions.ChatCompletion).choices[0]!.message.content;
    assert.equal(await text({ temperature: 1.5, seed: 11, top_k: 1 }), greedy);
    assert.equal(await text({ temperature: 1.5, seed: 12, min_p: 1 }), greedy);
    assert.notEqual(await text({ temperature: 1.5, seed: 13 }), greedy, 'sampling at temperature 1.5 differs from greedy');
    assert.notEqual(await text({ temperature: 0, frequency_penalty: 2 }), greedy);
    assert.notEqual(await text({ temperature: 0, presence_penalty: 2 }), greedy);
    assert.notEqual(await text({ temperature: 0, repeat_penalty: 2 }), greedy);
  });

  test('CORS: an allowed origin gets its preflight answered before auth and the request id exposed; another origin does not', async () => {
    const preflight = (origin: string) =>
      fetch(`${f.stack.api!.url}/v1/chat/completions`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type,x-stainless-os' },
      });
    const ok = await preflight('http://app.example');
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get('access-control-allow-origin'), 'http://app.example');
    assert.match(ok.headers.get('access-control-allow-headers') ?? '', /x-stainless-os/);
    const other = await preflight('http://evil.example');
    assert.equal(other.headers.get('access-control-allow-origin'), null);
    const r = await fetch(`${f.stack.api!.url}/v1/models`, { headers: { origin: 'http://app.example' } });
    assert.equal(r.headers.get('access-control-allow-origin'), 'http://app.example');
    assert.match(r.headers.get('access-control-expose-headers') ?? '', /x-request-id/);
    assert.match(r.headers.get('x-request-id') ?? '', /^req_/);
  });

  describe('Anthropic Messages', () => {
    let anthropic: Anthropic;
    before(() => {
      anthropic = new Anthropic({ baseURL: f.stack.api!.url, apiKey: 'sk-no-key', maxRetries: 0, timeout: 60_000 });
    });

    test('a message: text content, usage, stop_reason; the request id is the message id', async () => {
      const m = await anthropic.messages.create({ model: 'tiny', max_tokens: 12, system: 'be brief', messages: [{ role: 'user', content: 'hello' }] });
      assert.match(m.id, /^msg_/);
      assert.equal(m.type, 'message');
      assert.equal(m.role, 'assistant');
      assert.equal(m.model, 'tiny');
      assert.equal(m.content[0]!.type, 'text');
      assert.ok(['end_turn', 'max_tokens'].includes(m.stop_reason!));
      assert.ok(m.usage.input_tokens > 0 && m.usage.output_tokens > 0 && m.usage.output_tokens <= 12);
      assert.equal(m._request_id, m.id);
    });

    test('stop_sequences: stop_reason stop_sequence names the sequence', async () => {
      const base = { model: 'tiny', max_tokens: 40, temperature: 0, messages: [{ role: 'user' as const, content: 'more' }] };
      const plain = await anthropic.messages.create(base);
      const text = plain.content[0]!.type === 'text' ? plain.content[0]!.text : '';
      const word = text.trim().split(/\s+/)[1] ?? text.trim().slice(2, 5);
      assert.ok(word, text);
      const stopped = await anthropic.messages.create({ ...base, stop_sequences: [word] });
      assert.equal(stopped.stop_reason, 'stop_sequence', JSON.stringify(stopped));
      assert.equal(stopped.stop_sequence, word);
    });

    test('the stream helper assembles the streamed message, equal to the unstreamed one (greedy)', async () => {
      const params = { model: 'tiny', max_tokens: 24, temperature: 0, messages: [{ role: 'user' as const, content: 'tell me about the fleet' }] };
      const whole = await anthropic.messages.create(params);
      const events: string[] = [];
      const stream = anthropic.messages.stream(params).on('streamEvent', (e) => events.push(e.type));
      const final = await stream.finalMessage();
      assert.deepEqual(final.content, whole.content);
      assert.equal(final.stop_reason, whole.stop_reason);
      // The same prompt, however much of it the host's sequence held (Anthropic counts cache reads apart).
      const input = (u: { input_tokens: number; cache_read_input_tokens?: number | null }) => u.input_tokens + (u.cache_read_input_tokens ?? 0);
      assert.equal(input(final.usage), input(whole.usage));
      assert.deepEqual(final.usage.output_tokens, whole.usage.output_tokens);
      assert.equal(events[0], 'message_start');
      assert.equal(events.at(-1), 'message_stop');
      assert.ok(events.includes('content_block_delta') && events.includes('content_block_stop') && events.includes('message_delta'));
    });

    test('count_tokens counts what a message would use as its input', async () => {
      const body = { model: 'tiny', messages: [{ role: 'user' as const, content: 'count me' }], system: 'sys' };
      const counted = await anthropic.messages.countTokens(body);
      const m = await anthropic.messages.create({ ...body, max_tokens: 4 });
      assert.equal(counted.input_tokens, m.usage.input_tokens + (m.usage.cache_read_input_tokens ?? 0));
    });

    test('tool use: a forced tool gives a tool_use block whose input validates; streamed as input_json_delta; a tool_result turn is served', async () => {
      const weather = { name: 'get_weather', description: 'Weather of a city', input_schema: weatherParams as unknown as Anthropic.Tool.InputSchema };
      const m = await anthropic.messages.create({ model: 'tiny', max_tokens: 200, tools: [weather], tool_choice: { type: 'tool', name: 'get_weather' }, messages: [{ role: 'user', content: 'weather?' }] });
      assert.equal(m.stop_reason, 'tool_use');
      const use = m.content.find((b) => b.type === 'tool_use');
      assert.ok(use && use.type === 'tool_use');
      assert.equal(use.name, 'get_weather');
      assert.match(use.id, /^toolu_/);
      assert.ok(validWeather(use.input), JSON.stringify(use.input));
      const final = await anthropic.messages
        .stream({ model: 'tiny', max_tokens: 200, temperature: 0, tools: [weather], tool_choice: { type: 'any', disable_parallel_tool_use: true }, messages: [{ role: 'user', content: 'weather?' }] })
        .finalMessage();
      assert.equal(final.stop_reason, 'tool_use');
      const streamed = final.content.find((b) => b.type === 'tool_use');
      assert.ok(streamed && streamed.type === 'tool_use' && validWeather(streamed.input));
      const next = await anthropic.messages.create({
        model: 'tiny',
        max_tokens: 8,
        tools: [weather],
        messages: [
          { role: 'user', content: 'weather?' },
          { role: 'assistant', content: [use] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '21 degrees' }] },
        ],
      });
      assert.ok(['end_turn', 'max_tokens', 'tool_use'].includes(next.stop_reason!));
    });

    test('output_config.format: the answer is held to the JSON schema', async () => {
      const m = await anthropic.messages.create({ model: 'tiny', max_tokens: 300, output_config: { format: { type: 'json_schema', schema: recipe } }, messages: [{ role: 'user', content: 'a recipe' }] } as never);
      const block = (m as Anthropic.Message).content[0]!;
      assert.ok(block.type === 'text' && validRecipe(JSON.parse(block.text)), JSON.stringify(m));
    });

    test("errors come in Anthropic's envelope and as the SDK's error classes", async () => {
      await assert.rejects(anthropic.messages.create({ model: 'tiny', messages: [{ role: 'user', content: 'x' }] } as never), (e: unknown) => {
        assert.ok(e instanceof Anthropic.BadRequestError);
        assert.equal((e.error as { type: string }).type, 'error');
        assert.match(e.message, /max_tokens/);
        return true;
      });
      await assert.rejects(anthropic.messages.create({ model: 'nope', max_tokens: 4, messages: [{ role: 'user', content: 'x' }] }), Anthropic.NotFoundError);
      await assert.rejects(
        anthropic.messages.create({ model: 'tiny', max_tokens: 4, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AA==' } }] }] }),
        (e: unknown) => e instanceof Anthropic.BadRequestError && /image/.test(e.message),
      );
      await assert.rejects(
        anthropic.messages.create({ model: 'tiny', max_tokens: 4, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: [{ role: 'user', content: 'x' }] }),
        (e: unknown) => e instanceof Anthropic.BadRequestError && /thinking/.test(e.message),
      );
      const raw = await fetch(`${f.stack.api!.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': 'k', 'anthropic-version': '2023-06-01' }, body: '{"model":' });
      assert.equal(raw.status, 400);
      const body = (await raw.json()) as { type: string; error: { type: string; message: string } };
      assert.equal(body.type, 'error');
      assert.equal(body.error.type, 'invalid_request_error');
    });
  });

  describe('Responses', () => {
    test('text: output_text, usage, incomplete at max_output_tokens; the request id is the response id', async () => {
      const r = await f.openai.responses.create({ model: 'tiny', instructions: 'be brief', input: 'hello', max_output_tokens: 6 });
      assert.match(r.id, /^resp_/);
      assert.equal(r.object, 'response');
      assert.equal(r.output[0]!.type, 'message');
      assert.ok(r.output_text.length > 0);
      assert.ok(r.usage!.input_tokens > 0 && r.usage!.output_tokens > 0 && r.usage!.output_tokens <= 6);
      assert.ok(r.status === 'completed' || (r.status === 'incomplete' && r.incomplete_details?.reason === 'max_output_tokens'));
      assert.equal(r._request_id, r.id);
    });

    test('a stream: its event family, and the stream helper assembles what the JSON answer holds (greedy)', async () => {
      const params = { model: 'tiny', input: [{ role: 'user' as const, content: 'tell me about the fleet' }], max_output_tokens: 24, temperature: 0 };
      const whole = await f.openai.responses.create(params);
      const types: string[] = [];
      let deltas = '';
      for await (const e of await f.openai.responses.create({ ...params, stream: true })) {
        types.push(e.type);
        if (e.type === 'response.output_text.delta') deltas += e.delta;
      }
      assert.equal(types[0], 'response.created');
      assert.ok(['response.completed', 'response.incomplete'].includes(types.at(-1)!));
      assert.ok(types.includes('response.output_item.added') && types.includes('response.output_text.done') && types.includes('response.output_item.done'));
      assert.equal(deltas, whole.output_text);
      const final = await f.openai.responses.stream(params).finalResponse();
      assert.equal(final.output_text, whole.output_text);
    });

    test('function calls: a forced call validates; its output item is served back; json_schema text format validates', async () => {
      const weather = { type: 'function' as const, name: 'get_weather', parameters: weatherParams as unknown as Record<string, unknown>, strict: true };
      const r = await f.openai.responses.create({ model: 'tiny', input: 'weather?', tools: [weather], tool_choice: 'required', parallel_tool_calls: false, max_output_tokens: 200 });
      const call = r.output.find((o) => o.type === 'function_call');
      assert.ok(call && call.type === 'function_call');
      assert.equal(call.name, 'get_weather');
      assert.ok(validWeather(JSON.parse(call.arguments)), call.arguments);
      const streamed = await f.openai.responses
        .stream({ model: 'tiny', input: 'weather?', tools: [weather], tool_choice: { type: 'function', name: 'get_weather' }, max_output_tokens: 200 })
        .finalResponse();
      const sc = streamed.output.find((o) => o.type === 'function_call');
      assert.ok(sc && sc.type === 'function_call' && validWeather(JSON.parse(sc.arguments)));
      const next = await f.openai.responses.create({
        model: 'tiny',
        input: [{ role: 'user', content: 'weather?' }, call, { type: 'function_call_output', call_id: call.call_id, output: '21 degrees' }],
        tools: [weather],
        tool_choice: 'none',
        max_output_tokens: 8,
      });
      assert.equal(next.output[0]!.type, 'message');
      const structured = await f.openai.responses.create({ model: 'tiny', input: 'a recipe', text: { format: { type: 'json_schema', name: 'recipe', schema: recipe, strict: true } }, max_output_tokens: 300 } as never);
      assert.ok(validRecipe(JSON.parse((structured as OpenAI.Responses.Response).output_text)));
    });

    test('what is not retained is refused by name', async () => {
      await assert.rejects(f.openai.responses.create({ model: 'tiny', input: 'x', previous_response_id: 'resp_1' }), /previous_response_id/);
      await assert.rejects(f.openai.responses.create({ model: 'tiny', input: 'x', store: true }), /store/);
      await assert.rejects(f.openai.responses.create({ model: 'tiny', input: 'x', text: { verbosity: 'low' } }), /verbosity/);
      await assert.rejects(f.openai.responses.create({ model: 'tiny', input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'data:', detail: 'auto' }] }] }), /input_image/);
    });
  });

  describe('Embeddings', () => {
    test('float and base64 decode to the same vectors; a batch keeps its order; token ids embed like their text', async () => {
      const floats = await f.openai.embeddings.create({ model: 'tiny', input: ['hello fleet', 'another text'], encoding_format: 'float' });
      assert.equal(floats.object, 'list');
      assert.deepEqual(floats.data.map((d) => d.index), [0, 1]);
      const dims = floats.data[0]!.embedding.length;
      assert.ok(dims > 0);
      assert.ok(floats.usage.prompt_tokens > 0);
      assert.equal(floats.usage.total_tokens, floats.usage.prompt_tokens);
      assert.notDeepEqual(floats.data[0]!.embedding, floats.data[1]!.embedding);
      // It ran as an inferenceRequest workflow (its id is the request id) and is in the request log.
      assert.match(floats._request_id ?? '', /^emb-/);
      const logged = await waitFor(() => getRequestLog(f.stack.db.db, floats._request_id!));
      assert.deepEqual([logged!.kind, logged!.status, logged!.prompt_tokens], ['embedding', 'ok', floats.usage.prompt_tokens]);
      // The SDK asks for base64 by default and decodes the float32 bytes itself.
      const decoded = await f.openai.embeddings.create({ model: 'tiny', input: ['hello fleet', 'another text'] });
      assert.deepEqual(decoded.data.map((d) => d.embedding), floats.data.map((d) => d.embedding));
      const one = await f.openai.embeddings.create({ model: 'tiny', input: 'another text', encoding_format: 'float' });
      assert.deepEqual(one.data[0]!.embedding, floats.data[1]!.embedding);
      const tokenIds = vocabulary.map((t, id) => [t, id] as const).filter(([t]) => t.length > 2).slice(0, 5).map(([, id]) => id);
      const byIds = await f.openai.embeddings.create({ model: 'tiny', input: [tokenIds], encoding_format: 'float' });
      assert.equal(byIds.usage.prompt_tokens, tokenIds.length);
      assert.equal(byIds.data[0]!.embedding.length, dims);
      // dimensions: the model's own size is accepted, another refused by name.
      const same = await f.openai.embeddings.create({ model: 'tiny', input: 'x y', dimensions: dims, encoding_format: 'float' });
      assert.equal(same.data[0]!.embedding.length, dims);
      await assert.rejects(f.openai.embeddings.create({ model: 'tiny', input: 'x y', dimensions: dims + 1 }), (e: unknown) => (e as { param?: string }).param === 'dimensions');
      await assert.rejects(f.openai.embeddings.create({ model: 'tiny', input: [[999_999]] }), (e: unknown) => /vocabulary/.test((e as Error).message));
      await assert.rejects(f.openai.embeddings.create({ model: 'tiny', input: '' }), (e: unknown) => (e as { status?: number }).status === 400);
    });
  });
});
