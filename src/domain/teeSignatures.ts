/**
 * Response signatures in the attested-provider format, one verifier for providers and our own
 * hosts: the signed text is `<model>:<sha256 hex of the request body>:<sha256 hex of the
 * response body>`; `ed25519` signs its UTF-8 bytes (hex signature, `signing_address` = hex
 * public key); `ecdsa` is an Ethereum personal_sign (EIP-191) over it on secp256k1 (65-byte
 * r‖s‖v hex, `signing_address` = 0x-prefixed Ethereum address). Pure-JS crypto, no I/O.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { bytesToHex, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import { strip0x, type SigningAlgo } from './attestedProvider.js';
import { keyFingerprint } from './attestation.js';

export const sha256Hex = (text: string | Uint8Array): string => bytesToHex(sha256(typeof text === 'string' ? utf8ToBytes(text) : text));

/** The text a response signature covers. */
export function signedText(o: { model: string; requestBody: string | Uint8Array; responseBody: string | Uint8Array }): string {
  return signedTextOfHashes({ model: o.model, requestSha256: sha256Hex(o.requestBody), responseSha256: sha256Hex(o.responseBody) });
}

export function signedTextOfHashes(o: { model: string; requestSha256: string; responseSha256: string }): string {
  return `${o.model}:${o.requestSha256}:${o.responseSha256}`;
}

const SIGNED_TEXT = /^(.+):([0-9a-f]{64}):([0-9a-f]{64})$/;

/** The parts of a signed text (the model may itself contain colons), or null when it has another shape. */
export function parseSignedText(text: string): { model: string; requestSha256: string; responseSha256: string } | null {
  const m = SIGNED_TEXT.exec(text);
  return m ? { model: m[1]!, requestSha256: m[2]!, responseSha256: m[3]! } : null;
}

export interface TeeSignature {
  text: string;
  signature: string;
  signing_address: string;
  signing_algo: SigningAlgo;
}

function eip191Hash(text: string): Uint8Array {
  const msg = utf8ToBytes(text);
  const prefix = utf8ToBytes(`\x19Ethereum Signed Message:\n${msg.length}`);
  const all = new Uint8Array(prefix.length + msg.length);
  all.set(prefix);
  all.set(msg, prefix.length);
  return keccak_256(all);
}

/** The Ethereum address of an uncompressed secp256k1 public key (65 bytes, 0x04 ‖ x ‖ y). */
function ethAddress(uncompressed: Uint8Array): string {
  return `0x${bytesToHex(keccak_256(uncompressed.subarray(1)).subarray(12))}`;
}

/** The signing address a key presents: hex Ed25519 public key, or the Ethereum address. */
export function signingAddressOf(algo: SigningAlgo, secretKey: Uint8Array): string {
  if (algo === 'ed25519') return bytesToHex(ed25519.getPublicKey(secretKey));
  return ethAddress(secp256k1.getPublicKey(secretKey, false));
}

export function signTeeText(algo: SigningAlgo, text: string, secretKey: Uint8Array): TeeSignature {
  if (algo === 'ed25519') {
    return { text, signature: bytesToHex(ed25519.sign(utf8ToBytes(text), secretKey)), signing_address: signingAddressOf(algo, secretKey), signing_algo: algo };
  }
  const sig = secp256k1.Signature.fromBytes(secp256k1.sign(eip191Hash(text), secretKey, { prehash: false, format: 'recovered' }), 'recovered');
  const rsv = new Uint8Array(65);
  rsv.set(sig.toBytes('compact'));
  rsv[64] = 27 + (sig.recovery ?? 0);
  return { text, signature: `0x${bytesToHex(rsv)}`, signing_address: signingAddressOf(algo, secretKey), signing_algo: algo };
}

/** True when `signature` over `text` was made by the key behind `signingAddress`. */
export function verifyTeeSignature(s: { text: string; signature: string; signingAddress: string; algo: SigningAlgo }): boolean {
  try {
    const sig = hexToBytes(strip0x(s.signature));
    if (s.algo === 'ed25519') {
      const pub = hexToBytes(strip0x(s.signingAddress));
      return pub.length === 32 && sig.length === 64 && ed25519.verify(sig, utf8ToBytes(s.text), pub, { zip215: false });
    }
    if (sig.length !== 65) return false;
    const v = sig[64]!;
    const recovery = v >= 27 ? v - 27 : v;
    if (recovery !== 0 && recovery !== 1) return false;
    const point = secp256k1.Signature.fromBytes(sig.subarray(0, 64), 'compact').addRecoveryBit(recovery).recoverPublicKey(eip191Hash(s.text));
    return ethAddress(point.toBytes(false)) === s.signingAddress.toLowerCase();
  } catch {
    return false;
  }
}

// ---- our own hosts ---------------------------------------------------------------------------

/**
 * A response signature of our own host: the same text format and Ed25519 signature as a
 * provider backend's, so one verifier checks both. `<model>` is the sha256 of the model build
 * that served, the request part the sha256 of the client's HTTP request body as the gateway
 * received it, and the response part the sha256 of the response text (the message content).
 */
export interface HostSignature {
  text: string;
  /** Hex Ed25519 signature over the text's UTF-8 bytes. */
  signature: string;
  /** Hex raw Ed25519 public key. */
  signingAddress: string;
  /** Hex sha256 of the raw public key: what the model's pin set holds. */
  fingerprint: string;
}

export function signHostResponse(o: { modelSha256: string; requestSha256: string; text: string }, secretKey: Uint8Array): HostSignature {
  const text = signedTextOfHashes({ model: o.modelSha256.toLowerCase(), requestSha256: o.requestSha256, responseSha256: sha256Hex(o.text) });
  const s = signTeeText('ed25519', text, secretKey);
  return { text, signature: s.signature, signingAddress: s.signing_address, fingerprint: keyFingerprint(hexToBytes(s.signing_address)) };
}

export type HostSignatureFailure = 'malformed' | 'bad_signature' | 'fingerprint_mismatch' | 'wrong_request' | 'wrong_model_hash' | 'wrong_response_hash' | 'unpinned_key';

export interface HostSignatureExpectation {
  /** The client's request body, byte for byte. */
  requestBody?: string | Uint8Array;
  /** The response text the client received. */
  text?: string;
  /** The catalog's build hash of the model. */
  modelSha256?: string;
  /** Fingerprints the client trusts (e.g. the model's pin set). */
  trustedFingerprints?: readonly string[];
}

/** Offline check of a host signature: shape, signature, fingerprint, then what the client knows. */
export function verifyHostSignature(
  s: HostSignature,
  expected: HostSignatureExpectation = {},
): { ok: true; fingerprint: string } | { ok: false; reason: HostSignatureFailure } {
  const strings = [s?.text, s?.signature, s?.signingAddress, s?.fingerprint];
  const parts = strings.every((v) => typeof v === 'string') ? parseSignedText(s.text) : null;
  if (!parts || !/^[0-9a-f]{64}$/.test(s.signingAddress)) return { ok: false, reason: 'malformed' };
  if (!verifyTeeSignature({ text: s.text, signature: s.signature, signingAddress: s.signingAddress, algo: 'ed25519' })) return { ok: false, reason: 'bad_signature' };
  const fingerprint = keyFingerprint(hexToBytes(s.signingAddress));
  if (fingerprint !== s.fingerprint) return { ok: false, reason: 'fingerprint_mismatch' };
  if (expected.modelSha256 !== undefined && parts.model !== expected.modelSha256.toLowerCase()) return { ok: false, reason: 'wrong_model_hash' };
  if (expected.requestBody !== undefined && parts.requestSha256 !== sha256Hex(expected.requestBody)) return { ok: false, reason: 'wrong_request' };
  if (expected.text !== undefined && parts.responseSha256 !== sha256Hex(expected.text)) return { ok: false, reason: 'wrong_response_hash' };
  if (expected.trustedFingerprints && !expected.trustedFingerprints.includes(fingerprint)) return { ok: false, reason: 'unpinned_key' };
  return { ok: true, fingerprint };
}
