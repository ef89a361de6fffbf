/**
 * CORS for browser clients, one middleware for every prefix that takes them (`/v1` for the
 * API, `/codec` for the Temporal Web UI): allowed origins only, preflights answered before
 * auth (a browser sends no credentials with one), the request's own headers allowed back (the
 * SDKs send their own `x-stainless-*` ones), and the correlation and rate-limit headers exposed.
 */
import type { NextFunction, Request, Response } from 'express';

export interface CorsOptions {
  /** Exact origins, or `*` for any. Empty: no CORS headers at all. */
  origins: readonly string[];
  methods: string;
  /** Whether cookies/credentials may be sent (never with `*`). */
  credentials?: boolean;
  /** The request headers a preflight allows; default: the ones it asks for. */
  allowHeaders?: string;
}

const EXPOSED = 'x-request-id, request-id, x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens, retry-after';

export function corsMiddleware(o: CorsOptions) {
  const any = o.origins.includes('*');
  return (req: Request, res: Response, next: NextFunction) => {
    const origin = req.headers.origin;
    const allowed = origin !== undefined && (any || o.origins.includes(origin));
    // The answer depends on the origin: caches must keep them apart, allowed or not.
    if (o.origins.length) res.setHeader('Vary', 'Origin');
    if (allowed) {
      res.setHeader('Access-Control-Allow-Origin', any && !o.credentials ? '*' : origin);
      if (o.credentials) res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Access-Control-Expose-Headers', EXPOSED);
    }
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method']) {
      if (allowed) {
        res.setHeader('Access-Control-Allow-Methods', o.methods);
        const asked = req.headers['access-control-request-headers'];
        const echoed = typeof asked === 'string' && asked.length <= 2048 ? asked : 'Content-Type, Authorization';
        res.setHeader('Access-Control-Allow-Headers', o.allowHeaders ?? echoed);
        res.setHeader('Access-Control-Max-Age', '600');
      }
      res.status(204).end();
      return;
    }
    next();
  };
}
