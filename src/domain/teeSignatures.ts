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

export const sha256Hex = (text: string | Uint8Array): string => bytesToHex(sha256(typeof text === 'string' ? utf8ToBytes(text) : text));

/** The text a response signature covers. */
export function signedText(o: { model: string; requestBody: string | Uint8Array; responseBody: string | Uint8Array }): string {
  return `${o.model}:${sha256Hex(o.requestBody)}:${sha256Hex(o.responseBody)}`;
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
