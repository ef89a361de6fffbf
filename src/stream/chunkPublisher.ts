/**
 * Coalesces generated text into stream chunks without any timer: the first piece is sent at
 * once; while a publish is in flight, new text accumulates and goes out as one chunk when it
 * completes. Fast generation therefore sends few large chunks, slow generation sends each
 * token as soon as it exists, and no fixed sleep sits on the streaming path.
 */
import type { EarlyAnswer } from '../common/inference.js';
import type { Logger } from '../logger.js';
import { MAX_CHUNK_BYTES, type StreamChannel } from './channel.js';

export interface ChunkPublisher {
  push(text: string): void;
  /** Resolves once everything pushed so far has been published (or given up on). */
  flush(): Promise<void>;
  /** Characters published so far. */
  readonly published: number;
}

export function createChunkPublisher(channel: StreamChannel, requestId: string, source: string, log: Logger): ChunkPublisher {
  let pending = '';
  let offset = 0;
  let inFlight: Promise<void> | undefined;

  const pump = async (): Promise<void> => {
    while (pending.length > 0) {
      const text = takePrefix(pending, MAX_CHUNK_BYTES);
      pending = pending.slice(text.length);
      const at = offset;
      offset += text.length;
      try {
        await channel.publish({ requestId, source, offset: at, text });
      } catch (err) {
        // Best effort: the API fills the gap from the workflow result.
        log.warn({ err: (err as Error).message }, 'stream publish failed');
      }
    }
    inFlight = undefined;
  };

  return {
    push(text) {
      if (!text) return;
      pending += text;
      inFlight ??= pump();
    },
    async flush() {
      while (inFlight) await inFlight;
    },
    get published() {
      return offset;
    },
  };
}

/**
 * Publishes the end of an answer (see EarlyAnswer): after a stream's last chunk, a final marker
 * at its length — only when the chunks add up to the answer's text; for an answer that was not
 * streamed, the whole text (the channel drops it when too big for one notification). Best effort,
 * like the chunks: a lost notification only means the API waits for the workflow to close.
 */
export async function publishFinal(
  channel: StreamChannel,
  o: { requestId: string; source: string; log: Logger; text: string; streamed: ChunkPublisher | undefined; final: EarlyAnswer },
): Promise<void> {
  if (o.streamed && o.streamed.published !== o.text.length) return;
  const chunk = o.streamed
    ? { requestId: o.requestId, source: o.source, offset: o.streamed.published, text: '', final: o.final }
    : { requestId: o.requestId, source: o.source, offset: 0, text: o.text, final: o.final };
  try {
    await channel.publish(chunk);
  } catch (err) {
    o.log.warn({ err: (err as Error).message }, 'publishing the final answer failed');
  }
}

/** The longest prefix of `s` whose UTF-8 size is at most `maxBytes`, never splitting a pair. */
function takePrefix(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s) <= maxBytes) return s;
  let end = Math.min(s.length, maxBytes);
  while (end > 0 && Buffer.byteLength(s.slice(0, end)) > maxBytes) end = Math.floor(end * 0.9);
  const code = s.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--;
  return s.slice(0, Math.max(end, 1));
}
