/**
 * Attested remote providers on real parts: the suite's Temporal server and PostgreSQL, the
 * gateway in this process, and the in-repo model-proxy (real TLS, a CA made for the test, one
 * certificate per backend, rotation SNI, software-TEE reports). The provider comes from the
 * config file and is reached through its `resolve` override. It shows: the first cycle runs at
 * once and pins every backend; a killed backend is evicted by the next complete cycle; a rotated
 * certificate replaces its fingerprint; a count failure or one failed index changes or evicts
 * nothing; a lying report blocks the set; a man in the middle is refused at request time and,
 * when nothing pinned is left, the request fails closed; none of 200 requests reaches an
 * unpinned backend.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { readPinRecord } from '../../src/db/pinSetsRepo.js';
import { softwareTeePublicKey } from '../../src/attestation/quoteVerifier.js';
import { startAttestedDiscovery } from '../../src/temporal/attestedDiscovery.js';
import { runFleet } from '../support/cli.js';
import { startModelProxy, type ModelProxy } from '../support/modelProxy.js';
import { testEnv } from '../support/env.js';
import { startTestFleet, type TestFleet } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

const KEY = 'sk-attested-test-key-0123456789';
const BUILD = 'tee/tiny-remote';

describe('attested providers', () => {
  let proxy: ModelProxy;
  let f: TestFleet;
  const tee = new Uint8Array(randomBytes(32));
  const pins = async () => readPinRecord(f.stack.db.db, BUILD);
  const cycle = async () => (await startAttestedDiscovery(f.stack.temporal.client, { providerId: 'tee', slug: 'tiny-remote' })).result();
  const sorted = (xs: string[]) => [...xs].sort();
  const chat = async () => {
    const res = await fetch(`${f.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'secure', messages: [{ role: 'user', content: 'hello' }], max_tokens: 8 }),
    });
    return { status: res.status, json: (await res.json()) as { id?: string; choices?: Array<{ message: { content: string } }>; error?: { code: string } } };
  };

  before(async () => {
    proxy = await startModelProxy({ backends: 3, models: ['tiny-remote'], apiKey: KEY, teeSecretKey: tee });
    const dir = path.join((await import('node:os')).tmpdir(), `fleet-attested-${randomBytes(3).toString('hex')}`);
    await (await import('node:fs/promises')).mkdir(dir, { recursive: true });
    const ca = path.join(dir, 'ca.pem');
    await writeFile(ca, proxy.caPem);
    const config = path.join(dir, 'fleet.yaml');
    await writeFile(
      config,
      stringify({
        providers: [
          {
            id: 'tee',
            base_url: proxy.inferenceUrl,
            tier: 'attested',
            api_key_env: 'ATTESTED_TEST_KEY',
            models: 'secure=tiny-remote',
            streaming: true,
            discovery_interval_s: 3600,
            timeouts: { connect_ms: 2000, first_byte_ms: 5000, idle_ms: 5000 },
            transport: { resolve: { [`*.${proxy.base}`]: '127.0.0.1', [proxy.base]: '127.0.0.1' }, ca_file: ca },
          },
        ],
      }),
    );
    f = await startTestFleet({
      db: 'postgres',
      hosts: 0,
      env: {
        FLEET_CONFIG: config,
        ATTESTED_TEST_KEY: KEY,
        FLEET_ALLOW_SOFTWARE_TEE: 'true',
        FLEET_SOFTWARE_TEE_PUBLIC_KEY: softwareTeePublicKey(tee),
      },
    });
  });
  after(async () => {
    await f?.stop();
    await proxy?.close();
  });

  test('the first cycle runs at once and pins every backend, with the keys each vouched for', async () => {
    const pinned = await waitFor(async () => {
      const p = await pins();
      return p.pinSet.state === 'pinned' && p.pinSet.fingerprints.length === 3 ? p : undefined;
    }, 60_000);
    assert.ok(pinned, `not pinned: ${JSON.stringify(await pins())}`);
    assert.deepEqual(pinned.pinSet.fingerprints, sorted([0, 1, 2].map((i) => proxy.fingerprintOf(i))));
    assert.equal(pinned.backendCount, 3);
    for (const i of [0, 1, 2]) assert.equal(pinned.keys[proxy.fingerprintOf(i)]?.ed25519, proxy.signingAddress(i, 'ed25519'));
  });

  test('a request is served by a pinned backend, whose signature the gateway checked and `fleet verify` checks offline', async () => {
    const r = await chat();
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.match(r.json.choices![0]!.message.content, /backend b\d says/);
    const sig = await waitFor(async () => {
      const res = await fetch(`${f.stack.api!.url}/v1/signature/${r.json.id}`);
      return res.status === 200 ? ((await res.json()) as Record<string, string>) : undefined;
    });
    assert.ok(sig, 'no signature stored');
    assert.equal(sig.signature_kind, 'provider_tee');
    assert.match(sig.text!, /^tiny-remote:[0-9a-f]{64}:[0-9a-f]{64}$/);
    const served = proxy.completion(sig.upstream_id!);
    assert.ok(served, 'the proxy does not know the signed exchange');
    assert.equal(sig.signing_address, proxy.signingAddress(served.backend, 'ed25519'));
    assert.equal(sig.tls_cert_fingerprint, proxy.fingerprintOf(served.backend));
    const ok = await runFleet(['verify', r.json.id!, '--url', f.stack.api!.url], { env: { ...process.env, FLEET_LOG_LEVEL: 'warn' } });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /ok \(model secure, provider TEE ed25519 key/);
  });

  test('a streamed request through the attested provider is signed too', async () => {
    const stream = await f.openai.chat.completions.create({ model: 'secure', messages: [{ role: 'user', content: 'stream me' }], max_tokens: 8, stream: true });
    let text = '';
    let id = '';
    for await (const chunk of stream) {
      id = chunk.id;
      text += chunk.choices[0]?.delta?.content ?? '';
    }
    assert.match(text, /backend b\d says: stream me/);
    const sig = await waitFor(async () => {
      const res = await fetch(`${f.stack.api!.url}/v1/signature/${id}`);
      return res.status === 200 ? ((await res.json()) as Record<string, string>) : undefined;
    });
    assert.equal(sig?.signature_kind, 'provider_tee');
  });

  test("a conversation's later turns go to the backend that served it (its cache); new conversations rotate", async () => {
    const backendOf = (content: string) => Number(/backend b(\d) says/.exec(content)?.[1] ?? NaN);
    const ask = async (messages: Array<{ role: string; content: string }>, headers: Record<string, string> = {}) => {
      const res = await fetch(`${f.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ model: 'secure', messages, max_tokens: 8 }),
      });
      assert.equal(res.status, 200);
      return ((await res.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content;
    };
    const system = { role: 'system', content: 'You answer questions about the fleet. '.repeat(8) };
    const firsts: number[] = [];
    for (const c of [0, 1, 2]) {
      const messages = [system, { role: 'user', content: `conversation ${c}: which backend are you?` }];
      const answer = await ask(messages);
      const backend = backendOf(answer);
      firsts.push(backend);
      messages.push({ role: 'assistant', content: answer });
      for (const turn of [2, 3]) {
        messages.push({ role: 'user', content: `turn ${turn}` });
        const next = await ask(messages);
        assert.equal(backendOf(next), backend, `conversation ${c} turn ${turn}`);
        messages.push({ role: 'assistant', content: next });
      }
    }
    assert.equal(new Set(firsts).size, 3, `new conversations rotate over the backends: ${firsts}`);
    // A session key (no shared history) keeps its backend too.
    const bySession = await Promise.all([1, 2, 3].map(async (i) => backendOf(await ask([{ role: 'user', content: `session turn ${i}` }], { 'x-session-id': 'agent-7' }))));
    assert.equal(new Set(bySession).size, 1, `one session, one backend: ${bySession}`);
  });

  test('fleet discovery run / replay / rerun work for attested cycles', async () => {
    const fleet = (...args: string[]) => runFleet(args, { env: { ...process.env, FLEET_LOG_LEVEL: 'warn' } });
    const run = await fleet('discovery', 'run', '--provider', 'tee', '--model', 'tiny-remote', '--url', f.stack.api!.url);
    assert.equal(run.code, 0, run.stderr);
    const m = /^(discovery:tee:tiny-remote:\S+): replaced \(pinned → steady\), backends 3 \(indices 0–2\)/.exec(run.stdout);
    assert.ok(m, run.stdout);
    const id = m[1]!;
    const replay = await fleet('discovery', 'replay', id, '--address', testEnv.temporalAddress);
    assert.equal(replay.code, 0, replay.stderr);
    assert.match(replay.stdout, new RegExp(`${id}: ok \\(\\d+ events replayed\\)`));
    const rerun = await fleet('discovery', 'rerun', id, '--address', testEnv.temporalAddress);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.match(rerun.stdout, /^before:\ndiscovery:tee:tiny-remote:\S+: replaced \(pinned → steady\)[\s\S]*after:\ndiscovery:tee:tiny-remote:\S+: replaced \(pinned → steady\), backends 3/);
    const unknown = await fleet('discovery', 'run', '--provider', 'tee', '--model', 'nope', '--url', f.stack.api!.url);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no model 'nope'/);
  });

  test('a killed backend is evicted by the next complete cycle', async () => {
    const gone = proxy.fingerprintOf(1);
    proxy.kill(1);
    const out = await cycle();
    assert.equal(out.mode, 'replaced', JSON.stringify(out.reasons));
    assert.deepEqual(out.evicted, [gone]);
    assert.deepEqual((await pins()).pinSet.fingerprints, sorted([proxy.fingerprintOf(0), proxy.fingerprintOf(2)]));
    proxy.revive(1);
    assert.equal((await cycle()).mode, 'replaced');
  });

  test('a rotated certificate replaces its fingerprint', async () => {
    const old = proxy.fingerprintOf(0);
    await proxy.rotateCertificate(0);
    const out = await cycle();
    assert.equal(out.mode, 'replaced', JSON.stringify(out.reasons));
    assert.deepEqual(out.evicted, [old]);
    assert.deepEqual(out.newlyPinned, [proxy.fingerprintOf(0)]);
  });

  test('a count failure changes nothing; one failed index merges and evicts nothing', async () => {
    const before = (await pins()).pinSet;
    proxy.failCount('status500');
    const a = await cycle();
    proxy.failCount(null);
    assert.equal(a.mode, 'unchanged');
    assert.deepEqual(a.reasons, ['count_status: 500']);
    proxy.failCount('garbage');
    const g = await cycle();
    proxy.failCount(null);
    assert.deepEqual(g.reasons, ['count_decode']);
    proxy.failAttestation(2, true);
    const b = await cycle();
    proxy.failAttestation(2, false);
    assert.equal(b.mode, 'merged');
    assert.deepEqual(b.evicted, []);
    assert.ok(b.reasons.some((r) => r.startsWith('call_failed: i')), JSON.stringify(b.reasons));
    assert.deepEqual((await pins()).pinSet, before);
  });

  test('a lying report blocks the set until a complete cycle', async () => {
    proxy.lieFingerprint(1, true);
    const out = await cycle();
    proxy.lieFingerprint(1, false);
    assert.equal((await pins()).pinSet.state, 'blocked');
    assert.ok(out.reasons.some((r) => r.includes('the presented certificate is not the attested one')), JSON.stringify(out.reasons));
    assert.equal((await cycle()).transition, 'blocked → pinned');
  });

  test('a man in the middle is never served: 0 of 200 requests reach it; with none pinned left the request fails closed', async () => {
    proxy.manInTheMiddle(2, true);
    const before = proxy.stats().completions;
    const statuses: number[] = [];
    for (let i = 0; i < 200; i += 8) statuses.push(...(await Promise.all(Array.from({ length: 8 }, async () => (await chat()).status))));
    const after = proxy.stats().completions;
    assert.equal(after[2]! - before[2]!, 0, 'the unpinned backend served a request');
    assert.deepEqual([...new Set(statuses)], [200]);
    // Connections made before the interception are to the genuine backends (their keys are
    // pinned); drop them, as an attacker taking over the route would, so every call reconnects.
    for (const i of [0, 1]) {
      proxy.manInTheMiddle(i, true);
      proxy.kill(i);
      proxy.revive(i);
    }
    const r = await chat();
    assert.equal(r.status, 503, JSON.stringify(r.json));
    assert.equal(proxy.stats().completions.reduce((a, b) => a + b, 0), after.reduce((a, b) => a + b, 0));
    for (const i of [0, 1, 2]) proxy.manInTheMiddle(i, false);
  });
});
