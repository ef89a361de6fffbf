/**
 * The client's request body exactly as received: a verifiable model's host signature binds the
 * response to its sha256, so a client can check the signature against the bytes it sent. The
 * JSON parser keeps a reference to the buffer it parsed (no copy); the hash is taken only for
 * inference calls.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Request } from 'express';

const RAW = Symbol('rawBody');
type WithRaw = IncomingMessage & { [RAW]?: Buffer };

/** `verify` hook of express.json: remembers the parsed buffer. */
export function keepRawBody(req: IncomingMessage, _res: unknown, buf: Buffer): void {
  (req as WithRaw)[RAW] = buf;
}

/** Hex sha256 of the request body as received (of no bytes when there was none). */
export function requestBodySha256(req: Request): string {
  return createHash('sha256').update((req as WithRaw)[RAW] ?? Buffer.alloc(0)).digest('hex');
}
