/**
 * Is a GGUF file safe to hand to llama.cpp? Decided from its header and tensor index alone
 * (no weights read), before any host loads it: at registration, and again on the host.
 *
 * Why: llama.cpp treats some malformed files as programming errors. A `llama` file without
 * `feed_forward_length` or `attention.head_count` reads those as 0, builds tensors with a zero
 * dimension and dies on `GGML_ASSERT(t_meta.ne[dim] >= 1)` — an abort, not an exception, so it
 * took down every GPU-host process that tried to load it. A truncated file fails cleanly, but
 * only after a host unloaded its model to make room. The checks below catch both kinds; the
 * host's probe load in a child process (src/activities/llama/probe.ts) catches what a header
 * check cannot (llama.cpp has many asserts; MoE parameters, for one, are not checked here).
 *
 * Pure: the caller reads the file (src/model/ggufInspect.ts) and passes what it found.
 */

export interface GgufTensorFacts {
  name: string;
  dims: readonly number[];
  ggmlType: number;
  /** Absolute offset of the tensor's data in the file. */
  fileOffset: number;
}

export interface GgufFacts {
  version: number;
  fileSize: number;
  /** Flattened metadata: `llama.attention.head_count` → value (arrays stay arrays). */
  metadata: Readonly<Record<string, unknown>>;
  tensors: readonly GgufTensorFacts[];
  /** Header count of tensors (what the index claims). */
  tensorCount: number;
}

/**
 * ggml types the size check knows: [elements per block, bytes per block] (ggml's type traits).
 * A type missing here (a newer quantisation) is not size-checked, only its offset is.
 */
export const GGML_TYPE_SIZES: Readonly<Record<number, readonly [number, number]>> = {
  0: [1, 4], // F32
  1: [1, 2], // F16
  2: [32, 18], // Q4_0
  3: [32, 20], // Q4_1
  6: [32, 22], // Q5_0
  7: [32, 24], // Q5_1
  8: [32, 34], // Q8_0
  9: [32, 36], // Q8_1
  10: [256, 84], // Q2_K
  11: [256, 110], // Q3_K
  12: [256, 144], // Q4_K
  13: [256, 176], // Q5_K
  14: [256, 210], // Q6_K
  15: [256, 292], // Q8_K
  16: [256, 66], // IQ2_XXS
  17: [256, 74], // IQ2_XS
  18: [256, 98], // IQ3_XXS
  19: [256, 50], // IQ1_S
  20: [32, 18], // IQ4_NL
  21: [256, 110], // IQ3_S
  22: [256, 82], // IQ2_S
  23: [256, 136], // IQ4_XS
  24: [1, 1], // I8
  25: [1, 2], // I16
  26: [1, 4], // I32
  27: [1, 8], // I64
  28: [1, 8], // F64
  29: [256, 56], // IQ1_M
  30: [1, 2], // BF16
  34: [256, 54], // TQ1_0
  35: [256, 66], // TQ2_0
  39: [32, 17], // MXFP4
};

/** ggml types that exist at all (removed ones — 4, 5, 31–33, 36–38 — are refused by llama.cpp too). */
const KNOWN_TYPES = new Set([...Object.keys(GGML_TYPE_SIZES).map(Number), 40, 41, 42]);

/** llama.cpp reads these for every architecture and cannot work without them. */
const UNIVERSAL_KEYS = ['context_length', 'embedding_length', 'block_count'] as const;

/**
 * Architectures with attention heads and a feed-forward block, where llama.cpp reads a missing
 * `feed_forward_length` / `attention.head_count` as 0 and aborts on the zero-sized tensors.
 */
const TRANSFORMER_ARCHS: ReadonlySet<string> = new Set([
  'llama', 'llama4', 'mistral3', 'qwen', 'qwen2', 'qwen2moe', 'qwen3', 'qwen3moe', 'gemma', 'gemma2', 'gemma3',
  'phi2', 'phi3', 'starcoder', 'starcoder2', 'falcon', 'gpt2', 'gptj', 'gptneox', 'bloom', 'mpt', 'refact',
  'stablelm', 'deepseek', 'deepseek2', 'command-r', 'cohere2', 'olmo', 'olmo2', 'granite', 'internlm2',
  'baichuan', 'orion', 'minicpm', 'exaone', 'bert', 'nomic-bert', 'jina-bert-v2', 'smollm3', 'glm4', 'chatglm',
]);
const TRANSFORMER_KEYS = ['feed_forward_length', 'attention.head_count'] as const;

/** Shape parameters that, when present, must be ≥ 1 (0 makes a zero-sized tensor). */
const POSITIVE_IF_PRESENT = [
  'feed_forward_length',
  'attention.head_count',
  'attention.head_count_kv',
  'attention.key_length',
  'attention.value_length',
  'expert_count',
] as const;

const MAX_DIMS = 4;
/** At most this many problems are reported: one is enough to refuse, a few help to fix. */
const MAX_PROBLEMS = 5;

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);

/** Problems that make the file unsafe to load, in plain words; empty when none were found. */
export function checkGguf(f: GgufFacts): string[] {
  const problems: string[] = [];
  const add = (p: string) => {
    if (problems.length < MAX_PROBLEMS) problems.push(p);
  };
  if (f.version !== 2 && f.version !== 3) add(`GGUF version ${f.version} is not supported (expected 2 or 3)`);
  const arch = f.metadata['general.architecture'];
  if (typeof arch !== 'string' || arch.length === 0) {
    add("the metadata has no 'general.architecture'");
    return problems;
  }
  checkHyperparameters(f, arch, add);
  checkVocabulary(f, arch, add);
  checkTensors(f, add);
  checkConsistency(f, arch, add);
  return problems;
}

function checkHyperparameters(f: GgufFacts, arch: string, add: (p: string) => void): void {
  const key = (k: string) => `${arch}.${k}`;
  const required = [...UNIVERSAL_KEYS, ...(TRANSFORMER_ARCHS.has(arch) ? TRANSFORMER_KEYS : [])];
  for (const k of required) {
    if (f.metadata[key(k)] === undefined) add(`the metadata lacks '${key(k)}', required for architecture '${arch}'`);
  }
  for (const k of [...UNIVERSAL_KEYS, ...POSITIVE_IF_PRESENT]) {
    const v = f.metadata[key(k)];
    if (v === undefined) continue;
    // Per-layer arrays (some architectures): a layer may have 0, but not every layer.
    if (Array.isArray(v)) {
      if (!v.every((x) => isCount(x) && x >= 0) || !v.some((x) => isCount(x) && x >= 1)) {
        add(`'${key(k)}' must list non-negative counts, at least one ≥ 1`);
      }
    } else if (!isCount(v) || v < 1) {
      add(`'${key(k)}' must be ≥ 1, got ${String(v)}`);
    }
  }
}

function checkVocabulary(f: GgufFacts, arch: string, add: (p: string) => void): void {
  const model = f.metadata['tokenizer.ggml.model'];
  if (!TRANSFORMER_ARCHS.has(arch) && model === undefined) return;
  if (typeof model !== 'string') {
    add("the metadata has no 'tokenizer.ggml.model'");
    return;
  }
  if (model === 'none') return;
  const tokens = f.metadata['tokenizer.ggml.tokens'];
  if (!Array.isArray(tokens) || tokens.length === 0) {
    add("the metadata has no 'tokenizer.ggml.tokens'");
    return;
  }
  for (const k of ['tokenizer.ggml.scores', 'tokenizer.ggml.token_type']) {
    const v = f.metadata[k];
    if (Array.isArray(v) && v.length !== tokens.length) add(`'${k}' has ${v.length} entries for ${tokens.length} tokens`);
  }
}

function checkTensors(f: GgufFacts, add: (p: string) => void): void {
  if (f.tensors.length === 0) add('the file has no tensors');
  if (f.tensors.length !== f.tensorCount) add(`the header announces ${f.tensorCount} tensors but the index holds ${f.tensors.length}`);
  const spans: Array<{ name: string; start: number; end: number }> = [];
  for (const t of f.tensors) {
    if (t.dims.length < 1 || t.dims.length > MAX_DIMS) {
      add(`tensor '${t.name}' has ${t.dims.length} dimensions (1..${MAX_DIMS} allowed)`);
      continue;
    }
    if (t.dims.some((d) => !isCount(d) || d < 1)) {
      add(`tensor '${t.name}' has a zero or invalid dimension ([${t.dims.join(', ')}])`);
      continue;
    }
    if (!KNOWN_TYPES.has(t.ggmlType)) {
      add(`tensor '${t.name}' has an unknown ggml type ${t.ggmlType}`);
      continue;
    }
    if (t.fileOffset < 0 || t.fileOffset > f.fileSize) {
      add(`tensor '${t.name}' starts at byte ${t.fileOffset}, past the end of the file (${f.fileSize} bytes): the file is truncated`);
      continue;
    }
    const size = tensorBytes(t);
    if (size === undefined) continue;
    const end = t.fileOffset + size;
    if (end > f.fileSize) {
      add(`tensor '${t.name}' ends at byte ${end} but the file has ${f.fileSize} bytes: the file is truncated`);
      continue;
    }
    spans.push({ name: t.name, start: t.fileOffset, end });
  }
  spans.sort((a, b) => a.start - b.start);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i]!.start < spans[i - 1]!.end) add(`tensors '${spans[i - 1]!.name}' and '${spans[i]!.name}' overlap`);
  }
}

/** Bytes of a tensor's data, or undefined for a type whose size this table does not know. */
export function tensorBytes(t: Pick<GgufTensorFacts, 'dims' | 'ggmlType'>): number | undefined {
  const traits = GGML_TYPE_SIZES[t.ggmlType];
  if (!traits) return undefined;
  const [block, bytes] = traits;
  const [first, ...rest] = t.dims;
  const rowBytes = Math.ceil((first ?? 0) / block) * bytes;
  return rest.reduce((n, d) => n * d, rowBytes);
}

function checkConsistency(f: GgufFacts, arch: string, add: (p: string) => void): void {
  const embd = f.metadata[`${arch}.embedding_length`];
  const tokens = f.metadata['tokenizer.ggml.tokens'];
  const tokEmbd = f.tensors.find((t) => t.name === 'token_embd.weight');
  if (tokEmbd && isCount(embd) && tokEmbd.dims[0] !== embd) {
    add(`'token_embd.weight' is [${tokEmbd.dims.join(', ')}] but '${arch}.embedding_length' is ${embd}`);
  }
  if (tokEmbd && Array.isArray(tokens) && tokEmbd.dims[1] !== undefined && tokEmbd.dims[1] !== tokens.length) {
    add(`'token_embd.weight' has ${tokEmbd.dims[1]} rows but the vocabulary has ${tokens.length} tokens`);
  }
  const blocks = f.metadata[`${arch}.block_count`];
  if (!isCount(blocks) || blocks < 1) return;
  const seen = new Set<number>();
  for (const t of f.tensors) {
    const m = /^blk\.(\d+)\./.exec(t.name);
    if (m) seen.add(Number(m[1]));
  }
  if (seen.size === 0) return; // an architecture without per-block tensor names
  for (const i of seen) if (i >= blocks) add(`tensor block ${i} is past '${arch}.block_count' (${blocks})`);
  for (let i = 0; i < blocks; i++) {
    if (!seen.has(i)) {
      add(`'${arch}.block_count' is ${blocks} but block ${i} has no tensors`);
      break;
    }
  }
}
