/**
 * The payload codec that keeps prompts encrypted at rest: payloads round-trip, their stored form
 * holds no plaintext, every configured key decrypts (rotation), an unknown key or a flipped bit is
 * an error rather than garbage, and a payload written before encryption passes through untouched
 * (old histories replay). Key specs are parsed with errors that name the entry, never the key.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultPayloadConverter } from '@temporalio/common';
import { AesGcmPayloadCodec, ENCRYPTED_ENCODING, newPayloadKeyEntry, parsePayloadKeys } from '../../src/temporal/payloadCodec.js';

const prompt = { messages: [{ role: 'user', content: 'my secret medical question' }] };
const plain = () => defaultPayloadConverter.toPayload(prompt)!;
const codec = (...entries: string[]) => new AesGcmPayloadCodec(parsePayloadKeys(entries.join(',')));

test('a payload round-trips, and its encrypted form holds no plaintext', async () => {
  const c = codec(newPayloadKeyEntry('k1'));
  const [sealed] = await c.encode([plain()]);
  assert.equal(new TextDecoder().decode(sealed!.metadata!.encoding), ENCRYPTED_ENCODING);
  assert.equal(new TextDecoder().decode(sealed!.metadata!['encryption-key-id']), 'k1');
  assert.ok(!Buffer.from(sealed!.data!).toString('latin1').includes('medical'));
  const [opened] = await c.decode([sealed!]);
  assert.deepEqual(defaultPayloadConverter.fromPayload(opened!), prompt);
});

test('the same payload encrypts differently every time (a fresh IV)', async () => {
  const c = codec(newPayloadKeyEntry('k1'));
  const [a] = await c.encode([plain()]);
  const [b] = await c.encode([plain()]);
  assert.notDeepEqual(Buffer.from(a!.data!), Buffer.from(b!.data!));
});

test('rotation: the first key encrypts, every key decrypts', async () => {
  const old = newPayloadKeyEntry('old');
  const [byOld] = await codec(old).encode([plain()]);
  const rotated = codec(newPayloadKeyEntry('new'), old);
  assert.equal(rotated.currentKeyId, 'new');
  assert.deepEqual(defaultPayloadConverter.fromPayload((await rotated.decode([byOld!]))[0]!), prompt);
});

test('an unknown key id, or a tampered payload, is an error', async () => {
  const [sealed] = await codec(newPayloadKeyEntry('k1')).encode([plain()]);
  await assert.rejects(codec(newPayloadKeyEntry('k2')).decode([sealed!]), /key 'k1', which is not configured/);
  const flipped = Buffer.from(sealed!.data!);
  flipped[20] = flipped[20]! ^ 1;
  await assert.rejects(codec(newPayloadKeyEntry('k1')).decode([{ ...sealed!, data: flipped }]), /does not decrypt/);
});

test('a payload from before encryption passes through unchanged', async () => {
  const p = plain();
  assert.deepEqual(await codec(newPayloadKeyEntry('k1')).decode([p]), [p]);
});

const parseCases: Array<[string, RegExp]> = [
  ['', /no keys/],
  ['nokey', /expected <id>:<base64 key>/],
  ['k1:c2hvcnQ=', /expected 32 bytes of base64/],
  [`k1:${'A'.repeat(43)}=,k1:${'A'.repeat(43)}=`, /appears twice/],
  [`bad id:${'A'.repeat(43)}=`, /expected <id>/],
];
for (const [spec, err] of parseCases) {
  test(`key spec ${JSON.stringify(spec.slice(0, 20))} is refused: ${err.source}`, () => {
    assert.throws(() => parsePayloadKeys(spec), err);
    try {
      parsePayloadKeys(spec);
    } catch (e) {
      assert.ok(!(e as Error).message.includes('A'.repeat(43)), 'the key itself is never in the message');
    }
  });
}
