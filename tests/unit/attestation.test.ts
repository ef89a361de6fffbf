/** Table tests of attestation reports: signing, canonical encoding and the Ed25519 verifier. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ed25519 } from '@noble/curves/ed25519.js';
import {
  canonicalJson,
  ed25519Verifier,
  encodeSignedFields,
  fromBase64,
  keyFingerprint,
  publicKeyOf,
  signReport,
  toBase64,
  type AttestationReport,
  type ExpectedAttestation,
  type ReportClaims,
  type VerifyResult,
} from '../../src/domain/attestation.js';

/** Fixed seeds: deterministic keys, no randomness in tests. */
const OLD_KEY = new Uint8Array(32).fill(7);
const NEW_KEY = new Uint8Array(32).fill(9);
const HASH_M = 'a'.repeat(64);
const HASH_OTHER = 'b'.repeat(64);

const claims: ReportClaims = {
  hostId: 'gpu-1',
  models: [{ modelId: 'm', sha256: HASH_M }],
  softwareVersion: '0.1.0',
  nonce: 'n-123',
};
const expected: ExpectedAttestation = { nonce: 'n-123', hostId: 'gpu-1', models: { m: HASH_M } };
const report = signReport(claims, OLD_KEY);
const oldFingerprint = keyFingerprint(publicKeyOf(OLD_KEY));

/** Re-sign altered fields with `key`, so only the altered field is wrong. */
const forged = (changes: Partial<AttestationReport>, key = OLD_KEY): AttestationReport => {
  const fields = { ...report, ...changes };
  return { ...fields, signature: toBase64(ed25519.sign(encodeSignedFields(fields), key)) };
};
const flipFirstChar = (s: string) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1);

const cases: Array<{ name: string; report: AttestationReport; expected?: ExpectedAttestation; expect: VerifyResult }> = [
  { name: 'valid report', report, expect: { ok: true, fingerprint: oldFingerprint } },
  { name: 'valid with extra models the caller did not ask about', report: signReport({ ...claims, models: [...claims.models, { modelId: 'x', sha256: HASH_OTHER }] }, OLD_KEY), expect: { ok: true, fingerprint: oldFingerprint } },
  { name: 'bad signature (signature altered)', report: { ...report, signature: flipFirstChar(report.signature) }, expect: { ok: false, reason: 'bad_signature' } },
  { name: 'bad signature (signed field altered after signing)', report: { ...report, nonce: 'n-999' }, expect: { ok: false, reason: 'bad_signature' } },
  { name: 'bad signature (signed by another key)', report: forged({}, NEW_KEY), expect: { ok: false, reason: 'bad_signature' } },
  { name: 'wrong nonce', report: signReport({ ...claims, nonce: 'n-old' }, OLD_KEY), expect: { ok: false, reason: 'wrong_nonce' } },
  { name: 'wrong host', report: signReport({ ...claims, hostId: 'gpu-2' }, OLD_KEY), expect: { ok: false, reason: 'wrong_host' } },
  { name: 'wrong model hash', report: signReport({ ...claims, models: [{ modelId: 'm', sha256: HASH_OTHER }] }, OLD_KEY), expect: { ok: false, reason: 'wrong_model_hash' } },
  { name: 'expected model missing from the report', report, expected: { ...expected, models: { m: HASH_M, m2: HASH_OTHER } }, expect: { ok: false, reason: 'wrong_model_hash' } },
  { name: 'fingerprint does not match the key', report: forged({ keyFingerprint: 'c'.repeat(64) }), expect: { ok: false, reason: 'fingerprint_mismatch' } },
  { name: 'malformed base64 signature', report: { ...report, signature: '!!not base64!!' }, expect: { ok: false, reason: 'malformed' } },
  { name: 'malformed base64 public key', report: { ...report, publicKey: report.publicKey.slice(0, -1) }, expect: { ok: false, reason: 'malformed' } },
  { name: 'public key of the wrong length', report: { ...report, publicKey: toBase64(new Uint8Array(31)) }, expect: { ok: false, reason: 'malformed' } },
  { name: 'a model listed twice', report: forged({ models: [{ modelId: 'm', sha256: HASH_M }, { modelId: 'm', sha256: HASH_OTHER }] }), expect: { ok: false, reason: 'malformed' } },
  { name: 'a field of the wrong type', report: { ...report, nonce: 42 as unknown as string }, expect: { ok: false, reason: 'malformed' } },
];

for (const c of cases) {
  test(c.name, () => {
    assert.deepEqual(ed25519Verifier.verify(c.report, c.expected ?? expected), c.expect);
  });
}

test('rotated key: a report signed by the new key verifies with a new fingerprint', () => {
  const rotated = signReport(claims, NEW_KEY);
  const result = ed25519Verifier.verify(rotated, expected);
  assert.deepEqual(result, { ok: true, fingerprint: keyFingerprint(publicKeyOf(NEW_KEY)) });
  assert.ok(result.ok);
  assert.notEqual(result.fingerprint, oldFingerprint);
  assert.match(result.fingerprint, /^[0-9a-f]{64}$/);
});

test('canonical encoding: sorted keys, no whitespace, independent of property order', () => {
  assert.equal(canonicalJson({ b: 1, a: [{ d: 'x', c: null }] }), '{"a":[{"c":null,"d":"x"}],"b":1}');
  const reordered: AttestationReport = {
    signature: report.signature,
    nonce: report.nonce,
    softwareVersion: report.softwareVersion,
    models: report.models,
    publicKey: report.publicKey,
    keyFingerprint: report.keyFingerprint,
    hostId: report.hostId,
  };
  assert.deepEqual(encodeSignedFields(reordered), encodeSignedFields(report));
  const text = new TextDecoder().decode(encodeSignedFields(report));
  assert.ok(text.startsWith('{"hostId":"gpu-1","keyFingerprint":'));
  assert.ok(!text.includes('signature'));
});

test('an extra property on the wire does not change what was signed', () => {
  const withExtra = { ...report, note: 'hello' } as AttestationReport;
  assert.deepEqual(ed25519Verifier.verify(withExtra, expected), { ok: true, fingerprint: oldFingerprint });
});

test('base64 round-trips and rejects non-canonical input', () => {
  for (let n = 0; n < 40; n++) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff);
    assert.deepEqual(fromBase64(toBase64(bytes)), bytes);
  }
  assert.equal(toBase64(new TextEncoder().encode('foobar')), 'Zm9vYmFy');
  assert.equal(toBase64(new TextEncoder().encode('fo')), 'Zm8=');
  assert.equal(fromBase64('Zm8'), null); // unpadded
  assert.equal(fromBase64('Zm9='), null); // non-zero trailing bits
  assert.equal(fromBase64('Zm=8'), null); // padding in the middle
  assert.equal(fromBase64('Zm-_'), null); // url alphabet
});

// ---- response signatures of our own hosts (the provider text format) --------------------------
import { parseSignedText, sha256Hex, signHostResponse, verifyHostSignature, verifyTeeSignature } from '../../src/domain/teeSignatures.js';

test('host response signature: <build>:<sha256 request>:<sha256 text>, Ed25519, verified offline by the provider verifier too', () => {
  const key = new Uint8Array(32).fill(7);
  const request = '{"model":"m","messages":[]}';
  const s = signHostResponse({ modelSha256: 'A'.repeat(64), requestSha256: sha256Hex(request), text: 'héllo' }, key);
  assert.deepEqual(parseSignedText(s.text), { model: 'a'.repeat(64), requestSha256: sha256Hex(request), responseSha256: sha256Hex('héllo') });
  assert.ok(verifyTeeSignature({ text: s.text, signature: s.signature, signingAddress: s.signingAddress, algo: 'ed25519' }), 'one verifier for both kinds');
  assert.deepEqual(verifyHostSignature(s, { requestBody: request, text: 'héllo', modelSha256: 'a'.repeat(64), trustedFingerprints: [s.fingerprint] }), { ok: true, fingerprint: s.fingerprint });
  const cases: Array<[string, Parameters<typeof verifyHostSignature>, string]> = [
    ['other text', [s, { text: 'hello' }], 'wrong_response_hash'],
    ['other request body', [s, { requestBody: `${request} ` }], 'wrong_request'],
    ['other build', [s, { modelSha256: 'b'.repeat(64) }], 'wrong_model_hash'],
    ['untrusted key', [s, { trustedFingerprints: ['f'.repeat(64)] }], 'unpinned_key'],
    ['edited text', [{ ...s, text: s.text.replace(/^a/, 'b') }], 'bad_signature'],
    ['claimed fingerprint of another key', [{ ...s, fingerprint: 'e'.repeat(64) }], 'fingerprint_mismatch'],
    ['garbage signature', [{ ...s, signature: 'nope' }], 'bad_signature'],
    ['text of another shape', [{ ...s, text: 'model:abc:def' }], 'malformed'],
    ['missing fields', [{ text: null } as never], 'malformed'],
  ];
  for (const [name, args, reason] of cases) assert.deepEqual(verifyHostSignature(...args), { ok: false, reason }, name);
});

test('signed text: the model part may contain colons; anything else is not a signed text', () => {
  const h = 'c'.repeat(64);
  assert.deepEqual(parseSignedText(`org:model:v1:${h}:${h}`), { model: 'org:model:v1', requestSha256: h, responseSha256: h });
  for (const t of [`:${h}:${h}`, `m:${h}`, `m:${h}:${h.toUpperCase()}`, `m:${h}:${h}x`, '']) assert.equal(parseSignedText(t), null, t);
});
