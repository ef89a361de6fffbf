/** The attested-provider protocol's pure parts: URL helpers, binding checks, fan-out rotation, folding, signatures. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { createSoftwareTeeVerifier, mintSoftwareQuote, softwareTeePublicKey } from '../../src/attestation/quoteVerifier.js';
import {
  checkReportBinding,
  countUrl,
  foldIndexResults,
  keysForPins,
  planAttestationCalls,
  reportDataHead,
  rotationBaseUrl,
  splitInferenceUrl,
  type IndexAttestation,
} from '../../src/domain/attestedProvider.js';
import { signedText, signTeeText, verifyTeeSignature } from '../../src/domain/teeSignatures.js';
import { resolvedAddress } from '../../src/providers/attestedTransport.js';

describe('inference URL helpers', () => {
  const cases: Array<[string, string, { label: string; base: string; rotation3: string; count: string } | string]> = [
    ['basic', 'https://glm-5-1.completions.example.com/v1', { label: 'glm-5-1', base: 'completions.example.com', rotation3: 'https://glm-5-1-i3.completions.example.com/v1', count: 'https://completions.example.com/backends/count?domain=glm-5-1.completions.example.com' }],
    ['dashes inside the canonical id', 'https://qwen35-122b.completions.example.com/v1', { label: 'qwen35-122b', base: 'completions.example.com', rotation3: 'https://qwen35-122b-i3.completions.example.com/v1', count: 'https://completions.example.com/backends/count?domain=qwen35-122b.completions.example.com' }],
    ['case is folded', 'https://GLM-5-1.COMPLETIONS.Example.COM/v1/', { label: 'glm-5-1', base: 'completions.example.com', rotation3: 'https://glm-5-1-i3.completions.example.com/v1', count: 'https://completions.example.com/backends/count?domain=glm-5-1.completions.example.com' }],
    ['a non-default port is kept', 'https://tiny.proxy.test:8443/v1', { label: 'tiny', base: 'proxy.test', rotation3: 'https://tiny-i3.proxy.test:8443/v1', count: 'https://proxy.test:8443/backends/count?domain=tiny.proxy.test' }],
    ['IPv4 literal', 'https://10.0.0.1/v1', 'url_parse: an IP literal cannot rotate'],
    ['IPv6 literal', 'https://[::1]:8443/v1', 'url_parse: an IP literal cannot rotate'],
    ['one label', 'https://localhost:8443/v1', 'url_parse: a one-label host cannot rotate'],
    ['two labels', 'https://foo.localhost/v1', 'url_parse: the base must have a dot'],
    ['not a URL', 'not a url', 'url_parse: not a URL'],
  ];
  for (const [name, url, want] of cases) {
    test(name, () => {
      const got = splitInferenceUrl(url);
      if (typeof want === 'string') return assert.deepEqual(got, { ok: false, reason: want });
      assert.ok(got.ok);
      assert.equal(got.parts.canonicalLabel, want.label);
      assert.equal(got.parts.base, want.base);
      assert.equal(rotationBaseUrl(got.parts, 3), want.rotation3);
      assert.equal(countUrl(got.parts), want.count);
    });
  }
  test('resolve overrides: exact host first, then the longest wildcard', () => {
    const r = { 'proxy.test': '10.0.0.1', '*.proxy.test': '10.0.0.2', '*.a.proxy.test': '10.0.0.3' };
    assert.equal(resolvedAddress(r, 'proxy.test'), '10.0.0.1');
    assert.equal(resolvedAddress(r, 'tiny-i0.proxy.test'), '10.0.0.2');
    assert.equal(resolvedAddress(r, 'x.a.proxy.test'), '10.0.0.3');
    assert.equal(resolvedAddress(r, 'other.test'), undefined);
  });
});

describe('which backends a cycle attests', () => {
  const idx = (o: { count: number; cap: number; cycleSeq: number }) => planAttestationCalls(o).map((c) => `${c.index}:${c.algo}`);
  test('one backend: one call per signing algorithm', () => assert.deepEqual(idx({ count: 1, cap: 256, cycleSeq: 0 }), ['0:ed25519', '0:ecdsa']));
  test('within the cap: every index once', () => assert.deepEqual(idx({ count: 3, cap: 256, cycleSeq: 5 }), ['0:ed25519', '1:ed25519', '2:ed25519']));
  test('no backend: no call', () => assert.deepEqual(idx({ count: 0, cap: 256, cycleSeq: 0 }), []));
  test('capped: the window rotates so every index is covered within ⌈count/cap⌉ cycles', () => {
    const seen = new Set<number>();
    for (let seq = 0; seq < 3; seq++) for (const c of planAttestationCalls({ count: 5, cap: 2, cycleSeq: seq })) seen.add(c.index);
    assert.deepEqual([...seen].sort(), [0, 1, 2, 3, 4]);
    assert.deepEqual(planAttestationCalls({ count: 5, cap: 2, cycleSeq: 2 }).map((c) => c.index), [4, 0]);
    assert.equal(planAttestationCalls({ count: 300, cap: 256, cycleSeq: 1 }).length, 256);
  });
});

describe('report binding', () => {
  const addr = '1111111111111111111111111111111111111111';
  const fp = '22'.repeat(32);
  const nonce = '33'.repeat(32);
  const data = (a = addr, f = fp, n = nonce) => hexToBytes(reportDataHead(a, f) + n);
  const base = { reportData: data(), signingAddress: addr, reportedFingerprint: fp, presentedFingerprint: fp, nonce };
  const cases: Array<[string, Partial<typeof base>, string | null]> = [
    ['bound', {}, null],
    ['0x prefixes are accepted', { signingAddress: `0x${addr}`, reportedFingerprint: `0x${fp}` }, null],
    ['another nonce (replay)', { nonce: '44'.repeat(32) }, 'verify: nonce mismatch'],
    ['no fingerprint: no fallback', { reportedFingerprint: undefined as unknown as string }, 'verify: no tls_cert_fingerprint'],
    ['fingerprint not bound', { reportData: data(addr, '55'.repeat(32)) }, 'verify: report_data does not bind the signing key and TLS fingerprint'],
    ['another key', { signingAddress: '66'.repeat(20) }, 'verify: report_data does not bind the signing key and TLS fingerprint'],
    ['presented certificate differs (man in the middle)', { presentedFingerprint: '77'.repeat(32) }, 'verify: the presented certificate is not the attested one'],
    ['short report data', { reportData: new Uint8Array(32) }, 'verify: report_data is not 64 bytes'],
    ['address not hex', { signingAddress: 'zz' }, 'verify: signing_address is not hex'],
  ];
  for (const [name, patch, want] of cases) test(name, () => assert.equal(checkReportBinding({ ...base, ...patch }), want));
});

describe('folding calls into one verdict per backend', () => {
  const ok = (index: number, algo: 'ed25519' | 'ecdsa', fingerprint: string, signingAddress = `${algo}-${index}`): IndexAttestation => ({ index, algo, ok: true, verified: true, fingerprint, signingAddress, tcbStatus: 'UpToDate', nvidiaEvidence: false });
  test('two algorithms on one backend: one verified index with both keys', () => {
    const r = foldIndexResults([ok(0, 'ed25519', 'f0'), ok(0, 'ecdsa', 'f0')]);
    assert.deepEqual(r.attestations, [{ hostId: 'i0', ok: true, fingerprint: 'f0', verified: true }]);
    assert.deepEqual(r.keys, { f0: { ed25519: 'ed25519-0', ecdsa: 'ecdsa-0' } });
  });
  test('two certificates on one backend in one cycle: refused', () => {
    const r = foldIndexResults([ok(0, 'ed25519', 'f0'), ok(0, 'ecdsa', 'f1')]);
    assert.equal(r.attestations[0]!.ok && !r.attestations[0]!.verified, true);
  });
  test('a failed call or a refused report wins over a verified one', () => {
    const r = foldIndexResults([ok(0, 'ed25519', 'f0'), { index: 0, algo: 'ecdsa', ok: false, reason: 'timeout' }, ok(1, 'ed25519', 'f1'), { index: 1, algo: 'ecdsa', ok: true, verified: false, fingerprint: 'f1', reason: 'verify: nonce mismatch' }]);
    assert.deepEqual(r.attestations.map((a) => (a.ok ? (a.verified ? 'ok' : 'refused') : 'failed')), ['failed', 'refused']);
  });
  test('keys kept for a pin set: this cycle first, else what was known', () => {
    assert.deepEqual(keysForPins(['a', 'b'], { a: { ed25519: 'old' }, c: { ed25519: 'gone' } }, { a: { ed25519: 'new' }, b: { ecdsa: 'e' } }), { a: { ed25519: 'new' }, b: { ecdsa: 'e' } });
  });
});

describe('signatures and the software TEE', () => {
  for (const algo of ['ed25519', 'ecdsa'] as const) {
    test(`${algo}: signs and verifies the text format; another text or key fails`, () => {
      const key = new Uint8Array(randomBytes(32));
      const text = signedText({ model: 'm', requestBody: '{"a":1}', responseBody: '{"b":2}' });
      assert.match(text, /^m:[0-9a-f]{64}:[0-9a-f]{64}$/);
      const s = signTeeText(algo, text, key);
      assert.equal(verifyTeeSignature({ text, signature: s.signature, signingAddress: s.signing_address, algo }), true);
      assert.equal(verifyTeeSignature({ text: `${text}x`, signature: s.signature, signingAddress: s.signing_address, algo }), false);
      const other = signTeeText(algo, text, new Uint8Array(randomBytes(32)));
      assert.equal(verifyTeeSignature({ text, signature: s.signature, signingAddress: other.signing_address, algo }), false);
    });
  }
  test('ecdsa signing address of private key 1 is the well-known Ethereum address', () => {
    const one = new Uint8Array(32);
    one[31] = 1;
    assert.equal(signTeeText('ecdsa', 'x', one).signing_address, '0x7e5f4552091a69125d5dfcb7b8c2659029395bdf');
  });
  test('software TEE: its quotes verify; another key, a flipped byte or garbage do not', async () => {
    const key = new Uint8Array(randomBytes(32));
    const data = new Uint8Array(randomBytes(64));
    const quote = mintSoftwareQuote(data, key);
    const v = createSoftwareTeeVerifier(softwareTeePublicKey(key));
    const got = await v.verify(quote, 0);
    assert.ok(got.ok);
    assert.equal(bytesToHex(got.reportData), bytesToHex(data));
    assert.equal((await createSoftwareTeeVerifier(softwareTeePublicKey(new Uint8Array(randomBytes(32)))).verify(quote, 0)).ok, false);
    const flipped = quote.slice(0, 60) + (quote[60] === '0' ? '1' : '0') + quote.slice(61);
    assert.equal((await v.verify(flipped, 0)).ok, false);
    assert.deepEqual(await v.verify('zz', 0), { ok: false, reason: 'quote is not hex' });
  });
});
