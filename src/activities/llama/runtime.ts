/**
 * The node-llama-cpp runtime of one GPU host: loads GGUF files, keeps one context per model
 * with a sequence per concurrent request, and generates. It knows nothing of Temporal; the
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
  type LlamaModel,
  type Token,
} from 'node-llama-cpp';
import type { ChatMessage, FinishReason, InferenceInput, SamplingParams, Usage } from '../../common/inference.js';
import type { Logger } from '../../logger.js';
import { SequencePool } from './sequencePool.js';

export interface RuntimeOptions {
  threads: number;
  gpu: 'auto' | false;
  /** Concurrent generations per model (context sequences). */
  maxInFlight: number;
  /** Requests allowed to wait for a sequence. */
  maxQueue: number;
  log: Logger;
}

export interface LoadedModelInfo {
  modelId: string;
  path: string;
  contextLength: number;
  running: number;
  queued: number;
  capacity: number;
}

interface LoadedModel {
  modelId: string;
  path: string;
  model: LlamaModel;
  context: LlamaContext;
  chatWrapper: ChatWrapper;
  pool: SequencePool<LlamaCompletion>;
  /** Usable tokens per sequence. */
  contextLength: number;
}

export class ContextOverflowError extends Error {
  override name = 'ContextOverflowError';
  constructor(
    readonly promptTokens: number,
    readonly requested: number | null,
    readonly contextLength: number,
  ) {
    super(
      requested === null
        ? `This model's maximum context length is ${contextLength} tokens. However, your prompt has ${promptTokens} tokens.`
        : `This model's maximum context length is ${contextLength} tokens. However, you requested ${promptTokens + requested} tokens (${promptTokens} in the prompt, ${requested} in the completion).`,
    );
  }
}

export interface GenerateOptions {
  input: InferenceInput;
  params: SamplingParams;
  signal?: AbortSignal;
  onText?: (text: string) => void;
}

export interface GenerateOutput {
  text: string;
  finishReason: FinishReason;
  usage: Usage;
}

export class LlamaRuntime {
  private llama: Promise<Llama> | undefined;
  private readonly models = new Map<string, LoadedModel>();
  private readonly loading = new Map<string, Promise<LoadedModel>>();

  constructor(private readonly opts: RuntimeOptions) {}

  private getLlama(): Promise<Llama> {
    this.llama ??= getLlama({ gpu: this.opts.gpu, logLevel: 'error' as never });
    return this.llama;
  }

  async describe(): Promise<{ gpu: string | false; threads: number }> {
    const llama = await this.getLlama();
    return { gpu: llama.gpu, threads: this.opts.threads };
  }

  loadedModels(): LoadedModelInfo[] {
    return [...this.models.values()].map((m) => ({
      modelId: m.modelId,
      path: m.path,
      contextLength: m.contextLength,
      ...m.pool.stats,
    }));
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
    return { modelId: m.modelId, path: m.path, contextLength: m.contextLength, ...m.pool.stats };
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
      const sequences = this.opts.maxInFlight;
      const ctxLen = Math.min(contextLength, model.trainContextSize);
      const context = await model.createContext({
        contextSize: ctxLen,
        sequences,
        threads: this.opts.threads,
      });
      const completions = Array.from(
        { length: sequences },
        () => new LlamaCompletion({ contextSequence: context.getSequence() }),
      );
      const loaded: LoadedModel = {
        modelId,
        path: modelPath,
        model,
        context,
        chatWrapper: resolveChatWrapper(model),
        pool: new SequencePool(completions, this.opts.maxQueue),
        contextLength: ctxLen,
      };
      this.models.set(modelId, loaded);
      this.opts.log.info({ modelId, contextLength: ctxLen, sequences }, 'model loaded');
      return loaded;
    } catch (err) {
      await model.dispose();
      throw err;
    }
  }

  async unload(modelId: string): Promise<boolean> {
    const m = this.models.get(modelId);
    if (!m) return false;
    this.models.delete(modelId);
    m.pool.rejectAll(new Error(`model ${modelId} was unloaded`));
    await m.context.dispose();
    await m.model.dispose();
    this.opts.log.info({ modelId }, 'model unloaded');
    return true;
  }

  async close(): Promise<void> {
    for (const id of [...this.models.keys()]) await this.unload(id);
    if (this.llama) await (await this.llama).dispose();
  }

  /** Tokenizes the request as the model will see it. */
  private promptTokens(m: LoadedModel, input: InferenceInput): { tokens: Token[]; stops: LlamaText[] } {
    if (input.kind === 'completion') {
      return { tokens: m.model.tokenize(input.prompt), stops: [] };
    }
    const state = m.chatWrapper.generateContextState({ chatHistory: toChatHistory(input.messages) });
    return { tokens: state.contextText.tokenize(m.model.tokenizer), stops: state.stopGenerationTriggers };
  }

  async generate(modelId: string, o: GenerateOptions): Promise<GenerateOutput> {
    const m = this.models.get(modelId);
    if (!m) throw new ModelNotLoadedError(modelId);
    const { tokens, stops } = this.promptTokens(m, o.input);
    const room = m.contextLength - tokens.length;
    const requested = o.params.maxTokens;
    // Checked before taking a slot: an over-long prompt never burns queue capacity.
    if (room < 1 || (requested !== null && requested > room)) {
      throw new ContextOverflowError(tokens.length, requested, m.contextLength);
    }
    const completion = await m.pool.acquire(o.signal);
    try {
      let completionTokens = 0;
      const res = await completion.generateCompletionWithMeta(tokens, {
        maxTokens: requested ?? room,
        temperature: o.params.temperature,
        topP: o.params.topP,
        seed: o.params.seed,
        customStopTriggers: [...stops, ...o.params.stop],
        signal: o.signal,
        onToken: (t) => {
          completionTokens += t.length;
        },
        onTextChunk: o.onText,
      });
      return {
        text: res.response,
        finishReason: res.metadata.stopReason === 'maxTokens' ? 'length' : 'stop',
        usage: { promptTokens: tokens.length, completionTokens },
      };
    } finally {
      m.pool.release(completion);
    }
  }
}

export class ModelNotLoadedError extends Error {
  override name = 'ModelNotLoadedError';
  constructor(readonly modelId: string) {
    super(`model ${modelId} is not loaded on this host`);
  }
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
