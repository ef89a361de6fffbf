/**
 * Who is calling. `Authorization: Bearer <key>` is the only credential; with
 * FLEET_REQUIRE_AUTH=false (the default) anonymous callers are served and unrecognized keys
 * are ignored, because clients send placeholder keys such as `sk-no-key`. Client-supplied
 * principal headers are stripped so nothing downstream can trust them.
 */
import type { NextFunction, Request, Response } from 'express';
import { ApiError } from './errors.js';

/** Headers a client might use to impersonate a principal; never honoured. */
const SPOOFABLE_HEADERS = ['x-fleet-principal', 'x-fleet-account', 'x-fleet-key-id'];

export interface Principal {
  keyId: string;
}

export function authMiddleware(opts: { requireAuth: boolean; resolveKey: (key: string) => Promise<Principal | null> }) {
  return async (req: Request, res: Response, next: NextFunction) => {
    for (const h of SPOOFABLE_HEADERS) delete req.headers[h];
    const header = req.headers.authorization;
    const key = header?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
    const principal = key ? await opts.resolveKey(key) : null;
    if (!principal && opts.requireAuth) {
      throw new ApiError(
        401,
        key ? 'Incorrect API key provided.' : 'You didn\'t provide an API key. Send it as "Authorization: Bearer <key>".',
        'invalid_request_error',
        'invalid_api_key',
      );
    }
    res.locals.principal = principal;
    next();
  };
}

export function principalOf(res: Response): string | null {
  const p = res.locals.principal as Principal | null | undefined;
  return p?.keyId ?? null;
}
