/**
 * A test double of an attested provider's load balancer ("model-proxy"), speaking its protocol
 * over real TLS so the gateway's attested-provider client can be tested end to end: one HTTPS
 * port routes by SNI — `<canonical>.<base>` to any healthy backend, `<canonical>-i<N>.<base>` to
 * backend `N mod healthy` of the sorted healthy list, `<base>` to the backend count. Every
 * backend has its own TLS key and certificate (from a CA made at start-up), its own Ed25519 and
 * secp256k1 signing keys, answers attestation reports with a software-TEE quote binding its
 * signing address and certificate fingerprint to the caller's nonce, serves OpenAI-style chat
 * completions and signs the exact bytes of each exchange. Faults a test can switch on: kill and
 * revive a backend, rotate its certificate, make its reports lie about the fingerprint, put a
 * man in the middle, break the count endpoint or a report endpoint. Used by integration tests
 * and the benchmark; never by production code.
 */
import { constants, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import tls from 'node:tls';
import { hexToBytes } from '@noble/hashes/utils.js';
import { mintSoftwareQuote, softwareTeePublicKey } from '../../src/attestation/quoteVerifier.js';
import { reportDataHead, type SigningAlgo } from '../../src/domain/attestedProvider.js';
import { sha256Hex, signTeeText, signedText, signingAddressOf } from '../../src/domain/teeSignatures.js';
import { createTestCa, type IssuedCert, type TestCa } from './testCa.js';

export type CountFault = 'status500' | 'garbage' | 'hang' | null;

export interface ModelProxyOptions {
  base?: string /* default `proxy.test` */;
  canonical?: string /* the inference host's first label; default `tiny` */;
  backends: number;
  /** Model slugs every backend serves. */
  models: string[];
  /** The software TEE's Ed25519 secret key; generated when absent. */
  teeSecretKey?: Uint8Array;
  /** When set, `/v1/*` requires `authorization: Bearer <apiKey>`. */
  apiKey?: string;
}

export interface CompletionRecord {
  id: string;
  backend: number;
  model: string;
  stream: boolean;
  /** The bodies exactly as received and sent (for SSE, the whole event stream). */
  requestBody: Buffer;
  responseBody: Buffer;
}

/** Per-backend counters, indexed like `backends`. */
export interface ModelProxyStats {
  completions: number[];
  attestations: number[];
  signatures: number[];
  /** TLS handshakes routed to each backend. */
  handshakes: number[];
}

export interface ModelProxy {
  port: number;
  caPem: string;
  base: string;
  canonical: string;
  /** `https://<canonical>.<base>:<port>/v1`. */
  inferenceUrl: string;
  /** Every host of the proxy resolves here (like curl --resolve). */
  resolveTo: '127.0.0.1';
  teeSecretKey: Uint8Array;
  teePublicKey: string;
  /** Backend names by index (grows with addBackend). */
  backends: readonly string[];
  /** SHA-256 hex of the DER SPKI of a backend's current (honest) certificate. */
  fingerprintOf(backend: number | string): string;
  signingAddress(backend: number | string, algo: SigningAlgo): string;
  /** Indices of the healthy backends, in rotation order (`-i<N>` reaches entry `N mod length`). */
  healthy(): number[];
  stats(): ModelProxyStats;
  completion(id: string): CompletionRecord | undefined;
  /** The backend leaves the healthy list and drops its open connections (a dead machine). */
  kill(backend: number | string): void;
  revive(backend: number | string): void;
  /** A new key pair and certificate; connections made from now on present it. */
  rotateCertificate(backend: number | string): Promise<void>;
  /** Reports carry (and correctly bind) a fingerprint that is not the presented certificate's. */
  lieFingerprint(backend: number | string, on: boolean): void;
  /** Present a CA-valid certificate of an unattested key, while reports claim the real one. */
  manInTheMiddle(backend: number | string, on: boolean): void;
  failCount(mode: CountFault): void;
  /** The backend's report endpoint answers 500. */
  failAttestation(backend: number | string, on: boolean): void;
  /** Adds a healthy backend; resolves to its index. */
  addBackend(): Promise<number>;
  /** Destroys every connection and stops listening. */
  close(): Promise<void>;
}

interface Backend {
  index: number;
  name: string;
  cert: IssuedCert;
  ctx: tls.SecureContext;
  /** Pre-minted so manInTheMiddle can switch synchronously. */
  mitmCtx: tls.SecureContext;
  keys: Record<SigningAlgo, Uint8Array>;
  killed: boolean;
  mitm: boolean;
  lieFp: string | null;
  failAttestation: boolean;
  sockets: Set<tls.TLSSocket>;
  records: Map<string, CompletionRecord>;
}

/** Where a connection was routed at its handshake, kept for its whole life. */
type Pin = { kind: 'base' } | { kind: 'backend'; backend: Backend; fingerprint: string };

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly code = 'invalid_request_error') {
    super(message);
  }
}

const BODY_LIMIT = 1 << 20;
const NONCE = /^[0-9a-fA-F]{64}$/;
const parseAlgo = (v: string | null): SigningAlgo | null => (v === null || v === 'ed25519' ? 'ed25519' : v === 'ecdsa' ? 'ecdsa' : null);
// No session resumption: OpenSSL decrypts tickets with the server's first context, so one
// backend would resume another's session (real backends hold their own ticket keys) and the
// client would keep the old certificate. Every handshake is full and presents the certificate.
const NO_RESUME = { secureOptions: constants.SSL_OP_NO_TICKET } as const;
const context = (c: IssuedCert) => tls.createSecureContext({ key: c.keyPem, cert: c.certPem, ...NO_RESUME });

export async function startModelProxy(opts: ModelProxyOptions): Promise<ModelProxy> {
  const base = (opts.base ?? 'proxy.test').toLowerCase();
  const canonical = (opts.canonical ?? 'tiny').toLowerCase();
  const inferenceHost = `${canonical}.${base}`;
  const teeSecretKey = opts.teeSecretKey ?? new Uint8Array(randomBytes(32));
  const models = [...opts.models];
  // Every certificate covers `*.<base>` and `<base>`, so it matches any rotation host.
  const sans = [`*.${base}`, base];
  const ca: TestCa = await createTestCa(`model-proxy CA for ${base}`);
  const baseCert = await ca.issue(sans);
  const baseCtx = context(baseCert);
  const backends: Backend[] = [];
  const names: string[] = [];
  const stats: ModelProxyStats = { completions: [], attestations: [], signatures: [], handshakes: [] };
  const pins = new WeakMap<Socket, Pin>();
  const connections = new Set<Socket>();
  let countFault: CountFault = null;
  let roundRobin = 0;

  async function addBackend(): Promise<number> {
    const index = backends.length;
    const [cert, mitm] = await Promise.all([ca.issue(sans), ca.issue(sans)]);
    backends.push({
      index, name: `b${index}`, cert, ctx: context(cert), mitmCtx: context(mitm),
      keys: { ed25519: new Uint8Array(randomBytes(32)), ecdsa: new Uint8Array(randomBytes(32)) },
      killed: false, mitm: false, lieFp: null, failAttestation: false, sockets: new Set(), records: new Map(),
    });
    names.push(`b${index}`);
    for (const k of Object.keys(stats) as (keyof ModelProxyStats)[]) stats[k].push(0);
    return index;
  }
  for (let i = 0; i < opts.backends; i++) await addBackend();

  const find = (b: number | string): Backend => {
    const found = typeof b === 'number' ? backends[b] : backends.find((x) => x.name === b);
    if (!found) throw new RangeError(`model-proxy: no backend ${b}`);
    return found;
  };
  const healthy = () => backends.filter((b) => !b.killed);

  /** The route of a host name; a fresh choice for the plain inference host on every call. */
  function route(host: string): Pin | null {
    const name = host.toLowerCase().replace(/\.$/, '');
    if (name === base) return { kind: 'base' };
    const live = healthy();
    if (live.length === 0) return null;
    let backend: Backend | undefined;
    if (name === inferenceHost) backend = live[roundRobin++ % live.length];
    const prefix = `${canonical}-i`;
    const suffix = `.${base}`;
    if (name.startsWith(prefix) && name.endsWith(suffix)) {
      const n = name.slice(prefix.length, -suffix.length);
      if (/^\d{1,9}$/.test(n)) backend = live[Number(n) % live.length];
    }
    return backend ? { kind: 'backend', backend, fingerprint: backend.cert.fingerprint } : null;
  }

  function pin(socket: Socket, p: Pin): void {
    pins.set(socket, p);
    if (p.kind !== 'backend' || !(socket instanceof tls.TLSSocket)) return;
    stats.handshakes[p.backend.index]!++;
    p.backend.sockets.add(socket);
    socket.once('close', () => p.backend.sockets.delete(socket));
  }

  // Node calls the SNICallback as a method of the server-side TLSSocket, which is what lets
  // the backend be chosen once, here, and the handler find it again from `req.socket`.
  function sniCallback(this: unknown, servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void {
    const p = route(servername);
    if (!p) return cb(new Error(`model-proxy: no route for ${servername}`));
    if (this instanceof tls.TLSSocket) pin(this, p);
    if (p.kind === 'base') return cb(null, baseCtx);
    cb(null, p.backend.mitm ? p.backend.mitmCtx : p.backend.ctx);
  }

  const send = (res: ServerResponse, status: number, body: unknown): void => {
    const buf = Buffer.from(JSON.stringify(body));
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': buf.length }).end(buf);
  };
  const fail = (res: ServerResponse, e: HttpError) => send(res, e.status, { error: { message: e.message, type: e.code, code: e.code } });

  async function readBody(req: IncomingMessage): Promise<Buffer> {
    const parts: Buffer[] = [];
    let n = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      if ((n += chunk.length) > BODY_LIMIT) throw new HttpError(413, 'request body too large');
      parts.push(chunk);
    }
    return Buffer.concat(parts);
  }

  function countEndpoint(url: URL, res: ServerResponse): void {
    if (url.pathname !== '/backends/count') throw new HttpError(404, `no route ${url.pathname}`, 'not_found');
    if (countFault === 'hang') return; // never answers; close() destroys the socket
    if (countFault === 'status500') throw new HttpError(500, 'count unavailable', 'server_error');
    if (countFault === 'garbage') return void res.writeHead(200, { 'content-type': 'text/html' }).end('<html>bad gateway</html>');
    if (url.searchParams.get('domain')?.toLowerCase() !== inferenceHost) throw new HttpError(404, 'unknown domain', 'not_found');
    send(res, 200, { healthy: healthy().length, total: backends.length });
  }

  function report(b: Backend, presented: string, url: URL, res: ServerResponse): void {
    stats.attestations[b.index]!++;
    const q = url.searchParams;
    const model = q.get('model');
    if (!model || !models.includes(model)) throw new HttpError(404, `model ${model} not found`, 'model_not_found');
    const nonce = q.get('nonce') ?? '';
    if (!NONCE.test(nonce)) throw new HttpError(400, 'nonce must be 32 bytes of hex');
    const algo = parseAlgo(q.get('signing_algo'));
    if (!algo) throw new HttpError(400, 'signing_algo must be ed25519 or ecdsa');
    if (b.failAttestation) throw new HttpError(500, 'attestation unavailable', 'server_error');
    // The honest report names the certificate presented on this connection (fixed at its
    // handshake); under man-in-the-middle that is still the backend's own, unpresented one.
    const fingerprint = b.lieFp ?? presented;
    const signingAddress = signingAddressOf(algo, b.keys[algo]);
    const reportData = new Uint8Array(64);
    reportData.set(hexToBytes(reportDataHead(signingAddress, fingerprint)), 0);
    reportData.set(hexToBytes(nonce.toLowerCase()), 32);
    send(res, 200, {
      model_attestations: [{
        signing_address: signingAddress,
        signing_algo: algo,
        intel_quote: mintSoftwareQuote(reportData, teeSecretKey),
        nvidia_payload: JSON.stringify({ nonce, arch: 'HOPPER', evidence_list: [] }),
        request_nonce: nonce,
        tls_cert_fingerprint: fingerprint,
      }],
    });
  }

  async function chat(b: Backend, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestBody = await readBody(req);
    let body: { model?: unknown; messages?: unknown; stream?: unknown; stream_options?: { include_usage?: unknown } };
    try {
      body = JSON.parse(requestBody.toString('utf8')) as typeof body;
    } catch {
      throw new HttpError(400, 'body is not JSON');
    }
    const model = body?.model;
    if (typeof model !== 'string' || !models.includes(model)) throw new HttpError(404, `model ${String(model)} not found`, 'model_not_found');
    if (!Array.isArray(body.messages)) throw new HttpError(400, 'messages must be an array');
    const texts = (body.messages as { role?: unknown; content?: unknown }[]).map((m) => ({ role: m?.role, text: textOf(m?.content) }));
    const lastUser = texts.filter((m) => m.role === 'user').at(-1)?.text ?? '';
    const content = `backend ${b.name} says: ${lastUser}`;
    const words = (s: string) => s.split(/\s+/).filter(Boolean).length;
    const usage = { prompt_tokens: Math.max(1, words(texts.map((t) => t.text).join(' '))), completion_tokens: words(content), total_tokens: 0 };
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    const id = `chatcmpl-${randomBytes(12).toString('hex')}`;
    const created = Math.floor(Date.now() / 1000);
    const stream = body.stream === true;
    let responseBody: Buffer;
    if (!stream) {
      responseBody = Buffer.from(JSON.stringify({
        id, object: 'chat.completion', created, model,
        choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }], usage,
      }));
    } else {
      const chunk = (choices: unknown[], extra: object = {}) => `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices, ...extra })}\n\n`;
      const delta = (d: object, finish: string | null = null) => chunk([{ index: 0, delta: d, finish_reason: finish }]);
      const pieces = content.match(/\S+\s*/g) ?? [content];
      const third = Math.ceil(pieces.length / 3);
      const events = [delta({ role: 'assistant', content: '' })];
      for (let i = 0; i < pieces.length; i += third) events.push(delta({ content: pieces.slice(i, i + third).join('') }));
      events.push(delta({}, 'stop'));
      if (body.stream_options?.include_usage === true) events.push(chunk([], { usage }));
      events.push('data: [DONE]\n\n');
      responseBody = Buffer.from(events.join(''));
    }
    // Recorded before the last byte leaves, so a signature call right after the answer finds it.
    b.records.set(id, { id, backend: b.index, model, stream, requestBody, responseBody });
    stats.completions[b.index]!++;
    if (!stream) return void res.writeHead(200, { 'content-type': 'application/json', 'content-length': responseBody.length }).end(responseBody);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    // Several writes, so a client sees the stream arrive in parts (the bytes are the same).
    const cut = Math.floor(responseBody.length / 2);
    res.write(responseBody.subarray(0, cut));
    res.end(responseBody.subarray(cut));
  }

  function signature(b: Backend, id: string, url: URL, res: ServerResponse): void {
    const record = b.records.get(id);
    if (!record) throw new HttpError(404, `no completion ${id} on this backend`, 'not_found');
    const algo = parseAlgo(url.searchParams.get('signing_algo'));
    if (!algo) throw new HttpError(400, 'signing_algo must be ed25519 or ecdsa');
    const model = url.searchParams.get('model') ?? record.model;
    if (!models.includes(model)) throw new HttpError(404, `model ${model} not found`, 'model_not_found');
    stats.signatures[b.index]!++;
    send(res, 200, signTeeText(algo, signedText({ model, requestBody: record.requestBody, responseBody: record.responseBody }), b.keys[algo]));
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const socket = req.socket;
    const host = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
    const sni = socket instanceof tls.TLSSocket && typeof socket.servername === 'string' ? socket.servername.toLowerCase() : null;
    if (sni !== null && sni !== host) throw new HttpError(421, `host ${host} is not the TLS server name ${sni}`, 'misdirected_request');
    let p = pins.get(socket);
    if (!p) {
      // No SNI (or Node stopped passing the socket): route by Host, once per connection.
      const fresh = route(host);
      if (!fresh) throw new HttpError(421, `no route for host ${host}`, 'misdirected_request');
      pin(socket, (p = fresh));
    }
    const url = new URL(req.url ?? '/', 'https://model-proxy');
    if (p.kind === 'base') return countEndpoint(url, res);
    const b = p.backend;
    if (b.killed) return void socket.destroy();
    res.setHeader('x-model-proxy-backend', b.name);
    if (opts.apiKey !== undefined && req.headers.authorization !== `Bearer ${opts.apiKey}`) throw new HttpError(401, 'invalid api key', 'invalid_api_key');
    const path = url.pathname;
    if (req.method === 'GET' && path === '/v1/models') {
      return send(res, 200, { object: 'list', data: models.map((id) => ({ id, object: 'model', created: 0, owned_by: 'model-proxy' })) });
    }
    if (req.method === 'GET' && path === '/v1/attestation/report') return report(b, p.fingerprint, url, res);
    if (req.method === 'POST' && path === '/v1/chat/completions') return chat(b, req, res);
    const sig = /^\/v1\/signature\/([^/]+)$/.exec(path);
    if (req.method === 'GET' && sig) return signature(b, decodeURIComponent(sig[1]!), url, res);
    throw new HttpError(404, `no route ${req.method} ${path}`, 'not_found');
  }

  const server = https.createServer({ key: baseCert.keyPem, cert: baseCert.certPem, SNICallback: sniCallback, ...NO_RESUME }, (req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (res.headersSent) return void res.destroy();
      fail(res, e instanceof HttpError ? e : new HttpError(500, String(e), 'server_error'));
    });
  });
  // Unknown server names end the handshake; that is the intended answer, not a crash.
  server.on('tlsClientError', () => {});
  server.on('connection', (s: Socket) => {
    connections.add(s);
    s.once('close', () => connections.delete(s));
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;

  return {
    port, caPem: ca.caPem, base, canonical,
    inferenceUrl: `https://${inferenceHost}:${port}/v1`,
    resolveTo: '127.0.0.1',
    teeSecretKey,
    teePublicKey: softwareTeePublicKey(teeSecretKey),
    backends: names,
    fingerprintOf: (b) => find(b).cert.fingerprint,
    signingAddress: (b, algo) => signingAddressOf(algo, find(b).keys[algo]),
    healthy: () => healthy().map((b) => b.index),
    stats: () => ({ completions: [...stats.completions], attestations: [...stats.attestations], signatures: [...stats.signatures], handshakes: [...stats.handshakes] }),
    completion: (id) => backends.map((b) => b.records.get(id)).find((r) => r !== undefined),
    kill(b) {
      const backend = find(b);
      backend.killed = true;
      for (const s of backend.sockets) s.destroy();
    },
    revive: (b) => void (find(b).killed = false),
    async rotateCertificate(b) {
      const backend = find(b);
      const cert = await ca.issue(sans);
      Object.assign(backend, { cert, ctx: context(cert) });
    },
    lieFingerprint(b, on) {
      // Any 32 bytes that are not the real fingerprint; fixed while on, so reports agree.
      find(b).lieFp = on ? sha256Hex(randomBytes(32)) : null;
    },
    manInTheMiddle: (b, on) => void (find(b).mitm = on),
    failCount: (mode) => void (countFault = mode),
    failAttestation: (b, on) => void (find(b).failAttestation = on),
    addBackend,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of connections) s.destroy();
      await closed;
    },
  };
}

/** The text of an OpenAI message content: a string, or the text parts of an array. */
function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.map((p: unknown) => (typeof p === 'object' && p !== null && typeof (p as { text?: unknown }).text === 'string' ? (p as { text: string }).text : '')).join('');
}
