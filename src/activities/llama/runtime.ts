/**
 * The node-llama-cpp runtime of one GPU host: loads GGUF files, keeps one context per model
 * with a sequence per concurrent request, and generates. A sequence keeps the KV of its last
 * conversation: a request takes the free sequence already holding the longest prefix of its
 * prompt and evaluates only the rest (reported as cached tokens). It knows nothing of Temporal; the
 * host activities wrap it. Thread count is explicit because llama.cpp's CPU default (4) is
 * ~1000x slower than 1 thread on a 2-core machine.
 */
import {
  getLlama,
  LlamaCompletion,
  LlamaText,
  resolveChatWrapper,
  type ChatHistoryItem,
  type ChatWrapper,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaEmbeddingContext,
  type LlamaGrammar,
  type LlamaModel,
  type Token,
} from 'node-llama-cpp';
import { TokenBias } from 'node-llama-cpp';
import os from 'node:os';
import type { ChatMessage, FinishReason, InferenceInput, SamplingParams, Usage } from '../../common/inference.js';
import type { Logger } from '../../logger.js';
import type { AdmissionLimits } from '../../domain/admission.js';
import { AdmissionQueue, type Lease } from './admissionQueue.js';
import { GrammarCache } from './grammars.js';
import { advertisedBlocks, conversationBlocks, MAX_ADVERTISED_PREFIXES } from '../../common/prefixBlocks.js';
import { isLiveSequence, pickSequence } from '../../domain/prefixRouting.js';
import { ContextOverflowError, GenerationAbortedError, InvalidGenerationError, ModelBusyError, ModelNotLoadedError } from './runtimeErrors.js';

export { ContextOverflowError, GenerationAbortedError, InvalidGenerationError, ModelBusyError, ModelNotLoadedError };

export interface RuntimeOptions {
  threads: number;
  gpu: 'auto' | false;
  /** Per loaded model: sequences (maxInFlight), queue, max wait, per-principal cap. */
  admission: AdmissionLimits;
  /** Called whenever running/queued counts change, so the host can publish them at once. */
  onLoadChange?: () => void;
  log: Logger;
}

export interface LoadedModelInfo {
  modelId: string;
  path: string;
  contextLength: number;
  running: number;
  queued: number;
  capacity: number;
  avgServiceMs: number;
  lastUsedAt: number | null;
  /** KV cache: tokens held in the model's context sequences, and what they can hold. */
  kvTokensUsed?: number;
  kvTokensCapacity?: number;
  /** Chained block hashes of the conversations its sequences hold (src/common/prefixBlocks.ts), bounded. */
  prefixes?: string[];
  /** Sequences that served within LIVE_SEQUENCE_MS (src/domain/prefixRouting.ts): conversations likely to come back (prefix routing places new ones elsewhere). */
  liveSequences?: number;
}

/**
 * One context sequence and what it holds: a request takes the free one holding most of its
 * prompt (or the least recently used), and evaluates only the rest.
 */
export interface SequenceSlot {
  completion: LlamaCompletion;
  sequence: LlamaContextSequence;
  /** Advertised block hashes of the conversation it holds (empty: nothing worth matching). */
  held: string[];
  /** Tokens of the prompt it last evaluated to the end (lead token included; 0: none): a request keeping all of them continues its conversation. */
  promptTokens: number;
  /** When it last served (ms; 0: never). */
  lastUsedAt: number;
}

/** One loaded model (exported for the embedding path, src/activities/llama/embeddings.ts). */
export interface LoadedModel {
  modelId: string;
  path: string;
  model: LlamaModel;
  context: LlamaContext;
  chatWrapper: ChatWrapper;
  pool: AdmissionQueue<SequenceSlot>;
  /** The context's sequences (one per slot), read for KV cache usage and advertised prefixes. */
  slots: SequenceSlot[];
  /** Usable tokens per sequence. */
  contextLength: number;
  /** Tokens in the vocabulary (what a logit_bias key may name); 0: unknown. */
  vocabularySize: number;
  /** The token LlamaCompletion puts before every input (the model's BOS when it wants one). */
  leadToken?: Token;
  /** The embedding context, made on the first embedding request. */
  embedding?: Promise<LlamaEmbeddingContext>;
  /** Embedding requests run one after another (the context has one sequence). */
  embedChain: Promise<void>;
  lastUsedAt: number | null;
}

export interface GenerateOptions {
  input: InferenceInput;
  params: SamplingParams;
  /** Key id of the caller (null: anonymous), for the per-principal cap and fairness. */
  principal: string | null;
  signal?: AbortSignal;
  /** Only count the prompt's tokens (Anthropic's count_tokens). */
  countOnly?: boolean;
  onText?: (text: string) => void;
  /** Awaited once the slot is taken, before the prompt is evaluated (test gates hold here). */
  beforeGenerate?: () => Promise<void>;
  /** Where the generation's time went, reported once it ends (metrics; not part of the answer). */
  onTimings?: (t: GenerationTimings) => void;
}

/** Phases of one generation, in seconds (performance.now() deltas). */
export interface GenerationTimings {
  /** Waiting for an admission slot. */
  queueSeconds: number;
  /** Slot taken → first token: prompt evaluation (prefill). */
  prefillSeconds: number;
  /** First token → last: the decode window (0 with fewer than two tokens). */
  decodeSeconds: number;
  promptTokens: number;
  completionTokens: number;
  /** Prompt tokens the sequence already held (not evaluated). */
  cachedTokens: number;
}

export interface GenerateOutput {
  text: string;
  finishReason: FinishReason;
  usage: Usage;
  /** The client's stop sequence that ended it (absent: it ended otherwise). */
  stopSequence?: string;
}

export class LlamaRuntime {
  private llama: Promise<Llama> | undefined;
  private readonly models = new Map<string, LoadedModel>();
  private readonly loading = new Map<string, Promise<LoadedModel>>();
  private readonly grammars = new GrammarCache(() => this.getLlama());

  constructor(private readonly opts: RuntimeOptions) {}

  private getLlama(): Promise<Llama> {
    this.llama ??= getLlama({ gpu: this.opts.gpu, logLevel: 'error' as never });
    return this.llama;
  }

  async describe(): Promise<{ gpu: string | false; threads: number }> {
    const llama = await this.getLlama();
    return { gpu: llama.gpu, threads: this.opts.threads };
  }

  /** Memory models load into (VRAM with a GPU, RAM otherwise) and the GPUs in use. */
  async resources(): Promise<{ gpu: string | false; gpuCount: number; totalMemoryBytes: number; freeMemoryBytes: number }> {
    const llama = await this.getLlama();
    if (llama.gpu === false) {
      return { gpu: false, gpuCount: 0, totalMemoryBytes: os.totalmem(), freeMemoryBytes: os.freemem() };
    }
    const [vram, names] = await Promise.all([llama.getVramState(), llama.getGpuDeviceNames()]);
    return { gpu: llama.gpu, gpuCount: names.length, totalMemoryBytes: vram.total, freeMemoryBytes: vram.free };
  }

  loadedModels(): LoadedModelInfo[] {
    return [...this.models.values()].map((m) => this.info(m));
  }

  /** A loaded model (for the embedding path), or ModelNotLoadedError. */
  loaded(modelId: string): LoadedModel {
    const m = this.models.get(modelId);
    if (!m) throw new ModelNotLoadedError(modelId);
    return m;
  }

  get threads(): number {
    return this.opts.threads;
  }

  isLoaded(modelId: string): boolean {
    return this.models.has(modelId);
  }

  /** Loads a model once; concurrent callers share the same load. */
  async load(
    modelId: string,
    modelPath: string,
    contextLength: number,
    onProgress?: (fraction: number) => void,
  ): Promise<LoadedModelInfo> {
    const existing = this.models.get(modelId);
    if (existing && existing.path === modelPath) return this.info(existing);
    if (existing) await this.unload(modelId);
    let pending = this.loading.get(modelId);
    if (!pending) {
      pending = this.doLoad(modelId, modelPath, contextLength, onProgress).finally(() =>
        this.loading.delete(modelId),
      );
      this.loading.set(modelId, pending);
    }
    return this.info(await pending);
  }

  private info(m: LoadedModel): LoadedModelInfo {
    // What the sequences hold now (the last prompt and answer of each, until the next one).
    const kvTokensUsed = m.slots.reduce((n, q) => n + q.sequence.nextTokenIndex, 0);
    const kvTokensCapacity = m.slots.reduce((n, q) => n + q.sequence.contextSize, 0);
    const prefixes = [...new Set(m.slots.flatMap((q) => q.held))].slice(0, MAX_ADVERTISED_PREFIXES);
    const now = Date.now();
    const liveSequences = m.slots.filter((q) => isLiveSequence(q.lastUsedAt, now)).length;
    return { modelId: m.modelId, path: m.path, contextLength: m.contextLength, lastUsedAt: m.lastUsedAt, kvTokensUsed, kvTokensCapacity, prefixes, liveSequences, ...m.pool.stats };
  }

  private async doLoad(
    modelId: string,
    modelPath: string,
    contextLength: number,
    onProgress?: (fraction: number) => void,
  ): Promise<LoadedModel> {
    const llama = await this.getLlama();
    const model = await llama.loadModel({ modelPath, onLoadProgress: onProgress });
    try {
      const sequences = this.opts.admission.maxInFlight;
      const ctxLen = Math.min(contextLength, model.trainContextSize);
      const context = await model.createContext({
        contextSize: ctxLen,
        sequences,
        threads: this.opts.threads,
      });
      const slots: SequenceSlot[] = Array.from({ length: sequences }, () => {
        const sequence = context.getSequence();
        return { sequence, completion: new LlamaCompletion({ contextSequence: sequence }), held: [], promptTokens: 0, lastUsedAt: 0 };
      });
      const loaded: LoadedModel = {
        modelId,
        path: modelPath,
        model,
        context,
        chatWrapper: resolveChatWrapper(model),
        pool: new AdmissionQueue(slots, this.opts.admission, this.opts.onLoadChange),
        slots,
        contextLength: ctxLen,
        vocabularySize: vocabularySizeOf(model),
        ...(model.tokens.shouldPrependBosToken && model.tokens.bos !== null ? { leadToken: model.tokens.bos } : {}),
        embedChain: Promise.resolve(),
        lastUsedAt: null,
      };
      this.models.set(modelId, loaded);
      this.opts.log.info({ modelId, contextLength: ctxLen, sequences }, 'model loaded');
      return loaded;
    } catch (err) {
      await model.dispose();
      throw err;
    }
  }

  /** Unloads a model; refuses (ModelBusyError) while requests run or wait, unless forced. */
  async unload(modelId: string, opts: { force?: boolean } = {}): Promise<boolean> {
    const m = this.models.get(modelId);
    if (!m) return false;
    const { running, queued } = m.pool.stats;
    if (!opts.force && running + queued > 0) throw new ModelBusyError(modelId, running + queued);
    this.models.delete(modelId);
    this.opts.onLoadChange?.();
    m.pool.rejectAll(new Error(`model ${modelId} was unloaded`));
    if (m.embedding) await (await m.embedding.catch(() => undefined))?.dispose();
    await m.context.dispose();
    await m.model.dispose();
    this.opts.log.info({ modelId }, 'model unloaded');
    return true;
  }

  async close(): Promise<void> {
    for (const id of [...this.models.keys()]) await this.unload(id, { force: true });
    if (this.llama) await (await this.llama).dispose();
  }

  /** Tokenizes the request as the model will see it. */
  private promptTokens(m: LoadedModel, input: InferenceInput): { tokens: Token[]; stops: LlamaText[] } {
    if (input.kind === 'completion') {
      return { tokens: m.model.tokenize(input.prompt), stops: [] };
    }
    if (input.kind === 'embedding') throw new InvalidGenerationError('an embedding request cannot be generated from', 'input');
    const state = m.chatWrapper.generateContextState({ chatHistory: toChatHistory(input.messages) });
    return { tokens: state.contextText.tokenize(m.model.tokenizer), stops: state.stopGenerationTriggers };
  }

  async generate(modelId: string, o: GenerateOptions): Promise<GenerateOutput> {
    const m = this.models.get(modelId);
    if (!m) throw new ModelNotLoadedError(modelId);
    const { tokens, stops } = this.promptTokens(m, o.input);
    for (const id of Object.keys(o.params.logitBias ?? {})) {
      if (!(Number(id) < m.vocabularySize)) throw new InvalidGenerationError(`logit_bias names token ${id}, which is not in this model's vocabulary of ${m.vocabularySize} tokens.`, 'logit_bias');
    }
    // Compiled once per distinct constraint (one that cannot compile fails here, before a slot is taken).
    let grammar: LlamaGrammar | undefined;
    if (o.params.constraint) {
      grammar = await this.grammars.get(o.params.constraint).catch((err: Error) => {
        throw new InvalidGenerationError(`The schema cannot be enforced on this model: ${err.message.slice(0, 200)}`, o.params.constraint?.kind === 'toolCalls' ? 'tools' : 'response_format');
      });
    }
    // count_tokens: the prompt as this model sees it, nothing generated, no slot taken.
    if (o.countOnly) return { text: '', finishReason: 'stop', usage: { promptTokens: tokens.length, completionTokens: 0 } };
    const room = m.contextLength - tokens.length;
    const requested = o.params.maxTokens;
    // Checked before taking a slot: an over-long prompt never burns queue capacity.
    if (room < 1 || (requested !== null && requested > room)) {
      throw new ContextOverflowError(tokens.length, requested, m.contextLength);
    }
    const queuedAt = performance.now();
    // What the completion evaluates (LlamaCompletion puts the lead token first): what a sequence is compared with.
    const lead = m.leadToken !== undefined ? 1 : 0;
    const evaluated = m.leadToken !== undefined ? [m.leadToken, ...tokens] : tokens;
    let lease: Lease<SequenceSlot>;
    try {
      // The free sequence holding this conversation (it keeps the whole prompt that sequence last
      // evaluated), else one whose conversation is not live (node-llama-cpp compares the tokens).
      lease = await m.pool.acquire(o.principal, o.signal, (free) =>
        free.length < 2
          ? 0
          : pickSequence(
              free.map((q) => {
                const kept = q.sequence.compareContextTokens(evaluated).firstDifferentIndex;
                return { kept, lastUsedAt: q.lastUsedAt, continues: q.promptTokens > 0 && kept >= q.promptTokens };
              }),
              Date.now(),
            ),
      );
    } catch (err) {
      // Cancelled while queued: the prompt was never evaluated, nothing was used.
      if (o.signal?.aborted) throw new GenerationAbortedError({ promptTokens: 0, completionTokens: 0 }, err);
      throw err;
    }
    const slot = lease.item;
    const { completion, sequence } = slot;
    m.lastUsedAt = Date.now();
    slot.lastUsedAt = m.lastUsedAt;
    // Until it ends well, the sequence holds nothing worth advertising.
    slot.held = [];
    slot.promptTokens = 0;
    const leasedAt = performance.now();
    let firstTokenAt: number | undefined;
    let completionTokens = 0;
    let evaluating = false;
    try {
      await o.beforeGenerate?.();
      evaluating = true;
      // Keep the sequence's tokens that start this prompt and erase the rest (a contiguous
      // prefix: what it keeps is exactly what is reported as cached); the last prompt token is
      // always evaluated. The completion then evaluates only what follows.
      await sequence.adaptStateToTokens(evaluated.slice(0, -1), false);
      const cachedTokens = Math.max(0, Math.min(sequence.nextTokenIndex - lead, tokens.length - 1));
      const res = await completion.generateCompletionWithMeta(tokens, {
        maxTokens: requested ?? Math.min(room, o.params.outputLimit ?? room),
        temperature: o.params.temperature,
        topP: o.params.topP,
        seed: o.params.seed,
        ...samplingExtras(m, o.params),
        ...(grammar ? { grammar } : {}),
        customStopTriggers: [...stops, ...o.params.stop],
        signal: o.signal,
        onToken: (t) => {
          firstTokenAt ??= performance.now();
          completionTokens += t.length;
        },
        onTextChunk: o.onText,
      });
      // The chat template's own stop triggers end a turn too: only the client's are reported.
      const trigger = res.metadata.stopReason === 'customStopTrigger' ? res.metadata.customStopTrigger.filter((t) => typeof t === 'string').join('') : undefined;
      const endedAt = performance.now();
      o.onTimings?.({
        queueSeconds: (leasedAt - queuedAt) / 1000,
        prefillSeconds: ((firstTokenAt ?? endedAt) - leasedAt) / 1000,
        decodeSeconds: firstTokenAt !== undefined ? (endedAt - firstTokenAt) / 1000 : 0,
        promptTokens: tokens.length,
        completionTokens,
        cachedTokens,
      });
      slot.held = advertisedBlocks(conversationBlocks(o.input, res.response));
      slot.promptTokens = evaluated.length;
      return {
        text: res.response,
        finishReason: res.metadata.stopReason === 'maxTokens' ? 'length' : 'stop',
        usage: { promptTokens: tokens.length, completionTokens, ...(cachedTokens > 0 ? { cachedTokens } : {}) },
        ...(trigger !== undefined && o.params.stop.includes(trigger) ? { stopSequence: trigger } : {}),
      };
    } catch (err) {
      // Cancelled mid-generation: what was used so far is what a budget must be charged.
      if (o.signal?.aborted) {
        throw new GenerationAbortedError({ promptTokens: evaluating ? tokens.length : 0, completionTokens }, err);
      }
      throw err;
    } finally {
      m.lastUsedAt = Date.now();
      lease.release();
    }
  }
}

function vocabularySizeOf(model: LlamaModel): number {
  const tokens = (model.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: unknown } } }).tokenizer?.ggml?.tokens;
  return Array.isArray(tokens) ? tokens.length : 0;
}

/** top_k, min_p, the penalties and logit_bias in node-llama-cpp's terms (absent: llama.cpp's defaults). */
function samplingExtras(m: LoadedModel, p: SamplingParams) {
  const penalize = p.repeatPenalty !== undefined || p.presencePenalty !== undefined || p.frequencyPenalty !== undefined;
  let tokenBias: TokenBias | undefined;
  if (p.logitBias && Object.keys(p.logitBias).length) {
    tokenBias = new TokenBias(m.model.tokenizer);
    for (const [token, bias] of Object.entries(p.logitBias)) tokenBias.set(Number(token) as Token, bias <= -100 ? 'never' : { logit: bias });
  }
  return {
    ...(p.topK !== undefined ? { topK: p.topK } : {}),
    ...(p.minP !== undefined ? { minP: p.minP } : {}),
    ...(penalize
      ? { repeatPenalty: { penalty: p.repeatPenalty ?? 1, presencePenalty: p.presencePenalty ?? 0, frequencyPenalty: p.frequencyPenalty ?? 0 } }
      : {}),
    ...(tokenBias ? { tokenBias } : {}),
  };
}

function toChatHistory(messages: ChatMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = messages.map((msg) => {
    if (msg.role === 'system' || msg.role === 'developer') return { type: 'system', text: msg.content };
    if (msg.role === 'assistant') return { type: 'model', response: [msg.content] };
    return { type: 'user', text: msg.content };
  });
  // An open model turn at the end is what makes the wrapper render the assistant prefix.
  history.push({ type: 'model', response: [] });
  return history;
}
