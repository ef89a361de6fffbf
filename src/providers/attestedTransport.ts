/**
 * TLS to an attested provider: a connector for undici that dials the provider's `resolve`
 * address (when configured) while SNI and Host still name the host, validates the chain
 * against the system roots plus the provider's CA file, and reads the SHA-256 of the peer's
 * SubjectPublicKeyInfo — the fingerprint an attestation report binds. With an `accept` check
 * (the pin set) a connection whose fingerprint is not pinned is closed before a byte of the
 * request is sent: it fails as `unpinned`, never downgrades.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { rootCertificates, type TLSSocket } from 'node:tls';
import { buildConnector } from 'undici';
import type { ProviderTransport } from './providerSpec.js';

/** Lower-case hex SHA-256 of the DER SubjectPublicKeyInfo of the certificate a socket presents. */
export function spkiFingerprint(socket: TLSSocket): string | null {
  const cert = socket.getPeerX509Certificate();
  if (!cert) return null;
  return createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}

/** A connection refused because the peer's key is not pinned (code `UND_FLEET_UNPINNED`). */
export class UnpinnedError extends Error {
  override name = 'UnpinnedError';
  readonly code = 'UND_FLEET_UNPINNED';
  constructor() {
    super('the provider presented a TLS key that is not pinned');
  }
}

/** The address `resolve` maps a host to (exact match first, then the longest `*.suffix`). */
export function resolvedAddress(resolve: Readonly<Record<string, string>>, host: string): string | undefined {
  const h = host.toLowerCase();
  if (resolve[h]) return resolve[h];
  let best: { len: number; address: string } | undefined;
  for (const [pattern, address] of Object.entries(resolve)) {
    if (!pattern.startsWith('*.')) continue;
    const suffix = pattern.slice(1); // ".proxy.test"
    if (h.endsWith(suffix) && h.length > suffix.length && (!best || suffix.length > best.len)) best = { len: suffix.length, address };
  }
  return best?.address;
}

const caCache = new Map<string, string[]>();

/** System roots plus the provider's CA file (read once per path; a bad file throws a clear error). */
export function trustedCas(caFile: string | null): string[] | undefined {
  if (!caFile) return undefined;
  let cas = caCache.get(caFile);
  if (!cas) {
    let pem: string;
    try {
      pem = readFileSync(caFile, 'utf8');
    } catch {
      throw new Error('the provider CA file cannot be read');
    }
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error('the provider CA file holds no PEM certificate');
    cas = [...rootCertificates, pem];
    caCache.set(caFile, cas);
  }
  return cas;
}

export interface ConnectorOptions {
  transport: ProviderTransport;
  connectMs: number;
  /** Called with the presented fingerprint; return false to refuse the connection (unpinned). */
  accept?: (fingerprint: string) => boolean;
  /** Told the fingerprint of every accepted connection (discovery records it). */
  onFingerprint?: (fingerprint: string) => void;
}

/** The connector of every provider pool: `resolve`, the CA file, and (attested) the pin check. */
export function providerConnector(o: ConnectorOptions): buildConnector.connector {
  const ca = trustedCas(o.transport.ca_file);
  // No TLS session resumption: a resumed session presents no certificate, so its key could not
  // be checked — every connection does a full handshake and shows the key it holds.
  const base = buildConnector({ timeout: o.connectMs, maxCachedSessions: 0, ...(ca ? { ca } : {}) });
  return (opts, callback) => {
    const address = resolvedAddress(o.transport.resolve, opts.hostname);
    const servername = isIP(opts.hostname) ? undefined : opts.hostname;
    base({ ...opts, hostname: address ?? opts.hostname, ...(servername ? { servername } : {}) }, (err, socket) => {
      if (err || !socket) return callback(err ?? new Error('no socket'), null);
      // Plain HTTP (a plaintext provider on a private network) has no key: fine unless pins are required.
      if (opts.protocol === 'http:' && !o.accept) return callback(null, socket);
      const fp = opts.protocol === 'https:' ? spkiFingerprint(socket as TLSSocket) : null;
      if (fp === null || (o.accept && !o.accept(fp))) {
        socket.destroy();
        return callback(new UnpinnedError(), null);
      }
      o.onFingerprint?.(fp);
      callback(null, socket);
    });
  };
}
