/**
 * The GGUF checks that stand between an operator's file and llama.cpp: a table of the pure rules
 * (src/domain/ggufCheck.ts) on hand-made facts, and the reader (src/model/ggufInspect.ts) on
 * real files — the generated tiny model and broken variants of it, each of which either aborts
 * llama.cpp or fails its load (see NOTES-ENVIRONMENT.md), plus paths that are no file at all.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat, truncate } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { checkGguf, tensorBytes, type GgufFacts } from '../../src/domain/ggufCheck.js';
import { inspectModelFile } from '../../src/model/ggufInspect.js';
import { writeGguf, type GgufSpec } from '../../src/model/ggufWriter.js';
import { tinyModelSpec } from '../../src/model/tinyModel.js';

const llamaMeta = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  'general.architecture': 'llama',
  'llama.context_length': 512,
  'llama.embedding_length': 64,
  'llama.block_count': 1,
  'llama.feed_forward_length': 128,
  'llama.attention.head_count': 4,
  'tokenizer.ggml.model': 'llama',
  'tokenizer.ggml.tokens': ['a', 'b', 'c'],
  ...over,
});
const f32 = (name: string, dims: number[], fileOffset: number) => ({ name, dims, ggmlType: 0, fileOffset });
const facts = (o: Partial<GgufFacts> = {}): GgufFacts => {
  const tensors = o.tensors ?? [f32('token_embd.weight', [64, 3], 1000), f32('blk.0.attn_norm.weight', [64], 1768)];
  return { version: 3, fileSize: 2024, metadata: llamaMeta(), tensorCount: tensors.length, ...o, tensors };
};
const without = (key: string) => Object.fromEntries(Object.entries(llamaMeta()).filter(([k]) => k !== key));

const cases: Array<{ name: string; facts: GgufFacts; problem?: RegExp }> = [
  { name: 'a well-formed llama file passes', facts: facts() },
  { name: 'missing feed_forward_length (aborts llama.cpp)', facts: facts({ metadata: without('llama.feed_forward_length') }), problem: /lacks 'llama.feed_forward_length'/ },
  { name: 'missing attention.head_count (aborts llama.cpp)', facts: facts({ metadata: without('llama.attention.head_count') }), problem: /lacks 'llama.attention.head_count'/ },
  { name: 'head_count_kv 0 (aborts llama.cpp)', facts: facts({ metadata: llamaMeta({ 'llama.attention.head_count_kv': 0 }) }), problem: /head_count_kv' must be ≥ 1/ },
  { name: 'value_length 0 (aborts llama.cpp)', facts: facts({ metadata: llamaMeta({ 'llama.attention.value_length': 0 }) }), problem: /value_length' must be ≥ 1/ },
  { name: 'context_length 0', facts: facts({ metadata: llamaMeta({ 'llama.context_length': 0 }) }), problem: /context_length' must be ≥ 1/ },
  { name: 'no architecture at all', facts: facts({ metadata: { 'tokenizer.ggml.model': 'llama' } }), problem: /no 'general.architecture'/ },
  { name: 'an unknown architecture still needs the universal keys', facts: facts({ metadata: { 'general.architecture': 'nosuch' } }), problem: /lacks 'nosuch.context_length'/ },
  { name: 'per-layer arrays: some zeros are fine', facts: facts({ metadata: llamaMeta({ 'llama.attention.head_count_kv': [0, 4] }) }) },
  { name: 'per-layer arrays: all zeros are not', facts: facts({ metadata: llamaMeta({ 'llama.attention.head_count_kv': [0, 0] }) }), problem: /at least one ≥ 1/ },
  { name: 'a zero tensor dimension', facts: facts({ tensors: [f32('token_embd.weight', [64, 3], 1000), f32('blk.0.attn_norm.weight', [0], 1768)] }), problem: /zero or invalid dimension/ },
  { name: 'five dimensions', facts: facts({ tensors: [f32('token_embd.weight', [64, 3], 1000), f32('blk.0.x', [1, 1, 1, 1, 1], 1768)] }), problem: /5 dimensions/ },
  { name: 'an unknown ggml type', facts: facts({ tensors: [f32('token_embd.weight', [64, 3], 1000), { ...f32('blk.0.x', [64], 1768), ggmlType: 99 }] }), problem: /unknown ggml type 99/ },
  { name: 'truncated: the last tensor ends past the file', facts: facts({ fileSize: 1900 }), problem: /ends at byte 2024 but the file has 1900 bytes: the file is truncated/ },
  { name: 'truncated: a tensor starts past the file', facts: facts({ fileSize: 1500 }), problem: /starts at byte 1768, past the end of the file/ },
  { name: 'overlapping tensors', facts: facts({ tensors: [f32('token_embd.weight', [64, 3], 1000), f32('blk.0.attn_norm.weight', [64], 1700)] }), problem: /overlap/ },
  { name: 'the index holds fewer tensors than the header says', facts: facts({ tensorCount: 5 }), problem: /announces 5 tensors but the index holds 2/ },
  { name: 'token_embd does not match embedding_length', facts: facts({ metadata: llamaMeta({ 'llama.embedding_length': 32 }) }), problem: /embedding_length' is 32/ },
  { name: 'token_embd rows do not match the vocabulary', facts: facts({ metadata: llamaMeta({ 'tokenizer.ggml.tokens': ['a'] }) }), problem: /3 rows but the vocabulary has 1 tokens/ },
  { name: 'token types shorter than the tokens', facts: facts({ metadata: llamaMeta({ 'tokenizer.ggml.token_type': [1] }) }), problem: /token_type' has 1 entries for 3 tokens/ },
  { name: 'no tokens for a llama tokenizer', facts: facts({ metadata: llamaMeta({ 'tokenizer.ggml.tokens': undefined }) }), problem: /no 'tokenizer.ggml.tokens'/ },
  { name: 'block_count larger than the blocks present', facts: facts({ metadata: llamaMeta({ 'llama.block_count': 2 }) }), problem: /block 1 has no tensors/ },
  { name: 'a block past block_count', facts: facts({ tensors: [f32('token_embd.weight', [64, 3], 1000), f32('blk.0.attn_norm.weight', [64], 1768), f32('blk.7.x', [1], 2020)] }), problem: /block 7 is past/ },
  { name: 'GGUF version 1', facts: facts({ version: 1 }), problem: /version 1 is not supported/ },
];

for (const c of cases) {
  test(`gguf check: ${c.name}`, () => {
    const problems = checkGguf(c.facts);
    if (!c.problem) assert.deepEqual(problems, []);
    else assert.ok(problems.some((p) => c.problem!.test(p)), `got: ${problems.join(' | ') || 'no problem'}`);
  });
}

test('tensor sizes follow ggml block sizes (F32, Q4_0, Q6_K; unknown → undefined)', () => {
  assert.equal(tensorBytes({ dims: [64, 3], ggmlType: 0 }), 64 * 3 * 4);
  assert.equal(tensorBytes({ dims: [64, 3], ggmlType: 2 }), 2 * 18 * 3);
  assert.equal(tensorBytes({ dims: [512, 2], ggmlType: 14 }), 2 * 210 * 2);
  assert.equal(tensorBytes({ dims: [64], ggmlType: 40 }), undefined);
});

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'gguf-check-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const variant = async (name: string, edit: (s: GgufSpec) => GgufSpec): Promise<string> => {
  const file = path.join(dir, `${name}.gguf`);
  await writeGguf(file, edit(tinyModelSpec('tiny', 1)));
  return file;
};
const drop = (key: string) => (s: GgufSpec): GgufSpec => ({ ...s, metadata: s.metadata.filter((k) => k.key !== key) });

test('inspect: the generated tiny model passes and reports its trained context', async () => {
  const r = await inspectModelFile(await variant('ok', (s) => s));
  assert.equal(r.ok, true);
  assert.deepEqual(r.ok && { arch: r.facts.architecture, ctx: r.facts.trainedContextLength }, { arch: 'llama', ctx: 512 });
});

test('inspect: real files that abort or fail llama.cpp are refused by name', async () => {
  const noFfl = await inspectModelFile(await variant('no-ffl', drop('llama.feed_forward_length')));
  assert.equal(noFfl.ok, false);
  assert.match(!noFfl.ok ? noFfl.problem : '', /lacks 'llama.feed_forward_length'/);
  const zero = await inspectModelFile(
    await variant('zero-dim', (s) => ({ ...s, unchecked: true, tensors: s.tensors.map((t) => (t.name === 'blk.0.attn_norm.weight' ? { ...t, dims: [0], data: new Float32Array(0) } : t)) })),
  );
  assert.match(!zero.ok ? zero.problem : '', /zero or invalid dimension/);
  const cut = await variant('truncated', (s) => s);
  await truncate(cut, Math.floor((await stat(cut)).size * 0.7));
  const truncated = await inspectModelFile(cut);
  assert.match(!truncated.ok ? truncated.problem : '', /the file is truncated/);
});

test('inspect: a directory, a FIFO, a device, a missing or non-GGUF file are refused without blocking', async () => {
  const sub = path.join(dir, 'a-dir');
  await mkdir(sub);
  const fifo = path.join(dir, 'a-fifo');
  execFileSync('mkfifo', [fifo]);
  const text = path.join(dir, 'notes.gguf');
  await (await import('node:fs/promises')).writeFile(text, 'this is no model, just text');
  const problem = async (p: string) => {
    const r = await inspectModelFile(p);
    assert.equal(r.ok, false, p);
    return !r.ok ? r.problem : '';
  };
  assert.match(await problem(sub), /is a directory/);
  assert.match(await problem(fifo), /is a FIFO/);
  assert.match(await problem('/dev/zero'), /is a device/);
  assert.match(await problem(path.join(dir, 'missing.gguf')), /cannot be opened \(ENOENT\)/);
  assert.match(await problem(text), /not a readable GGUF model/);
});
