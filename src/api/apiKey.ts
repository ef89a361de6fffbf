/**
 * API key material: `sk-fleet-<keyId>-<secret>`. The key id is public (it names the key in
 * usage, logs and metrics); the secret is 32 random bytes, shown once at creation and stored
 * only as its sha256 — a plain fast hash is enough because the secret has 256 bits of
 * entropy, so there is nothing to brute-force. Lookup is by key id, then a constant-time
 * comparison of the hashes. Nothing here ever logs or returns a secret or a hash.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

const PREFIX = 'sk-fleet-';
/** 16 hex characters: no '-', so the id ends where the secret starts. */
const KEY_PATTERN = /^sk-fleet-([0-9a-f]{16})-([A-Za-z0-9_-]{43})$/;
export const KEY_ID_PATTERN = /^[0-9a-f]{16}$/;

export interface NewApiKey {
  keyId: string;
  /** The whole key, for the client; returned once, never stored. */
  plaintext: string;
  secretHash: string;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

export function generateApiKey(): NewApiKey {
  const keyId = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url'); // 43 characters
  return { keyId, plaintext: `${PREFIX}${keyId}-${secret}`, secretHash: hashSecret(secret) };
}

/** Splits a presented key; null for anything not shaped like one of ours (e.g. `sk-no-key`). */
export function parseApiKey(raw: string): { keyId: string; secret: string } | null {
  const m = KEY_PATTERN.exec(raw);
  return m ? { keyId: m[1]!, secret: m[2]! } : null;
}

/** Constant-time: whether `secret` hashes to `storedHash` (hex). */
export function secretMatches(secret: string, storedHash: string): boolean {
  const expected = Buffer.from(storedHash, 'hex');
  const actual = createHash('sha256').update(secret, 'utf8').digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/**
 * Constant-time comparison of two tokens of any length (the admin token): both are hashed
 * first, so neither the content nor the length leaks through timing.
 */
export function tokensEqual(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}
