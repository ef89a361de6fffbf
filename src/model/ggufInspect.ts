/**
 * Reads a model file's GGUF header and tensor index (never its weights) with node-llama-cpp's
 * reader and judges it with the pure rules of src/domain/ggufCheck.ts. The registration route
 * and the host's load both call it, so a file that would abort llama.cpp is refused by name
 * before any host touches it, and a file that changed on disk since is refused on the host.
 *
 * The file is stat()ed before it is opened: a FIFO would block the open forever, a device or
 * a directory is no model, and each gets its own message.
 */
import { stat } from 'node:fs/promises';
import { readGgufFileInfo } from 'node-llama-cpp';
import { checkGguf, type GgufFacts } from '../domain/ggufCheck.js';

export interface ModelFileFacts {
  architecture: string;
  /** The context the model was trained with (`<arch>.context_length`), when declared. */
  trainedContextLength: number | undefined;
  sizeBytes: number;
}

export type InspectOutcome = { ok: true; facts: ModelFileFacts } | { ok: false; problem: string };

function kindOf(st: Awaited<ReturnType<typeof stat>>): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** `a.b.c` keys from node-llama-cpp's nested metadata object (arrays are values). */
export function flattenMetadata(obj: unknown, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    if (prefix) out[prefix] = obj;
    return out;
  }
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) flattenMetadata(v, prefix ? `${prefix}.${k}` : k, out);
  return out;
}

const toNumber = (v: number | bigint): number => (typeof v === 'bigint' ? Number(v) : v);

export async function inspectModelFile(file: string): Promise<InspectOutcome> {
  let st;
  try {
    st = await stat(file);
  } catch (err) {
    return { ok: false, problem: `the model file cannot be opened (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  if (!st.isFile()) return { ok: false, problem: `the path is ${kindOf(st)}, not a model file` };
  if (st.size < 4) return { ok: false, problem: 'the file is empty or too short to be a GGUF model' };
  let info;
  try {
    info = await readGgufFileInfo(file, { sourceType: 'filesystem', readTensorInfo: true, logWarnings: false, spliceSplitFiles: false });
  } catch (err) {
    const why = (err as Error).message.split('\n')[0]!.slice(0, 200);
    return { ok: false, problem: `the file is not a readable GGUF model (${why})` };
  }
  const metadata = flattenMetadata(info.metadata);
  const facts: GgufFacts = {
    version: info.version,
    fileSize: st.size,
    metadata,
    tensorCount: toNumber(info.tensorCount),
    tensors: (info.tensorInfo ?? []).map((t) => ({
      name: t.name,
      dims: t.dimensions.map(toNumber),
      ggmlType: t.ggmlType,
      fileOffset: toNumber(t.fileOffset),
    })),
  };
  const problems = checkGguf(facts);
  if (problems.length > 0) return { ok: false, problem: problems.join('; ') };
  const arch = metadata['general.architecture'] as string;
  const ctx = metadata[`${arch}.context_length`];
  return {
    ok: true,
    facts: { architecture: arch, trainedContextLength: typeof ctx === 'number' && ctx > 0 ? ctx : undefined, sizeBytes: st.size },
  };
}
