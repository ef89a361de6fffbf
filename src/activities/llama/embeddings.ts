/**
 * Embeddings on a GPU host: each input of a request embedded in order with the model's
 * embedding context (made on the model's first embedding request; llama.cpp pools the
 * sequence as the model's metadata says). Inputs are checked before anything runs: each must
 * fit the context and name only tokens of the vocabulary. Requests run one after another per
 * model (the context has one sequence); generation slots are not involved.
 */
import type { Token } from 'node-llama-cpp';
import type { EmbeddingInput } from '../../common/inference.js';
import { GenerationAbortedError, InvalidGenerationError, type LlamaRuntime } from './runtime.js';

/** The most vector bytes (base64) one request returns. */
export const MAX_RESULT_BYTES = 1_500_000;

export interface EmbedOptions {
  inputs: EmbeddingInput[];
  /** The size the client asked for: refused unless it is the model's own. */
  dimensions?: number;
  signal?: AbortSignal;
}

/** Embeds `o.inputs` on a loaded model; vectors in input order. */
export async function embedWith(runtime: LlamaRuntime, modelId: string, o: EmbedOptions): Promise<{ vectors: Float32Array[]; promptTokens: number }> {
  const m = runtime.loaded(modelId);
  const size = m.model.embeddingVectorSize;
  if (o.dimensions !== undefined && o.dimensions !== size) {
    throw new InvalidGenerationError(`This model's embeddings have ${size} dimensions; it cannot produce ${o.dimensions}.`, 'dimensions');
  }
  // The vectors travel back in the activity's result: keep it well under Temporal's payload limit.
  const bytes = Math.ceil((o.inputs.length * size * 4 * 4) / 3);
  if (bytes > MAX_RESULT_BYTES) {
    throw new InvalidGenerationError(`${o.inputs.length} inputs of ${size} dimensions make ${bytes} bytes of vectors, over the ${MAX_RESULT_BYTES} a request may return; split the input.`, 'input');
  }
  const tokenized = o.inputs.map((x, i) => {
    const tokens = typeof x === 'string' ? m.model.tokenize(x) : (x as Token[]);
    const bad = typeof x === 'string' ? undefined : x.find((t) => !(t < m.vocabularySize));
    if (bad !== undefined) throw new InvalidGenerationError(`input ${i} holds token ${bad}, which is not in this model's vocabulary of ${m.vocabularySize} tokens.`, 'input');
    if (tokens.length === 0) throw new InvalidGenerationError(`input ${i} is empty.`, 'input');
    if (tokens.length > m.contextLength) throw new InvalidGenerationError(`input ${i} has ${tokens.length} tokens; this model's maximum context length is ${m.contextLength} tokens.`, 'input');
    return tokens;
  });
  m.embedding ??= m.model.createEmbeddingContext({ contextSize: m.contextLength, threads: runtime.threads });
  const context = await m.embedding;
  const vectors: Float32Array[] = [];
  const run = m.embedChain.then(async () => {
    m.lastUsedAt = Date.now();
    for (const tokens of tokenized) {
      if (o.signal?.aborted) throw new GenerationAbortedError({ promptTokens: 0, completionTokens: 0 }, o.signal.reason);
      vectors.push(Float32Array.from((await context.getEmbeddingFor(tokens)).vector));
    }
  });
  m.embedChain = run.catch(() => undefined);
  await run;
  return { vectors, promptTokens: tokenized.reduce((n, t) => n + t.length, 0) };
}
