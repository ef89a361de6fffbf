/**
 * Smoke test of the model-proxy test double (tests/support/modelProxy.ts): that it speaks the
 * attested-provider protocol the way the gateway's client will check it — SNI routing, one
 * certificate per backend, reports that verify and bind, signatures over the exact bytes — and
 * that each fault breaks exactly the check it is meant to break.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { createSoftwareTeeVerifier } from '../../src/attestation/quoteVerifier.js';
import { attestationPath, checkReportBinding, type SigningAlgo } from '../../src/domain/attestedProvider.js';
import { signedText, verifyTeeSignature } from '../../src/domain/teeSignatures.js';
import { startModelProxy, type ModelProxy } from '../support/modelProxy.js';

const MODEL = 'tiny-model';
const KEY = 'sk-test';

interface Reply {
  status: number;
  body: Buffer;
  backend: string | undefined;
  /** SHA-256 of the SPKI of the certificate this connection was shown. */
  presented: string;
}

let proxy: ModelProxy;
const host = (n?: number) => (n === undefined ? `${proxy.canonical}.${proxy.base}` : `${proxy.canonical}-i${n}.${proxy.base}`);

/**
 * The presented-certificate fingerprint of a client socket, read once: on Node 20.20
 * `getPeerX509Certificate()` answers only its first call per socket (then undefined, and
 * `getPeerCertificate()` turns empty), so a reused keep-alive socket must be looked up here.
 */
const presentedBySocket = new WeakMap<TLSSocket, string>();
function presentedOf(socket: TLSSocket): string {
  let fp = presentedBySocket.get(socket);
  if (fp === undefined) {
    const der = socket.getPeerX509Certificate()!.publicKey.export({ type: 'spki', format: 'der' });
    presentedBySocket.set(socket, (fp = createHash('sha256').update(der).digest('hex')));
  }
  return fp;
}

/** One request to 127.0.0.1 with `name` as SNI and Host (curl --resolve style). */
function call(name: string, path: string, o: { method?: string; body?: string; agent?: https.Agent; auth?: boolean; timeoutMs?: number; hostHeader?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: proxy.resolveTo, port: proxy.port, servername: name, ca: proxy.caPem, path, method: o.method ?? 'GET',
      agent: o.agent ?? false,
      headers: { host: `${o.hostHeader ?? name}:${proxy.port}`, ...(o.auth === false ? {} : { authorization: `Bearer ${KEY}` }), ...(o.body ? { 'content-type': 'application/json' } : {}) },
    }, (res) => {
      const presented = presentedOf(res.socket as TLSSocket);
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(parts), backend: res.headers['x-model-proxy-backend'] as string | undefined, presented }));
    });
    if (o.timeoutMs) req.setTimeout(o.timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(o.body);
  });
}

const count = async () => JSON.parse((await call(proxy.base, `/backends/count?domain=${host()}`)).body.toString()) as { healthy: number; total: number };

/** Fetches and checks one report the way the gateway does; the binding verdict (null = bound). */
async function attest(n: number, algo: SigningAlgo = 'ed25519'): Promise<string | null> {
  const nonce = randomBytes(32).toString('hex');
  const r = await call(host(n), `${attestationPath({ slug: MODEL, nonce, algo })}`);
  assert.equal(r.status, 200, r.body.toString());
  const a = (JSON.parse(r.body.toString()) as { model_attestations: Record<string, string>[] }).model_attestations[0]!;
  assert.equal(a.request_nonce, nonce);
  assert.equal(a.signing_algo, algo);
  const verdict = await createSoftwareTeeVerifier(proxy.teePublicKey).verify(a.intel_quote!, Date.now() / 1000);
  assert.ok(verdict.ok, 'the quote verifies');
  return checkReportBinding({ reportData: verdict.reportData, signingAddress: a.signing_address!, reportedFingerprint: a.tls_cert_fingerprint, presentedFingerprint: r.presented, nonce });
}

describe('model-proxy test double', () => {
  before(async () => {
    proxy = await startModelProxy({ backends: 3, models: [MODEL], apiKey: KEY });
  });
  after(() => proxy.close());

  test('the count endpoint on the base host', async () => {
    assert.deepEqual(await count(), { healthy: 3, total: 3 });
    assert.equal((await call(proxy.base, '/backends/count?domain=other.proxy.test')).status, 404);
  });

  test('each rotation host reaches a distinct backend and presents its certificate', async () => {
    const seen = new Set<string>();
    for (const n of [0, 1, 2]) {
      const r = await call(host(n), '/v1/models');
      assert.equal(r.status, 200);
      assert.equal(r.backend, proxy.backends[n]);
      assert.equal(r.presented, proxy.fingerprintOf(n));
      seen.add(r.presented);
    }
    assert.equal(seen.size, 3);
    assert.equal((await call(host(4), '/v1/models')).backend, 'b1', 'indices wrap modulo the healthy count');
    assert.equal((await call(host(0), '/v1/models', { auth: false })).status, 401);
    assert.equal((await call(host(0), '/v1/models', { hostHeader: host(1) })).status, 421, 'Host must match the SNI');
  });

  test('a keep-alive connection to the plain host stays on the backend of its handshake', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const [a, b] = [await call(host(), '/v1/models', { agent }), await call(host(), '/v1/models', { agent })];
      assert.equal(a.backend, b.backend);
      assert.equal(a.presented, proxy.fingerprintOf(a.backend!));
    } finally {
      agent.destroy();
    }
  });

  test('reports verify and bind to the nonce, the key and the presented certificate', async () => {
    assert.equal(await attest(1, 'ed25519'), null);
    assert.equal(await attest(2, 'ecdsa'), null);
    const bad = (q: string) => call(host(0), `/v1/attestation/report?${q}`).then((r) => r.status);
    assert.equal(await bad(`model=${MODEL}&nonce=abc&signing_algo=ed25519`), 400);
    assert.equal(await bad(`model=${MODEL}&nonce=${'0'.repeat(64)}&signing_algo=rsa`), 400);
    assert.equal(await bad(`model=nope&nonce=${'0'.repeat(64)}&signing_algo=ed25519`), 404);
  });

  test('completions (JSON and SSE) are signed over the exact bytes, on their backend only', async () => {
    for (const stream of [false, true]) {
      const body = JSON.stringify({ model: MODEL, stream, stream_options: stream ? { include_usage: true } : undefined, messages: [{ role: 'user', content: 'hello there' }] });
      const r = await call(host(2), '/v1/chat/completions', { method: 'POST', body });
      assert.equal(r.status, 200, r.body.toString());
      let id: string;
      if (!stream) {
        const j = JSON.parse(r.body.toString()) as { id: string; choices: { message: { content: string } }[]; usage: { total_tokens: number } };
        assert.equal(j.choices[0]!.message.content, 'backend b2 says: hello there');
        assert.ok(j.usage.total_tokens > 0);
        id = j.id;
      } else {
        const lines = r.body.toString().split('\n\n').filter(Boolean);
        assert.equal(lines.at(-1), 'data: [DONE]');
        const chunks = lines.slice(0, -1).map((l) => JSON.parse(l.slice('data: '.length)) as { id: string; choices: { delta: { content?: string } }[]; usage?: unknown });
        assert.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), 'backend b2 says: hello there');
        assert.ok(chunks.length >= 5, 'several content chunks');
        assert.ok(chunks.at(-1)!.usage, 'a usage chunk');
        id = chunks[0]!.id;
      }
      assert.match(id, /^chatcmpl-[0-9a-f]+$/);
      assert.equal(proxy.completion(id)?.backend, 2);
      for (const algo of ['ed25519', 'ecdsa'] as const) {
        const s = await call(host(2), `/v1/signature/${id}?model=${MODEL}&signing_algo=${algo}`);
        const sig = JSON.parse(s.body.toString()) as { text: string; signature: string; signing_address: string };
        assert.equal(sig.text, signedText({ model: MODEL, requestBody: body, responseBody: r.body }));
        assert.equal(sig.signing_address, proxy.signingAddress(2, algo));
        assert.ok(verifyTeeSignature({ text: sig.text, signature: sig.signature, signingAddress: sig.signing_address, algo }));
      }
      assert.equal((await call(host(0), `/v1/signature/${id}?model=${MODEL}&signing_algo=ed25519`)).status, 404);
    }
    assert.equal(proxy.stats().completions[2], 2);
  });

  test('kill drops the count and re-maps indices; revive restores them', async () => {
    proxy.kill(1);
    assert.deepEqual(await count(), { healthy: 2, total: 3 });
    assert.equal((await call(host(1), '/v1/models')).backend, 'b2');
    proxy.revive(1);
    assert.deepEqual(await count(), { healthy: 3, total: 3 });
    assert.equal((await call(host(1), '/v1/models')).backend, 'b1');
  });

  test('rotateCertificate changes the fingerprint, and reports follow', async () => {
    const old = proxy.fingerprintOf(0);
    await proxy.rotateCertificate(0);
    assert.notEqual(proxy.fingerprintOf(0), old);
    assert.equal((await call(host(0), '/v1/models')).presented, proxy.fingerprintOf(0));
    assert.equal(await attest(0), null);
  });

  test('a man in the middle or a lying report fails the binding', async () => {
    proxy.manInTheMiddle(1, true);
    assert.notEqual((await call(host(1), '/v1/models')).presented, proxy.fingerprintOf(1));
    assert.equal(await attest(1), 'verify: the presented certificate is not the attested one');
    proxy.manInTheMiddle(1, false);
    proxy.lieFingerprint(2, true);
    assert.equal(await attest(2, 'ecdsa'), 'verify: the presented certificate is not the attested one');
    proxy.lieFingerprint(2, false);
    assert.equal(await attest(2), null);
  });

  test('count and attestation faults; unknown hosts', async () => {
    proxy.failCount('status500');
    assert.equal((await call(proxy.base, `/backends/count?domain=${host()}`)).status, 500);
    proxy.failCount('garbage');
    const garbage = await call(proxy.base, `/backends/count?domain=${host()}`);
    assert.equal(garbage.status, 200);
    assert.throws(() => JSON.parse(garbage.body.toString()), SyntaxError);
    proxy.failCount('hang');
    await assert.rejects(call(proxy.base, `/backends/count?domain=${host()}`, { timeoutMs: 150 }), /timeout/);
    proxy.failCount(null);
    proxy.failAttestation(0, true);
    assert.equal((await call(host(0), `${attestationPath({ slug: MODEL, nonce: '0'.repeat(64), algo: 'ed25519' })}`)).status, 500);
    proxy.failAttestation(0, false);
    await assert.rejects(call(`other.${proxy.base}`, '/v1/models'));
    assert.equal(await proxy.addBackend(), 3);
    assert.deepEqual(await count(), { healthy: 4, total: 4 });
    assert.ok(proxy.stats().attestations.some((n) => n > 0));
  });
});
