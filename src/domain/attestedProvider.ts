/**
 * The attested-provider protocol, as pure functions: how an inference URL splits into the
 * canonical label and the proxy's base, the rotation host that reaches backend N, the count
 * URL, which backend indices a capped cycle covers, and what a report's `report_data` must
 * hold. Mirrors the model-proxy protocol of the gateway this project is modelled on; every
 * I/O step (TLS, HTTP, quote verification) lives in src/providers/attested*.ts.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import type { HostAttestation } from './pinSet.js';

export interface InferenceUrlParts {
  /** Lower-cased host of the inference URL (`glm-5-1.completions.example.com`). */
  host: string;
  /** Its leftmost label (`glm-5-1`). */
  canonicalLabel: string;
  /** The rest (`completions.example.com`), itself with a dot. */
  base: string;
  scheme: 'https:' | 'http:';
  /** A non-default port, kept on every derived URL. */
  port: string;
  /** The URL's path without a trailing slash (`/v1`). */
  path: string;
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** Splits an inference URL; a reason (`url_parse: …`) when its host cannot rotate. */
export function splitInferenceUrl(url: string): { ok: true; parts: InferenceUrlParts } | { ok: false; reason: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { ok: false, reason: 'url_parse: not a URL' };
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return { ok: false, reason: 'url_parse: not an http(s) URL' };
  const host = u.hostname.toLowerCase();
  if (host.startsWith('[') || IPV4.test(host)) return { ok: false, reason: 'url_parse: an IP literal cannot rotate' };
  const dot = host.indexOf('.');
  if (dot <= 0) return { ok: false, reason: 'url_parse: a one-label host cannot rotate' };
  const canonicalLabel = host.slice(0, dot);
  const base = host.slice(dot + 1);
  if (!base.includes('.') || base.startsWith('.') || base.endsWith('.')) return { ok: false, reason: 'url_parse: the base must have a dot' };
  return { ok: true, parts: { host, canonicalLabel, base, scheme: u.protocol, port: u.port, path: u.pathname.replace(/\/+$/, '') } };
}

const authority = (p: InferenceUrlParts, host: string) => `${p.scheme}//${host}${p.port ? `:${p.port}` : ''}`;

/** The rotation host of backend `index`: `<canonical>-i<N>.<base>` (SNI and Host). */
export function rotationHost(p: InferenceUrlParts, index: number): string {
  if (!Number.isInteger(index) || index < 0) throw new RangeError(`rotation index must be an integer ≥ 0, got ${index}`);
  return `${p.canonicalLabel}-i${index}.${p.base}`;
}

/** `https://<canonical>-i<N>.<base>[:port]` + the inference path. */
export function rotationBaseUrl(p: InferenceUrlParts, index: number): string {
  return `${authority(p, rotationHost(p, index))}${p.path}`;
}

/** `https://<base>[:port]/backends/count?domain=<host>`. */
export function countUrl(p: InferenceUrlParts): string {
  return `${authority(p, p.base)}/backends/count?domain=${encodeURIComponent(p.host)}`;
}

/** The attestation call of one index (the query carries the nonce: never log it). */
export function attestationPath(o: { slug: string; nonce: string; algo: SigningAlgo }): string {
  const q = new URLSearchParams({ model: o.slug, nonce: o.nonce, signing_algo: o.algo, include_tls_fingerprint: 'true' });
  return `/v1/attestation/report?${q}`;
}

export type SigningAlgo = 'ed25519' | 'ecdsa';

export interface AttestationCall {
  index: number;
  algo: SigningAlgo;
}

/**
 * Which calls a cycle makes: every index when the count fits the cap; when capped, a window
 * of `cap` consecutive indices starting where the previous cycle stopped (`cycleSeq · cap`),
 * so over ⌈count / cap⌉ cycles every backend is attested. With one backend, one call per
 * signing algorithm, so both of its keys are learned.
 */
export function planAttestationCalls(o: { count: number; cap: number; cycleSeq: number }): AttestationCall[] {
  const { count, cap } = o;
  if (!Number.isInteger(count) || count <= 0) return [];
  if (!Number.isInteger(cap) || cap < 1) throw new RangeError(`cap must be an integer ≥ 1, got ${cap}`);
  if (count === 1) return [{ index: 0, algo: 'ed25519' }, { index: 0, algo: 'ecdsa' }];
  const n = Math.min(count, cap);
  const start = count > cap ? (Math.max(0, Math.trunc(o.cycleSeq)) * cap) % count : 0;
  return Array.from({ length: n }, (_, i) => ({ index: (start + i) % count, algo: 'ed25519' as const }));
}

const HEX = /^(0x)?([0-9a-fA-F]{2})+$/;
/** Hex as the protocol writes it, with or without `0x`. */
export const strip0x = (s: string): string => (/^0x/i.test(s) ? s.slice(2) : s);

/** `SHA256(hex-decoded signing_address ‖ hex-decoded tls_cert_fingerprint)`, hex. */
export function reportDataHead(signingAddress: string, tlsFingerprint: string): string {
  const addr = hexToBytes(strip0x(signingAddress));
  const fp = hexToBytes(strip0x(tlsFingerprint));
  const joined = new Uint8Array(addr.length + fp.length);
  joined.set(addr);
  joined.set(fp, addr.length);
  return bytesToHex(sha256(joined));
}

export interface BindingInput {
  /** The 64 bytes the quote attests. */
  reportData: Uint8Array;
  signingAddress: string;
  /** The report's `tls_cert_fingerprint` (required: there is no fallback without it). */
  reportedFingerprint: string | undefined;
  /** SHA-256 of the SPKI of the certificate presented on the connection that answered. */
  presentedFingerprint: string;
  /** The 64-hex nonce this caller sent. */
  nonce: string;
}

/** Null when the report is bound to this nonce, this key and this TLS endpoint; else why not. */
export function checkReportBinding(b: BindingInput): string | null {
  if (b.reportData.length !== 64) return 'verify: report_data is not 64 bytes';
  if (!/^[0-9a-f]{64}$/.test(b.nonce)) return 'verify: the nonce is not 32 bytes of hex';
  if (bytesToHex(b.reportData.subarray(32)) !== b.nonce) return 'verify: nonce mismatch';
  if (!HEX.test(b.signingAddress)) return 'verify: signing_address is not hex';
  if (b.reportedFingerprint === undefined || b.reportedFingerprint === '') return 'verify: no tls_cert_fingerprint';
  if (!/^(0x)?[0-9a-fA-F]{64}$/.test(b.reportedFingerprint)) return 'verify: tls_cert_fingerprint is not a sha256';
  if (bytesToHex(b.reportData.subarray(0, 32)) !== reportDataHead(b.signingAddress, b.reportedFingerprint)) {
    return 'verify: report_data does not bind the signing key and TLS fingerprint';
  }
  if (strip0x(b.reportedFingerprint).toLowerCase() !== b.presentedFingerprint.toLowerCase()) {
    return 'verify: the presented certificate is not the attested one';
  }
  return null;
}

/** One attestation call's result (src/providers/attestedDiscovery.ts). */
export type IndexAttestation =
  | { index: number; algo: SigningAlgo; ok: true; verified: true; fingerprint: string; signingAddress: string; tcbStatus: string; nvidiaEvidence: boolean }
  | { index: number; algo: SigningAlgo; ok: true; verified: false; fingerprint: string; reason: string }
  | { index: number; algo: SigningAlgo; ok: false; reason: string };

/** The signing addresses a TLS fingerprint's reports vouched for. */
export type VouchedKeys = Partial<Record<SigningAlgo, string>>;

/**
 * Folds a cycle's calls into one result per backend index (hostId `i<N>`) for the pin-update
 * policy: an index is verified only when every call to it verified with the same fingerprint
 * (two algorithms on one backend must present one certificate); the keys each fingerprint
 * vouched for are collected for the pin set.
 */
export function foldIndexResults(results: readonly IndexAttestation[]): {
  attestations: HostAttestation[];
  keys: Record<string, VouchedKeys>;
} {
  const byIndex = new Map<number, IndexAttestation[]>();
  for (const r of results) byIndex.set(r.index, [...(byIndex.get(r.index) ?? []), r]);
  const attestations: HostAttestation[] = [];
  const keys: Record<string, VouchedKeys> = {};
  for (const [index, calls] of [...byIndex.entries()].sort((a, b) => a[0] - b[0])) {
    const hostId = `i${index}`;
    const failed = calls.find((c) => !c.ok);
    if (failed && !failed.ok) {
      attestations.push({ hostId, ok: false, error: `${failed.algo}: ${failed.reason}` });
      continue;
    }
    const refused = calls.find((c) => c.ok && !c.verified);
    if (refused && refused.ok && !refused.verified) {
      attestations.push({ hostId, ok: true, verified: false, fingerprint: refused.fingerprint, reason: refused.reason });
      continue;
    }
    const fps = new Set(calls.map((c) => (c.ok ? c.fingerprint : '')));
    const fingerprint = calls[0]!.ok ? calls[0]!.fingerprint : '';
    if (fps.size !== 1) {
      attestations.push({ hostId, ok: true, verified: false, fingerprint, reason: 'verify: the backend presented two certificates in one cycle' });
      continue;
    }
    attestations.push({ hostId, ok: true, fingerprint, verified: true });
    for (const c of calls) if (c.ok && c.verified) keys[fingerprint] = { ...keys[fingerprint], [c.algo]: c.signingAddress };
  }
  return { attestations, keys };
}

/** The keys kept for a new pin set: this cycle's word for a fingerprint, else what was known. */
export function keysForPins(fingerprints: readonly string[], before: Readonly<Record<string, VouchedKeys>>, observed: Readonly<Record<string, VouchedKeys>>): Record<string, VouchedKeys> {
  const out: Record<string, VouchedKeys> = {};
  for (const fp of fingerprints) out[fp] = { ...before[fp], ...observed[fp] };
  return out;
}
