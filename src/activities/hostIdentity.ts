/**
 * A GPU host's Ed25519 identity key, kept in its state folder
 * (`<FLEET_DATA_DIR>/hosts/<hostId>/identity.key`, 32 raw bytes, mode 0600). Created on the
 * first start; `fleet host rotate-key` replaces it. The worker reads the file on every attest
 * (it is tiny), so a rotation takes effect on the next cycle without a restart.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { keyFingerprint, publicKeyOf } from '../domain/attestation.js';

export const IDENTITY_KEY_FILE = 'identity.key';
const KEY_BYTES = 32;

export function hostStateDir(dataDir: string, hostId: string): string {
  return path.join(dataDir, 'hosts', hostId);
}

export function identityKeyPath(dataDir: string, hostId: string): string {
  return path.join(hostStateDir(dataDir, hostId), IDENTITY_KEY_FILE);
}

/** Writes a fresh key atomically (temp file + rename), mode 0600; returns its fingerprint. */
export async function writeNewIdentityKey(file: string): Promise<string> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const key = randomBytes(KEY_BYTES);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, key, { mode: 0o600 });
  await rename(tmp, file);
  return keyFingerprint(publicKeyOf(key));
}

/** Reads the key; a missing file is created (first start). */
export async function loadOrCreateIdentityKey(file: string): Promise<Uint8Array> {
  try {
    const key = await readFile(file);
    if (key.length !== KEY_BYTES) throw new Error(`identity key ${file} is not ${KEY_BYTES} bytes`);
    return new Uint8Array(key);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await writeNewIdentityKey(file);
    return new Uint8Array(await readFile(file));
  }
}
