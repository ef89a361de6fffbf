/**
 * Which payload codec a process runs with (src/temporal/payloadCodec.ts): the keys of
 * FLEET_PAYLOAD_KEYS, else of FLEET_PAYLOAD_KEYS_FILE, else — for `fleet dev`, which owns its
 * data folder — a key generated once into `<dataDir>/payload-keys` (mode 0600). A process
 * without keys runs in clear and says so: every process of one deployment must hold the same
 * keys, or workers cannot read what the API wrote.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FleetConfig } from '../config.js';
import { ConfigError } from '../config.js';
import type { Logger } from '../logger.js';
import { AesGcmPayloadCodec, newPayloadKeyEntry, parsePayloadKeys, PayloadCodecError } from './payloadCodec.js';

export const DEV_KEY_FILE = 'payload-keys';

async function readKeyFile(file: string) {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`FLEET_PAYLOAD_KEYS_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    return parsePayloadKeys(text);
  } catch (err) {
    if (err instanceof PayloadCodecError) throw new ConfigError(`FLEET_PAYLOAD_KEYS_FILE (${file}): ${err.message}`);
    throw err;
  }
}

/** The codec for this process, or undefined (payloads in clear, with a warning). */
export async function payloadCodecFor(config: FleetConfig, o: { generate: boolean; log: Logger }): Promise<AesGcmPayloadCodec | undefined> {
  let keys = config.payloadKeys.keys;
  if (!keys && config.payloadKeys.file) keys = await readKeyFile(config.payloadKeys.file);
  if (!keys && o.generate) {
    const file = path.join(config.dataDir, DEV_KEY_FILE);
    try {
      keys = await readKeyFile(file);
    } catch {
      await mkdir(config.dataDir, { recursive: true });
      await writeFile(file, `${newPayloadKeyEntry()}\n`, { mode: 0o600, flag: 'wx' }).catch(() => undefined);
      keys = await readKeyFile(file);
      o.log.info({ file }, 'generated a payload encryption key');
    }
  }
  if (!keys) {
    o.log.warn('FLEET_PAYLOAD_KEYS is not set: prompts and completions are stored in clear in Temporal history');
    return undefined;
  }
  return new AesGcmPayloadCodec(keys);
}
