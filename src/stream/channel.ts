/**
 * The token stream channel: GPU hosts publish coalesced chunks keyed by request id, and the
 * API process that holds the client connection relays them as SSE. It crosses processes over
 * Postgres LISTEN/NOTIFY on one channel; each process LISTENs once and dispatches by request
 * id in memory, so a request costs no extra round trip to subscribe. The workflow result stays
 * the durable record: the API fills in anything the channel did not deliver. A chunk may carry
 * the answer's end (`final`), so the API can answer before the workflow closes. A chunk whose
 * subscriber is in the publishing process itself (`fleet dev`, or an API process with its own
 * host or provider worker) is handed over in memory and never touches the database: only one
 * API process ever subscribes to a request id, the one holding its client.
 */
import { z } from 'zod';
import type { StreamChunk } from '../common/inference.js';
import { MAX_NOTIFY_PAYLOAD_BYTES, type DbHandle } from '../db/connect.js';
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

const count = z.number().int().min(0);
const wireFinal = z.object({
  fr: z.enum(['stop', 'length']),
  u: z.object({ p: count, c: count, k: count.optional() }),
  rep: z.union([z.object({ kind: z.literal('host'), hostId: z.string() }), z.object({ kind: z.literal('provider'), providerId: z.string() })]),
  h: z.string(),
  fo: count,
  ue: z.literal(true).optional(),
});
const wireChunk = z.object({ r: z.string(), s: z.string(), o: count, t: z.string(), f: wireFinal.optional() });

function toWire(c: StreamChunk): string {
  const f = c.final;
  const final = f
    ? { f: { fr: f.finishReason, u: { p: f.usage.promptTokens, c: f.usage.completionTokens, ...(f.usage.cachedTokens ? { k: f.usage.cachedTokens } : {}) }, rep: f.replica, h: f.hostId, fo: f.failovers, ...(f.usageEstimated ? { ue: true } : {}) } }
    : {};
  return JSON.stringify({ r: c.requestId, s: c.source, o: c.offset, t: c.text, ...final });
}

function fromWire(w: z.infer<typeof wireChunk>): StreamChunk {
  const chunk: StreamChunk = { requestId: w.r, source: w.s, offset: w.o, text: w.t };
  if (w.f) {
    chunk.final = {
      finishReason: w.f.fr,
      usage: { promptTokens: w.f.u.p, completionTokens: w.f.u.c, ...(w.f.u.k ? { cachedTokens: Math.min(w.f.u.k, w.f.u.p) } : {}) },
      replica: w.f.rep,
      hostId: w.f.h,
      failovers: w.f.fo,
      ...(w.f.ue ? { usageEstimated: true } : {}),
    };
  }
  return chunk;
}

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
    const chunk = fromWire(parsed.data);
    for (const h of set) h(chunk);
  };

  return {
    async publish(chunk) {
      const local = handlers.get(chunk.requestId);
      if (local) {
        for (const h of local) h(chunk);
        return;
      }
      const wire = toWire(chunk);
      // An end marker too big for one notification (an unstreamed answer's whole text) is not
      // sent: the API then answers from the workflow result.
      if (chunk.final && Buffer.byteLength(wire) > MAX_NOTIFY_PAYLOAD_BYTES) return;
      await db.notify(PG_CHANNEL, wire);
    },
    async subscribe(requestId, onChunk) {
      // A failed LISTEN is tried again by the next subscriber, not remembered.
      listening ??= db.listen(PG_CHANNEL, dispatch).catch((err: unknown) => {
        listening = undefined;
        throw err;
      });
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
