/**
 * The token stream channel: GPU hosts publish coalesced chunks keyed by request id, and the
 * API process that holds the client connection relays them as SSE. It crosses processes over
 * Postgres LISTEN/NOTIFY on one channel; each process LISTENs once and dispatches by request
 * id in memory, so a request costs no extra round trip to subscribe. The workflow result stays
 * the durable record: the API fills in anything the channel did not deliver.
 */
import { z } from 'zod';
import type { StreamChunk } from '../common/inference.js';
import type { DbHandle } from '../db/connect.js';
import type { Logger } from '../logger.js';

export interface StreamChannel {
  publish(chunk: StreamChunk): Promise<void>;
  /** Registers a handler for one request id; returns the unsubscribe function. */
  subscribe(requestId: string, onChunk: (chunk: StreamChunk) => void): Promise<() => void>;
  close(): Promise<void>;
}

const PG_CHANNEL = 'fleet_stream';
/** NOTIFY payloads are capped at 8000 bytes; leave room for the envelope and escaping. */
export const MAX_CHUNK_BYTES = 6000;

const wireChunk = z.object({ r: z.string(), s: z.string(), o: z.number().int().min(0), t: z.string() });

export function createPgStreamChannel(db: DbHandle, log: Logger): StreamChannel {
  const handlers = new Map<string, Set<(c: StreamChunk) => void>>();
  let listening: Promise<() => Promise<void>> | undefined;

  const dispatch = (payload: string) => {
    let parsed;
    try {
      parsed = wireChunk.safeParse(JSON.parse(payload));
    } catch {
      parsed = undefined;
    }
    if (!parsed?.success) {
      log.warn('dropped a malformed stream notification');
      return;
    }
    const set = handlers.get(parsed.data.r);
    if (!set) return;
    const chunk = { requestId: parsed.data.r, source: parsed.data.s, offset: parsed.data.o, text: parsed.data.t };
    for (const h of set) h(chunk);
  };

  return {
    async publish(chunk) {
      const payload = JSON.stringify({ r: chunk.requestId, s: chunk.source, o: chunk.offset, t: chunk.text });
      await db.notify(PG_CHANNEL, payload);
    },
    async subscribe(requestId, onChunk) {
      listening ??= db.listen(PG_CHANNEL, dispatch);
      await listening;
      let set = handlers.get(requestId);
      if (!set) handlers.set(requestId, (set = new Set()));
      set.add(onChunk);
      return () => {
        set.delete(onChunk);
        if (set.size === 0) handlers.delete(requestId);
      };
    },
    async close() {
      handlers.clear();
      if (listening) await (await listening)();
      listening = undefined;
    },
  };
}
