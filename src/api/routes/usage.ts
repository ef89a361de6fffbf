/**
 * GET /v1/usage: the calling key's spend, what its in-flight requests hold, what is left of
 * its balance, and its rolling window. Needs a key even where anonymous requests are served.
 */
import { Router } from 'express';
import { readKeyUsage } from '../../db/budgetRepo.js';
import { requirePrincipal } from '../auth.js';
import { keyRevoked } from '../errors.js';
import type { ApiDeps } from '../callExecutor.js';

export function usageRoutes(deps: ApiDeps): Router {
  const r = Router();
  r.get('/v1/usage', async (_req, res) => {
    const principal = requirePrincipal(res);
    const u = await readKeyUsage(deps.db, principal.keyId);
    if (!u) throw keyRevoked();
    res.json({
      object: 'usage',
      key_id: u.keyId,
      account: u.accountId,
      spent: u.spent,
      reserved: u.reserved,
      remaining: u.remaining,
      window: u.window && {
        limit: u.window.limit,
        seconds: u.window.seconds,
        spent: u.window.spent,
        reset_at: u.window.resetAt?.toISOString() ?? null,
      },
    });
  });
  return r;
}
