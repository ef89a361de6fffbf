/**
 * The model `fleet dev` serves out of the box: a tiny random-weight llama GGUF generated
 * locally (no download), made once and registered in the catalog under `tiny`.
 */
import { access } from 'node:fs/promises';
import path from 'node:path';
import type { Kysely } from 'kysely';
import { sha256File } from './activities/fileHash.js';
import { getModel, registerModel } from './db/modelsRepo.js';
import type { Database } from './db/schema.js';
import type { Logger } from './logger.js';
import { makeTinyModel, TINY_MODEL_SIZES } from './model/tinyModel.js';

export const DEV_MODEL_ID = 'tiny';

export async function ensureDevModel(db: Kysely<Database>, modelsDir: string, log: Logger): Promise<string> {
  const file = path.join(modelsDir, 'tiny-llama.gguf');
  const exists = await access(file).then(
    () => true,
    () => false,
  );
  if (!exists) {
    const made = await makeTinyModel({ file, seed: 1, size: 'tiny' });
    log.info({ file, bytes: made.bytes }, 'generated the tiny dev model');
  }
  const { sha256, sizeBytes } = await sha256File(file);
  const current = await getModel(db, DEV_MODEL_ID);
  if (!current || current.sha256 !== sha256 || current.path !== file) {
    await registerModel(db, {
      id: DEV_MODEL_ID,
      path: file,
      sha256,
      sizeBytes,
      contextLength: TINY_MODEL_SIZES.tiny.contextLength,
    });
    log.info({ model: DEV_MODEL_ID }, 'registered the tiny dev model');
  }
  return DEV_MODEL_ID;
}
