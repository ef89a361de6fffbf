/**
 * The shapes that cross the wire between API, workflows and GPU-host activities. Plain JSON
 * (they are Temporal payloads), sandbox-safe, no runtime code beyond type definitions.
 */
import type { HostSignature } from '../domain/teeSignatures.js';
import type { OutputConstraint } from '../domain/toolCalls.js';
import type { RequestPrefix } from '../domain/prefixRouting.js';
import type { RouteOutcome } from '../domain/requestPlan.js';
import type { Replica } from './replicas.js';

/** A route decision to serve now: ranked attempts (and why other replicas were left out). */
export type ServeDecision = Extract<RouteOutcome, { kind: 'serve' }>;
export type ChatRole = 'system' | 'user' | 'assistant' | 'developer' | 'tool';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** One text to embed, or its token ids. */
export type EmbeddingInput = string | number[];

/**
 * What the model is asked: a chat (formatted by the host's chat wrapper), a raw prompt, or
 * texts to embed (`dimensions`: the size the client asked for, checked against the model's).
 */
export type InferenceInput =
  | { kind: 'chat'; messages: ChatMessage[] }
  | { kind: 'completion'; prompt: string }
  | { kind: 'embedding'; inputs: EmbeddingInput[]; dimensions?: number };

export interface SamplingParams {
  /** Requested output bound; null means "as many as fit the context" (OpenAI's default). */
  maxTokens: number | null;
  /** With `maxTokens` null: at most this many (the model's output limit, what the request reserved). */
  outputLimit?: number;
  temperature: number;
  topP: number;
  seed?: number;
  stop: string[];
  /** Only the K most likely tokens (llama.cpp top_k); absent: off. */
  topK?: number;
  /** Discard tokens below this share of the top token's probability (llama.cpp min_p); absent: off. */
  minP?: number;
  /** llama.cpp's repeat penalty (1: off) and OpenAI's presence / frequency penalties (0: off). */
  repeatPenalty?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  /** Token id → bias added to its logit (-100..100; -100 bans it), as OpenAI's logit_bias. */
  logitBias?: Record<string, number>;
  /** The output held to JSON, a JSON schema or tool calls (src/domain/toolCalls.ts). */
  constraint?: OutputConstraint;
}

export interface InferenceRequestInput {
  requestId: string;
  modelId: string;
  input: InferenceInput;
  params: SamplingParams;
  /** When true the host publishes coalesced text chunks on the stream channel. */
  stream: boolean;
  /** Key id of the caller, or null for anonymous; set by the API, never by the client. */
  principal: string | null;
  /**
   * Account of that key (null: anonymous). Informational — operators see it in the history;
   * absent in requests recorded before keys existed.
   */
  accountId?: string | null;
  /** Only count the prompt's tokens on a replica that has the model (nothing is generated). */
  countOnly?: boolean;
  /**
   * Hex sha256 of the client's HTTP request body as the API received it: what a verifiable
   * model's host signature binds the response to. Absent in requests recorded before it.
   */
  requestSha256?: string;
  /**
   * The first round's decision, made by the API from its fleet snapshot (src/api/fleetSnapshot.ts)
   * when it says "serve now": the workflow starts its attempts without its route step. Every later
   * round is routed by the workflow. Absent: the workflow routes from the start (and in requests
   * recorded before it).
   */
  route?: ServeDecision;
  /**
   * The conversation as chained block hashes (src/common/prefixBlocks.ts) and the client's
   * session key: routing prefers a host holding its prefix. Absent: routed by load.
   */
  prefix?: RequestPrefix;
}

export type FinishReason = 'stop' | 'length';

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  /** Of the prompt's tokens, those a host's sequence already held (not evaluated again); absent: none. */
  cachedTokens?: number;
}

export interface GenerateResult {
  text: string;
  finishReason: FinishReason;
  usage: Usage;
  /** The replica that served (absent in results recorded before providers: `hostId` says it). */
  replica?: Replica;
  /** The host that served; for a provider, `provider:<id>` (what logs and older records show). */
  hostId: string;
  /** The provider gave no usage: the figures are estimates. */
  usageEstimated?: boolean;
  /** The client's stop sequence that ended the answer (Anthropic's `stop_sequence`). */
  stopSequence?: string;
  /** An embedding request's vectors, in input order: little-endian float32, base64 (a compact payload). */
  embeddings?: string[];
  /** Verifiable models: the host's signature over `<build sha256>:<sha256 req>:<sha256 text>` (src/domain/teeSignatures.ts). */
  signature?: HostSignature;
  /** Attested providers: the serving backend's signature over `<model>:<sha256 req>:<sha256 resp>`. */
  teeSignature?: ProviderTeeSignature;
}

/** A provider TEE's response signature, checked against the key its pinned TLS fingerprint vouched for. */
export interface ProviderTeeSignature {
  /** The upstream's completion id the signature was fetched by. */
  upstreamId: string;
  text: string;
  signature: string;
  signingAddress: string;
  signingAlgo: 'ed25519' | 'ecdsa';
  /** The pinned SPKI fingerprint whose attested report vouched for the signing key. */
  tlsFingerprint: string;
}

export interface InferenceResult extends GenerateResult {
  /** The alias the client asked for (what the response names). */
  modelId: string;
  /** The build that served it (absent in results recorded before aliases). */
  build?: string;
  /** Whether an idle host was moved into the alias's pool for this request. */
  moved?: boolean;
  /** Whether this request had to wait for a cold load. */
  coldLoaded: boolean;
  /** Attempts that moved on to another replica. */
  failovers: number;
}

export interface GenerateInput extends Omit<InferenceRequestInput, 'route' | 'prefix'> {
  /** A digest of the client's session key: an attested provider's backend affinity (absent: none). */
  session?: string;
  /** Fleet-state facts the host needs to check before using a slot. */
  contextLength: number;
  /**
   * Verifiable model: the host signs its response over this build hash, with a key that must be
   * one of `pinnedFingerprints` — checked before anything is generated, so a host whose key
   * rotated since the pin set was made refuses (`Unpinned`) instead of answering. The list is
   * absent in inputs recorded before the check.
   */
  sign?: { modelSha256: string; pinnedFingerprints?: string[] };
  /** A remote build: the provider to call and the slug it knows the model by (provider workers only). */
  remote?: { providerId: string; upstreamModel: string };
  /** Attempts of this request that moved on before this one (echoed in the early answer). */
  failovers?: number;
}

/**
 * The end of an answer, published by the replica on the stream channel the moment generation
 * ends, so the API answers without waiting for the workflow to close (the workflow still records
 * the outcome durably). Only for answers without a signature: a signed answer is checked by the
 * workflow and stored from its result.
 */
export interface EarlyAnswer {
  finishReason: FinishReason;
  usage: Usage;
  replica: Replica;
  hostId: string;
  failovers: number;
  usageEstimated?: boolean;
  stopSequence?: string;
}

/** One coalesced piece of a streamed answer; `offset` is its position in the full text. */
export interface StreamChunk {
  requestId: string;
  /** The host that generated it: after a failover, chunks of two hosts must not mix. */
  source: string;
  offset: number;
  text: string;
  /**
   * The answer is complete: for a stream, `offset` is its full length and `text` empty; otherwise
   * `offset` is 0 and `text` the whole answer.
   */
  final?: EarlyAnswer;
}
