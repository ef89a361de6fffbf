/**
 * Serving a verifiable model on real parts: three in-process GPU hosts (node-llama-cpp, tiny
 * model), PGlite, the suite's Temporal server. Before any cycle nothing is pinned and the model
 * fails closed (503 + Retry-After); after a cycle a pinned host serves it and signs the
 * response, whose signature `fleet verify` and the domain verifier accept (and reject for other
 * text); a host that rotates its key under steady load never answers with the new, unpinned
 * key; a signature is readable only with a key of the account that made the request (or the
 * admin token); an emptied pin set fails closed again.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { DiscoveryOutcome } from '../../src/common/discovery.js';
import { parseSignedText, verifyHostSignature, type HostSignature } from '../../src/domain/teeSignatures.js';
import { setModelVerifiable } from '../../src/db/pinSetsRepo.js';
import { runFleet } from '../support/cli.js';
import { startTestFleet, type TestFleet } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

const fleet = (...args: string[]) => runFleet(args, { env: { ...process.env, FLEET_LOG_LEVEL: 'warn', FLEET_DATA_DIR: f.tmpDir } });
const ADMIN = 'verifiable-admin-token-0123';
const asAdmin = { authorization: `Bearer ${ADMIN}` };

let f: TestFleet;
let api: string;

interface SignatureAnswer {
  request_id: string;
  model: string;
  signature_kind: string;
  text: string;
  signature: string;
  signing_address: string;
  signing_algo: string;
  fingerprint: string;
}

const chatBody = (content: string) => JSON.stringify({ model: f.modelId, messages: [{ role: 'user', content }], max_tokens: 8, temperature: 0 });
const chat = (content: string, key?: string) =>
  fetch(`${api}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: chatBody(content),
  });

async function assertFailsClosed(): Promise<void> {
  const res = await chat('anyone there?');
  const body = (await res.json()) as { error: { code: string; message: string } };
  assert.equal(res.status, 503, JSON.stringify(body));
  assert.ok(Number(res.headers.get('retry-after')) >= 1);
  assert.equal(body.error.code, 'service_unavailable');
  assert.match(body.error.message, /pinned/);
}

before(async () => {
  f = await startTestFleet({ db: 'pglite', hosts: 3, env: { FLEET_ADMIN_TOKEN: ADMIN } });
  api = f.stack.api!.url;
  await Promise.all(
    f.hostIds.map(async (h) => {
      const res = await fetch(`${api}/admin/hosts/${h}/models/${f.modelId}/load`, { method: 'POST', headers: asAdmin });
      assert.equal(res.status, 200, await res.text());
    }),
  );
  // Marked in the table directly: no refresh Schedule on the shared Temporal server.
  assert.ok(await setModelVerifiable(f.stack.db.db, f.modelId, true, 3600));
});
after(async () => {
  await f?.stop();
});

test('a verifiable model with nothing pinned fails closed: 503 + Retry-After, never an unpinned host', async () => {
  await assertFailsClosed();
  const served = await f.stack.db.db.selectFrom('request_log').select('host_id').where('host_id', 'is not', null).execute();
  assert.deepEqual(served, []);
});

test('after a cycle a pinned host serves, signs, and the signature verifies', async () => {
  const cycle = await fetch(`${api}/admin/models/${f.modelId}/discovery`, { method: 'POST', headers: asAdmin });
  const out = (await cycle.json()) as DiscoveryOutcome;
  assert.equal(out.mode, 'replaced', out.reasons.join('; '));
  assert.equal(out.pinSet.fingerprints.length, 3);

  const res = await chat('say something');
  assert.equal(res.status, 200, await res.clone().text());
  const body = (await res.json()) as { id: string; choices: Array<{ message: { content: string } }> };
  const text = body.choices[0]!.message.content;

  const sig = await waitFor(async () => {
    const r = await fetch(`${api}/v1/signature/${body.id}`);
    return r.status === 200 ? ((await r.json()) as SignatureAnswer) : undefined;
  });
  assert.ok(sig, 'the signature is stored');
  assert.equal(sig.request_id, body.id);
  assert.equal(sig.model, f.modelId);
  assert.equal(sig.signature_kind, 'host');
  assert.equal(sig.signing_algo, 'ed25519');
  const model = await f.stack.db.db.selectFrom('models').select('sha256').where('id', '=', f.modelId).executeTakeFirstOrThrow();
  // The provider format: <model build>:<sha256 of the request body as sent>:<sha256 of the text>.
  assert.equal(parseSignedText(sig.text)?.model, model.sha256);

  const s: HostSignature = { text: sig.text, fingerprint: sig.fingerprint, signingAddress: sig.signing_address, signature: sig.signature };
  const requestBody = chatBody('say something');
  assert.deepEqual(
    verifyHostSignature(s, { requestBody, text, modelSha256: model.sha256!, trustedFingerprints: out.pinSet.fingerprints }),
    { ok: true, fingerprint: sig.fingerprint },
  );
  assert.deepEqual(verifyHostSignature(s, { text: `${text}!` }), { ok: false, reason: 'wrong_response_hash' });
  assert.deepEqual(verifyHostSignature(s, { requestBody: chatBody('something else') }), { ok: false, reason: 'wrong_request' });
  assert.deepEqual(verifyHostSignature({ ...s, text: `${s.text.slice(0, -1)}0` }), { ok: false, reason: 'bad_signature' });

  // `fleet verify` as a client would run it: ok with the received text, exit 1 with another.
  const good = path.join(f.tmpDir, 'response.txt');
  await writeFile(good, text);
  pinned = out.pinSet.fingerprints;
  const sent = path.join(f.tmpDir, 'request.json');
  await writeFile(sent, requestBody);
  const ok = await fleet('verify', body.id, '--url', api, '--text-file', good, '--request-file', sent);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`^${body.id}: ok \\(model ${f.modelId}, .*response text matches, request body matches\\)`));
  const bad = path.join(f.tmpDir, 'tampered.txt');
  await writeFile(bad, `${text} (edited)`);
  const tampered = await fleet('verify', body.id, '--url', api, '--text-file', bad);
  assert.equal(tampered.code, 1);
  assert.match(tampered.stderr, /not verified: wrong_response_hash/);
  const missing = await fetch(`${api}/v1/signature/chatcmpl-nope`);
  assert.equal(missing.status, 404);
  assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'signature_not_found');
});

let pinned: string[] = [];
const signatureOf = async (id: string, headers: Record<string, string> = {}) => {
  const r = await fetch(`${api}/v1/signature/${id}`, { headers });
  return { status: r.status, body: (await r.json()) as SignatureAnswer & { error?: { code: string } } };
};

test('a pinned host rotates its key under steady load: no response carries the unpinned key', async (t) => {
  assert.equal(pinned.length, 3);
  const statuses: number[] = [];
  const ids: string[] = [];
  let rotated: string | undefined;
  for (let i = 0; i < 40; i++) {
    if (i === 10) {
      const r = await fleet('host', 'rotate-key', '--host-id', f.hostIds[0]!);
      assert.equal(r.code, 0, r.stderr);
      rotated = /new key fingerprint ([0-9a-f]+)/.exec(r.stdout)?.[1];
    }
    // Two at a time, so the least busy choice spreads over the hosts, the rotated one included.
    const pair = await Promise.all([chat(`turn ${i} a`), chat(`turn ${i} b`)]);
    for (const res of pair) {
      statuses.push(res.status);
      if (res.status === 200) ids.push(((await res.json()) as { id: string }).id);
    }
  }
  assert.ok(rotated && !pinned.includes(rotated));
  assert.deepEqual([...new Set(statuses)], [200], 'the other pinned hosts serve throughout');
  const signers = new Map<string, number>();
  for (const id of ids) {
    const s = await waitFor(async () => {
      const r = await signatureOf(id, asAdmin);
      return r.status === 200 ? r.body : undefined;
    });
    assert.ok(s, id);
    signers.set(s.fingerprint, (signers.get(s.fingerprint) ?? 0) + 1);
  }
  for (const fp of signers.keys()) assert.ok(pinned.includes(fp), `response signed by unpinned key ${fp.slice(0, 16)}`);
  assert.ok(!signers.has(rotated!));
  t.diagnostic(`${ids.length} responses, signers: ${[...signers].map(([fp, n]) => `${fp.slice(0, 8)}×${n}`).join(', ')}`);
});

test('a signature is readable only with a key of the requesting account, or the admin token', async () => {
  const newKey = async (account: string) => {
    const r = await fetch(`${api}/admin/keys`, { method: 'POST', headers: { ...asAdmin, 'content-type': 'application/json' }, body: JSON.stringify({ account }) });
    return ((await r.json()) as { key: string }).key;
  };
  const [alice, bob] = [await newKey('alice'), await newKey('bob')];
  const res = await chat('whose signature?', alice);
  assert.equal(res.status, 200);
  const { id } = (await res.json()) as { id: string };
  const mine = await waitFor(async () => ((await signatureOf(id, { authorization: `Bearer ${alice}` })).status === 200 ? true : undefined));
  assert.ok(mine, 'the account that asked reads it');
  assert.equal((await signatureOf(id, { authorization: `Bearer ${bob}` })).status, 404, 'another account gets the unknown-id answer');
  assert.equal((await signatureOf(id)).body.error?.code, 'signature_not_found', 'so does an anonymous caller');
  assert.equal((await signatureOf(id, asAdmin)).status, 200, 'an operator with the admin token reads it');
});

test('an emptied pin set (every key unpinned, no cycle yet) fails closed again', async () => {
  await f.stack.db.db.updateTable('pin_sets').set({ fingerprints: JSON.stringify([]) }).where('model_id', '=', f.modelId).execute();
  await assertFailsClosed();
});
