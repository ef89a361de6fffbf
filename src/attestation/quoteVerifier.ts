/**
 * The port every attested-provider report goes through: a TEE quote in, the 64 bytes of
 * `report_data` it vouches for out (or why not). Production uses Intel DCAP on TDX quotes
 * (src/attestation/dcapVerifier.ts); tests use the "software TEE" below, which only a
 * deployment that opts in accepts. What the report data must contain (nonce, key and TLS
 * binding) is checked by the caller, src/domain/attestedProvider.ts — the same for both.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToHex, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js';

export const REPORT_DATA_BYTES = 64;

export type QuoteVerdict =
  | {
      ok: true;
      /** The 64 bytes of report_data the quote attests. */
      reportData: Uint8Array;
      /** DCAP's TCB status (`UpToDate`, …) or `software` for the test TEE. */
      tcbStatus: string;
      advisoryIds: string[];
    }
  | { ok: false; reason: string };

export interface QuoteVerifier {
  readonly kind: 'dcap' | 'software';
  /** Verifies a hex-encoded quote at `nowSeconds`; never throws on a bad quote. */
  verify(quoteHex: string, nowSeconds: number): Promise<QuoteVerdict>;
}

// ---- software TEE (tests and local development only) -----------------------------------------

/** Quote layout: MAGIC ‖ report_data (64) ‖ Ed25519 signature (64) over MAGIC ‖ report_data. */
const MAGIC = utf8ToBytes('FLEET-SOFTWARE-TEE-1');
const SIGNATURE_BYTES = 64;

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), (o += p.length));
  return out;
}

/** Mints a software-TEE quote over `reportData` with the TEE's 32-byte Ed25519 secret key. */
export function mintSoftwareQuote(reportData: Uint8Array, secretKey: Uint8Array): string {
  if (reportData.length !== REPORT_DATA_BYTES) throw new RangeError('report_data must be 64 bytes');
  const body = concat(MAGIC, reportData);
  return bytesToHex(concat(body, ed25519.sign(body, secretKey)));
}

/** The software TEE's public key (hex) for a secret key: what a deployment configures. */
export function softwareTeePublicKey(secretKey: Uint8Array): string {
  return bytesToHex(ed25519.getPublicKey(secretKey));
}

/** Accepts quotes signed by the configured software-TEE key. */
export function createSoftwareTeeVerifier(publicKeyHex: string): QuoteVerifier {
  const publicKey = hexToBytes(publicKeyHex);
  if (publicKey.length !== 32) throw new RangeError('the software TEE public key must be 32 bytes of hex');
  return {
    kind: 'software',
    async verify(quoteHex) {
      let bytes: Uint8Array;
      try {
        bytes = hexToBytes(quoteHex);
      } catch {
        return { ok: false, reason: 'quote is not hex' };
      }
      if (bytes.length !== MAGIC.length + REPORT_DATA_BYTES + SIGNATURE_BYTES) return { ok: false, reason: 'not a software TEE quote' };
      if (!MAGIC.every((b, i) => bytes[i] === b)) return { ok: false, reason: 'not a software TEE quote' };
      const body = bytes.subarray(0, MAGIC.length + REPORT_DATA_BYTES);
      const signature = bytes.subarray(MAGIC.length + REPORT_DATA_BYTES);
      let valid = false;
      try {
        valid = ed25519.verify(signature, body, publicKey, { zip215: false });
      } catch {
        valid = false;
      }
      if (!valid) return { ok: false, reason: 'software TEE signature invalid' };
      return { ok: true, reportData: body.slice(MAGIC.length), tcbStatus: 'software', advisoryIds: [] };
    },
  };
}

/** What the config module says about quote verification (src/config.ts). */
export type QuoteVerifierConfig =
  | { kind: 'dcap'; pccsUrl: string; allowedTcbStatuses: readonly string[] }
  | { kind: 'software'; publicKey: string };
