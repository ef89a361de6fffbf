/**
 * What every wire format's `CallSink` shares: the client-gone plumbing, the rate-limit headers,
 * reading tool calls out of an answer, and holding streamed text back while it may still
 * become a call object (a call goes out whole, in the format's own call events; text that is
 * not one is released as soon as that is clear).
 */
import { randomBytes } from 'node:crypto';
import type { Response } from 'express';
import type { WindowState } from '../../db/budgetRepo.js';
import { mayBeToolCall, readToolOutput } from '../../domain/toolCalls.js';
import type { CallSink } from '../callExecutor.js';
import type { WireToolCall } from '../openaiFormat.js';
import type { ToolMode } from './chatFeatures.js';

/**
 * OpenAI's token rate-limit headers for a keyed call's window. The window rolls, so `reset`
 * is its length: by then every token counted now has aged out.
 */
export function setRateLimitHeaders(res: Response, w: WindowState): void {
  res.setHeader('x-ratelimit-limit-tokens', String(w.limit));
  res.setHeader('x-ratelimit-remaining-tokens', String(w.remaining));
  res.setHeader('x-ratelimit-reset-tokens', `${w.seconds}s`);
}

/** A sink over an HTTP response: `closed`, `onClose` and `limits` from the response, the rest the format's. */
export function responseSink(res: Response, parts: Pick<CallSink, 'text' | 'done' | 'fail'>): CallSink {
  return {
    get closed() {
      return res.destroyed;
    },
    onClose: (listener) => void res.on('close', listener),
    limits: (w) => setRateLimitHeaders(res, w),
    ...parts,
  };
}

/** The tool calls an answer holds (ids minted here, as OpenAI mints them), or none. */
export function toolCallsOf(text: string, mode: ToolMode): WireToolCall[] | undefined {
  if (mode === 'none') return undefined;
  const read = readToolOutput(text);
  if (read.kind !== 'calls') return undefined;
  return read.calls.map((c) => ({ id: `call_${randomBytes(12).toString('base64url')}`, ...c }));
}

/**
 * Streamed text of a call that may answer with tool calls. `send` gets text that is surely
 * not a call; `held` is told when text is held back (the sink then opens its stream, so a long
 * call does not leave a proxy waiting for headers); `rest()` is what is still held when the
 * answer ends and is not a call.
 */
export function toolTextGate(mode: ToolMode, o: { send: (text: string) => void; held: () => void }) {
  let held = '';
  let holding = mode !== 'none';
  return {
    push(delta: string): void {
      if (!holding) return o.send(delta);
      held += delta;
      o.held();
      if (mode === 'auto' && !mayBeToolCall(held)) {
        holding = false;
        const text = held;
        held = '';
        o.send(text);
      }
    },
    rest(): string {
      const text = held;
      held = '';
      return text;
    },
  };
}
