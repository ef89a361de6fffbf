/**
 * Who is calling. `Authorization: Bearer <key>` is the only credential; with
 * FLEET_REQUIRE_AUTH=false (the default) anonymous callers are served and unrecognized keys
 * are ignored, because clients send placeholder keys such as `sk-no-key`. Client-supplied
 * principal headers are stripped so nothing downstream can trust them; the principal comes
 * only from a key that resolved.
 *
 * Operator endpoints (`/admin/*`) take a different credential, FLEET_ADMIN_TOKEN, compared
 * in constant time; when it is unset they are open (local dev) and the API warns at start.
 */
import type { NextFunction, Request, Response } from 'express';
import { tokensEqual } from './apiKey.js';
import { ApiError } from './errors.js';

/** Headers a client might use to impersonate a principal; never honoured. */
export const SPOOFABLE_HEADERS = ['x-fleet-principal', 'x-fleet-account', 'x-fleet-key-id'];

/** The caller behind a valid API key. */
export interface Principal {
  keyId: string;
  accountId: string;
}

export function bearerOf(req: Request): string | undefined {
  return req.headers.authorization?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
}

const invalidKey = (presented: boolean) =>
  new ApiError(
    401,
    presented ? 'Incorrect API key provided.' : 'You didn\'t provide an API key. Send it as "Authorization: Bearer <key>".',
    'invalid_request_error',
    'invalid_api_key',
  );

/** The API key a client presented: `Authorization: Bearer` (OpenAI's clients) or `x-api-key` (Anthropic's). */
export function apiKeyOf(req: Request): string | undefined {
  const header = req.headers['x-api-key'];
  return bearerOf(req) ?? (typeof header === 'string' && header.trim() ? header.trim() : undefined);
}

export function authMiddleware(opts: { requireAuth: boolean; resolveKey: (key: string) => Promise<Principal | null> }) {
  return async (req: Request, res: Response, next: NextFunction) => {
    for (const h of SPOOFABLE_HEADERS) delete req.headers[h];
    const key = apiKeyOf(req);
    const principal = key ? await opts.resolveKey(key) : null;
    if (!principal && opts.requireAuth) throw invalidKey(key !== undefined);
    res.locals.principal = principal;
    res.locals.keyPresented = key !== undefined;
    next();
  };
}

/** `/admin/*`: the admin token when one is configured, else open. */
export function adminAuthMiddleware(adminToken: string | undefined) {
  return (req: Request, _res: Response, next: NextFunction) => {
    if (adminToken !== undefined) {
      const presented = bearerOf(req);
      if (presented === undefined || !tokensEqual(presented, adminToken)) {
        throw new ApiError(
          401,
          presented === undefined
            ? 'Admin endpoints need the admin token: send "Authorization: Bearer <FLEET_ADMIN_TOKEN>".'
            : 'Incorrect admin token provided.',
          'invalid_request_error',
          'invalid_api_key',
        );
      }
    }
    next();
  };
}

/** The caller's principal, or null for an anonymous request. */
export function principalFrom(res: Response): Principal | null {
  return (res.locals.principal as Principal | null | undefined) ?? null;
}

/** `GET /v1/usage` and the like: a key is needed even when anonymous requests are served. */
export function requirePrincipal(res: Response): Principal {
  const p = principalFrom(res);
  if (!p) throw invalidKey(res.locals.keyPresented === true);
  return p;
}
