/**
 * Prompts at rest are encrypted: every workflow and activity payload (inputs, results,
 * heartbeat details — prompts and completions among them) goes through this AES-256-GCM codec
 * before it reaches the Temporal server, so its history and database hold ciphertext. Anyone
 * with Web UI or database access sees `binary/encrypted` payloads; operators who hold the
 * admin token see them decrypted through the codec endpoint (src/api/routes/codec.ts).
 *
 * Format (Temporal's encryption sample): the original payload, protobuf-encoded, encrypted;
 * `data` = 12-byte IV ‖ ciphertext ‖ 16-byte tag, metadata `encoding: binary/encrypted` and
 * `encryption-key-id`. Several keys may be configured: the first encrypts, all decrypt, so a
 * key is rotated by prepending a new one and dropping the old once its histories expired.
 * A payload without the encrypted encoding passes through untouched: histories recorded
 * before the codec still replay and still read.
 *
 * Not encrypted (Temporal keeps them in clear by design): search attributes (model, host,
 * request kind — no prompt text) and failure messages (which never quote a prompt).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';

// @temporalio/proto is CommonJS: its namespace comes through the default export.
const PayloadMessage = proto.temporal.api.common.v1.Payload;

export const ENCRYPTED_ENCODING = 'binary/encrypted';
const KEY_ID_METADATA = 'encryption-key-id';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface PayloadKey {
  id: string;
  /** 32 bytes (AES-256). */
  key: Buffer;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export class PayloadCodecError extends Error {
  override name = 'PayloadCodecError';
}

export class AesGcmPayloadCodec implements PayloadCodec {
  private readonly byId: Map<string, Buffer>;

  /** `keys[0]` encrypts; every key decrypts. */
  constructor(private readonly keys: readonly PayloadKey[]) {
    if (keys.length === 0) throw new PayloadCodecError('the payload codec needs at least one key');
    for (const k of keys) if (k.key.length !== 32) throw new PayloadCodecError(`payload key ${k.id} is not 32 bytes`);
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  /** The id of the key new payloads are encrypted with. */
  get currentKeyId(): string {
    return this.keys[0]!.id;
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const { id, key } = this.keys[0]!;
    return payloads.map((p) => {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const plain = PayloadMessage.encode(p).finish();
      const data = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return { metadata: { encoding: enc.encode(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: enc.encode(id) }, data };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      const encoding = p.metadata?.encoding;
      if (!encoding || dec.decode(encoding) !== ENCRYPTED_ENCODING) return p;
      const idBytes = p.metadata?.[KEY_ID_METADATA];
      const id = idBytes ? dec.decode(idBytes) : '';
      const key = this.byId.get(id);
      if (!key) throw new PayloadCodecError(`payload encrypted with key '${id}', which is not configured (FLEET_PAYLOAD_KEYS)`);
      const data = Buffer.from(p.data ?? new Uint8Array());
      if (data.length < IV_BYTES + TAG_BYTES) throw new PayloadCodecError('encrypted payload is too short');
      const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      let plain: Buffer;
      try {
        plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
      } catch {
        throw new PayloadCodecError(`payload does not decrypt with key '${id}' (tampered, or another key of that id)`);
      }
      const out = PayloadMessage.decode(plain);
      return { metadata: out.metadata ?? {}, data: out.data ?? new Uint8Array() };
    });
  }
}

/**
 * Parses `id:base64,id:base64,…` (FLEET_PAYLOAD_KEYS, or the key file): ids of letters, digits,
 * `_ . -`; each key 32 bytes of base64. Throws naming the entry, never printing a key.
 */
export function parsePayloadKeys(spec: string): PayloadKey[] {
  const keys: PayloadKey[] = [];
  const seen = new Set<string>();
  for (const [i, raw] of spec.split(/[,\n]/).map((e) => e.trim()).filter(Boolean).entries()) {
    const at = raw.indexOf(':');
    const id = at > 0 ? raw.slice(0, at) : '';
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(id)) throw new PayloadCodecError(`entry ${i + 1}: expected <id>:<base64 key> with an id of letters, digits, _ . -`);
    const b64 = raw.slice(at + 1);
    const key = Buffer.from(b64, 'base64');
    if (key.length !== 32 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new PayloadCodecError(`key '${id}': expected 32 bytes of base64 (openssl rand -base64 32)`);
    if (seen.has(id)) throw new PayloadCodecError(`key id '${id}' appears twice`);
    seen.add(id);
    keys.push({ id, key });
  }
  if (keys.length === 0) throw new PayloadCodecError('no keys given');
  return keys;
}

/** A fresh key entry (what `fleet dev` writes to its data folder on first start). */
export function newPayloadKeyEntry(id = `k${new Date().toISOString().slice(0, 10).replaceAll('-', '')}`): string {
  return `${id}:${randomBytes(32).toString('base64')}`;
}
