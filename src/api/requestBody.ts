/**
 * The client's request body exactly as received: a verifiable model's host signature binds the
 * response to its sha256, so a client can check the signature against the bytes it sent. The
 * JSON parser keeps a reference to the buffer it parsed (no copy); the hash is taken only for
 * inference calls. Also the session key a call is routed by.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Request } from 'express';
import { invalidRequest } from './errors.js';

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

/** Printable, at most 256 characters: a session key is an opaque client id. */
const SESSION_KEY = /^[\x20-\x7e]{1,256}$/;

/**
 * The request's session key for routing affinity (src/domain/prefixRouting.ts): the
 * `x-session-id` header, else the body's end-user id. A malformed header is the client's error.
 */
function sessionKeyOf(req: Request, user?: string | null): string | undefined {
  const header = req.header('x-session-id');
  if (header !== undefined) {
    if (!SESSION_KEY.test(header)) throw invalidRequest('The x-session-id header must be 1 to 256 printable ASCII characters.', 'x-session-id', 'invalid_session_id');
    return header;
  }
  return user ? user : undefined;
}

/**
 * A call with what its HTTP request adds: the body's sha256 (what a signature binds) and the
 * session key (`user`: the body's own session field, used without the header).
 */
export function withRequestFacts<C extends object>(req: Request, call: C, user?: string | null): C & { requestSha256: string; session?: string } {
  const session = sessionKeyOf(req, user);
  return { ...call, requestSha256: requestBodySha256(req), ...(session !== undefined ? { session } : {}) };
}
