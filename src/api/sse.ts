/**
 * Server-sent events for the OpenAI stream format: `data: <json>\n\n` frames, ending with
 * `data: [DONE]`, or with an error frame and no `[DONE]` when a stream breaks mid-way, so a
 * truncated answer is never presented as complete.
 */
import type { Response } from 'express';

export function startSse(res: Response): void {
  res.status(200);
  res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
  res.setHeader('Cache-Control', 'no-cache, no-transform');
  res.setHeader('Connection', 'keep-alive');
  res.setHeader('X-Accel-Buffering', 'no');
  res.flushHeaders();
}

export function sendEvent(res: Response, data: unknown): void {
  res.write(`data: ${JSON.stringify(data)}\n\n`);
}

/** A named event (Anthropic's stream format: `event: <type>` then its data). */
export function sendNamedEvent(res: Response, event: string, data: unknown): void {
  res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

export function endSse(res: Response): void {
  res.end('data: [DONE]\n\n');
}
