/**
 * A small OpenAI-compatible upstream whose answers a test scripts: per model, a queue of what the
 * next calls do — answer (JSON or SSE), 500, 429 with Retry-After, 400 with a message, stall
 * without headers, drop the connection before or after the first chunk, stream slowly — and
 * `/v1/models` from a list the test sets (or a failure). It records every call (model, body,
 * auth header) and every connection a client closed before the answer ended, so tests can check
 * what the gateway sent and that a disconnect aborted the upstream request. With `generate` it
 * serves real text (bench/proxy runs the tiny model behind it); without, a fixed answer at once.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type Behaviour =
  | 'ok'
  | '500'
  | `429:${number}`
  | '400'
  | 'stall'
  | 'drop-before'
  | 'drop-after'
  | 'slow'
  | '404-model';

export interface UpstreamCall {
  model: string;
  stream: boolean;
  body: Record<string, unknown>;
  authorization: string | undefined;
  path: string;
}

export interface FaultUpstreamOptions {
  /** Real text for a prompt (the bench's model server); default a fixed answer. */
  generate?: (body: Record<string, unknown>, onText: (t: string) => void) => Promise<{ text: string; promptTokens: number; completionTokens: number }>;
  /** Usage the fixed answer reports (default 11 prompt, 7 completion). */
  usage?: { prompt: number; completion: number };
}

export interface FaultUpstream {
  url: string;
  /** `<url>/v1`: what a provider's base URL is. */
  baseUrl: string;
  calls: UpstreamCall[];
  /** Connections the client closed before the answer was complete. */
  aborted: number;
  /** What `/v1/models` lists; null: it answers 503. */
  models: string[] | null;
  /** Queues the next behaviours for a model (default, once empty: 'ok'). */
  script(model: string, ...next: Behaviour[]): void;
  /** Drops what is left of a model's script: it answers normally again. */
  clear(model: string): void;
  callsFor(model: string): UpstreamCall[];
  close(): Promise<void>;
}

const ANSWER = 'the fleet sails on a fair wind';

export async function startFaultUpstream(o: FaultUpstreamOptions = {}): Promise<FaultUpstream> {
  const queues = new Map<string, Behaviour[]>();
  const state = { calls: [] as UpstreamCall[], aborted: 0, models: [] as string[] | null };
  const stalled = new Set<http.ServerResponse>();

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => void handle(req, res, Buffer.concat(chunks).toString('utf8')));
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, raw: string): Promise<void> {
    const path = (req.url ?? '').split('?')[0]!;
    if (req.method === 'GET' && path === '/v1/models') {
      if (state.models === null) return json(res, 503, { error: { message: 'models are unavailable' } });
      return json(res, 200, { object: 'list', data: state.models.map((id) => ({ id, object: 'model', owned_by: 'fault' })) });
    }
    if (req.method !== 'POST' || (path !== '/v1/chat/completions' && path !== '/v1/completions')) return json(res, 404, { error: { message: 'no such route' } });
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      return json(res, 400, { error: { message: 'bad json' } });
    }
    const model = String(body.model ?? '');
    const stream = body.stream === true;
    state.calls.push({ model, stream, body, authorization: req.headers.authorization, path });
    const behaviour = queues.get(model)?.shift() ?? 'ok';
    let finished = false;
    res.on('close', () => {
      stalled.delete(res);
      if (!finished) state.aborted++;
    });
    const done = () => (finished = true);
    if (behaviour === '500') return (done(), json(res, 500, { error: { message: 'upstream exploded at https://internal.example/secret' } }));
    if (behaviour.startsWith('429:')) {
      done();
      res.setHeader('Retry-After', behaviour.slice(4));
      return json(res, 429, { error: { message: 'slow down' } });
    }
    if (behaviour === '400') return (done(), json(res, 400, { error: { message: 'temperature is out of range for this upstream', type: 'invalid_request_error', param: 'temperature', code: 'bad_temperature' } }));
    if (behaviour === '404-model') return (done(), json(res, 404, { error: { message: `The model ${model} does not exist`, code: 'model_not_found' } }));
    if (behaviour === 'stall') return void stalled.add(res); // no headers, ever (the client's timeout ends it)
    if (behaviour === 'drop-before') return void res.socket?.destroy();
    const answer = o.generate
      ? undefined
      : { text: ANSWER, promptTokens: o.usage?.prompt ?? 11, completionTokens: o.usage?.completion ?? 7 };
    const chat = path === '/v1/chat/completions';
    if (!stream) {
      const a = answer ?? (await o.generate!(body, () => undefined));
      done();
      return json(res, 200, {
        id: 'up-1',
        object: chat ? 'chat.completion' : 'text_completion',
        model,
        choices: [chat ? { index: 0, message: { role: 'assistant', content: a.text }, finish_reason: 'stop' } : { index: 0, text: a.text, finish_reason: 'stop' }],
        usage: { prompt_tokens: a.promptTokens, completion_tokens: a.completionTokens, total_tokens: a.promptTokens + a.completionTokens },
      });
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const send = (delta: string | null, finish: string | null) =>
      res.write(`data: ${JSON.stringify({ id: 'up-1', object: chat ? 'chat.completion.chunk' : 'text_completion', model, choices: [chat ? { index: 0, delta: delta === null ? {} : { content: delta }, finish_reason: finish } : { index: 0, text: delta ?? '', finish_reason: finish }] })}\n\n`);
    if (behaviour === 'drop-after') {
      send('the fleet ', null);
      return void setTimeout(() => res.socket?.destroy(), 50);
    }
    let a = answer;
    if (!a) a = await o.generate!(body, (t) => send(t, null));
    else {
      for (const word of a.text.split(/(?<= )/)) {
        send(word, null);
        if (behaviour === 'slow') await new Promise((r) => setTimeout(r, 300));
        if (res.destroyed) return;
      }
    }
    send(null, 'stop');
    res.write(`data: ${JSON.stringify({ id: 'up-1', object: 'chat.completion.chunk', model, choices: [], usage: { prompt_tokens: a.promptTokens, completion_tokens: a.completionTokens, total_tokens: a.promptTokens + a.completionTokens } })}\n\n`);
    done();
    res.end('data: [DONE]\n\n');
  }

  function json(res: http.ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    baseUrl: `${url}/v1`,
    get calls() {
      return state.calls;
    },
    get aborted() {
      return state.aborted;
    },
    get models() {
      return state.models;
    },
    set models(m) {
      state.models = m;
    },
    script(model, ...next) {
      queues.set(model, [...(queues.get(model) ?? []), ...next]);
    },
    clear: (model) => void queues.delete(model),
    callsFor: (model) => state.calls.filter((c) => c.model === model),
    async close() {
      for (const r of stalled) r.socket?.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
