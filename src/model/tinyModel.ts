/**
 * Deterministic random-weight llama GGUF models for tests and local dev.
 *
 * Why: the gateway must be exercised against a real llama.cpp runtime
 * (node-llama-cpp) without downloading real weights. `makeTinyModel` writes a
 * few-hundred-kilobyte `llama` architecture model whose weights come from a
 * seeded PRNG, so the same seed and size always give a byte-identical file
 * (stable sha256 for caching and fixtures).
 *
 * Random weights alone make poor test fixtures: generation tends to stop at
 * once on `</s>` or emit stray bytes that are invalid UTF-8. The weights are
 * therefore shaped (see `buildTensors`) so that control and byte tokens always
 * score exactly 0 while normal tokens score clearly above it, which makes the
 * model babble printable ASCII words until `maxTokens`.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { writeGguf, type GgufKv, type GgufSpec, type GgufTensor } from './ggufWriter.js';

export const TINY_MODEL_SIZES = {
  tiny: {
    embeddingLength: 64,
    blockCount: 2,
    headCount: 4,
    headCountKv: 4,
    feedForwardLength: 128,
    contextLength: 512,
  },
  small: {
    embeddingLength: 256,
    blockCount: 4,
    headCount: 8,
    headCountKv: 4, // grouped-query attention, so that code path is exercised too
    feedForwardLength: 768,
    contextLength: 2048,
  },
  /** ~0.4 GB: slow enough on a CPU to watch a load or a generation happen (demos, benchmarks). */
  medium: {
    embeddingLength: 1024,
    blockCount: 8,
    headCount: 16,
    headCountKv: 8,
    feedForwardLength: 2816,
    contextLength: 2048,
  },
} as const;

export type TinyModelSize = keyof typeof TINY_MODEL_SIZES;

export interface TinyModelOptions {
  file: string;
  /** PRNG seed (uint32). Default 1. */
  seed?: number;
  /** Default 'tiny'. */
  size?: TinyModelSize;
}

export interface TinyModelInfo {
  file: string;
  sha256: string;
  bytes: number;
  contextLength: number;
  size: TinyModelSize;
  seed: number;
}

// llama.cpp token types (llama_token_type).
const TYPE_NORMAL = 1;
const TYPE_UNKNOWN = 2;
const TYPE_CONTROL = 3;
const TYPE_BYTE = 6;

const UNK_ID = 0;
const BOS_ID = 1;
const EOS_ID = 2;

/** Common words (SentencePiece style, "▁" marks a leading space). */
const WORDS = [
  'the', 'of', 'and', 'to', 'in', 'is', 'it', 'that', 'for', 'on', 'with', 'as', 'was', 'at', 'by',
  'from', 'we', 'you', 'can', 'will', 'all', 'one', 'new', 'more', 'time', 'data', 'fast', 'small',
  'fleet', 'model', 'token', 'node', 'worker', 'queue', 'request', 'stream', 'server', 'cache',
  'hello', 'world', 'run', 'job', 'ship', 'sea', 'wind', 'light',
];

/**
 * Output-logit offset per token class (multiplied by the ~2.0 constant feature,
 * see `buildTensors`). Words get the largest so the babble reads as words.
 */
const CLASS_BIAS = { word: 4.5, prefix: 2.5, letter: 2.5, other: 1.5 } as const;
type TokenClass = keyof typeof CLASS_BIAS | 'zero';

interface Vocab {
  tokens: string[];
  scores: number[];
  types: number[];
  classes: TokenClass[];
}

function buildVocab(): Vocab {
  const v: Vocab = { tokens: [], scores: [], types: [], classes: [] };
  const seen = new Set<string>();
  const add = (tok: string, score: number, type: number, cls: TokenClass): void => {
    if (seen.has(tok)) return;
    seen.add(tok);
    v.tokens.push(tok);
    v.scores.push(score);
    v.types.push(type);
    v.classes.push(cls);
  };
  add('<unk>', 0, TYPE_UNKNOWN, 'zero');
  add('<s>', 0, TYPE_CONTROL, 'zero');
  add('</s>', 0, TYPE_CONTROL, 'zero');
  // Byte fallback: lets llama.cpp tokenize any input (and detokenize any byte).
  for (let b = 0; b < 256; b++) {
    add(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, 0, TYPE_BYTE, 'zero');
  }
  for (let c = 0x20; c <= 0x7e; c++) {
    const ch = c === 0x20 ? '▁' : String.fromCharCode(c);
    add(ch, -1000, TYPE_NORMAL, /[a-z]/i.test(ch) ? 'letter' : 'other');
  }
  // The llama (SentencePiece) tokenizer only merges adjacent pieces whose
  // concatenation is itself in the vocabulary, so a word is reachable only if
  // every left-to-right prefix ("▁f", "▁fl", ...) exists. Scores rank merges:
  // longer pieces score higher so they win.
  WORDS.forEach((w, i) => {
    const piece = `▁${w}`;
    for (let n = 2; n < piece.length; n++) add(piece.slice(0, n), -100 + n, TYPE_NORMAL, 'prefix');
    add(piece, -i / 100, TYPE_NORMAL, 'word');
  });
  return v;
}

/** mulberry32: tiny, fast, good enough, and identical on every platform. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Uniform noise with the given standard deviation. Uniform rather than
 * Gaussian keeps the arithmetic to + and *, which is exactly reproducible.
 */
function noise(rand: () => number, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  const half = std * Math.sqrt(3);
  for (let i = 0; i < n; i++) out[i] = (rand() * 2 - 1) * half;
  return out;
}

function buildTensors(size: TinyModelSize, seed: number, vocab: Vocab): GgufTensor[] {
  const s = TINY_MODEL_SIZES[size];
  const nEmbd = s.embeddingLength;
  const nFf = s.feedForwardLength;
  const nEmbdKv = (nEmbd / s.headCount) * s.headCountKv;
  const nVocab = vocab.tokens.length;
  const rand = mulberry32(seed);
  const ones = (n: number): Float32Array => new Float32Array(n).fill(1);

  // Residual dimension 0 is a constant "bias feature": 1.0 in every token
  // embedding, and no layer writes to it (row 0 of attn_output/ffn_down is
  // zeroed). After the final RMS norm it is ~2.0 for every position, so the
  // output rows below can add a fixed per-class offset to the logits.
  const embd = noise(rand, nEmbd * nVocab, 0.5);
  for (let t = 0; t < nVocab; t++) embd[t * nEmbd] = 1;

  const tensors: GgufTensor[] = [{ name: 'token_embd.weight', dims: [nEmbd, nVocab], data: embd }];
  const qkStd = 1 / Math.sqrt(nEmbd);
  for (let b = 0; b < s.blockCount; b++) {
    const p = `blk.${b}.`;
    const attnOut = noise(rand, nEmbd * nEmbd, 0.3 / Math.sqrt(nEmbd));
    attnOut.fill(0, 0, nEmbd);
    const ffnDown = noise(rand, nFf * nEmbd, 0.3 / Math.sqrt(nFf));
    ffnDown.fill(0, 0, nFf);
    tensors.push(
      { name: `${p}attn_norm.weight`, dims: [nEmbd], data: ones(nEmbd) },
      { name: `${p}attn_q.weight`, dims: [nEmbd, nEmbd], data: noise(rand, nEmbd * nEmbd, qkStd) },
      { name: `${p}attn_k.weight`, dims: [nEmbd, nEmbdKv], data: noise(rand, nEmbd * nEmbdKv, qkStd) },
      { name: `${p}attn_v.weight`, dims: [nEmbd, nEmbdKv], data: noise(rand, nEmbd * nEmbdKv, qkStd) },
      { name: `${p}attn_output.weight`, dims: [nEmbd, nEmbd], data: attnOut },
      { name: `${p}ffn_norm.weight`, dims: [nEmbd], data: ones(nEmbd) },
      { name: `${p}ffn_gate.weight`, dims: [nEmbd, nFf], data: noise(rand, nEmbd * nFf, qkStd) },
      { name: `${p}ffn_up.weight`, dims: [nEmbd, nFf], data: noise(rand, nEmbd * nFf, qkStd) },
      { name: `${p}ffn_down.weight`, dims: [nFf, nEmbd], data: ffnDown },
    );
  }

  // Output rows: exactly zero (logit 0) for <unk>, control and byte tokens, so
  // `</s>` and invalid-UTF-8 bytes are practically never chosen; normal tokens
  // get the class offset on the bias feature plus random variation.
  const out = new Float32Array(nEmbd * nVocab);
  const outStd = 2 / Math.sqrt(nEmbd);
  for (let t = 0; t < nVocab; t++) {
    const cls = vocab.classes[t] ?? 'zero';
    if (cls === 'zero') continue;
    const r = noise(rand, nEmbd, outStd);
    r[0] = CLASS_BIAS[cls];
    out.set(r, t * nEmbd);
  }
  tensors.push(
    { name: 'output_norm.weight', dims: [nEmbd], data: ones(nEmbd) },
    { name: 'output.weight', dims: [nEmbd, nVocab], data: out },
  );
  return tensors;
}

function buildMetadata(size: TinyModelSize, seed: number, vocab: Vocab): GgufKv[] {
  const s = TINY_MODEL_SIZES[size];
  return [
    { key: 'general.architecture', type: 'string', value: 'llama' },
    { key: 'general.name', type: 'string', value: `tiny-random-llama-${size}-seed${seed}` },
    { key: 'general.file_type', type: 'uint32', value: 0 }, // ALL_F32
    { key: 'llama.context_length', type: 'uint32', value: s.contextLength },
    { key: 'llama.embedding_length', type: 'uint32', value: s.embeddingLength },
    { key: 'llama.block_count', type: 'uint32', value: s.blockCount },
    { key: 'llama.feed_forward_length', type: 'uint32', value: s.feedForwardLength },
    { key: 'llama.attention.head_count', type: 'uint32', value: s.headCount },
    { key: 'llama.attention.head_count_kv', type: 'uint32', value: s.headCountKv },
    { key: 'llama.attention.layer_norm_rms_epsilon', type: 'float32', value: 1e-5 },
    { key: 'llama.rope.dimension_count', type: 'uint32', value: s.embeddingLength / s.headCount },
    { key: 'llama.rope.freq_base', type: 'float32', value: 10000 },
    { key: 'tokenizer.ggml.model', type: 'string', value: 'llama' },
    { key: 'tokenizer.ggml.tokens', type: 'string[]', value: vocab.tokens },
    { key: 'tokenizer.ggml.scores', type: 'float32[]', value: vocab.scores },
    { key: 'tokenizer.ggml.token_type', type: 'int32[]', value: vocab.types },
    { key: 'tokenizer.ggml.bos_token_id', type: 'uint32', value: BOS_ID },
    { key: 'tokenizer.ggml.eos_token_id', type: 'uint32', value: EOS_ID },
    { key: 'tokenizer.ggml.unknown_token_id', type: 'uint32', value: UNK_ID },
    { key: 'tokenizer.ggml.add_bos_token', type: 'bool', value: true },
    { key: 'tokenizer.ggml.add_eos_token', type: 'bool', value: false },
  ];
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * The GGUF content of a tiny model (metadata and tensors), for `makeTinyModel` and for tests
 * that write deliberately broken variants of it (a key missing, a tensor cut short).
 */
export function tinyModelSpec(size: TinyModelSize, seed: number): GgufSpec {
  const vocab = buildVocab();
  return { metadata: buildMetadata(size, seed, vocab), tensors: buildTensors(size, seed, vocab), alignment: 32 };
}

/** Write a deterministic random-weight llama GGUF model to `opts.file`. */
export async function makeTinyModel(opts: TinyModelOptions): Promise<TinyModelInfo> {
  const size: TinyModelSize = opts.size ?? 'tiny';
  const seed = opts.seed ?? 1;
  if (!(size in TINY_MODEL_SIZES)) throw new Error(`unknown tiny model size: ${String(size)}`);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`seed must be a uint32, got ${seed}`);
  }
  await mkdir(path.dirname(opts.file), { recursive: true });
  const { bytes } = await writeGguf(opts.file, tinyModelSpec(size, seed));
  return {
    file: opts.file,
    sha256: await sha256File(opts.file),
    bytes,
    contextLength: TINY_MODEL_SIZES[size].contextLength,
    size,
    seed,
  };
}
