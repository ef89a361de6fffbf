/**
 * A throwaway certificate authority for tests that need real TLS: a self-signed ECDSA P-256 CA
 * and leaf certificates it issues (each with its own fresh key pair) for the DNS names a test
 * server answers to. Clients trust `caPem`; servers get PEM key + certificate for
 * `tls.createSecureContext`. `spkiFingerprint` is the hash an attested provider reports as
 * `tls_cert_fingerprint`, computed exactly the way a client computes it from the peer
 * certificate of a live connection, so the two can be compared byte for byte.
 */
import { X509Certificate, createHash, webcrypto } from 'node:crypto';
import type * as X509 from '@peculiar/x509';

export interface IssuedCert {
  certPem: string;
  keyPem: string;
  /** Lowercase hex SHA-256 of the certificate's DER SubjectPublicKeyInfo. */
  fingerprint: string;
}

export interface TestCa {
  caPem: string;
  /** A leaf certificate for `dnsNames` (the first is also the CN), with a key pair of its own. */
  issue(dnsNames: string[]): Promise<IssuedCert>;
}

/** SHA-256 of the DER SPKI, as `getPeerX509Certificate().publicKey.export({type:'spki',format:'der'})` yields it. */
export function spkiFingerprint(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('hex');
}

/**
 * @peculiar/x509 resolves its algorithm providers through tsyringe, which refuses to load unless
 * the Reflect metadata API exists, and the repo has no `reflect-metadata`. x509 never emits
 * `design:*` metadata (its injectables take no constructor arguments), so a tiny per-target
 * store is all tsyringe needs. Installed only when absent, so a real polyfill wins.
 */
function ensureReflectMetadata(): void {
  const r = Reflect as unknown as Record<string, unknown>;
  if (typeof r.getMetadata === 'function') return;
  const store = new WeakMap<object, Map<string, unknown>>();
  const slot = (key: unknown, prop: unknown) => `${String(prop)}\u0000${String(key)}`;
  const own = (target: object) => store.get(target) ?? store.set(target, new Map()).get(target)!;
  const getOwnMetadata = (key: unknown, target: object, prop?: unknown) => store.get(target)?.get(slot(key, prop));
  const getMetadata = (key: unknown, target: object, prop?: unknown): unknown => {
    for (let t: object | null = target; t; t = Object.getPrototypeOf(t) as object | null) {
      const found = store.get(t);
      if (found?.has(slot(key, prop))) return found.get(slot(key, prop));
    }
    return undefined;
  };
  const defineMetadata = (key: unknown, value: unknown, target: object, prop?: unknown) => void own(target).set(slot(key, prop), value);
  Object.assign(r, {
    getOwnMetadata,
    getMetadata,
    defineMetadata,
    hasOwnMetadata: (key: unknown, target: object, prop?: unknown) => store.get(target)?.has(slot(key, prop)) ?? false,
    hasMetadata: (key: unknown, target: object, prop?: unknown) => getMetadata(key, target, prop) !== undefined,
    metadata: (key: unknown, value: unknown) => (target: object, prop?: unknown) => defineMetadata(key, value, target, prop),
  });
}

let loaded: Promise<typeof X509> | undefined;
/** Loads x509 after the shim (a static import would run tsyringe's check first). */
function x509(): Promise<typeof X509> {
  loaded ??= (async () => {
    ensureReflectMetadata();
    const mod = await import('@peculiar/x509');
    mod.cryptoProvider.set(webcrypto);
    return mod;
  })();
  return loaded;
}

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

function keyPair(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
}

async function pkcs8Pem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN PRIVATE KEY-----\n${lines.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

export async function createTestCa(commonName = 'model-proxy test CA'): Promise<TestCa> {
  const x = await x509();
  const caKeys = await keyPair();
  // Back-date notBefore: a client clock a little behind ours must not see "not yet valid".
  const notBefore = new Date(Date.now() - DAY);
  const notAfter = new Date(Date.now() + 30 * DAY);
  const caName = `CN=${commonName}`;
  const ca = await x.X509CertificateGenerator.createSelfSigned({
    name: caName,
    keys: caKeys,
    notBefore,
    notAfter,
    signingAlgorithm: SIGN,
    extensions: [
      new x.BasicConstraintsExtension(true, 0, true),
      new x.KeyUsagesExtension(x.KeyUsageFlags.keyCertSign | x.KeyUsageFlags.cRLSign, true),
      await x.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  return {
    caPem: ca.toString('pem'),
    async issue(dnsNames) {
      const keys = await keyPair();
      const leaf = await x.X509CertificateGenerator.create({
        subject: `CN=${dnsNames[0] ?? 'localhost'}`,
        issuer: caName,
        publicKey: keys.publicKey,
        signingKey: caKeys.privateKey,
        notBefore,
        notAfter,
        signingAlgorithm: SIGN,
        extensions: [
          new x.BasicConstraintsExtension(false, undefined, true),
          new x.KeyUsagesExtension(x.KeyUsageFlags.digitalSignature, true),
          new x.ExtendedKeyUsageExtension([x.ExtendedKeyUsage.serverAuth]),
          new x.SubjectAlternativeNameExtension(dnsNames.map((value) => ({ type: 'dns' as const, value }))),
          await x.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
        ],
      });
      const certPem = leaf.toString('pem');
      return { certPem, keyPem: await pkcs8Pem(keys.privateKey), fingerprint: spkiFingerprint(certPem) };
    },
  };
}
