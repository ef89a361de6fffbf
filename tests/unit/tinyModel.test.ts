/**
 * The random-weight GGUF generator must produce files that are byte-stable per
 * seed and that the real llama.cpp runtime (node-llama-cpp) loads and runs.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  getLlama,
  GeneralChatWrapper,
  LlamaChatSession,
  LlamaCompletion,
  readGgufFileInfo,
  type Llama,
  type LlamaModel,
} from 'node-llama-cpp';
import { makeTinyModel, TINY_MODEL_SIZES, type TinyModelInfo } from '../../src/model/tinyModel.js';
import { writeGguf } from '../../src/model/ggufWriter.js';

let dir = '';
let info: TinyModelInfo;
let llama: Llama | undefined;
let model: LlamaModel | undefined;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tiny-model-'));
  info = await makeTinyModel({ file: path.join(dir, 'tiny.gguf'), seed: 7, size: 'tiny' });
});

after(async () => {
  await model?.dispose();
  await llama?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function loadedModel(): Promise<LlamaModel> {
  llama ??= await getLlama({ gpu: 'auto' });
  model ??= await llama.loadModel({ modelPath: info.file });
  return model;
}

test('same seed gives a byte-identical file, a different seed does not', async () => {
  const again = await makeTinyModel({ file: path.join(dir, 'again.gguf'), seed: 7, size: 'tiny' });
  const other = await makeTinyModel({ file: path.join(dir, 'other.gguf'), seed: 8, size: 'tiny' });
  assert.match(info.sha256, /^[0-9a-f]{64}$/);
  assert.equal(again.sha256, info.sha256);
  assert.equal(again.bytes, info.bytes);
  assert.notEqual(other.sha256, info.sha256);
  assert.equal(info.contextLength, TINY_MODEL_SIZES.tiny.contextLength);
  assert.equal(info.size, 'tiny');
  assert.equal(info.seed, 7);
});

test('the GGUF header parses with node-llama-cpp\'s reader', async () => {
  const gguf = await readGgufFileInfo(info.file, { readTensorInfo: true });
  assert.equal(gguf.version, 3);
  assert.equal(gguf.metadata.general.architecture, 'llama');
  const s = TINY_MODEL_SIZES.tiny;
  assert.equal(gguf.tensorInfo?.length, 3 + 9 * s.blockCount);
});

test('writeGguf rejects inconsistent tensors', async () => {
  const file = path.join(dir, 'bad.gguf');
  await assert.rejects(
    writeGguf(file, { metadata: [], tensors: [{ name: 'x', dims: [2, 3], data: new Float32Array(5) }] }),
    /hold 6 values but data has 5/,
  );
  await assert.rejects(
    writeGguf(file, { metadata: [], tensors: [{ name: 'n'.repeat(64), dims: [1], data: new Float32Array(1) }] }),
    /must be 1\.\.63 bytes/,
  );
});

test('loads in node-llama-cpp with the declared context length', async () => {
  const m = await loadedModel();
  assert.equal(m.trainContextSize, info.contextLength);
});

test('tokenize/detokenize round-trips "hello fleet"', async () => {
  const m = await loadedModel();
  const tokens = m.tokenize('hello fleet');
  assert.ok(tokens.length > 0);
  assert.equal(m.detokenize(tokens), 'hello fleet');
});

test('LlamaCompletion generates printable text up to maxTokens', async () => {
  const m = await loadedModel();
  const ctx = await m.createContext({ contextSize: 512, threads: 1 });
  try {
    const completion = new LlamaCompletion({ contextSequence: ctx.getSequence() });
    let count = 0;
    const res = await completion.generateCompletionWithMeta('The fleet', {
      maxTokens: 24,
      onToken: (t) => {
        count += t.length;
      },
    });
    assert.ok(res.response.trim().length > 0, 'non-empty completion');
    assert.ok(count >= 8, `expected >= 8 tokens, got ${count}`);
    assert.match(res.response, /^[\x20-\x7e]+$/, 'printable ASCII only');
  } finally {
    await ctx.dispose();
  }
});

test('LlamaChatSession with GeneralChatWrapper answers', async () => {
  const m = await loadedModel();
  const ctx = await m.createContext({ contextSize: 512, threads: 1 });
  try {
    const session = new LlamaChatSession({
      contextSequence: ctx.getSequence(),
      chatWrapper: new GeneralChatWrapper(),
      systemPrompt: 'You are terse.',
    });
    const answer = await session.prompt('Say hello to the fleet.', { maxTokens: 16 });
    assert.ok(answer.trim().length > 0, 'non-empty answer');
  } finally {
    await ctx.dispose();
  }
});
