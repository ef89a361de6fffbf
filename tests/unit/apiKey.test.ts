/** API key material: format, parsing, hash comparison, and the admin token comparison. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateApiKey, hashSecret, parseApiKey, secretMatches, tokensEqual } from '../../src/api/apiKey.js';
import { renderKeys } from '../../src/keysView.js';

test('a generated key parses back to its id, and only its secret matches the stored hash', () => {
  const k = generateApiKey();
  assert.match(k.plaintext, /^sk-fleet-[0-9a-f]{16}-[A-Za-z0-9_-]{43}$/);
  const parsed = parseApiKey(k.plaintext)!;
  assert.equal(parsed.keyId, k.keyId);
  assert.equal(hashSecret(parsed.secret), k.secretHash);
  assert.ok(secretMatches(parsed.secret, k.secretHash));
  assert.ok(!secretMatches(parsed.secret.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')), k.secretHash));
  assert.ok(!k.secretHash.includes(parsed.secret), 'the hash does not contain the secret');
  assert.notEqual(generateApiKey().keyId, k.keyId);
});

test('placeholder and malformed keys are not ours', () => {
  const good = generateApiKey().plaintext;
  for (const raw of ['sk-no-key', 'sk-fleet-', 'sk-fleet-0123456789abcdef', `${good}x`, good.slice(0, -1), good.replace('sk-fleet-', 'sk-other-'), '']) {
    assert.equal(parseApiKey(raw), null, raw);
  }
});

test('a secret containing "-" still splits at the id (the id has none)', () => {
  const secret = `${'-'.repeat(21)}${'a'.repeat(22)}`;
  assert.deepEqual(parseApiKey(`sk-fleet-0123456789abcdef-${secret}`), { keyId: '0123456789abcdef', secret });
});

test('admin token comparison: equal only when identical, any lengths', () => {
  assert.ok(tokensEqual('a-long-admin-token-123', 'a-long-admin-token-123'));
  assert.ok(!tokensEqual('a-long-admin-token-12', 'a-long-admin-token-123'));
  assert.ok(!tokensEqual('', 'a-long-admin-token-123'));
});

test('fleet keys list renders budgets and status, and never a secret', () => {
  const out = renderKeys([
    { id: '0123456789abcdef', account: 'acme', name: 'ci', balance_tokens: 1000, window_tokens: 100, window_seconds: 60, spent: 42, created_at: 'x', revoked_at: null },
    { id: 'fedcba9876543210', account: 'acme', name: null, balance_tokens: null, window_tokens: null, window_seconds: null, spent: 0, created_at: 'x', revoked_at: '2026-01-01T00:00:00.000Z' },
  ]);
  assert.match(out, /0123456789abcdef\s+acme\s+ci\s+balance 1000, 100\/60s\s+42\s+active/);
  assert.match(out, /fedcba9876543210\s+acme\s+-\s+unlimited\s+0\s+revoked 2026/);
  assert.equal(renderKeys([]), 'no API keys\n');
});
