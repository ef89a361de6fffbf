/**
 * Bad input never crashes or hangs the gateway: each case gets a clear 4xx in the OpenAI
 * envelope, and the server still answers afterwards. Also: a client that disconnects cancels
 * its workflow.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import net from 'node:net';
import path from 'node:path';
import { log } from '../../src/logger.js';
import { sha256File } from '../../src/activities/fileHash.js';
import { registerModel } from '../../src/db/modelsRepo.js';
import { makeTinyModel, TINY_MODEL_SIZES } from '../../src/model/tinyModel.js';
import { startTestFleet, type TestFleet } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

interface Case {
  name: string;
  path?: string;
  body: string | object;
  contentType?: string;
  status: number;
  code?: string | null;
  param?: string | null;
  messageLike?: RegExp;
}

const chat = (extra: object) => ({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], ...extra });

const cases: Case[] = [
  { name: 'malformed JSON', body: '{"model": "tiny", "messages": [', status: 400, code: 'invalid_json' },
  { name: 'not a JSON object', body: '[1,2,3]', status: 400, messageLike: /JSON object/ },
  { name: 'wrong content type', body: 'hello', contentType: 'text/plain', status: 400, messageLike: /JSON object/ },
  { name: 'missing messages', body: { model: 'tiny' }, status: 400, param: 'messages' },
  { name: 'empty messages', body: { model: 'tiny', messages: [] }, status: 400, param: 'messages' },
  { name: 'missing model', body: { messages: [{ role: 'user', content: 'hi' }] }, status: 400, param: 'model' },
  { name: 'bad role', body: { model: 'tiny', messages: [{ role: 'wizard', content: 'hi' }] }, status: 400, param: 'messages.0.role' },
  { name: 'temperature is a string', body: chat({ temperature: 'hot' }), status: 400, param: 'temperature' },
  { name: 'temperature out of range', body: chat({ temperature: 7 }), status: 400, param: 'temperature' },
  { name: 'max_tokens negative', body: chat({ max_tokens: -1 }), status: 400, param: 'max_tokens' },
  { name: 'max_tokens not an integer', body: chat({ max_tokens: 1.5 }), status: 400, param: 'max_tokens' },
  { name: 'stream is a string', body: chat({ stream: 'yes' }), status: 400, param: 'stream' },
  { name: 'n = 2 is refused', body: chat({ n: 2 }), status: 400, param: 'n' },
  { name: 'too many stop sequences', body: chat({ stop: ['a', 'b', 'c', 'd', 'e'] }), status: 400, param: 'stop' },
  { name: 'image content is refused', body: { model: 'tiny', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, status: 400, param: 'messages.0.content' },
  // Parameters that are neither applied nor passed on are refused, naming themselves.
  { name: 'legacy functions are refused', body: chat({ functions: [{ name: 'f', parameters: {} }] }), status: 400, param: 'functions', messageLike: /use 'tools'/ },
  { name: 'legacy function_call is refused', body: chat({ function_call: 'auto' }), status: 400, param: 'function_call' },
  { name: 'logprobs are refused', body: chat({ logprobs: true }), status: 400, param: 'logprobs' },
  { name: 'top_logprobs are refused', body: chat({ top_logprobs: 2 }), status: 400, param: 'top_logprobs' },
  { name: 'completions: logprobs are refused', path: '/v1/completions', body: { model: 'tiny', prompt: 'x', logprobs: 2 }, status: 400, param: 'logprobs' },
  { name: 'audio output is refused', body: chat({ audio: { voice: 'alloy', format: 'wav' } }), status: 400, param: 'audio' },
  { name: 'reasoning_effort is refused', body: chat({ reasoning_effort: 'high' }), status: 400, param: 'reasoning_effort' },
  { name: 'store: true is refused', body: chat({ store: true }), status: 400, param: 'store' },
  { name: 'logit_bias with a non-token key', body: chat({ logit_bias: { hello: 5 } }), status: 400, param: 'logit_bias.hello' },
  { name: 'logit_bias out of range', body: chat({ logit_bias: { '5': 150 } }), status: 400, param: 'logit_bias.5' },
  { name: 'logit_bias beyond the vocabulary', body: chat({ logit_bias: { '99999999': 1 } }), status: 400, param: 'logit_bias', messageLike: /vocabulary/ },
  { name: 'repeat_penalty 0 (a division by zero in llama.cpp)', body: chat({ repeat_penalty: 0 }), status: 400, param: 'repeat_penalty' },
  { name: 'completions: tools are for chat', path: '/v1/completions', body: { model: 'tiny', prompt: 'x', tools: [] }, status: 400, param: 'tools' },
  { name: 'a recursive json_schema', body: chat({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { $defs: { n: { type: 'object', properties: { next: { $ref: '#/$defs/n' } } } }, $ref: '#/$defs/n' } } } }), status: 400, code: 'unsupported_schema_keyword', messageLike: /recursive/ },
  { name: 'top_k negative', body: chat({ top_k: -1 }), status: 400, param: 'top_k' },
  { name: 'min_p above 1', body: chat({ min_p: 2 }), status: 400, param: 'min_p' },
  { name: 'presence_penalty out of range', body: chat({ presence_penalty: 3 }), status: 400, param: 'presence_penalty' },
  { name: 'response_format of an unknown type', body: chat({ response_format: { type: 'yaml' } }), status: 400, param: 'response_format.type' },
  { name: 'json_schema with an unsupported keyword', body: chat({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { a: { type: 'string', pattern: '^a' } } } } } }), status: 400, code: 'unsupported_schema_keyword', param: 'response_format.json_schema.schema', messageLike: /'pattern'.*\/properties\/a/ },
  { name: 'json_schema with a dangling $ref', body: chat({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { $ref: '#/$defs/nope' } } } }), status: 400, code: 'unsupported_schema_keyword', messageLike: /\$ref/ },
  { name: 'a tool of another type', body: chat({ tools: [{ type: 'code_interpreter' }] }), status: 400, param: 'tools.0.type' },
  { name: 'a tool with a bad name', body: chat({ tools: [{ type: 'function', function: { name: 'no spaces allowed' } }] }), status: 400, param: 'tools.0.function.name' },
  { name: 'a tool whose parameters use minimum', body: chat({ tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { n: { type: 'integer', minimum: 1 } } } } }] }), status: 400, code: 'unsupported_schema_keyword', param: 'tools.0.function.parameters', messageLike: /'minimum'/ },
  { name: 'tool_choice naming no tool', body: chat({ tools: [{ type: 'function', function: { name: 'f' } }], tool_choice: { type: 'function', function: { name: 'g' } } }), status: 400, param: 'tool_choice' },
  { name: 'tool_choice without tools', body: chat({ tool_choice: 'required' }), status: 400, param: 'tool_choice' },
  { name: 'a tool message answering no call', body: chat({ messages: [{ role: 'user', content: 'hi' }, { role: 'tool', tool_call_id: 'call_x', content: '42' }] }), status: 400, param: 'messages.1.tool_call_id' },
  { name: 'tools with response_format', body: chat({ tools: [{ type: 'function', function: { name: 'f' } }], response_format: { type: 'json_object' } }), status: 400, param: 'response_format' },
  { name: 'unknown model', body: chat({ model: 'gpt-17' }), status: 404, code: 'model_not_found', param: 'model' },
  { name: 'max_tokens over the context', body: chat({ max_tokens: 100_000 }), status: 400, code: 'context_length_exceeded', param: 'max_tokens' },
  { name: 'prompt over the context (refused at the edge)', body: chat({ messages: [{ role: 'user', content: 'word '.repeat(3000) }] }), status: 400, code: 'context_length_exceeded', param: 'messages', messageLike: /maximum context length is 512 tokens.*estimated at about 3750 tokens/ },
  { name: 'prompt + max_tokens over the context (refused at the edge)', body: chat({ messages: [{ role: 'user', content: 'the '.repeat(200) }], max_tokens: 400 }), status: 400, code: 'context_length_exceeded', param: 'messages', messageLike: /estimated at about 200 tokens.*plus 400 in max_tokens/ },
  // ~50 tokens by the edge's estimate, ~200 by the tokenizer (no piece for '~!'): the host's exact check refuses it.
  { name: 'prompt + max_tokens over the context by the exact count only', body: chat({ messages: [{ role: 'user', content: '~!'.repeat(100) }], max_tokens: 450 }), status: 400, code: 'context_length_exceeded', messageLike: /maximum context length is 512 tokens\. However, you requested \d+ tokens \(\d+ in the prompt, 450 in the completion\)/ },
  { name: 'completions: prompt missing', path: '/v1/completions', body: { model: 'tiny' }, status: 400, param: 'prompt' },
  { name: 'completions: several prompts', path: '/v1/completions', body: { model: 'tiny', prompt: ['a', 'b'] }, status: 400, param: 'prompt' },
  { name: 'unknown URL', path: '/v1/embeddings/nope', body: { model: 'tiny', input: 'x' }, status: 404, code: 'unknown_url' },
  { name: 'embeddings: input missing', path: '/v1/embeddings', body: { model: 'tiny' }, status: 400, param: 'input' },
  { name: 'embeddings: bad encoding_format', path: '/v1/embeddings', body: { model: 'tiny', input: 'x', encoding_format: 'int8' }, status: 400, param: 'encoding_format' },
  { name: 'admin: register a file that does not exist', path: '/admin/models', body: { id: 'nope', path: '/nonexistent/model.gguf' }, status: 400, param: 'path' },
  { name: 'admin: register a file that is not GGUF', path: '/admin/models', body: { id: 'nope', path: '/etc/hostname' }, status: 400, param: 'path' },
  { name: 'admin: bad model id', path: '/admin/models', body: { id: '../x', path: '/etc/hostname' }, status: 400, param: 'id' },
  { name: 'admin: register a directory', path: '/admin/models', body: { id: 'dir', path: '/tmp' }, status: 400, code: 'invalid_model_file', messageLike: /is a directory/ },
  { name: 'admin: register a device', path: '/admin/models', body: { id: 'dev', path: '/dev/null' }, status: 400, code: 'invalid_model_file', messageLike: /is a device/ },
];

/** Counts error-level lines the process logger writes (pino calls `write` once per line). */
let errors = 0;
const errorLines = () => errors;

describe('bad input', () => {
  let f: TestFleet;
  before(async () => {
    f = await startTestFleet({ db: 'pglite' });
    const original = log.error.bind(log);
    log.error = ((...args: Parameters<typeof log.error>) => {
      errors++;
      return original(...args);
    }) as typeof log.error;
  });
  after(async () => {
    await f?.stop();
  });

  for (const c of cases) {
    test(`${c.name} → ${c.status}`, async () => {
      const res = await fetch(`${f.stack.api!.url}${c.path ?? '/v1/chat/completions'}`, {
        method: 'POST',
        headers: { 'content-type': c.contentType ?? 'application/json', authorization: 'Bearer sk-no-key' },
        body: typeof c.body === 'string' ? c.body : JSON.stringify(c.body),
      });
      const text = await res.text();
      assert.equal(res.status, c.status, text);
      // Every answer carries a request id, errors included.
      assert.match(res.headers.get('x-request-id') ?? '', /^(req_|chatcmpl-|cmpl-)[A-Za-z0-9_-]+$/);
      const body = JSON.parse(text) as { error: { message: string; type: string; param: string | null; code: string | null } };
      assert.deepEqual(Object.keys(body), ['error']);
      assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
      assert.ok(body.error.message.length > 0);
      assert.ok(!/\bat .+\.(ts|js):\d+/.test(body.error.message), 'no stack trace in the message');
      if (c.code !== undefined) assert.equal(body.error.code, c.code);
      if (c.param !== undefined) assert.equal(body.error.param, c.param);
      if (c.messageLike) assert.match(body.error.message, c.messageLike);
    });
  }

  test('a body over the limit → 413 envelope', async () => {
    const huge = JSON.stringify(chat({ messages: [{ role: 'user', content: 'x'.repeat(2 * 1024 * 1024) }] }));
    const res = await fetch(`${f.stack.api!.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: huge,
    });
    assert.equal(res.status, 413);
    const body = (await res.json()) as { error: { code: string } };
    assert.equal(body.error.code, 'request_too_large');
  });

  test('a malformed percent-encoding in the path → 400 envelope, not a 500', async () => {
    for (const route of ['/v1/models/%E0%A4%A', '/admin/hosts/%ZZ/models/tiny/load']) {
      const res = await fetch(`${f.stack.api!.url}${route}`, { method: route.startsWith('/admin') ? 'POST' : 'GET' });
      assert.equal(res.status, 400, route);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'invalid_url', route);
    }
  });

  test('a body that does not decode as its Content-Encoding says → 400, nothing logged as an error', async () => {
    const errorsBefore = errorLines();
    for (const encoding of ['gzip', 'deflate', 'br']) {
      const res = await fetch(`${f.stack.api!.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': encoding },
        body: 'this is not compressed at all',
      });
      assert.equal(res.status, 400, encoding);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'invalid_body', encoding);
    }
    assert.equal(errorLines(), errorsBefore, 'no error-level log line (before auth, anyone could flood the logs)');
  });

  test('a raw CR or NUL in a header gets our envelope, not Node\'s bare 400', async () => {
    const { port } = new URL(f.stack.api!.url);
    for (const bad of ['a\rb', 'a\u0000b']) {
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(Number(port), '127.0.0.1', () => socket.write(`GET /health HTTP/1.1\r\nHost: x\r\nX-Bad: ${bad}\r\n\r\n`));
        let out = '';
        socket.on('data', (d) => (out += d.toString()));
        socket.on('end', () => resolve(out));
        socket.on('error', reject);
      });
      assert.match(answer, /^HTTP\/1\.1 400 /, JSON.stringify(bad));
      const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error: { code: string; type: string } };
      assert.deepEqual([body.error.code, body.error.type], ['invalid_http', 'invalid_request_error']);
    }
  });

  test('the server is still up and serving after all of that', async () => {
    const health = await fetch(`${f.stack.api!.url}/health`);
    assert.equal(health.status, 200);
    const r = await f.openai.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'still there?' }], max_tokens: 4 });
    assert.ok(r.choices[0]!.message.content!.length > 0);
  });

  test('a client that disconnects mid-stream cancels its workflow', async () => {
    // A generation long enough (the small model, ~2k tokens) that the client leaves while it
    // runs: right after the first chunk arrives.
    const file = path.join(f.tmpDir, 'small.gguf');
    await makeTinyModel({ file, seed: 9, size: 'small' });
    const { sha256, sizeBytes } = await sha256File(file);
    await registerModel(f.stack.db.db, { id: 'small', path: file, sha256, sizeBytes, contextLength: TINY_MODEL_SIZES.small.contextLength });
    const ac = new AbortController();
    const stream = await f.openai.chat.completions.create(
      { model: 'small', messages: [{ role: 'user', content: 'cancel me' }], stream: true, temperature: 0 },
      { signal: ac.signal },
    );
    let id = '';
    try {
      for await (const chunk of stream) {
        id = chunk.id;
        if (chunk.choices[0]?.delta.content) ac.abort();
      }
    } catch {
      // the aborted read
    }
    assert.match(id, /^chatcmpl-/);
    const handle = f.stack.temporal.client.workflow.getHandle(id);
    const status = await waitFor(async () => {
      const d = await handle.describe();
      return d.status.name === 'RUNNING' ? undefined : d.status.name;
    }, 30_000);
    assert.equal(status, 'CANCELLED');
  });
});
