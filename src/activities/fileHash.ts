/**
 * sha256 of model files, streamed (GGUF files are gigabytes) and cached by path, size and
 * mtime so a reload or an attestation does not hash the same bytes twice.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';

const cache = new Map<string, { key: string; sha256: string }>();

export async function sha256File(
  file: string,
  onProgress?: (fraction: number) => void,
): Promise<{ sha256: string; sizeBytes: number }> {
  const st = await stat(file);
  if (!st.isFile()) throw new Error('not a regular file');
  const key = `${st.size}:${st.mtimeMs}`;
  const hit = cache.get(file);
  if (hit?.key === key) return { sha256: hit.sha256, sizeBytes: st.size };
  const hash = createHash('sha256');
  let read = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * 1024 * 1024 })) {
    hash.update(chunk as Buffer);
    read += (chunk as Buffer).length;
    onProgress?.(st.size ? read / st.size : 1);
  }
  const sha256 = hash.digest('hex');
  cache.set(file, { key, sha256 });
  return { sha256, sizeBytes: st.size };
}
