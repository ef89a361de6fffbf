/**
 * Relays one request's stream chunks to the client as SSE, in offset order. Headers go out
 * with the first text, so a request that fails before producing anything still gets a plain
 * HTTP error with its status. Only one host's chunks are relayed: if the request moved to
 * another host after this one had sent text, the final answer is used only if it continues
 * what the client already has; otherwise the stream ends with an error and no [DONE].
 */
import type { Response } from 'express';
import type { InferenceResult, StreamChunk } from '../common/inference.js';
import { ApiError, toErrorResponse } from './errors.js';
import { streamChunk, usageChunk, type ResponseMeta } from './openaiFormat.js';
import { endSse, sendEvent, startSse } from './sse.js';

export interface StreamRelayOptions {
  /** Called once, when the first text is written to the client (time-to-first-token). */
  onFirstText?: () => void;
}

export class StreamRelay {
  private sentText = '';
  private readonly early = new Map<number, string>();
  private started = false;
  /** The host whose text the client has; null until the first text goes out. */
  private owner: string | null = null;

  constructor(
    private readonly res: Response,
    private readonly meta: ResponseMeta,
    private readonly includeUsage: boolean,
    private readonly sendError: (res: Response, err: unknown) => void,
    private readonly options: StreamRelayOptions = {},
  ) {}

  /** Whether any text reached the client. */
  get streamedText(): boolean {
    return this.sentText.length > 0;
  }

  onChunk(c: StreamChunk): void {
    if (this.owner !== null && c.source !== this.owner) return;
    this.owner ??= c.source;
    const sent = this.sentText.length;
    if (c.offset > sent) {
      this.early.set(c.offset, c.text);
      return;
    }
    if (c.offset < sent) return; // a duplicate
    this.write(c.text);
    for (let next = this.early.get(this.sentText.length); next !== undefined; next = this.early.get(this.sentText.length)) {
      this.early.delete(this.sentText.length);
      this.write(next);
    }
  }

  private ensureStarted(): void {
    if (this.started) return;
    this.started = true;
    startSse(this.res);
    sendEvent(this.res, streamChunk(this.meta, { role: 'assistant', text: '' }, this.includeUsage));
  }

  private write(text: string): void {
    if (this.res.destroyed || !text) return;
    this.ensureStarted();
    if (this.sentText.length === 0) this.options.onFirstText?.();
    this.sentText += text;
    sendEvent(this.res, streamChunk(this.meta, { text }, this.includeUsage));
  }

  finish(result: InferenceResult | undefined, failure: ApiError | undefined): void {
    if (result && !result.text.startsWith(this.sentText)) {
      // Another host answered after this client got part of a different answer.
      failure = new ApiError(502, 'The inference host failed mid-stream; the answer is incomplete.', 'api_error', 'upstream_error');
      result = undefined;
    }
    if (result) {
      // The workflow result is the durable record: send whatever the channel did not deliver.
      this.write(result.text.slice(this.sentText.length));
      this.ensureStarted();
      sendEvent(this.res, streamChunk(this.meta, { finish: result.finishReason }, this.includeUsage));
      if (this.includeUsage) sendEvent(this.res, usageChunk(this.meta, result.usage));
      endSse(this.res);
      return;
    }
    if (!this.started) {
      this.sendError(this.res, failure);
      return;
    }
    // Mid-stream failure: an error event and no [DONE], never a truncated answer as complete.
    sendEvent(this.res, toErrorResponse(failure).body);
    this.res.end();
  }
}
