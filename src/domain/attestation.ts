/**
 * Host attestation reports and their verification. Each host has an Ed25519 identity key; a
 * report binds the key's fingerprint, the host id, the sha256 of every model build it serves,
 * its software version and the caller's nonce, signed over a canonical encoding. The verifier
 * sits behind `AttestationVerifier` so a hardware-TEE verifier (a quote instead of a bare key)
 * can be added without touching the pin-set policy that consumes its verdicts.
 *
 * Sandbox-safe: pure-JS crypto (@noble/curves, @noble/hashes), no Node built-ins, no clock; key
 * generation is the caller's job (it needs randomness), so signing takes the key as an argument.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';

export interface ModelBuildHash {
  modelId: string;
  /** Hex sha256 of the model file. */
  sha256: string;
}

export interface AttestationReport {
  hostId: string;
  /** Hex sha256 of the raw public key. */
  keyFingerprint: string;
  /** Base64 of the raw 32-byte Ed25519 public key. */
  publicKey: string;
  models: ModelBuildHash[];
  softwareVersion: string;
  /** The caller's challenge, echoed. */
  nonce: string;
  /** Base64 Ed25519 signature over `encodeSignedFields(report)`. */
  signature: string;
}

/** Every field the signature covers. */
export type SignedFields = Omit<AttestationReport, 'signature'>;
/** What a host states; its key supplies `publicKey` and `keyFingerprint`. */
export type ReportClaims = Omit<SignedFields, 'publicKey' | 'keyFingerprint'>;

export interface ExpectedAttestation {
  /** The nonce this caller sent. */
  nonce: string;
  /** The host the caller dialled. */
  hostId: string;
  /** Catalog hashes (modelId → sha256) the host must report, each with the same hash. */
  models: Readonly<Record<string, string>>;
}

export const VerifyFailure = {
  badSignature: 'bad_signature',
  wrongNonce: 'wrong_nonce',
  wrongHost: 'wrong_host',
  wrongModelHash: 'wrong_model_hash',
  fingerprintMismatch: 'fingerprint_mismatch',
  malformed: 'malformed',
} as const;
export type VerifyFailure = (typeof VerifyFailure)[keyof typeof VerifyFailure];

export type VerifyResult = { ok: true; fingerprint: string } | { ok: false; reason: VerifyFailure };

/** The port: Ed25519 today, a hardware TEE quote verifier later. */
export interface AttestationVerifier {
  verify(report: AttestationReport, expected: ExpectedAttestation): VerifyResult;
}

const PUBLIC_KEY_BYTES = 32;
const SIGNATURE_BYTES = 64;
const SHA256_HEX = /^[0-9a-f]{64}$/;

// ---- encoding ------------------------------------------------------------------------------

/** Deterministic JSON: object keys sorted by code unit, arrays in order, no whitespace. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('canonicalJson: non-finite number');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  throw new TypeError(`canonicalJson: unsupported ${typeof value}`);
}

/**
 * The bytes the signature covers: canonical JSON (UTF-8) of exactly the signed fields, picked
 * by name so an extra property on the wire can neither break nor extend what was signed.
 */
export function encodeSignedFields(f: SignedFields): Uint8Array {
  return utf8ToBytes(
    canonicalJson({
      hostId: f.hostId,
      keyFingerprint: f.keyFingerprint,
      publicKey: f.publicKey,
      models: f.models.map((m) => ({ modelId: m.modelId, sha256: m.sha256 })),
      softwareVersion: f.softwareVersion,
      nonce: f.nonce,
    }),
  );
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Map([...B64].map((c, i) => [c, i]));

/** Standard base64 with padding (no Buffer: this module is sandbox-safe). */
export function toBase64(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const b0 = bytes[i] ?? 0;
    const b1 = bytes[i + 1] ?? 0;
    const b2 = bytes[i + 2] ?? 0;
    const n = (b0 << 16) | (b1 << 8) | b2;
    out += B64[(n >> 18) & 63]! + B64[(n >> 12) & 63]!;
    out += i + 1 < bytes.length ? B64[(n >> 6) & 63]! : '=';
    out += i + 2 < bytes.length ? B64[n & 63]! : '=';
  }
  return out;
}

/** Strict standard base64 (padded, canonical trailing bits); null when malformed. */
export function fromBase64(s: string): Uint8Array | null {
  if (typeof s !== 'string' || s.length % 4 !== 0) return null;
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  const body = s.slice(0, s.length - pad);
  const out = new Uint8Array((body.length * 3) >> 2);
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (const c of body) {
    const v = B64_INDEX.get(c);
    if (v === undefined) return null;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
      acc &= (1 << bits) - 1; // keep only the bits not yet emitted
    }
  }
  if ((acc & ((1 << bits) - 1)) !== 0) return null; // non-zero padding bits: not canonical
  return out;
}

// ---- keys and signing ----------------------------------------------------------------------

/** Hex sha256 of the raw public key. */
export function keyFingerprint(publicKey: Uint8Array): string {
  return bytesToHex(sha256(publicKey));
}

/** The raw public key of a 32-byte Ed25519 secret key. */
export function publicKeyOf(privateKey: Uint8Array): Uint8Array {
  return ed25519.getPublicKey(privateKey);
}

/** A host signs its claims with its identity key; the key's public half and fingerprint are filled in. */
export function signReport(fields: ReportClaims, privateKey: Uint8Array): AttestationReport {
  const publicKey = publicKeyOf(privateKey);
  const signed: SignedFields = {
    hostId: fields.hostId,
    keyFingerprint: keyFingerprint(publicKey),
    publicKey: toBase64(publicKey),
    models: fields.models.map((m) => ({ modelId: m.modelId, sha256: m.sha256 })),
    softwareVersion: fields.softwareVersion,
    nonce: fields.nonce,
  };
  return { ...signed, signature: toBase64(ed25519.sign(encodeSignedFields(signed), privateKey)) };
}

// ---- verification --------------------------------------------------------------------------

const isString = (v: unknown): v is string => typeof v === 'string';

/** Shape check of a report that came over the wire; the type is only a promise. */
function wellFormed(r: AttestationReport): boolean {
  if (typeof r !== 'object' || r === null) return false;
  const strings = [r.hostId, r.keyFingerprint, r.publicKey, r.softwareVersion, r.nonce, r.signature];
  if (!strings.every(isString) || !Array.isArray(r.models)) return false;
  const seen = new Set<string>();
  for (const m of r.models as unknown[]) {
    if (typeof m !== 'object' || m === null) return false;
    const { modelId, sha256: hash } = m as Record<string, unknown>;
    if (!isString(modelId) || !isString(hash) || seen.has(modelId)) return false; // one hash per model
    seen.add(modelId);
  }
  return SHA256_HEX.test(r.keyFingerprint);
}

/**
 * Order of checks: shape, then the signature (nothing in an unauthenticated report is worth
 * comparing), then the key's fingerprint, then what the caller expects.
 */
export const ed25519Verifier: AttestationVerifier = {
  verify(report, expected) {
    if (!wellFormed(report)) return { ok: false, reason: 'malformed' };
    const publicKey = fromBase64(report.publicKey);
    const signature = fromBase64(report.signature);
    if (publicKey?.length !== PUBLIC_KEY_BYTES || signature?.length !== SIGNATURE_BYTES) return { ok: false, reason: 'malformed' };

    let valid: boolean;
    try {
      // RFC 8032 strict (not ZIP-215): one valid encoding per signature.
      valid = ed25519.verify(signature, encodeSignedFields(report), publicKey, { zip215: false });
    } catch {
      valid = false; // e.g. a public key that is not a curve point
    }
    if (!valid) return { ok: false, reason: 'bad_signature' };

    const fingerprint = keyFingerprint(publicKey);
    if (fingerprint !== report.keyFingerprint) return { ok: false, reason: 'fingerprint_mismatch' };
    if (report.hostId !== expected.hostId) return { ok: false, reason: 'wrong_host' };
    if (report.nonce !== expected.nonce) return { ok: false, reason: 'wrong_nonce' };
    const reported = new Map(report.models.map((m) => [m.modelId, m.sha256.toLowerCase()]));
    for (const [modelId, hash] of Object.entries(expected.models)) {
      if (reported.get(modelId) !== hash.toLowerCase()) return { ok: false, reason: 'wrong_model_hash' };
    }
    return { ok: true, fingerprint };
  },
};
